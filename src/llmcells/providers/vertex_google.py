"""Gemini on Vertex AI: the Google adapter through google-genai's `Client(vertexai=True)`, whatever
GOOGLE_GENAI_USE_VERTEXAI says (the `vertex:` id asks for Vertex AI)."""

from __future__ import annotations

from google import genai

from ..errors import LLMError
from ..models import ModelSpec
from .base import ClientOptions
from .google import GoogleProvider, http_options
from .vertex_anthropic import SIM_PROJECT, credentials_error, on_vertex, project, region


class VertexGoogleProvider(GoogleProvider):
    """Gemini through `google.genai.Client(vertexai=True, ...).aio`."""

    name = "vertex_google"

    def make_client(self, options: ClientOptions) -> genai.Client:
        """A Vertex AI genai.Client: options.api_key, when set, is the bearer token (the
        simulator's); else Application Default Credentials, GOOGLE_CLOUD_PROJECT and the location."""
        credentials = None
        if options.api_key:
            from google.oauth2.credentials import Credentials

            credentials = Credentials(token=options.api_key)  # no expiry: used as it is
        return genai.Client(vertexai=True, project=project() or (SIM_PROJECT if options.api_key else None),
                            location=region(), credentials=credentials,
                            http_options=http_options(options))

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """A google-auth failure as one line; the rest as the Google adapter maps them."""
        return credentials_error(exc, spec) or super().map_error(exc, on_vertex(spec))


ADAPTER = VertexGoogleProvider()
