"""The state-rule language: one rule per line, first match wins.

    NATIVE [if CONDITION [and CONDITION]...] -> STATE [: CAUSE]

NATIVE is the state as the source shows it (`*` and `?` match as in file names).
A CONDITION is `reason = GLOB`, `reason != GLOB`, `substate = GLOB`, `substate != GLOB`
(reason: a pending or hold reason; substate: a flag or the previous state), or
`age > DURATION`, `age < DURATION` (time in the native state: 30s, 5m, 2h, 1d).
STATE is one of COMMON_STATES; CAUSE is free text saying why. `#` starts a comment.
A native state no rule matches maps to unknown, with a warning, and is never dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path

from qmonit.core.sample import Sample

log = logging.getLogger(__name__)

COMMON_STATES = ("pending", "running", "held", "completed", "failed", "cancelled", "unknown")
# the common states of a batch node (a worker node, not a job)
NODE_STATES = ("idle", "mixed", "allocated", "draining", "drained", "down", "powered_down",
               "reserved", "maintenance", "unknown")
# every rule set, one *.rules file each, in the order qmonit/sources/registry.py's sources
# declare them (this stage cannot import it; tests/test_registry.py checks they agree)
SOURCES = ("panda", "harvester", "htcondor", "apf", "slurm", "slurm_nodes")
STATES_OF = {"slurm_nodes": NODE_STATES}  # every other rule set maps to COMMON_STATES
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_RULE = re.compile(r"^(?P<native>\S+)(?:\s+if\s+(?P<conditions>.+?))?\s*->\s*"
                   r"(?P<state>[a-z_]+)\s*(?::\s*(?P<cause>.*))?$")
_TEXT_CONDITION = re.compile(r"^(?P<key>reason|substate)\s*(?P<op>!=|=)\s*(?P<value>\S+)$")
_AGE_CONDITION = re.compile(r"^age\s*(?P<op>[<>])\s*(?P<number>\d+)(?P<unit>[smhd])$")


class RuleError(ValueError):
    """A rule file with a mistake: names the file, the line and the reason."""


@dataclass(frozen=True)
class Condition:
    key: str  # reason | substate | age
    op: str  # = != < >
    value: str | float  # a glob, or seconds for age

    def holds(self, reason: str, substate: str, age_s: float | None) -> bool:
        if self.key == "age":
            if age_s is None:
                return False
            limit = float(self.value)  # seconds: parse makes an age's value a float
            return age_s > limit if self.op == ">" else age_s < limit
        text = reason if self.key == "reason" else substate
        matched = fnmatchcase(text, str(self.value))
        return matched if self.op == "=" else not matched

    def __str__(self) -> str:
        if self.key == "age":
            return f"age {self.op} {format_seconds(float(self.value))}"
        return f"{self.key} {self.op} {self.value}"


@dataclass(frozen=True)
class Rule:
    line: int
    native: str
    conditions: tuple[Condition, ...]
    state: str
    cause: str

    def matches(self, native: str, reason: str, substate: str, age_s: float | None) -> bool:
        return fnmatchcase(native, self.native) and all(
            c.holds(reason, substate, age_s) for c in self.conditions)

    def __str__(self) -> str:
        when = f" if {' and '.join(map(str, self.conditions))}" if self.conditions else ""
        cause = f": {self.cause}" if self.cause else ""
        return f"{self.native}{when} -> {self.state}{cause}"


@dataclass(frozen=True)
class Mapped:
    state: str
    cause: str


class RuleSet:
    def __init__(self, source: str, origin: str, rules: list[Rule]):
        self.source = source
        self.origin = origin
        self.rules = rules
        self._warned: set[str] = set()
        # per native state: the rules that can apply, and whether any looks at the age
        self._candidates: dict[str, tuple[list[Rule], bool]] = {}
        self._memo: dict[tuple[str, str, str], Mapped] = {}

    def map(self, native: str, reason: str = "", substate: str = "",
            age_s: float | None = None) -> Mapped:
        """The common state and cause of one job; unknown (warned once) when no rule matches.

        Results that do not depend on the age are remembered: a queue of 100,000 jobs
        holds only a few distinct (native state, reason, substate) triples.
        """
        key = (native, reason, substate)
        known = self._memo.get(key)
        if known is not None:
            return known
        if native not in self._candidates:
            rules = [r for r in self.rules if fnmatchcase(native, r.native)]
            self._candidates[native] = (rules, any(c.key == "age" for r in rules
                                                   for c in r.conditions))
        rules, aged = self._candidates[native]
        mapped = next((Mapped(r.state, r.cause) for r in rules
                       if all(c.holds(reason, substate, age_s) for c in r.conditions)), None)
        if mapped is None:
            if native not in self._warned:
                self._warned.add(native)
                log.warning("%s: native state %r matches no rule in %s; counted as unknown",
                            self.source, native, self.origin)
            mapped = Mapped("unknown", f"no rule for native state {native}")
        if not aged:
            self._memo[key] = mapped
        return mapped

    def show(self) -> str:
        lines = [f"# {self.source} state rules from {self.origin}; first match wins"]
        lines += [f"{rule.line:>4}  {rule}" for rule in self.rules]
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // UNIT_SECONDS[unit])}{unit}"
    return f"{int(seconds)}s"


def _condition(text: str, where: str) -> Condition:
    text = text.strip()
    if match := _TEXT_CONDITION.match(text):
        return Condition(match["key"], match["op"], match["value"])
    if match := _AGE_CONDITION.match(text):
        seconds = int(match["number"]) * UNIT_SECONDS[match["unit"]]
        return Condition("age", match["op"], float(seconds))
    raise RuleError(f"{where}: condition {text!r} is not one of: reason = GLOB, "
                    f"reason != GLOB, substate = GLOB, substate != GLOB, age > DURATION, "
                    f"age < DURATION (DURATION like 30s, 5m, 2h, 1d)")


def parse_rules(text: str, source: str, origin: str) -> RuleSet:
    """Parse a rule file; the first mistake raises RuleError with its line and the reason."""
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{origin}, line {number}"
        match = _RULE.match(line)
        if not match:
            raise RuleError(f"{where}: {line!r} is not NATIVE [if CONDITION [and CONDITION]...] "
                            f"-> STATE [: CAUSE]")
        states = STATES_OF.get(source, COMMON_STATES)
        if match["state"] not in states:
            raise RuleError(f"{where}: state {match['state']!r} is not one of "
                            f"{', '.join(states)}")
        conditions = tuple(_condition(part, where) for part in
                           re.split(r"\s+and\s+", match["conditions"])) \
            if match["conditions"] else ()
        rules.append(Rule(number, match["native"], conditions, match["state"],
                          (match["cause"] or "").strip()))
    if not rules:
        raise RuleError(f"{origin}: no rules")
    return RuleSet(source, origin, rules)


def load_rules(source: str, path: str = "") -> RuleSet:
    """The rules of `source`: from `path` when configured, else the file in the package."""
    if source not in SOURCES:
        raise RuleError(f"no state rules for source {source!r} (known: {', '.join(SOURCES)})")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise RuleError(f"{path}: cannot read the {source} state rules: "
                            f"{exc.strerror}") from None
        return parse_rules(text, source, path)
    packaged = resources.files("qmonit.core.states").joinpath(f"{source}.rules")
    return parse_rules(packaged.read_text(), source, f"{source}.rules (built in)")


def with_state_tag(samples: Iterable[Sample], rules: RuleSet, native_tag: str) -> list[Sample]:
    """Add the mapped `state` tag to points whose native state is in `native_tag`."""
    out = []
    for sample in samples:
        state = rules.map(sample.tag(native_tag) or "").state
        out.append(sample._replace(tags=tuple(sorted((*sample.tags, ("state", state))))))
    return out
