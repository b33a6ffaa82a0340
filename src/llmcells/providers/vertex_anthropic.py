"""Claude on Vertex AI: the Anthropic adapter through the anthropic SDK's `AsyncAnthropicVertex`.

The SDK turns the Messages request into Vertex's `.../publishers/anthropic/models/{model}:
streamRawPredict` (the model moves from the body to the URL) and signs it with a Google bearer
token: Application Default Credentials, or the simulator's. The body's `anthropic_version` is
Vertex's own "vertex-2023-10-16", set here: the SDK would send its API version date.
"""

from __future__ import annotations

import dataclasses
import os

import anthropic
import httpx2

from ..errors import AuthenticationError, LLMError
from ..models import ModelSpec, vertex_region
from ._http import guard, tls_context
from .anthropic import AnthropicProvider
from .base import ClientOptions

#: the project sent to the simulator when none is configured (the simulator accepts any)
SIM_PROJECT = "llmcells-sim"
#: the body's `anthropic_version` on Vertex AI (Anthropic: it "must be set to vertex-2023-10-16")
VERTEX_VERSION = "vertex-2023-10-16"


def project() -> str | None:
    """The Google Cloud project: ANTHROPIC_VERTEX_PROJECT_ID or GOOGLE_CLOUD_PROJECT (else the
    credentials' own, found by the SDK)."""
    return os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID") or os.environ.get("GOOGLE_CLOUD_PROJECT") or None


#: the Vertex AI location: CLOUD_ML_REGION or GOOGLE_CLOUD_LOCATION, else "global"
region = vertex_region


def vertex_host() -> str:
    """The Vertex AI host of the configured location (for error messages that name the host)."""
    where = region()
    return {"global": "https://aiplatform.googleapis.com", "us": "https://aiplatform.us.rep.googleapis.com",
            "eu": "https://aiplatform.eu.rep.googleapis.com"}.get(where, f"https://{where}-aiplatform.googleapis.com")


def on_vertex(spec: ModelSpec) -> ModelSpec:
    """spec with Vertex AI's host as its base URL when it has none, so that an error names the
    host the request went to, not the maker's own API."""
    return spec if spec.base_url else dataclasses.replace(spec, base_url=vertex_host())


def credentials_error(exc: BaseException, spec: ModelSpec) -> LLMError | None:
    """One clear line for a google-auth failure (no Application Default Credentials), else None."""
    if (type(exc).__module__ or "").startswith("google.auth"):
        return AuthenticationError(
            f"No usable Google Cloud credentials for {spec.label}: run `gcloud auth "
            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS, and set "
            "GOOGLE_CLOUD_PROJECT.", provider=spec.provider)
    if isinstance(exc, ImportError) and "google" in str(exc):
        return AuthenticationError("Vertex AI needs google-auth: pip install 'llmcells[cloud]'.",
                                   provider=spec.provider)
    return None


class VertexAnthropicProvider(AnthropicProvider):
    """Claude through `anthropic.AsyncAnthropicVertex`."""

    name = "vertex_anthropic"
    #: the only `anthropic_version` Vertex AI takes; the SDK would send its own API date instead
    body_version = VERTEX_VERSION
    credentials = ("the Google Cloud credentials; run `gcloud auth application-default login` or "
                   "set GOOGLE_APPLICATION_CREDENTIALS")

    def make_client(self, options: ClientOptions) -> anthropic.AsyncAnthropicVertex:
        """An AsyncAnthropicVertex client with the SDK's retries off; options.api_key, when set,
        is the bearer token (the simulator's), else the SDK asks google-auth for one."""
        timeout = httpx2.Timeout(options.read_timeout, connect=options.connect_timeout)
        http_client = options.http_client or anthropic.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context())
        client = anthropic.AsyncAnthropicVertex(
            region=region(),
            project_id=project() or (SIM_PROJECT if options.api_key else anthropic.NOT_GIVEN),
            access_token=options.api_key or None,
            # Vertex's URLs start with the API version; a base URL (the simulator's) lacks it
            base_url=f"{options.base_url.rstrip('/')}/v1" if options.base_url else None,
            max_retries=0,
            timeout=timeout,
            http_client=guard(http_client),
        )
        client.messages  # noqa: B018 - load the lazily imported resource module now, off the loop
        return client

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """A google-auth failure as one line; the rest as the Anthropic adapter maps them."""
        return credentials_error(exc, spec) or super().map_error(exc, on_vertex(spec))


ADAPTER = VertexAnthropicProvider()
