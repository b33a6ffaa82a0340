"""The provider registry: one row per provider, read by model resolution, adapters, magics and warm-up.

Each row also carries the provider's capability profile (`Caps`: attachments, structured output,
tools, service tiers, batch API, model list, quota day): every other table of providers (adapter
modules, prices, quotas, health, warm-up, batch drivers, the simulator's provider list) derives
from these rows, so docs/adding-a-provider.md lists the few files a new provider touches. Nothing
here imports an SDK, so reading the registry is free at `%load_ext` time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


MB = 1024 * 1024

#: a model name that ends in a snapshot date (claude-haiku-4-5-20251001)
_DATED = re.compile(r"-20\d{6}$")

#: Bedrock's ids of the Claude models whose Bedrock name isn't their Anthropic name: the models
#: before Claude 4.6 are reached by dated, versioned ids (`anthropic.claude-haiku-4-5-20251001-v1:0`,
#: an alias without its date is refused), Opus 4.6 by `-v1`; from Sonnet 4.6 on, Bedrock's id is
#: the Anthropic name (`anthropic.claude-haiku-5-5`, `us.anthropic.claude-sonnet-4-6`), as
#: `aws bedrock list-foundation-models` lists them.
#: Claude on Vertex AI: from Claude Sonnet 4.5 on, a regional or multi-region endpoint costs 10%
#: more than the global one (docs.claude.com, Claude on Vertex AI, "Global vs regional
#: endpoints"); Claude 3, Sonnet 4, Opus 4 and 4.1 kept one price
VERTEX_CLAUDE_PREMIUM = ("anthropic", 0.10,
                         r"^claude-(3|sonnet-4(?:-0|-2025\d{4})?(?:@|$)|opus-4(?:-0|-1|-2025\d{4})?(?:@|$))")

BEDROCK_NAMES = (
    ("claude-opus-4-6", "claude-opus-4-6-v1"),
    ("claude-opus-4-5", "claude-opus-4-5-20251101-v1:0"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001-v1:0"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929-v1:0"),
    ("claude-opus-4-1", "claude-opus-4-1-20250805-v1:0"),
    ("claude-opus-4-0", "claude-opus-4-20250514-v1:0"),
    ("claude-opus-4", "claude-opus-4-20250514-v1:0"),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514-v1:0"),
    ("claude-sonnet-4", "claude-sonnet-4-20250514-v1:0"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219-v1:0"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022-v1:0"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022-v2:0"),
    ("claude-3-haiku", "claude-3-haiku-20240307-v1:0"),
)


@dataclass(frozen=True)
class AttachLimits:
    """What one provider API takes as attachments: image types, PDFs, counts and sizes."""

    label: str
    image_types: frozenset[str]
    documents: bool           # takes PDFs
    max_count: int
    max_image_bytes: int
    max_pdf_bytes: int
    max_total_bytes: int
    pdf_urls: bool = True     # takes a PDF by URL
    image_urls: bool = True
    image_cap_base64: bool = False  # max_image_bytes applies to the base64 text, not the bytes
    pdf_cap_total: bool = False     # max_pdf_bytes is for all the PDFs of a request together


@dataclass(frozen=True)
class BatchApi:
    """A provider's batch API: its driver (`batchjobs/DRIVER_jobs.py`) and its limits per job."""

    driver: str
    max_requests: int
    max_bytes: int


@dataclass(frozen=True)
class Caps:
    """What a provider can do, declared once; `capabilities.require` refuses the rest before sending.

    Per-model sampling facts (which parameters a model refuses) are data in `data/models.toml`.
    """

    #: attachment limits per API: ("", limits) for all of the provider's APIs, or one pair per
    #: API where they differ (("chat", ...), ("responses", ...)); empty: no attachments
    attachments: tuple[tuple[str, AttachLimits], ...] = ()
    #: structured output: "native" (the API's schema mode), "instructions" (the schema goes in
    #: the system prompt and the answer is validated), or "none"
    structured: str = "native"
    tools: bool = True                    # takes llmcells function tools (tools=)
    service_tiers: tuple[str, ...] = ()   # the service_tier values its API takes (params=)
    batch: BatchApi | None = None         # its batch API (batch(via="provider")), if any
    #: how its free model-list call is made: "models" (client.models.list(), ids in .data),
    #: "genai" (client.aio.models.list(), names), or "" (none: an agent CLI)
    model_list: str = "models"
    day_zone: str = "UTC"                 # where its daily quotas reset

    def limits(self, api: str = "") -> AttachLimits | None:
        """The attachment limits of one of its APIs (None: it takes no attachments)."""
        table = dict(self.attachments)
        return table.get(api) or table.get("")


