"""Model ids, aliases, endpoints and keys.

A model id is `provider:model` (`openai:gpt-6-luna`, `anthropic:claude-haiku-5-5`,
`google:gemini-3.5-flash-lite`; `gemini:` means `google:`; `openai-responses:` selects OpenAI's
Responses API). Aliases name a current, inexpensive default of each provider. OpenAI-compatible
servers (Ollama, vLLM, OpenRouter...) are added by base URL with `add_endpoint` and then used as
`name:model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import config
from .config import getenv, settings
from .errors import ConfigError, MissingKeyError, register_secret
from .registry import MAKERS, PREFIXES, PROVIDERS, adapter_for, parse_id
from .session import session

#: id prefixes that are synonyms of a built-in provider ("gemini" -> "google")
PROVIDER_SYNONYMS = {s: r.name for r in PROVIDERS.values() for s in r.synonyms}
DEFAULT_ALIASES = {row.alias: row.default_id for row in PROVIDERS.values() if row.alias}
#: the session's aliases (the same dict object as session.aliases)
_aliases: dict[str, str] = session.aliases


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server added by the user (Ollama, vLLM, OpenRouter...)."""

    name: str
    base_url: str
    api_key: str | None = None
    api_key_env: str | None = None
    api: str = "chat"


#: the session's endpoints (the same dict object as session.endpoints)
_endpoints: dict[str, Endpoint] = session.endpoints


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: which adapter, which model name, and where to send the request."""

    provider: str            # "openai", "anthropic", "google" or an endpoint's name
    adapter: str             # "openai", "anthropic" or "google"
    name: str                # model name as sent to the provider
    requested: str           # what the user wrote (alias or id)
    api: str = "chat"        # OpenAI only: "chat" or "responses"
    base_url: str | None = None
    simulated: bool = False
    price_model: str | None = None  # [routes] the model an Azure deployment serves, for its price
    maker: str | None = None        # [routes] whose model a cloud route serves: "openai", "anthropic", "google"

    @property
    def id(self) -> str:
        prefix = "openai-responses" if self.adapter == "openai" and self.api == "responses" \
            and self.provider == "openai" else self.provider
        return f"{prefix}:{self.name}"

    @property
    def label(self) -> str:
        row = PROVIDERS.get(self.provider)
        return row.label if row else self.provider


# --- the simulator switch: when set, every built-in provider goes to this base URL ------------
SIMULATOR_KEY = "sim-key-not-secret"


def set_simulator(url: str | None, providers: list[str] | None = None) -> None:
    """Route the built-in providers (or only those named) to a simulator at url; None switches
    back to the real APIs."""
    session.simulator_url = url.rstrip("/") if url else None
    session.simulated_providers = frozenset(providers) if providers is not None else None


def simulator_url() -> str | None:
    """The simulator's URL while the simulator switch is on, else None."""
    return session.simulator_url


def simulated_providers() -> list[str]:
    """The built-in providers that the simulator switch routes to the simulator now."""
    if session.simulator_url is None:
        return []
    only = session.simulated_providers
    return [name for name in PROVIDERS if only is None or name in only]


def add_alias(alias: str, model_id: str) -> None:
    """Let `alias` stand for `model_id` everywhere a model is named."""
    resolve(model_id)  # fail now, not at call time
    _aliases[alias] = model_id


def aliases() -> dict[str, str]:
    return dict(_aliases)


def add_endpoint(name: str, base_url: str, *, api_key: str | None = None,
                 api_key_env: str | None = None, api: str = "chat") -> None:
    """Add an OpenAI-compatible server, used as `name:model` (e.g. `ollama:llama3.2`).

    api: "chat" (Chat Completions) or "responses". A Chat Completions server that answers a
    streamed request with the whole completion (one JSON document) works too: the answer shows
    at once, with its usage and price."""
    if name.lower() in PREFIXES:
        raise ConfigError(f"{name!r} is a built-in provider; choose another endpoint name.")
    if api not in ("chat", "responses"):
        raise ConfigError("api must be 'chat' or 'responses'.")
    register_secret(api_key)
    _endpoints[name] = Endpoint(name, base_url.rstrip("/"), api_key, api_key_env, api)


def endpoints() -> dict[str, Endpoint]:
    return dict(_endpoints)


def maker_of(name: str) -> str | None:
    """The one API provider whose model names begin as `name` does (claude-… -> anthropic), from
    the registry's model families; None when none or several do."""
    lowered = (name or "").lower()
    makers = [row.name for row in PROVIDERS.values()
              if row.kind == "api" and lowered.startswith(row.model_families)]
    return makers[0] if len(makers) == 1 else None


