"""The IPython magics: %%chatgpt, %%claude, %%gemini, %%compare and %llmcells.

Every cell magic takes the same options; the cell body is the prompt, with `{name}` references
to notebook variables filled in. Bad input ends the cell with one UsageError line and sends
nothing; a failed call is shown in its card and recorded in the ledger.
"""

from __future__ import annotations

import json
import re
import sys
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import types
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import models as _models
from .config import settings
from .errors import ConfigError, LLMError, did_you_mean, with_suggestion
from ._loop import deferred_interrupts, import_pandas, one_line_interrupt
from .interpolate import interpolate
from .registry import PROVIDERS, ProviderRow, parse_id
from .session import session
from .comparison import Comparison
from .types import Message, Result

#: each model's conversation (by provider:model id), continued by `-c` (session.conversations)
conversations: dict[str, list[Message]] = session.conversations

_FORMATS = ("markdown", "text", "code", "json")


def _call_options(func: Callable, model_help: str = "model: an alias (chatgpt, claude, gemini) or "
                 "provider:model; a bare name is taken as this provider's model") -> Callable:
    """The options shared by every cell magic."""
    decorators = [
        magic_arguments(name="%" + func.__name__),  # its usage reads %%claude, not %claude
        argument("-m", "--model", help=model_help),
        argument("-s", "--system", help="system prompt (quote it if it has spaces)"),
        argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2"),
        argument("--max-tokens", type=int, help="the longest answer, in tokens"),
        argument("--timeout", type=float, help="seconds the whole call may take"),
        argument("-o", "--out", metavar="VAR", help="store the Result (or Comparison) in VAR"),
        argument("-f", "--format", choices=_FORMATS, default="markdown",
                 help="markdown (default); text; code: put the answer's code in a new cell "
                      "below; json: parse the answer (the Result's .data)"),
        argument("-n", "--repeat", type=int, default=1, metavar="N", help="N samples"),
        argument("-c", "--continue", dest="cont", action="store_true",
                 help="continue this model's conversation from earlier cells (default: a fresh, "
                      "reproducible request)"),
        argument("--no-display", action="store_true", help="show nothing; use -o or _llm"),
        argument("--no-interpolate", action="store_true",
                 help="send the cell as written, without filling in {name} references"),
        argument("-a", "--attach", action="append", metavar="FILE",  # [rich requests hook]
                 help="attach a file: a path, an http(s) URL, or a notebook variable (figure, "
                      "image, DataFrame, bytes); repeat for more"),
        argument("--schema", metavar="VAR", help="answer as JSON matching the schema in notebook "
                 "variable VAR (a pydantic model, a JSON Schema dict or {field: type}), or the "
                 "fields in quotes, \"name, age int, tags list[str]\"; the Result's .data holds it"),
        argument("--repair", action="store_true", help="with --schema: re-ask once when the "
                 "answer does not match"),
        argument("--tools", metavar="VAR",  # [tools hook]
                 help="let the model call the functions in notebook variable VAR (a list)"),
        argument("--chat", metavar="NAME",  # [chats hook]
                 help="continue the named chat NAME (or start it); %%llmcells chats lists them"),
        argument("--refresh", action="store_true",  # [scoring/replay hook]
                 help="make the calls anew even if replay has their answers (and re-record them)"),
        argument("-h", "--help", action="store_true", help="show this help and send nothing"),
    ]
    for deco in reversed(decorators[1:]):
        func = deco(func)
    return decorators[0](func)


def _compare_options(func: Callable) -> Callable:
    func = argument("models", nargs="*", metavar="MODEL",
                    help="models to compare (default: chatgpt claude gemini, see %%llmcells config)")(func)
    func = argument("--score", metavar="VAR",  # [scoring hook]
                    help="score the answers with the scorer (or list of scorers) in notebook variable VAR")(func)
    return _call_options(func, model_help="one more model to compare (an alias or provider:model), "
                                          "after the MODEL arguments")


def _unquote(value: str | None) -> str | None:
    """IPython's argument splitter keeps the quotes around a quoted option value."""
    if value and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _fail(message: str) -> UsageError:
    return UsageError(message)