_COMMON_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

#: Documented limits (checked 2026-11): OpenAI vision guide (PNG, JPEG, WebP, non-animated GIF;
#: up to 500 images and 50 MB per request) and file inputs (PDF, 32 MB per request); Anthropic
#: vision and PDF support (JPEG, PNG, GIF, WebP; 5 MB per image, 100 images; 32 MB per request);
#: Gemini image and document understanding (PNG, JPEG, WebP, HEIC, HEIF, no GIF; inline data up
#: to 100 MB per request since the 2026 limit increase, 3,600 images).
#: Batch limits: OpenAI 50,000 lines or 200 MB per file, Anthropic 100,000 requests or 256 MB,
#: Gemini a 2 GB input file (inline up to about 20 MB).
OPENAI_CAPS = Caps(
    attachments=(
        ("chat", AttachLimits("OpenAI Chat Completions", _COMMON_IMAGES, True, 500, 50 * MB, 32 * MB,
                              50 * MB, pdf_urls=False, pdf_cap_total=True)),
        ("responses", AttachLimits("OpenAI Responses", _COMMON_IMAGES, True, 500, 50 * MB, 32 * MB,
                                   50 * MB, pdf_cap_total=True)),
    ),
    # the openai SDK's ServiceTier (Chat Completions takes all but "ultrafast")
    service_tiers=("auto", "default", "flex", "scale", "priority", "fast", "ultrafast"),
    batch=BatchApi("openai", 50_000, 200 * MB),
)
ANTHROPIC_CAPS = Caps(
    # Anthropic's 5 MB per image is checked on the base64 text (about 3.75 MB of bytes).
    attachments=(("", AttachLimits("Anthropic", _COMMON_IMAGES, True, 100, 5 * MB, 32 * MB, 32 * MB,
                                   image_cap_base64=True)),),
    service_tiers=("auto", "standard_only"),  # the anthropic SDK's MessageCreateParams
    batch=BatchApi("anthropic", 100_000, 256 * MB),
)
GOOGLE_CAPS = Caps(
    attachments=(("", AttachLimits(
        "Google Gemini", frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}),
        True, 3600, 100 * MB, 50 * MB, 100 * MB)),),
    service_tiers=("unspecified", "standard", "flex", "priority"),  # google-genai's ServiceTier
    batch=BatchApi("google", 100_000, 2 * 1000 * 1000 * 1000),
    model_list="genai",
    day_zone="America/Los_Angeles",  # Gemini's requests-per-day quota resets at midnight Pacific
)
#: a coding-agent CLI: one prompt in, text out. It takes a system prompt, so a schema goes in as
#: instructions; it has its own tools (params={"tools": True}), not llmcells' function tools.
AGENT_CAPS = Caps(structured="instructions", tools=False, model_list="")
#: an OpenAI-compatible endpoint added with add_endpoint: Chat Completions' attachment limits, a
#: schema as instructions (not every such server has a schema mode), no batch API
ENDPOINT_CAPS = Caps(attachments=OPENAI_CAPS.attachments, structured="instructions")


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
    api_host: str = ""               # the API's own host when no base URL is set ("" = the SDK's choice)
    # [agents] additive fields for agent CLIs (providers/claude_code.py, gemini_cli.py, codex.py)
    kind: str = "api"                # "api", or "agent" for a coding-agent CLI run as a subprocess
    price_as: str = ""               # whose price table applies ("" = this provider's own)
    install: str = ""                # one line saying how to install what the adapter needs
    # the capability profile; None: the profile of the provider named by `like`
    caps: Caps | None = None
    like: str = ""                   # a row without caps shares this provider's ("" = none)
    # [routes] a cloud route serves another provider's models through its own endpoint and
    # credentials (kind "route"): it has no alias or magic of its own, an alias is pointed at it
    # with the `route` setting (models.resolve)
    route_of: str = ""               # the provider whose models the route serves ("anthropic")
    route_model: str = ""            # the route's id of that provider's model: "{profile}" and "{model}"
    # the route's own name of a model where it isn't the maker's name ({model} in route_model),
    # and the suffix a dated name takes there (Bedrock: Claude models before 4.6 have dated,
    # versioned ids, later ones the bare name)
    route_names: tuple[tuple[str, str], ...] = ()
    route_dated: str = ""
    # a premium on a regional endpoint over the global one's price (which genai-prices lists):
    # (maker, share, pattern of the maker's model names that have one price everywhere)
    regional_premium: tuple[str, float, str] = ()
    route_pattern: str = ""          # regex whose group "model" is the provider's own name in a route id
    credentials: str = "key"         # "key" (key_env / stored key) or "aws" (AWS's credential chain)
    priced_by_request: bool = False  # priced by the id asked for (an inference profile), not the answering model
    # [routes] additive fields for cloud routes (Azure OpenAI, Vertex AI): another company's
    # models served by a cloud, priced by the cloud's own genai-prices entry
    route_prices: str = ""           # genai-prices provider id of a route's own prices ("" = not a route)
    model_adapters: tuple[tuple[str, str], ...] = ()  # (model-name prefix, adapter) tried before `adapter`
    serves: str = ""                 # for people: which models the route serves
    # how its own models' names begin ("claude-"): a bare model name that begins so is shown
    # the id it likely meant (models.resolve)
    model_families: tuple[str, ...] = ()
    # a route's makers: the API providers whose model names it takes (an agent's is price_as)
    runs: tuple[str, ...] = ()
    # the makers whose models this route gives images and PDFs inline only, never by URL (the
    # cloud fetches no URLs for them: Claude on Bedrock and on Vertex AI takes base64 sources)
    inline_attachments: tuple[str, ...] = ()

    @property
    def default_id(self) -> str:
        return f"{self.name}:{self.default_model}"

    def route_id(self, model: str, profile: str = "") -> str:
        """This route's id of its maker's model name (`claude-haiku-4-5`, profile "us." ->
        `us.anthropic.claude-haiku-4-5-20251001-v1:0`); the name itself for a route without a
        template (Azure's deployments, Vertex AI's names)."""
        if not self.route_model:
            return model
        name = dict(self.route_names).get(model)
        if name is None:
            name = model + self.route_dated if self.route_dated and _DATED.search(model) else model
        return self.route_model.format(profile=profile, model=name)

    @property
    def model_makers(self) -> tuple[str, ...]:
        """The API providers whose model names this one takes: its own; an agent CLI's maker;
        a cloud route's makers."""
        return self.runs or ((self.price_as,) if self.price_as else (self.name,))


