"""What the batch layer's own health says: a slurmctld whose agent queue or scheduling
cycles, or a schedd or negotiator whose duty cycle, crossed [slurm] / [htcondor]'s
warnings (`qmonit status` warns of them), and a share of a cluster's nodes out, by reason
(a mass drain). The layer diagnosis names them as evidence for an incident at the
batch/site layer of a queue whose ATLAS site runs on that cluster ([slurm] / [htcondor]
atlas_sites).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine

from qmonit.core.sample import SLOT
from qmonit.core.settings import Settings
from qmonit.stores.state.batch import SchedulerKey, nodes_out, scheduler_readings

OUT_SHARE = 0.1  # a cluster with at least this share of its nodes out: a mass drain
REASONS_SHOWN = 3


def scheduler_warnings(key: SchedulerKey, fields: Mapping[str, object],
                       settings: Settings) -> list[str]:
    """What of one daemon's reading crossed its warning, each as a sentence."""
    cluster, daemon, name = key
    who = f"{daemon} {name or 'of ' + cluster}"
    slurm, htcondor = settings.slurm, settings.htcondor
    said = []
    queue = fields.get("agent_queue_size")
    if isinstance(queue, int | float) and queue >= slurm.agent_queue_warning:
        said.append(f"{who}: agent queue {queue:,.0f} (warning from "
                    f"{slurm.agent_queue_warning:,}): it cannot reach its nodes fast enough")
    for field, what in (("schedule_cycle_last_s", "main scheduling"),
                        ("bf_cycle_last_s", "backfill")):
        cycle = fields.get(field)
        if isinstance(cycle, int | float) and cycle >= slurm.cycle_warning_s:
            said.append(f"{who}: {what} cycle {cycle:.0f} s (warning from "
                        f"{slurm.cycle_warning_s:g} s)")
    duty = fields.get("duty_cycle")
    if isinstance(duty, int | float) and duty >= htcondor.duty_cycle_warning:
        said.append(f"{who}: duty cycle {duty:.0%} (warning from "
                    f"{htcondor.duty_cycle_warning:.0%}): it drops work")
    return said


def drain_warning(cluster: str, total: float | None, by_reason: Mapping[str, int]) -> str:
    """"40% of cc-slurm's 423 nodes out: NHC: memory used (160), ..." when at least
    OUT_SHARE of the cluster's nodes are out; "" otherwise or when its size is unknown."""
    out = sum(by_reason.values())
    if not total or out < OUT_SHARE * total:
        return ""
    reasons = sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{reason} ({count})" for reason, count in reasons[:REASONS_SHOWN])
    more = f" and {len(reasons) - REASONS_SHOWN} more reasons" \
        if len(reasons) > REASONS_SHOWN else ""
    return f"{out / total:.0%} of {cluster}'s {total:.0f} nodes out: {shown}{more}"


def evidence_by_site(engine: Engine, settings: Settings, slot: datetime,
                     fresh: timedelta = 3 * SLOT) -> dict[str, str]:
    """ATLAS site -> what its batch cluster(s) show wrong at `slot` ("" never appears): the
    daemons' warnings of readings at most `fresh` old, and a mass drain."""
    clusters: dict[str, list[str]] = {}
    for section in (settings.slurm, settings.htcondor):
        for site in section.atlas_sites:
            clusters.setdefault(section.cluster, []).append(site)
    if not clusters:
        return {}
    said: dict[str, list[str]] = {}
    for key, (at, fields) in sorted(scheduler_readings(engine).items()):
        if key[0] in clusters and slot - fresh <= at <= slot:
            said.setdefault(key[0], []).extend(scheduler_warnings(key, fields, settings))
    for cluster, (total, by_reason) in nodes_out(engine).items():
        drained = drain_warning(cluster, total, by_reason) if cluster in clusters else ""
        if drained:
            said.setdefault(cluster, []).append(drained)
    by_site: dict[str, list[str]] = {}
    for cluster, sentences in said.items():
        for site in clusters[cluster]:
            by_site.setdefault(site, []).extend(sentences)
    return {site: "; ".join(sentences) for site, sentences in by_site.items() if sentences}
