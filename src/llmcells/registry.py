"""The provider registry: one row per provider, read by model resolution, adapters, magics and warm-up.

Adding a provider means one adapter module (`providers/NAME.py` exposing `ADAPTER`), one simulator
module (`sim/NAME.py`) and one row here; nothing else needs to change. Nothing here imports an
SDK, so reading the registry is free at `%load_ext` time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderRow:
    """Everything llmcells needs to know about one provider, in one place."""

    name: str                        # the id prefix: "openai" in openai:gpt-6-luna
    label: str                       # for people: "OpenAI"
    product: str                     # what people call the assistant: "ChatGPT"
    adapter: str                     # module under llmcells.providers that holds ADAPTER
    key_env: tuple[str, ...]         # environment variables that may hold the key, in order
    base_env: str                    # environment variable that may hold a base URL
    sim_path: str                    # appended to the simulator's URL to make this provider's base URL
    alias: str                       # the alias of its default model; also its cell magic's name
    default_model: str               # what the alias names
    sdk_modules: tuple[str, ...]     # imported ahead of the first call (warm-up)
    synonyms: tuple[str, ...] = ()   # other id prefixes that mean this provider
    magic_example: str = ""          # one example cell for the generated magic's docstring
    # [agents] additive fields for agent CLIs (providers/claude_code.py, gemini_cli.py, codex.py)
    kind: str = "api"                # "api", or "agent" for a coding-agent CLI run as a subprocess
    price_as: str = ""               # whose price table applies ("" = this provider's own)
    install: str = ""                # one line saying how to install what the adapter needs
    # [routes] additive fields for cloud routes (Azure OpenAI, Vertex AI): another company's
    # models served by a cloud, priced by the cloud's own genai-prices entry
    route_prices: str = ""           # genai-prices provider id of a route's own prices ("" = not a route)
    model_adapters: tuple[tuple[str, str], ...] = ()  # (model-name prefix, adapter) tried before `adapter`
    serves: str = ""                 # for people: which models the route serves

    @property
    def default_id(self) -> str:
        return f"{self.name}:{self.default_model}"


PROVIDERS: dict[str, ProviderRow] = {row.name: row for row in (
    ProviderRow(
        name="openai", label="OpenAI", product="ChatGPT", adapter="openai", key_env=("OPENAI_API_KEY",),
        base_env="OPENAI_BASE_URL", sim_path="/v1", alias="chatgpt", default_model="gpt-6-luna",
        sdk_modules=("openai",), synonyms=("openai-responses",),
        magic_example="%%chatgpt -o answer\nSummarise {df.shape[0]} rows of {topic} in three bullet points.",
    ),
    ProviderRow(
        name="anthropic", label="Anthropic", product="Claude", adapter="anthropic", key_env=("ANTHROPIC_API_KEY",),
        base_env="ANTHROPIC_BASE_URL", sim_path="", alias="claude", default_model="claude-haiku-5-5",
        sdk_modules=("anthropic",), synonyms=("claude",),
        magic_example='%%claude -s "You are a terse reviewer." -c\nAnd what about the second function?',
    ),
    ProviderRow(
        name="google", label="Google Gemini", product="Gemini", adapter="google",
        key_env=("GOOGLE_API_KEY", "GEMINI_API_KEY"), base_env="GOOGLE_GEMINI_BASE_URL", sim_path="",
        alias="gemini", default_model="gemini-3.5-flash-lite", sdk_modules=("google.genai",),
        synonyms=("gemini",),
        magic_example="%%gemini -f json -o facts\nReturn a JSON list of three facts about {city}.",
    ),
    # [agents] coding-agent CLIs, each speaking its maker's API (so the simulator serves them too)
    ProviderRow(
        name="claude-code", label="Claude Code", product="Claude Code", adapter="claude_code",
        key_env=("ANTHROPIC_API_KEY",), base_env="ANTHROPIC_BASE_URL", sim_path="",
        alias="claude-code", default_model="claude-sonnet-4-6", sdk_modules=("claude_agent_sdk",),
        magic_example="%%claude-code\nExplain what {path} does, in three sentences.",
        kind="agent", price_as="anthropic", install="pip install 'llmcells[agents]'",
    ),
    ProviderRow(
        name="gemini-cli", label="Gemini CLI", product="Gemini CLI", adapter="gemini_cli",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), base_env="GOOGLE_GEMINI_BASE_URL", sim_path="",
        alias="gemini-cli", default_model="gemini-3.5-flash", sdk_modules=(),
        magic_example="%%gemini-cli\nSuggest a name for a function that {does_what}.",
        kind="agent", price_as="google", install="npm install -g @google/gemini-cli",
    ),
    ProviderRow(
        name="codex", label="Codex", product="Codex", adapter="codex",
        key_env=("OPENAI_API_KEY",), base_env="OPENAI_BASE_URL", sim_path="/v1",
        alias="codex", default_model="gpt-5.5-codex", sdk_modules=(),
        magic_example="%%codex\nWrite a one-line docstring for {func_name}.",
        kind="agent", price_as="openai", install="npm install -g @openai/codex",
    ),
    # [routes] cloud routes: kind "route", no alias or magic of their own (an alias is pointed at
    # a route with the `route` setting, models.resolve)
    ProviderRow(
        name="azure", label="Azure OpenAI", product="ChatGPT", adapter="azure",
        key_env=("AZURE_OPENAI_API_KEY",), base_env="AZURE_OPENAI_ENDPOINT", sim_path="",
        alias="", default_model="gpt-6-luna", sdk_modules=("openai",), kind="route",
        install="pip install 'llmcells[cloud]' (azure-identity, for Entra ID sign-in)",
        route_prices="azure", serves="GPT models, by deployment name",
    ),
    ProviderRow(
        name="vertex", label="Vertex AI", product="Vertex AI", adapter="vertex_google",
        key_env=(), base_env="", sim_path="", alias="", default_model="gemini-3.5-flash-lite",
        sdk_modules=("google.genai",), kind="route",
        install="pip install 'llmcells[cloud]' (google-auth, for Application Default Credentials)",
        route_prices="google", model_adapters=(("claude-", "vertex_anthropic"),),
        serves="claude-* (Anthropic) and gemini-* (Google) models",
    ),
)}

#: id prefixes that name a built-in provider: its own name and its synonyms
PREFIXES: dict[str, str] = {**{s: row.name for row in PROVIDERS.values() for s in row.synonyms},
                            **{name: name for name in PROVIDERS}}


def agents() -> list[ProviderRow]:
    """The rows of the coding-agent CLIs (kind "agent")."""
    return [r for r in PROVIDERS.values() if r.kind == "agent"]


#: a cloud route's adapter -> the maker whose API format (and model profiles) it speaks
MAKERS = {"azure": "openai", "vertex_anthropic": "anthropic", "vertex_google": "google"}


def routes() -> list[ProviderRow]:
    """The rows of the cloud routes (kind "route": Azure OpenAI, Vertex AI)."""
    return [r for r in PROVIDERS.values() if r.kind == "route"]


def adapter_for(row: ProviderRow, model: str) -> str:
    """The adapter that serves model on row's provider (a route may serve several makers' models)."""
    for prefix, adapter in row.model_adapters:
        if model.lower().startswith(prefix):
            return adapter
    return row.adapter


def price_provider(provider: str) -> str:
    """The provider whose prices apply to provider's calls (an agent CLI is billed by its API)."""
    r = PROVIDERS.get(provider)
    return r.price_as if r is not None and r.price_as else provider


def row(provider: str) -> ProviderRow | None:
    """The registry row of a provider name or synonym (None for endpoints and unknown names)."""
    name = PREFIXES.get(provider)
    return PROVIDERS.get(name) if name else None


def parse_id(model_id: str) -> tuple[str, str]:
    """Split `provider:model` into (provider prefix, model name); ("", name) when there is no prefix.

    The one place a model id is taken apart: resolution, pricing, the ledger's filters and the
    display all call this.
    """
    prefix, sep, name = model_id.partition(":")
    if not sep:
        return "", model_id.strip()
    return prefix.strip().lower(), name.strip()


def model_name(model_id: str) -> str:
    """The model part of `provider:model` (the whole text when there is no prefix)."""
    return parse_id(model_id)[1]