PROVIDERS: dict[str, ProviderRow] = {row.name: row for row in (
    ProviderRow(
        name="openai", label="OpenAI", product="ChatGPT", adapter="openai", key_env=("OPENAI_API_KEY",),
        base_env="OPENAI_BASE_URL", sim_path="/v1", alias="chatgpt", default_model="gpt-6-luna",
        sdk_modules=("openai",), synonyms=("openai-responses",), api_host="api.openai.com",
        model_families=("gpt-", "chatgpt-", "o1", "o3", "o4", "o5"),
        magic_example="%%chatgpt -o answer\nSummarise {df.shape[0]} rows of {topic} in three bullet points.",
        caps=OPENAI_CAPS,
    ),
    ProviderRow(
        name="anthropic", label="Anthropic", product="Claude", adapter="anthropic", key_env=("ANTHROPIC_API_KEY",),
        base_env="ANTHROPIC_BASE_URL", sim_path="", alias="claude", default_model="claude-haiku-5-5",
        sdk_modules=("anthropic",), synonyms=("claude",), model_families=("claude-",),
        api_host="api.anthropic.com",
        magic_example='%%claude -s "You are a terse reviewer." -c\nAnd what about the second function?',
        caps=ANTHROPIC_CAPS,
    ),
    ProviderRow(
        name="google", label="Google Gemini", product="Gemini", adapter="google",
        key_env=("GOOGLE_API_KEY", "GEMINI_API_KEY"), base_env="GOOGLE_GEMINI_BASE_URL", sim_path="",
        alias="gemini", default_model="gemini-3.5-flash-lite", sdk_modules=("google.genai",),
        synonyms=("gemini",), model_families=("gemini-", "gemma-"),
        api_host="generativelanguage.googleapis.com",
        magic_example="%%gemini -f json -o facts\nReturn a JSON list of three facts about {city}.",
        caps=GOOGLE_CAPS,
    ),
    # [agents] coding-agent CLIs, each speaking its maker's API (so the simulator serves them too)
    ProviderRow(
        name="claude-code", label="Claude Code", product="Claude Code", adapter="claude_code",
        key_env=("ANTHROPIC_API_KEY",), base_env="ANTHROPIC_BASE_URL", sim_path="",
        alias="claude-code", default_model="claude-sonnet-4-6", sdk_modules=("claude_agent_sdk",),
        magic_example="%%claude-code\nExplain what {path} does, in three sentences.",
        kind="agent", price_as="anthropic", install="pip install 'llmcells[agents]'",
        caps=AGENT_CAPS,
    ),
    ProviderRow(
        name="gemini-cli", label="Gemini CLI", product="Gemini CLI", adapter="gemini_cli",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), base_env="GOOGLE_GEMINI_BASE_URL", sim_path="",
        alias="gemini-cli", default_model="gemini-3.5-flash", sdk_modules=(),
        magic_example="%%gemini-cli\nSuggest a name for a function that {does_what}.",
        kind="agent", price_as="google", install="npm install -g @google/gemini-cli",
        caps=AGENT_CAPS,
    ),
    ProviderRow(
        name="codex", label="Codex", product="Codex", adapter="codex",
        key_env=("OPENAI_API_KEY",), base_env="OPENAI_BASE_URL", sim_path="/v1",
        alias="codex", default_model="gpt-5.5-codex", sdk_modules=(),
        magic_example="%%codex\nWrite a one-line docstring for {func_name}.",
        kind="agent", price_as="openai", install="npm install -g @openai/codex",
        caps=AGENT_CAPS,
    ),
    # [routes] Claude on Amazon Bedrock (providers/bedrock.py, sim/bedrock.py)
    ProviderRow(
        name="bedrock", label="Amazon Bedrock", product="Claude", adapter="bedrock", key_env=(),
        base_env="ANTHROPIC_BEDROCK_BASE_URL", sim_path="", alias="",
        default_model="us.anthropic.claude-haiku-5-5", sdk_modules=("anthropic", "boto3"),
        kind="route", install="pip install 'llmcells[cloud]'", route_of="anthropic",
        route_model="{profile}anthropic.{model}", route_names=BEDROCK_NAMES, route_dated="-v1:0",
        route_pattern=r"^(?:[a-z]+(?:-[a-z]+)?\.)?anthropic\.(?P<model>.+?)(?:-v\d+(?::\d+)?)?$",
        credentials="aws", priced_by_request=True, route_prices="aws", runs=("anthropic",),
        serves="Claude models (Anthropic), by Bedrock model id or inference profile",
        inline_attachments=("anthropic",),
    ),
    # [routes] cloud routes: kind "route", no alias or magic of their own (an alias is pointed at
    # a route with the `route` setting, models.resolve)
    ProviderRow(
        name="azure", label="Azure OpenAI", product="ChatGPT", adapter="azure",
        key_env=("AZURE_OPENAI_API_KEY",), base_env="AZURE_OPENAI_ENDPOINT", sim_path="",
        alias="", default_model="gpt-6-luna", sdk_modules=("openai",), kind="route",
        install="pip install 'llmcells[cloud]' (azure-identity, for Entra ID sign-in)",
        route_prices="azure", runs=("openai",), serves="GPT models, by deployment name",
    ),
    ProviderRow(
        name="vertex", label="Vertex AI", product="Vertex AI", adapter="vertex_google",
        key_env=(), base_env="", sim_path="", alias="", default_model="gemini-3.5-flash-lite",
        sdk_modules=("google.genai",), kind="route",
        install="pip install 'llmcells[cloud]' (google-auth, for Application Default Credentials)",
        route_prices="google", model_adapters=(("claude-", "vertex_anthropic"),),
        runs=("anthropic", "google"), serves="claude-* (Anthropic) and gemini-* (Google) models",
        inline_attachments=("anthropic",), regional_premium=VERTEX_CLAUDE_PREMIUM,
    ),
)}