def _with_suggestion(message: str, magic: Callable) -> str:
    """argparse's message about a mistyped option or choice, with the closest valid one."""
    return with_suggestion(message, getattr(magic, "parser", None))


def _help_text(magic: Callable) -> str:
    """A magic's help as printed: its docstring without the reST `::` that IPython's
    magic_arguments puts before the usage (for Sphinx, not for a reader)."""
    return re.sub(r"\A::\s*\n\s*", "usage: ", (magic.__doc__ or "").strip())


def _extract_code(text: str) -> str:
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    return "\n\n".join(b.rstrip("\n") for b in blocks) if blocks else text.strip()


def _parse_json(text: str) -> Any:
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except RecursionError:  # a ValueError, as broken JSON is, for the callers
        raise ValueError("nested too deeply to read") from None


def _provider_magic(row: ProviderRow) -> Callable:
    """The cell magic of one provider (%%chatgpt, %%claude, %%gemini...), made from its registry
    row the way IPython makes %%bash and %%ruby: one definition, one magic per provider."""

    def magic(self: "LLMMagics", line: str = "", cell: str | None = None) -> None:
        __tracebackhide__ = True
        self._single(magic_func, row.alias, line, cell)

    magic.__name__ = magic.__qualname__ = row.alias
    magic.__doc__ = f"""Ask {row.product} ({row.label}) the cell; the answer streams into a card with its tokens,
        speed and cost.

        Example::

            {row.magic_example.replace(chr(10), chr(10) + "            ")}

        The default model is the alias `{row.alias}` ({row.default_id}); `-m NAME` picks another:
        a model name of this provider, an id such as {row.name}:NAME, or another alias. `-c`
        continues the conversation of earlier %%{row.alias} cells; without it each cell is a
        fresh, reproducible request. `{{name}}`, `{{name.attr}}` and `{{name[0]}}` are filled in
        from the notebook, and a name that is not there stops the cell before anything is sent;
        `{{{{` and `}}}}` send a brace; other braces (JSON, code) are left as written.
        """
    if row.kind == "agent":  # [agents] --cwd and --tools

        magic = agent_arguments(magic)
    magic_func = _call_options(magic)
    return magic_func


# ----- the agent CLIs' magics (%%agent, --cwd, --allow-tools) ---------------------------------------------------------------------------------------


def agent_arguments(func: Callable) -> Callable:
    """The options only agent magics take: --cwd and --allow-tools (--tools VAR is for Python
    functions the model may call, on every magic)."""
    from IPython.core.magic_arguments import argument

    func = argument("--allow-tools", action="store_true",
                    help="let the agent use its own tools (read and write files, run commands) "
                         "in its working folder, without asking")(func)
    return argument("--cwd", metavar="DIR",
                    help="the agent's working folder (default: a fresh temporary folder)")(func)


def params_from(args: Any) -> dict[str, Any] | None:
    """The agent params (cwd, tools) of a parsed magic line; None when there are none."""
    cwd, tools = getattr(args, "cwd", None), getattr(args, "allow_tools", False)
    if cwd is None and not tools:
        return None
    params: dict[str, Any] = {"tools": bool(tools)}
    if cwd:
        params["cwd"] = _unquote(cwd)
    return params


