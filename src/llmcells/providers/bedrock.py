"""Amazon Bedrock adapter: Claude through `anthropic.AsyncAnthropicBedrock`, which sends the
Anthropic adapter's Messages call to Bedrock's `/model/{id}/invoke-with-response-stream` (with
Bedrock's own `anthropic_version`, "bedrock-2023-05-31", in the body), signed with AWS SigV4 from
AWS's own credential chain (boto3), and decodes its event stream."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from ..errors import BadRequestError, ConfigError, LLMError, MissingKeyError
from ..models import SIMULATOR_KEY, ModelSpec, aws_region
from ._http import guard, tls_context
from .anthropic import AnthropicProvider
from .base import ClientOptions

#: the region a simulated route signs for when the environment names none
SIMULATED_REGION = "us-east-1"
#: the static credentials a simulated route signs with: the user's own AWS credentials never
#: sign a request to the simulator
SIMULATED_CREDENTIALS = {"aws_access_key": "AKIASIMULATOR0000000", "aws_secret_key": SIMULATOR_KEY}
_INSTALL = "pip install 'llmcells[cloud]'"
#: Bedrock's ValidationException for a model id it doesn't have (lower case)
_INVALID_ID = "the provided model identifier is invalid"
#: the body's `anthropic_version` on Bedrock (AWS: "The value must be bedrock-2023-05-31")
BEDROCK_VERSION = "bedrock-2023-05-31"


def _needs_boto(exc: BaseException) -> bool:
    return isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ("boto3", "botocore")


class BedrockProvider(AnthropicProvider):
    """Claude on Amazon Bedrock through `anthropic.AsyncAnthropicBedrock` (streaming, tools,
    schema and attachments as the Anthropic adapter: the request body is the same)."""

    name = "bedrock"
    default_host = "bedrock-runtime.amazonaws.com"
    #: the only `anthropic_version` Bedrock takes; the SDK would send its own API date instead
    body_version = BEDROCK_VERSION
    credentials = ("the AWS credentials; check aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID, "
                   "or AWS_BEARER_TOKEN_BEDROCK")

    def make_client(self, options: ClientOptions) -> Any:
        """An AsyncAnthropicBedrock client with the SDK's retries off (the runner retries).

        Credentials: AWS's chain (environment, profile, SSO, instance role), or a Bedrock API
        key ($AWS_BEARER_TOKEN_BEDROCK), read by the SDK; a simulated route signs with static
        made-up keys instead."""
        timeout = httpx2.Timeout(options.read_timeout, connect=options.connect_timeout)
        http_client = options.http_client or anthropic.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context())
        simulated = options.api_key == SIMULATOR_KEY
        region = aws_region() or (SIMULATED_REGION if simulated else None)
        try:
            client = anthropic.AsyncAnthropicBedrock(
                aws_region=region,  # None: the SDK asks boto3's profile
                base_url=options.base_url,  # None: $ANTHROPIC_BEDROCK_BASE_URL or bedrock-runtime.REGION
                max_retries=0,
                timeout=timeout,
                http_client=guard(http_client),
                **(SIMULATED_CREDENTIALS if simulated else {}),
            )
        except ValueError as exc:  # the SDK found no region
            raise ConfigError("No AWS region for Amazon Bedrock: set AWS_REGION (e.g. us-east-1) or a "
                              "region in your AWS profile.") from exc
        except ImportError as exc:
            if _needs_boto(exc):
                raise ConfigError(f"Amazon Bedrock needs boto3: {_INSTALL}.") from None
            raise
        if client.api_key is None and not simulated:
            # Sign once now, off the loop, so that a missing boto3 or missing credentials is one
            # clear error before anything is sent (boto3's first import takes a moment, too).
            _check_credentials(region)
        client.messages  # noqa: B018 - load the lazily imported resource module now, off the loop
        return client

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """The llmcells error for an anthropic / httpx / signing exception."""
        if _needs_boto(exc):
            return ConfigError(f"Amazon Bedrock needs boto3: {_INSTALL}.")
        if isinstance(exc, RuntimeError) and "AWS credentials" in str(exc):
            return _no_credentials()
        err = super().map_error(exc, spec)
        if isinstance(err, BadRequestError) and _INVALID_ID in err.message.lower():
            err.args = (err.message + " Bedrock's ids: the model's name from Claude Sonnet 4.6 on "
                        "(us.anthropic.claude-haiku-5-5), dated before it "
                        "(us.anthropic.claude-haiku-4-5-20251001-v1:0); health() lists yours.",)
        return err

    async def list_models(self, client: Any) -> list[str]:
        """The Anthropic models this account sees on Bedrock (ListFoundationModels, on the
        control-plane host `bedrock.REGION`; the simulator serves it on its own port)."""
        base = str(client.base_url).rstrip("/")
        url = (f"https://bedrock.{client.aws_region}.amazonaws.com/foundation-models"
               if base.endswith(".amazonaws.com") else f"{base}/foundation-models")
        body = await client.get(url, options={"params": {"byProvider": "anthropic"}}, cast_to=object)
        summaries = body.get("modelSummaries") if isinstance(body, dict) else None
        return [str(m.get("modelId")) for m in summaries or [] if isinstance(m, dict)]


def _no_credentials() -> MissingKeyError:
    return MissingKeyError(
        "No AWS credentials for Amazon Bedrock: configure AWS's credential chain (aws configure, "
        "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or set AWS_BEARER_TOKEN_BEDROCK.",
        provider="bedrock")


def _check_credentials(region: str | None) -> None:
    """MissingKeyError unless AWS's credential chain finds credentials (never printed)."""
    try:
        import boto3
    except ImportError:
        raise ConfigError(f"Amazon Bedrock needs boto3: {_INSTALL}.") from None
    if boto3.Session(region_name=region).get_credentials() is None:
        raise _no_credentials()


ADAPTER = BedrockProvider()