#: id prefixes that name a built-in provider: its own name and its synonyms
PREFIXES: dict[str, str] = {**{s: row.name for row in PROVIDERS.values() for s in row.synonyms},
                            **{name: name for name in PROVIDERS}}


def agents() -> list[ProviderRow]:
    """The rows of the coding-agent CLIs (kind "agent")."""
    return [r for r in PROVIDERS.values() if r.kind == "agent"]


def api_rows() -> list[ProviderRow]:
    """The rows of the providers llmcells calls through their own API (kind "api")."""
    return [r for r in PROVIDERS.values() if r.kind == "api"]


def api_names() -> tuple[str, ...]:
    """The names of the providers called through their own API, in registry order."""
    return tuple(r.name for r in api_rows())


def caps(provider: str) -> Caps:
    """The capability profile of a provider name or synonym; an endpoint's (add_endpoint, or an
    unknown name) is ENDPOINT_CAPS. A row without caps takes those of the row it is `like`, or,
    for a route, of the provider it serves (`route_of`) less its batch API: the provider's batch
    API is not the route's (a route's provider jobs are one clear error)."""
    first = r = row(provider)
    seen: set[str] = set()
    while r is not None and r.caps is None and r.name not in seen:
        seen.add(r.name)
        r = row(r.like or getattr(r, "route_of", "") or "")
    found = r.caps if r is not None and r.caps is not None else ENDPOINT_CAPS
    if first is not None and first.kind == "route" and first.caps is None and found.batch is not None:
        if first.name not in _ROUTE_CAPS:
            _ROUTE_CAPS[first.name] = replace(found, batch=None)
        return _ROUTE_CAPS[first.name]
    return found


_ROUTE_CAPS: dict[str, Caps] = {}  # a route's inherited profile without the batch API, made once


def batch_apis() -> dict[str, BatchApi]:
    """{adapter: its batch API} for every provider that has one."""
    return {r.adapter: r.caps.batch for r in PROVIDERS.values() if r.caps and r.caps.batch}


def routes() -> list[ProviderRow]:
    """The rows of the cloud routes (kind "route"), which serve another provider's models."""
    return [r for r in PROVIDERS.values() if r.kind == "route"]


def routed_model(provider: str, name: str) -> tuple[str, str]:
    """(provider, model name) of the model behind a route's id, for what is known of the model
    itself (capabilities): `bedrock`, `us.anthropic.claude-haiku-5-5` -> (`anthropic`,
    `claude-haiku-5-5`); other ids come back unchanged."""
    r = PROVIDERS.get(provider)
    if r is None or not r.route_of or not r.route_pattern:
        return provider, name
    match = re.match(r.route_pattern, name)
    return (r.route_of, match.group("model")) if match else (provider, name)


#: a cloud route's adapter -> the maker whose API format (and model profiles) it speaks
MAKERS = {"azure": "openai", "vertex_anthropic": "anthropic", "vertex_google": "google"}


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