def agent_magic() -> Callable:
    """`%%agent [MODEL] [--cwd DIR] [--allow-tools]`: send the cell to one agent CLI."""
    from IPython.core.magic_arguments import argument

    def agent(self: Any, line: str = "", cell: str | None = None) -> None:
        __tracebackhide__ = True
        args = self._args(magic_func, line)
        if args is None:
            return
        model = args.agent or args.model or _default()
        row = PROVIDERS.get(parse_id(model)[0])
        if row is None or row.kind != "agent":
            raise _fail("%%agent takes an agent: claude-code[:MODEL], gemini-cli[:MODEL] or "
                        f"codex[:MODEL], not {model!r}.")
        self._single(magic_func, model, line, cell)

    agent.__name__ = agent.__qualname__ = "agent"
    agent.__doc__ = """Send the cell to a coding-agent CLI (Claude Code, Gemini CLI or Codex);
        the answer streams into a card with its tokens, cost and the agent's own report.

        Example::

            %%agent codex:gpt-5.5-codex --cwd ./project --allow-tools
            List the files here and say what the project does.

        The first word is the agent (default: the first installed of claude-code, gemini-cli,
        codex). Without --allow-tools the agent gives a plain answer; with it, it may read and
        write files and run commands in --cwd (default: a fresh temporary folder) without
        asking. To compare agents, use %%compare claude-code gemini-cli codex.
        """
    func = argument("agent", nargs="?", default=None, metavar="AGENT",
                    help="claude-code[:MODEL], gemini-cli[:MODEL] or codex[:MODEL]")(agent)
    magic_func = _call_options(agent_arguments(func))
    return magic_func


def _default() -> str:
    from .agents import available

    for item in available():
        if item["installed"]:
            return item["agent"]
    return "claude-code"