def _route_of_id(model_id: str) -> str | None:
    """The cloud route whose own model ids look like model_id (`us.anthropic.claude-…` is a
    Bedrock id), from the registry's route patterns; None when none or several match."""
    import re  # (only on an error's path)

    routes = [row.name for row in PROVIDERS.values()
              if row.kind == "route" and row.route_pattern and re.match(row.route_pattern, model_id)]
    return routes[0] if len(routes) == 1 else None


def _did_you_mean(name: str) -> str:
    """" Did you mean X?" for a name without a provider: the id of the one provider whose model
    names begin as it does (claude-haiku-5-5 -> anthropic:claude-haiku-5-5), the cloud route whose
    ids look like it (us.anthropic.claude-… -> bedrock:us.anthropic.claude-…), or the
    alias it is a slip of (chatgtp -> chatgpt); "" when none is clear."""
    maker = maker_of(name) or _route_of_id(name)
    if maker is not None:
        return f" Did you mean {maker}:{name}?"
    slip = alias_slip(name)
    return f" Did you mean {slip}?" if slip else ""


def alias_slip(name: str) -> str | None:
    """The alias a bare name is a slip of (claud -> claude, chatgtp -> chatgpt); None when none is
    close, or when the name begins as a provider's model names do (gemini-2 is a model)."""
    if maker_of(name) is not None:
        return None
    import difflib  # (only on an error's path)

    close = difflib.get_close_matches(name.lower(), list(_aliases), n=1, cutoff=0.75)
    return close[0] if close else None


def _retired_guess(name: str) -> str | None:
    """For a name without a provider whose likely id is a model its provider has retired
    (gemini-2.5-flash): the line saying so and what to use instead, rather than a suggestion of a
    model that can no longer be called."""
    maker = maker_of(name)
    if maker is None:
        return None
    from . import lifecycle  # (only on this error's path)

    row = lifecycle.lookup(f"{maker}:{name}")
    return f"{maker}:{row.message()}" if row.status() == "retired" else None


def resolve(model: str, *, openai_api: str | None = None, routed_as: str | None = None) -> ModelSpec:
    """Turn an alias or `provider:model` id into a ModelSpec; a ConfigError says what is wrong.
    routed_as: an alias whose route setting applies to `model` too (`%%claude -m NAME`)."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("No model given. Use an alias (chatgpt, claude, gemini) or provider:model.")
    requested = model = model.strip()
    # the aliases passed through, for the route setting
    chain: list[str] = [routed_as] if routed_as else []
    while model in _aliases and model not in chain:
        chain.append(model)
        model = _aliases[model]
    if ":" not in model:
        retired = _retired_guess(model)
        if retired is not None:
            raise ConfigError(f"Unknown model {requested!r}: {retired}")
        raise ConfigError(
            f"Unknown model {requested!r}.{_did_you_mean(model)} Use an alias "
            f"({', '.join(sorted(_aliases))}) or provider:model, e.g. openai:gpt-6-luna, "
            "anthropic:claude-haiku-5-5, google:gemini-3.5-flash-lite."
        )
    prefix, name = parse_id(model)
    if not name:
        raise ConfigError(f"Model {requested!r} has no model name after {prefix!r}:.")
    if prefix in _endpoints:
        ep = _endpoints[prefix]
        return ModelSpec(prefix, "openai", name, requested, api=ep.api, base_url=ep.base_url)
    api = openai_api or settings.openai_api
    if prefix == "openai-responses":
        api = "responses"
    provider = PREFIXES.get(prefix, prefix)
    if provider not in PROVIDERS:
        known = sorted([*PREFIXES, *_endpoints])
        route = _route_of_id(model)
        if route is not None:  # a cloud route's own id, whose version suffix has a colon
            raise ConfigError(f"Unknown provider {prefix!r} in {requested!r}. Did you mean "
                              f"{route}:{model}?")
        raise ConfigError(
            f"Unknown provider {prefix!r} in {requested!r}. Known: {', '.join(known)}; "
            "add an OpenAI-compatible server with llmcells.add_endpoint()."
        )
    if provider == "google" and name.startswith("models/"):
        name = name[len("models/"):]
    row = PROVIDERS[provider]
    if row.kind != "route":  # [routes] an alias (or a whole provider) pointed at a cloud route
        table = config.routes()
        key = next((a for a in [*chain, provider] if a in table), None)
        if key is not None and table[key].strip().lower() not in ("", "direct"):
            row, name = _routed(key, table[key], provider, name)
            provider = row.name
    sim = session.simulator_url
    if sim and session.simulated_providers is not None and provider not in session.simulated_providers:
        sim = None
    base_url = sim + row.sim_path if sim else ((getenv(row.base_env) or None) if row.base_env else None)
    price_model = None
    if provider == "azure":  # a deployment's name says nothing of its model: ask the settings
        from .config import pairs_setting

        price_model = pairs_setting("azure_models", "LLMCELLS_AZURE_MODELS").get(name)
    adapter = adapter_for(row, name)
    return ModelSpec(provider, adapter, name, requested,
                     api=api if provider in ("openai", "azure") else "chat", base_url=base_url,
                     simulated=bool(sim), price_model=price_model, maker=MAKERS.get(adapter))


# [routes] ----------------------------------------------------------------------------------------
#: AWS region prefix -> geography of Bedrock's cross-region inference profiles ("us." ids)
_AWS_GEOGRAPHIES = (("us-gov-", "us-gov"), ("us-", "us"), ("eu-", "eu"), ("ap-", "apac"))


def aws_region() -> str | None:
    """The AWS region from the environment ($AWS_REGION, $AWS_DEFAULT_REGION), else None (the
    SDK may still find one in the AWS profile)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _profile(variant: str) -> str:
    """The id prefix of a Bedrock inference profile: "global.", "us.", ..., or "" (in-region).

    No variant: the geography of the AWS region (us-east-1 -> "us."), else "global."."""
    variant = variant.strip().lower()
    if variant in ("regional", "in-region", "none"):
        return ""
    if variant:
        return variant.rstrip(".") + "."
    region = (aws_region() or "").lower()
    return next((geo + "." for start, geo in _AWS_GEOGRAPHIES if region.startswith(start)), "global.")


