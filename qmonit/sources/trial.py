"""`qmonit states test SOURCE`: the rules applied to the live jobs of a configured source.

Prints native state (and reason) -> mapped state and cause, with counts, so an admin
can check a changed rule file before deploying it. Nothing is written anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import Source

# (native state, reason, mapped state, cause) -> jobs (or workers, nodes, queues)
StateCounts = defaultdict[tuple[str, str, str, str], float]


def trial_counts(rule_source: str, source: Source, rules: RuleSet,
                 now: datetime) -> StateCounts:
    """(native, reason, state, cause) -> jobs, from one live fetch (raises SourceError);
    `rules`: the rule set in force for `rule_source` (the batch sources map with their own)."""
    collection = source.collect(now)
    counts: StateCounts = defaultdict(float)
    if collection.jobs is not None and rule_source in ("slurm", "htcondor"):
        for job in collection.jobs or []:
            counts[(job.native_state, job.reason, job.state, job.cause)] += job.tasks
        return counts
    for sample in collection.samples:
        if rule_source == "panda" and sample.measurement == "jobs":
            native = sample.tag("job_status") or ""
        elif sample.measurement == "workers" and sample.tag("factory_type") == (
                "harvester" if rule_source == "harvester" else "apf"):
            native = sample.tag("worker_status") or ""
        else:
            continue
        mapped = rules.map(native)
        counts[(native, "", mapped.state, mapped.cause)] += float(sample.field(
            "jobs" if sample.measurement == "jobs" else "workers") or 0)
    return counts


def render(counts: Mapping[tuple[str, str, str, str], float]) -> str:
    """The native -> mapped table, one row a (native, reason, state, cause), with its count."""
    rows = [("native_state", "reason", "state", "cause", "count")]
    for (native, reason, state, cause), count in sorted(counts.items()):
        rows.append((native, reason or "-", state, cause or "-", f"{count:g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append(f"{cells[0]}  {cells[1]}  ->  {cells[2]}  {cells[3]}  {row[4]:>7}")
    return "\n".join(lines) + "\n"