@magics_class
class LLMMagics(Magics):
    """%%chatgpt, %%claude, %%gemini (one per provider in the registry), %%compare and %llmcells."""

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        for row in PROVIDERS.values():
            if not row.alias:  # a cloud route: an alias is pointed at it (the route setting)
                continue
            self.magics["cell"][row.alias] = types.MethodType(_provider_magic(row), self)

        self.magics["cell"]["agent"] = types.MethodType(agent_magic(), self)

    # ----- helpers ------------------------------------------------------------------------------

    def _args(self, magic: Callable, line: str) -> Any:
        try:
            args = parse_argstring(magic, line)
        except UsageError as err:
            raise _fail(_with_suggestion(str(err), magic)) from None
        except SystemExit:  # argparse exits on some errors; turn them into one line
            raise _fail(f"Bad options: {line!r}. See %%{magic.__name__}? for help.") from None
        except ValueError as err:  # the line splitter: an unbalanced quote
            raise _fail(f"Bad options: {line!r} ({err}). See %%{magic.__name__}? for help.") from None
        if args.help:
            print(_help_text(magic))
            return None
        for name in ("model", "system", "out"):
            setattr(args, name, _unquote(getattr(args, name)))
        from .calls import check_options  # the one check of call options, shared with ask()

        try:
            check_options(temperature=args.temperature, max_tokens=args.max_tokens,
                          timeout=args.timeout, repeat=args.repeat)
        except ConfigError as err:
            flag = {"temperature": "-t/--temperature", "max_tokens": "--max-tokens",
                    "timeout": "--timeout", "repeat": "-n/--repeat"}
            word, rest = (str(err).split(" ", 1) + [""])[:2]
            raise _fail(f"{flag.get(word, word)} {rest}") from None  # "-t/--temperature must be ..."
        if args.out is not None and not args.out.isidentifier():
            raise _fail(f"-o/--out needs a variable name, not {args.out!r}.")
        return args

    def _prompt(self, cell: str | None, args: Any, magic: str) -> str:
        """The prompt: the cell as written (IPython adds a trailing newline, which is dropped
        with any trailing white space, so a magic and ask() with the same text send the same
        request), with {name} references filled in."""
        if cell is None or not cell.strip():
            raise _fail(f"The cell is empty: write the prompt below the %%{magic} line.")
        cell = cell.rstrip()
        if args.no_interpolate:
            return cell
        try:
            return interpolate(cell, self.shell.user_ns, strict=True,
                               hint="Set it, write {{ }} to send braces, or add --no-interpolate.")
        except ConfigError as err:
            raise _fail(str(err)) from None

    def _model(self, default: str, given: str | None) -> _models.ModelSpec:
        name = given or default
        routed_as = None
        if given and ":" not in given and given not in _models.aliases():
            try:
                provider = _models.resolve(default).provider
            except ConfigError as err:
                raise _fail(str(err)) from None
            hint = _models.foreign_model_hint(provider, given)  # %%claude -m gpt-4o
            if hint:
                raise _fail(hint)
            slip = _models.alias_slip(given)  # %%claude -m claud: a typo, not a model to send
            if slip:
                raise _fail(f"Unknown model {given!r}. Did you mean {slip}? After -m give an alias, "
                            f"provider:model, or a model name of this provider, e.g. "
                            f"{_models.resolve(default).name}.")
            maker = _models.maker_of(given)
            if PROVIDERS[provider].kind == "route" and maker is not None:
                # %%claude -m claude-opus-4-1 with claude routed to Bedrock: that model, on the
                # same route, by the route's id for it (a name of the route's own goes as is)
                name, routed_as = f"{maker}:{given}", default
            else:
                name = f"{provider}:{given}"
        try:
            spec = _models.resolve(name, routed_as=routed_as)
        except ConfigError as err:
            raise _fail(str(err)) from None
        if routed_as is not None:  # asked for by the route's full id, which no setting reroutes
            spec = replace(spec, requested=f"{spec.provider}:{spec.name}")
        return spec

    def _options(self, args: Any) -> dict[str, Any]:
        from .calls import magic_rich_options

        options = dict(system=args.system, temperature=args.temperature, max_tokens=args.max_tokens,
                       timeout=args.timeout, display=False if args.no_display else None,
                       markdown=args.format == "markdown", refresh=args.refresh,
                       params=params_from(args),
                       **magic_rich_options([_unquote(a) for a in args.attach or ()],  # -a, --schema
                                            _unquote(args.schema), args.repair, self.shell.user_ns))
        if args.tools:  # Python functions the model may call
            from .tools import from_namespace

            try:
                options["tools"] = from_namespace(_unquote(args.tools), self.shell.user_ns)
            except ConfigError as err:
                raise _fail(f"--tools: {err}") from None
        return options

    def _run(self, pending: Any, args: Any = None) -> Any:
        __tracebackhide__ = True  # an interrupt shows one line, not the machinery below
        from . import api
        from ._loop import run

        before = api.last
        try:
            return run(pending)
        except KeyboardInterrupt:
            # The run's partial Result (or Comparison), as its card shows it, stays reachable.
            if args is not None and api.last is not None and api.last is not before:
                self.shell.user_ns["_llm"] = api.last
                if args.out:
                    self.shell.user_ns[args.out] = api.last
            raise

    def _finish(self, outcome: Result | Comparison, args: Any, prompt: str) -> None:
        results = outcome.results if isinstance(outcome, Comparison) else [outcome]
        for r in results:
            if r.ok and r.sample == 0:
                history = conversations.get(r.model, []) if args.cont else []
                conversations[r.model] = [*history, Message("user", prompt), Message("assistant", r.text)]
        if args.format == "json":
            for r in results:
                if r.ok and r.data is None:  # (a --schema answer is validated already)
                    try:
                        r.data = _parse_json(r.text)
                    except ValueError as err:
                        print(f"llmcells: the answer of {r.model} is not valid JSON ({err}).")
        if args.schema and isinstance(outcome, Comparison):  # [rich requests hook] per-field agreement
            from .structured import show_agreement

            show_agreement(outcome)
        self.shell.user_ns["_llm"] = outcome
        if args.out:
            self.shell.user_ns[args.out] = outcome
        if args.format == "code":
            ok = [r for r in results if r.ok and r.text.strip()]
            if ok:
                self.shell.set_next_input(_extract_code(ok[0].text), replace=False)

    @one_line_interrupt
    def _single(self, method: Callable, default: str, line: str, cell: str | None) -> None:
        __tracebackhide__ = True
        from . import api

        magic = method.__name__
        args = self._args(method, line)
        if args is None:  # --help
            return
        prompt = self._prompt(cell, args, magic)
        # -m "claude|chatgpt": a chain (fallback.py); each name as -m alone would take it
        chain = [self._model(default, m.strip() or None) for m in (args.model or "").split("|")]
        spec, model = chain[0], "|".join(s.requested for s in chain)
        try:
            if len(chain) == 1:  # a chain moves on from a missing key instead
                _models.api_key(spec)
            if args.chat:  # a named chat keeps its own history
                from .chats import send_named

                outcome = self._run(send_named(_unquote(args.chat), spec.requested, prompt,
                                               self._options(args), explicit_model=bool(args.model)), args)
                self._finish(outcome, args, prompt)
                return
            if args.repeat > 1:
                pending = api.compare(prompt, [model], repeat=args.repeat,
                                           histories=self._histories([spec], args), **self._options(args))
            else:
                pending = api.ask(prompt, model, history=self._histories([spec], args).get(spec.id, ()),
                                       **self._options(args))
        except LLMError as err:
            raise _fail(str(err)) from None
        self._finish(self._run(pending, args), args, prompt)

    def _histories(self, specs: list[_models.ModelSpec], args: Any) -> dict[str, list[Message]]:
        if not args.cont:
            return {}
        return {s.id: list(conversations.get(s.id, [])) for s in specs}

    # ----- the cell magics ----------------------------------------------------------------------

    @one_line_interrupt
    @_compare_options
    @cell_magic
    def compare(self, line: str = "", cell: str | None = None) -> None:
        """Ask several models the cell at once and show their answers side by side, then a
        table of latency, time to first token, tokens/s, tokens and cost (fastest and cheapest
        marked).

        Example::

            %%compare chatgpt claude google:gemini-3.5-flash -n 2
            Explain {concept} to a new analyst in one paragraph.

        Models are aliases or provider:model ids (default: chatgpt claude gemini). A model that
        fails (no key, rate limit, unknown model at the provider) shows its error in its card;
        the others carry on.
        """
        __tracebackhide__ = True
        from . import api

        args = self._args(self.compare, line)
        if args is None:  # --help
            return
        if args.model:
            args.models = [*args.models, args.model]
        prompt = self._prompt(cell, args, "compare")
        if args.chat:  # [chats hook]
            raise _fail("--chat works with one model: use it on %%chatgpt, %%claude, %%gemini.")
        score = None
        if args.score:  # [scoring hook]
            name = _unquote(args.score)
            if name not in self.shell.user_ns:
                raise _fail(f"--score {name}: no variable {name!r} in the notebook; set it to a scorer "
                            "or a list, e.g. score = [llmcells.exact('42')].")
            score = self.shell.user_ns[name]
        try:
            from .fallback import resolve_chain  # an entry may be a chain, claude|chatgpt

            entries = list(args.models or settings.compare_models)
            specs = [resolve_chain(m)[0] for m in entries]
            pending = api.compare(prompt, entries, repeat=args.repeat,
                                       histories=self._histories(specs, args), score=score,
                                       **self._options(args))
        except LLMError as err:
            raise _fail(str(err)) from None
        self._finish(self._run(pending, args), args, prompt)

    # ----- %llmcells ----------------------------------------------------------------------------

    @one_line_interrupt  # (its commands import pandas, the SDKs: a Ctrl-C waits for those imports)
    @magic_arguments()
    @argument("command", nargs="?", default="help",
              help="models | config | usage | costs | prices | health | quota | reset | chats | "
                   "simulate | replay | frontier | keys | help")
    @argument("words", nargs="*", help="config: NAME or NAME=VALUE...; reset: MODEL; simulate: on|off|loose; "
                                       "keys: set|unset PROVIDER")
    @argument("--by", default="model", help="costs: model, provider, day, cell, group, batch, status, session, purpose, "
                                             "replayed, user, host, project, path (comma-separated)")
    @argument("--session", action="store_true", help="usage/costs: only this session's calls")
    @argument("--whatif", default=None, metavar="MODEL", help="costs: actual vs MODEL's prices")
    @argument("--tier", default=None, help="costs --whatif: price as this service tier (flex, priority)")
    @argument("--batch", action="store_true", help="costs --whatif: price as provider batch processing")
    @argument("--simulated", action="store_true", help="costs: include simulated calls")
    @argument("-n", "--last", type=int, default=20, help="usage: the last N calls (default 20; 0: all)")
    @argument("--ttft", type=float, help="simulate: seconds before the first token")
    @argument("--tps", type=float, help="simulate: tokens per second")
    @argument("--min-score", type=float, help="frontier: the score the verdict asks for")
    @needs_local_scope
    @line_magic
    def llmcells(self, line: str = "", local_ns: dict | None = None) -> Any:
        """Settings, models, the usage ledger and the simulator.

        %llmcells models                  aliases, default models, which keys are set
        %llmcells config [NAME]           show settings (or one)
        %llmcells config temperature=0 compare_models=chatgpt,claude
        %llmcells usage [--session] [-n 20]      the last calls, one row each (-n 0: all)
        %llmcells costs [--by model,day]  cost, tokens, calls, errors, latency by group
                                          (real spend; --simulated adds simulated calls)
        %llmcells costs --whatif gpt-6-luna [--tier flex] [--batch]   actual, what-if, difference
        %llmcells prices [update]         price data in use; fetch genai-prices' latest data
        %llmcells health                  each provider: key set, reachable, key accepted, latency,
                                          models listed (free model-list calls, a few seconds)
        %llmcells quota                   the latest rate limits seen, and daily caps
        %llmcells reset [MODEL]           forget conversations (of one model, or all)
        %llmcells chats                   the named chats (--chat NAME): turns, tokens, cost
        %llmcells simulate on|off|loose [--ttft 0.3] [--tps 80]   route every provider to a
                                          local simulator (no keys needed; cards say "simulated");
                                          it refuses what the real APIs refuse, unless loose
        %llmcells replay on|off|refresh|status|compact [path=FILE]   record answers and replay
                                          them at $0 when the same request comes again
        %llmcells frontier [SCORE] [--min-score X]   cost vs score of the last scored
                                          compare or batch, Pareto-optimal models marked
        %llmcells keys [set|unset PROVIDER]   which providers have a key and where from; store
                                          one (asked for, never shown) or forget it
        %llmcells help                    this text
        """
        try:
            args = parse_argstring(self.llmcells, line)
        except UsageError as err:
            raise _fail(_with_suggestion(str(err), self.llmcells)) from None
        except SystemExit:
            raise _fail(f"Bad options: {line!r}. See %llmcells help.") from None
        except ValueError as err:  # the line splitter: an unbalanced quote
            raise _fail(f"Bad options: {line!r} ({err}). See %llmcells help.") from None
        handler = getattr(self, f"_cmd_{args.command}", None)
        if handler is None:
            commands = [n[len("_cmd_"):] for n in dir(self) if n.startswith("_cmd_")]
            raise _fail(f"Unknown command {args.command!r}{did_you_mean(args.command, commands)}. Commands: "
                        "models, config, usage, costs, prices, health, quota, reset, chats, "
                        "simulate, replay, frontier, keys, help.")
        try:
            return handler(args)
        except LLMError as err:
            raise _fail(str(err)) from None

    def _cmd_chats(self, args: Any) -> Any:  # [chats hook]
        from .chats import chats_frame

        return chats_frame()

    def _cmd_help(self, args: Any) -> None:
        print(_help_text(self.llmcells))

    def _cmd_models(self, args: Any) -> Any:
        pd = import_pandas()

        from ._simulation import active
        from .agents import status as agent_status  # [agents]

        from . import lifecycle

        keys = _models.key_status()
        rows = []
        for alias, model_id in _models.aliases().items():
            spec = _models.resolve(alias)  # (an alias pointed at a cloud route shows the route)
            life = lifecycle.of(spec)  # active / retiring DATE / retired DATE (data/lifecycle.toml)
            rows.append({"alias": alias, "model": spec.id, "provider": spec.label,
                         "status": life.label(), "use instead": life.replacement or "",
                         "key set": "yes" if keys.get(spec.provider) else "no",
                         "simulated": "yes" if spec.simulated else "no",
                         "agent CLI": agent_status(spec.provider)})  # [agents]
        named = {r["model"] for r in rows}
        for life in lifecycle.table().values():  # the known retired and retiring models too
            if life.model not in named:
                spec = _models.resolve(life.model)
                rows.append({"alias": "", "model": spec.id, "provider": spec.label,
                             "status": life.label(), "use instead": life.replacement or "",
                             "key set": "yes" if keys.get(spec.provider) else "no",
                             "simulated": "yes" if spec.simulated else "no"})
        for route in _models.route_status():  # [routes] Azure OpenAI, Vertex AI
            rows.append({"alias": f"{route['provider']}:MODEL", "model": route["serves"],
                         "provider": route["label"], "status": route["status"],
                         "key set": "yes" if route["configured"] else "no",
                         "simulated": "yes" if route["simulated"] else "no"})
        for name, ep in _models.endpoints().items():
            rows.append({"alias": f"{name}:MODEL", "model": ep.base_url, "provider": "OpenAI-compatible",
                         "key set": "yes" if ep.api_key or ep.api_key_env else "not needed",
                         "simulated": "no"})
        print("Compare models: " + " ".join(settings.compare_models)
              + ("   (simulator on)" if active() else ""))
        return pd.DataFrame(rows)

    def _cmd_config(self, args: Any) -> Any:
        if args.words and not any("=" in w for w in args.words):  # `config temperature`: its value
            shown = settings.shown()
            for word in args.words:
                if word not in shown:
                    raise _fail(f"Unknown setting {word!r}{did_you_mean(word, shown)}; "
                                "`%llmcells config` lists them.")
            return {w: shown[w] for w in args.words}
        if args.words:
            changes = {}
            for word in args.words:
                if "=" not in word:
                    raise _fail(f"config takes NAME=VALUE pairs (or names alone, to show them), "
                                f"not {word!r}.")
                name, value = word.split("=", 1)
                changes[name.strip()] = None if value.strip().lower() == "none" else value.strip()
            settings.update(**changes)
        return settings.shown()  # the ledger URL's password masked

    def _cmd_usage(self, args: Any) -> Any:
        from . import ledger
        from .display.tables import formatted  # costs in dollars in the notebook; same numbers

        # the last 20 by default, as the command line shows: a notebook's output (and the saved
        # file) would otherwise hold the whole ledger as one styled table
        frame = ledger.usage(session=args.session, limit=args.last if args.last else None)
        return formatted(frame)  # newest first

    def _cmd_costs(self, args: Any) -> Any:
        from . import ledger
        from .display.tables import formatted  # costs in dollars in the notebook; same numbers

        by = [b.strip() for b in args.by.split(",") if b.strip()]
        if args.whatif:
            from .repricing import whatif

            return whatif(args.whatif, by=by[0], tier=args.tier, session=args.session,
                          processing="batch" if args.batch else None,
                          include_simulated=args.simulated)
        return formatted(ledger.costs(by=by if len(by) > 1 else by[0], session=args.session,
                                        include_simulated=args.simulated))

    def _cmd_prices(self, args: Any) -> Any:
        from .pricing import prices_command

        return prices_command(args.words)

    def _cmd_health(self, args: Any) -> Any:
        from .healthcheck import health

        return self._run(health())

    def _cmd_quota(self, args: Any) -> Any:
        from .quotas import quota

        frame = quota()
        if frame.empty:
            print(frame.attrs["note"])  # why there is nothing yet, rather than an empty table
            return None
        return frame

    def _cmd_reset(self, args: Any) -> None:
        if args.words:
            for word in args.words:
                spec = _models.resolve(word)
                conversations.pop(spec.id, None)
            print(f"Forgot the conversation of {', '.join(args.words)}.")
        else:
            conversations.clear()
            print("Forgot all conversations.")
            if session.chats:  # [chats hook]: the named chats (--chat NAME) too
                session.chats.clear()
                print("Forgot the named chats too.")

    def _cmd_replay(self, args: Any) -> None:  # [scoring/replay hook]
        from .replay import command

        print(command(args.words))

    def _cmd_frontier(self, args: Any) -> Any:  # [scoring hook]
        from .frontier import command

        return command(args.words, min_score=args.min_score)

    def _cmd_keys(self, args: Any) -> Any:
        import getpass

        pd = import_pandas()

        from . import keys

        action, *rest = args.words or ["list"]
        if action == "list" and not rest:
            return pd.DataFrame(keys.status())
        if action not in ("set", "unset") or len(rest) != 1:
            raise _fail("keys takes: list, set PROVIDER or unset PROVIDER "
                        f"(providers: {', '.join(keys.providers())}).")
        provider = keys.provider_name(rest[0])
        if action == "unset":
            done = keys.unset_key(provider)
            print(f"Forgot the stored {provider} key." if done else f"No {provider} key was stored.")
            return None
        # the kernel asks the front end for the line (ipykernel's input request): never echoed
        try:
            key = getpass.getpass(f"{provider} API key (typing is not shown): ")
        except Exception as exc:  # a front end that takes no input (nbclient, papermill, voila)
            if type(exc).__name__ != "StdinNotImplementedError":
                raise
            names = " or ".join(keys.providers().get(provider, ())) or "the key's variable"
            raise _fail(f"This front end can't ask for a key: set {names}, or run "
                        f"`python -m llmcells keys set {provider}` in a terminal.") from None
        print(f"Stored the {provider} key in {keys.set_key(provider, key)}.")
        return None

    def _cmd_simulate(self, args: Any) -> None:
        from ._simulation import simulate

        state = (args.words or ["on"])[0].lower()
        if state not in ("on", "off", "loose"):
            raise _fail(f"simulate takes on, off or loose, not {state!r}.")
        if state == "off":
            simulate(False)
            print("Simulator off: calls go to the real providers.")
            return
        options = {k: v for k, v in (("ttft", args.ttft), ("tokens_per_s", args.tps)) if v is not None}
        sim = simulate(strict=state != "loose", **options)
        print(f"Simulator on at {sim.url}: every provider answers from it, no keys needed; "
              "cards are labelled 'simulated'. `%llmcells simulate off` to stop."
              + (" Loose: it answers requests the real APIs would refuse." if state == "loose" else ""))