def _routed(key: str, route: str, provider: str, name: str) -> tuple[Any, str]:
    """(route's registry row, the route's model id) for provider's model name sent by the route
    setting's entry key=route ("bedrock", or "bedrock:global" to pick an inference profile)."""
    target, _, variant = route.partition(":")
    row = PROVIDERS.get(PREFIXES.get(target.strip().lower(), target.strip().lower()))
    if row is None or row.kind != "route":
        known = ", ".join(r.name for r in PROVIDERS.values() if r.kind == "route")
        raise ConfigError(f"route {key}={route}: {target!r} is not a cloud route; known: {known}.")
    if provider not in row.model_makers:
        raise ConfigError(f"route {key}={route}: {row.label} serves {row.serves or PROVIDERS[row.route_of].label + ' models'}, "
                          f"not {PROVIDERS[provider].label} ones.")
    return row, row.route_id(name, _profile(variant) if row.route_model else "")


def route_credentials(provider: str) -> bool:
    """Whether a route's credentials look configured, without importing its SDK: for AWS, the
    variables of its credential chain, or the shared credentials / config file."""
    row = PROVIDERS.get(provider)
    if row is None or row.credentials != "aws":
        return False
    if any(os.environ.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK",
                                       "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")):
        return True
    from pathlib import Path

    files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials",
             os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"]
    return any(Path(f).expanduser().is_file() for f in files)


