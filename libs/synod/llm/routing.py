"""Model routing: which provider and model serves a call, by role, step kind and task labels.

Pure: a table in, a choice out. The first link of a call's fallback chain is,
in this order (the first that says anything wins):

1. the request's own `model` (a step that names its model, as a supervisor
   reassignment does): source `step`;
2. the task's labels `model.<role>.<kind>`, `model.<role>`, `model`: source
   `label <key>`;
3. the service's table (`SYNOD_LLM_ROUTING`, with `SYNOD_MODEL_<ROLE>` over
   its `<role>` entries) at `<role>.<kind>`, then `<role>`: source
   `SYNOD_MODEL_<ROLE>` or `SYNOD_LLM_ROUTING <key>`;
4. the primary provider's default model: source `default`.

A link is `model` (on the primary provider) or `provider:model`; only a known
provider before the first colon splits it, so `llama3.1:8b` is one model name.
The rest of the chain is the configured fallbacks (synod.llm.resilient).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from synod.errors import ConfigError
from synod.llm.types import AGENT_ROLES

PROVIDERS = ("anthropic", "openai", "sim")
# Step kinds a route can name after the role: a merge of concurrent writes
# (step id `merge:<path>`), a revision after a rejected answer
# (prompt variant `revise-<n>`); a plain step has no kind.
STEP_KINDS = ("merge", "revise")
LABEL_PREFIX = "model"


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a fallback chain: a model on a provider."""

    provider: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    @staticmethod
    def parse(entry: str, default_provider: str, *, setting: str = "SYNOD_LLM_FALLBACK") -> Link:
        """`model` (on the default provider) or `provider:model`."""
        text = entry.strip()
        head, sep, rest = text.partition(":")
        provider, model = (
            (head, rest.strip())
            if sep and head in PROVIDERS
            else (
                default_provider,
                text,
            )
        )
        if not model or provider not in PROVIDERS:
            raise ConfigError(
                f"{setting} entry {entry!r}: expected MODEL or PROVIDER:MODEL "
                f"with PROVIDER one of {', '.join(PROVIDERS)}"
            )
        return Link(provider, model)


def step_kind(step_id: str, prompt_variant: str) -> str:
    """The kind of a step, for routing: `merge`, `revise`, or "" for a plain step."""
    if step_id.startswith("merge:"):
        return "merge"
    if "revise-" in prompt_variant:
        return "revise"
    return ""


def check_key(key: str, setting: str) -> None:
    """A routing key is `<role>` or `<role>.<kind>`; anything else is a typo worth an error."""
    role, _, kind = key.partition(".")
    if role not in AGENT_ROLES or (kind and kind not in STEP_KINDS):
        raise ConfigError(
            f"{setting} key {key!r}: expected ROLE or ROLE.KIND with ROLE one of "
            f"{', '.join(AGENT_ROLES)} and KIND one of {', '.join(STEP_KINDS)}"
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """The first link of a call's chain and where it came from."""

    link: Link
    source: str


@dataclass(frozen=True)
class RoutingTable:
    """The service's routing: `entries` maps `<role>[.<kind>]` to a link, `sources` says
    which setting each entry came from (for `synod config` and the step record)."""

    primary: str
    default_model: str
    entries: Mapping[str, Link] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def build(
        primary: str,
        default_model: str,
        table: Mapping[str, str],
        per_role: Mapping[str, str],
    ) -> RoutingTable:
        """From `SYNOD_LLM_ROUTING` (`table`) and `SYNOD_MODEL_<ROLE>` (`per_role`, by role)."""
        entries: dict[str, Link] = {}
        sources: dict[str, str] = {}
        for key, spec in table.items():
            check_key(key, "SYNOD_LLM_ROUTING")
            entries[key] = Link.parse(spec, primary, setting="SYNOD_LLM_ROUTING")
            sources[key] = f"SYNOD_LLM_ROUTING {key}"
        for role, spec in per_role.items():
            if not spec:
                continue
            name = f"SYNOD_MODEL_{role.upper()}"
            check_key(role, name)
            entries[role] = Link.parse(spec, primary, setting=name)
            sources[role] = name
        return RoutingTable(primary, default_model, entries, sources)

    def choose(
        self,
        role: str,
        kind: str = "",
        labels: Mapping[str, str] | None = None,
        model: str | None = None,
    ) -> Choice:
        """The first link for a call; see the module doc for the order. A routing label
        that does not parse raises ConfigError naming it (the caller makes that a
        permanent failure of the step: the task asked for something impossible)."""
        for key in labels or {}:
            if key.startswith(LABEL_PREFIX + "."):
                check_key(key.removeprefix(LABEL_PREFIX + "."), f"label {key}")
        if model:
            return Choice(Link.parse(model, self.primary, setting="the step's model"), "step")
        keys = [f"{role}.{kind}", role] if kind else [role]
        for key in [f"{LABEL_PREFIX}.{k}" for k in keys] + [LABEL_PREFIX]:
            spec = (labels or {}).get(key)
            if spec:
                link = Link.parse(spec, self.primary, setting=f"label {key}")
                return Choice(link, f"label {key}")
        for key in keys:
            if key in self.entries:
                return Choice(self.entries[key], self.sources[key])
        return Choice(Link(self.primary, self.default_model), "default")

    def describe(self) -> dict[str, str]:
        """`<role>[.<kind>]` -> `provider:model (source)`, with `*` for the default."""
        shown = {key: f"{link.spec} ({self.sources[key]})" for key, link in self.entries.items()}
        shown["*"] = f"{self.primary}:{self.default_model} (default)"
        return dict(sorted(shown.items()))

    def providers(self) -> set[str]:
        return {self.primary} | {link.provider for link in self.entries.values()}