_registered: weakref.WeakSet = weakref.WeakSet()  # the shells the magics are registered in


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with IPython, and start importing what the first call will need.
    Once per shell: `import llmcells` registers them already, and the `%load_ext llmcells`
    that imported it then calls this again."""
    if ipython in _registered:
        return
    with deferred_interrupts():  # a Ctrl-C waits for these imports: none is left half made
        from . import _simulation, warmup
        from .display.hints import hint_after_cell  # one line when no provider has a key

        _registered.add(ipython)
        ipython.register_magics(LLMMagics)
        hint_after_cell(ipython)
        _simulation.resume()  # serve again if `%unload_ext` stopped the simulator the switch uses
        warmup.start(notebook=_in_kernel(ipython))


def _in_kernel(ipython: Any) -> bool:
    return getattr(ipython, "kernel", None) is not None


def unload_ipython_extension(ipython: Any) -> None:
    """Stop every thread llmcells started (the warm-up, the private loop, the client builder,
    the hook, ledger and span writers, the simulator's server) once what they hold is done, and
    remove any IPython event callback of llmcells. The session (conversations, aliases, the
    simulator switch) is kept: `%load_ext llmcells` goes on from it, and the threads start again
    when they are needed."""
    from . import _imports, _loop, _simulation

    _registered.discard(ipython)
    _imports.wait(5.0)  # the warm-up first: it hands work to the loop, which would start again
    _loop.stop()
    for name in ("hooks", "ledger", "otel", "warmup"):  # only those in use: unloading imports nothing new
        module = sys.modules.get(f"{__package__}.{name}")
        if module is not None:
            module.stop()
    _imports.stop()
    _simulation.stop()
    _unregister_events(ipython)


def _unregister_events(ipython: Any) -> None:
    """Remove every callback of an llmcells module from the shell's events (pre/post_run_cell...)."""
    events = getattr(ipython, "events", None)
    for event, callbacks in (getattr(events, "callbacks", None) or {}).items():
        for callback in list(callbacks):
            module = getattr(callback, "__module__", None) or getattr(
                getattr(callback, "__func__", None), "__module__", "") or ""
            if module == __package__ or module.startswith(f"{__package__}."):
                events.unregister(event, callback)