def api_key(spec: ModelSpec) -> str:
    """The key to use for spec: its environment variable, else the key stored with
    `python -m llmcells keys set` (llmcells.keys); MissingKeyError says how to set one."""
    if spec.simulated:
        return SIMULATOR_KEY
    if spec.provider in _endpoints:
        ep = _endpoints[spec.provider]
        key = ep.api_key or (os.environ.get(ep.api_key_env) if ep.api_key_env else None)
        # Local servers (Ollama, vLLM) need no key, but the SDK insists on one.
        key = key or "no-key"
        register_secret(key)
        return key
    if spec.provider == "google" and vertex_enabled():
        return ""
    if PROVIDERS[spec.provider].credentials == "aws":
        # AWS's credential chain, read by the SDK when it signs (never held here); a Bedrock
        # API key ($AWS_BEARER_TOKEN_BEDROCK) too.
        return ""
    if spec.provider == "vertex":  # Application Default Credentials, found by the SDKs
        if vertex_project():
            return ""
        raise MissingKeyError(
            "Vertex AI needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT (and "
            "GOOGLE_CLOUD_LOCATION), and sign in with `gcloud auth application-default login`.",
            provider=spec.provider)
    envs = PROVIDERS[spec.provider].key_env
    for env in envs:
        key = os.environ.get(env)
        if key:
            register_secret(key)
            return key
    from . import keys

    key = keys.stored_key(spec.provider)
    if key:
        return key
    if spec.provider == "azure" and os.environ.get("AZURE_OPENAI_ENDPOINT") and _has_module("azure.identity"):
        return ""  # Entra ID sign-in through azure-identity (providers/azure.py)
    # (Azure: or Entra ID sign-in, once azure-identity is installed)
    signin = " (or pip install 'llmcells[cloud]' to sign in with Entra ID)" if spec.provider == "azure" else ""
    raise MissingKeyError(
        f"No API key for {PROVIDERS[spec.provider].label}: set {' or '.join(envs)}{signin} or run "
        f"`python -m llmcells keys set {spec.provider}`, or use the built-in simulator (`%llmcells simulate on`, llmcells.simulate(), or "
        "--simulate on the command line).",
        provider=spec.provider,
    )


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def route_status() -> list[dict[str, object]]:
    """One row per cloud route: whether it is configured (credentials and place found, never
    shown), simulated, and which models it serves. Nothing is sent; health() checks reachability."""
    simulated = set(simulated_providers())
    out: list[dict[str, object]] = []
    for row in PROVIDERS.values():
        if row.kind != "route":
            continue
        if row.name == "azure":
            endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
            cred = bool(os.environ.get("AZURE_OPENAI_API_KEY")) or _has_module("azure.identity")
            configured = bool(endpoint) and cred
            status = ("configured" if configured else
                      "set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY (or install azure-identity)")
        elif row.credentials == "aws":  # Bedrock: AWS's credential chain and a region
            configured = route_credentials(row.name)
            status = ("configured" if configured else
                      "set AWS credentials (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID) and AWS_REGION")
        else:
            project = vertex_project()
            adc = bool(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")) or _gcloud_adc()
            configured = bool(project) and adc
            status = ("configured" if configured else
                      "set GOOGLE_CLOUD_PROJECT and run `gcloud auth application-default login`")
        out.append({"provider": row.name, "label": row.label, "serves": row.serves,
                    "configured": configured or row.name in simulated,
                    "simulated": row.name in simulated,
                    "status": "simulated" if row.name in simulated else status})
    return out


def vertex_project() -> str | None:
    """The Google Cloud project of the Vertex AI route (GOOGLE_CLOUD_PROJECT or
    ANTHROPIC_VERTEX_PROJECT_ID), None when neither is set."""
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID") or None


def vertex_region() -> str:
    """The Vertex AI location Claude is called in: CLOUD_ML_REGION or GOOGLE_CLOUD_LOCATION, else
    "global" (as the anthropic SDK's AnthropicVertex reads it)."""
    return os.environ.get("CLOUD_ML_REGION") or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"


def _gcloud_adc() -> bool:
    """Whether gcloud's Application Default Credentials file exists (its content is not read)."""
    from pathlib import Path

    folder = os.environ.get("CLOUDSDK_CONFIG") or str(Path.home() / ".config" / "gcloud")
    return (Path(folder) / "application_default_credentials.json").is_file()


def vertex_enabled() -> bool:
    """Gemini goes through Vertex AI when GOOGLE_GENAI_USE_VERTEXAI is set to a true value."""
    return os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true", "yes")


def foreign_model_hint(provider: str, name: str) -> str | None:
    """One line when a bare model name plainly belongs to a maker whose models `provider` doesn't
    run (`%%claude -m gpt-4o`), naming the right magic and id; None when it doesn't. An agent CLI
    runs its maker's models and a cloud route its makers' (`%%claude-code -m claude-opus-4-1`,
    `%%claude -m claude-opus-4-1` routed to Bedrock); an endpoint may serve any name."""
    mine = PROVIDERS.get(provider)
    owner = maker_of(name)
    if mine is None or owner is None or owner in mine.model_makers:
        return None
    return (f"{name!r} is a model of {PROVIDERS[owner].label}, not of {mine.label}: use "
            f"%%{PROVIDERS[owner].alias} -m {name}, or the full id {owner}:{name} (e.g. in %%compare).")


def key_status() -> dict[str, bool]:
    """Which providers have a key, in the environment or stored (never the key itself)."""
    from . import keys

    return {p: any(os.environ.get(e) for e in info.key_env) or bool(info.key_env and keys.where(p))
            or route_credentials(p) for p, info in PROVIDERS.items()}
