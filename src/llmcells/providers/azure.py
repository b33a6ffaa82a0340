"""Azure OpenAI adapter: GPT models by deployment name through the openai SDK's `AsyncAzureOpenAI`.

The request bodies, the stream reading and the error mapping are the OpenAI adapter's (Azure speaks
the same wire format at its own URLs: `/openai/deployments/{deployment}/chat/completions` and
`/openai/responses`, with `?api-version=` and an `api-key` header or an Entra ID bearer token).
"""

from __future__ import annotations

import os
import re

import httpx2
import openai

from ..errors import ConfigError, LLMError, MissingKeyError, ModelNotFoundError, ProviderError
from ..models import ModelSpec
from ._common import host_of
from ._http import guard, tls_context
from .base import ClientOptions
from .openai import OpenAIProvider

#: the api-version sent when OPENAI_API_VERSION is not set: one that has the Responses API
DEFAULT_API_VERSION = "2025-04-01-preview"
_ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


def token_provider() -> object:
    """A bearer-token callable for Entra ID sign-in (azure-identity's DefaultAzureCredential:
    environment, managed identity, Azure CLI...). MissingKeyError when azure-identity is missing."""
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError:
        raise MissingKeyError(
            "No key for Azure OpenAI: set AZURE_OPENAI_API_KEY, or pip install 'llmcells[cloud]' "
            "to sign in with Entra ID (azure-identity).", provider="azure") from None
    return get_bearer_token_provider(DefaultAzureCredential(), _ENTRA_SCOPE)


class AzureProvider(OpenAIProvider):
    """Azure OpenAI through `openai.AsyncAzureOpenAI` (the model id's name is the deployment)."""

    name = "azure"

    def make_client(self, options: ClientOptions) -> openai.AsyncAzureOpenAI:
        """An AsyncAzureOpenAI client for the resource at options.base_url (AZURE_OPENAI_ENDPOINT),
        with the SDK's retries off (the runner retries)."""
        if not options.base_url:
            raise ConfigError("Azure OpenAI needs its endpoint: set AZURE_OPENAI_ENDPOINT "
                              "(https://RESOURCE.openai.azure.com).")
        timeout = httpx2.Timeout(options.read_timeout, connect=options.connect_timeout)
        auth: dict[str, object] = ({"api_key": options.api_key} if options.api_key
                                   else {"azure_ad_token_provider": token_provider()})
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=options.base_url,
            api_version=os.environ.get("OPENAI_API_VERSION") or DEFAULT_API_VERSION,
            max_retries=0,
            timeout=timeout,
            http_client=guard(options.http_client or openai.DefaultAsyncHttpxClient(
                timeout=timeout, verify=tls_context())),
            **auth,  # type: ignore[arg-type]
        )
        client.chat.completions  # noqa: B018 - load the resource module now, off the loop
        return client

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """OpenAI's mapping, with Azure's two 404s said as Azure means them: the model id's name
        is a deployment, not a model llmcells knows (no alias list or retirement date helps),
        and a bare "Resource not found" is a wrong endpoint or api-version."""
        if isinstance(exc, openai.NotFoundError):
            host = host_of(spec.base_url, "the Azure OpenAI endpoint")
            if exc.code == "DeploymentNotFound":
                return ModelNotFoundError(
                    f"Azure OpenAI has no deployment named '{spec.name}' at {host}: check the "
                    "deployment name (a new one takes a few minutes to answer).",
                    provider=spec.provider, status_code=404)
            if str(exc.code) == "404":
                return ProviderError(
                    f"Azure OpenAI at {host} answered 'Resource not found': check "
                    "AZURE_OPENAI_ENDPOINT (https://RESOURCE.openai.azure.com) and "
                    "OPENAI_API_VERSION.", provider=spec.provider, status_code=404)
        err = super().map_error(exc, spec)
        if (isinstance(exc, openai.BadRequestError) and err is not None and spec.price_model is None
                and _REFUSED_SAMPLING.search(err.message)):
            # A deployment's name says nothing of its model: llmcells sent what a GPT model
            # takes. Named, a reasoning model's deployment is sent what that model accepts.
            err.args = (err.message + f" If '{spec.name}' serves a reasoning model, name it: "
                        f"LLMCELLS_AZURE_MODELS=\"{spec.name}=o4-mini\" (its model), and llmcells "
                        "leaves out what the model refuses.",)
        return err


#: Azure's 400 for a sampling parameter a reasoning model refuses
_REFUSED_SAMPLING = re.compile(r"unsupported (parameter|value).*'(temperature|top_p)'", re.IGNORECASE)

ADAPTER = AzureProvider()
