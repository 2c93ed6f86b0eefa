"""The batch schedulers' own health (sdiag, slurmrestd /diag, HTCondor daemon ads) as
`batch_scheduler` samples, and their ever-growing counters turned into rates.

Pure functions: the caller runs `sdiag --json`, asks slurmrestd or queries the collector,
and hands the answer in with `origin` (the file, command or URL, for messages). A value
that is bad costs only its field (reported in the problems returned); an answer with
nothing usable is a SourceError. A value that is absent is never written as zero.
Tags: cluster, scheduler (slurm, htcondor), daemon (slurmctld: sdiag's statistics are all
the controller's, its queue to slurmdbd included; schedd, negotiator) and, for HTCondor,
daemon_name (the ad's Name). Times in fields are seconds, and say so (`_s`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from qmonit.core.bounds import MAX_JOBS, number_problem
from qmonit.core.sample import FieldValue, Sample, make_sample, shown
from qmonit.sources.base import SourceError, parse_json

MEASUREMENT = "batch_scheduler"

# Sane maxima, far above any real controller: threads, agents and RPC queues of one
# daemon; events counted between two resets (sdiag: one day at most); one scheduling or
# negotiation cycle (a day-long cycle is a hung daemon, not a measurement); a daemon's
# duty cycle (a ratio near 1 at capacity; a little above it under load).
MAX_COUNT = 1e7
MAX_COUNTER = 1e9
MAX_CYCLE_S = 86_400.0
MAX_DUTY_CYCLE = 100.0
# Times of day as Unix seconds: before 2000 or after 2100 is a broken clock or field.
MIN_EPOCH_S = 946_684_800.0
MAX_EPOCH_S = 4_102_444_800.0
MICROSECONDS_PER_S = 1e6


class Spec(NamedTuple):
    """Where one field comes from and how it is checked: the scheduler's key, the field it
    becomes, the largest sane raw value, what to divide it by for the field's unit (a
    division, not a product with 1e-6, so 30921 us is exactly 0.030921 s), the smallest."""

    key: str
    field: str
    limit: float
    divisor: float = 1.0
    low: float = 0.0


def _count(key: str, field: str = "", limit: float = MAX_COUNT) -> Spec:
    return Spec(key, field or key, limit)


def _micros(key: str, field: str) -> Spec:
    return Spec(key, field, MAX_CYCLE_S * MICROSECONDS_PER_S, MICROSECONDS_PER_S)


def _epoch(key: str, field: str) -> Spec:
    return Spec(key, field, MAX_EPOCH_S, 1.0, MIN_EPOCH_S)


# sdiag --json and slurmrestd /diag share the `statistics` object (all versions).
SLURM_SPECS = (
    _count("server_thread_count"), _count("agent_queue_size"), _count("agent_count"),
    _count("agent_thread_count"), _count("dbd_agent_queue_size"),
    _micros("schedule_cycle_last", "schedule_cycle_last_s"),
    _micros("schedule_cycle_mean", "schedule_cycle_mean_s"),
    _micros("schedule_cycle_max", "schedule_cycle_max_s"),
    _count("schedule_cycle_total", "schedule_cycles", MAX_COUNTER),
    _count("schedule_queue_length", "schedule_queue_length", MAX_JOBS),
    _micros("bf_cycle_last", "bf_cycle_last_s"), _micros("bf_cycle_mean", "bf_cycle_mean_s"),
    _micros("bf_cycle_max", "bf_cycle_max_s"),
    _count("bf_cycle_counter", "bf_cycles", MAX_COUNTER),
    _count("bf_last_backfilled_jobs", "jobs_backfilled", MAX_COUNTER),
    _count("bf_last_depth", "bf_last_depth", MAX_JOBS),
    _count("bf_queue_len", "bf_queue_len", MAX_JOBS),
    *(_count(key, key, MAX_COUNTER) for key in (
        "jobs_submitted", "jobs_started", "jobs_completed", "jobs_canceled", "jobs_failed")),
    _count("jobs_pending", "jobs_pending", MAX_JOBS),
    _count("jobs_running", "jobs_running", MAX_JOBS),
    _epoch("req_time_start", "counters_since_s"), _epoch("req_time", "answered_at_s"),
)
# Fields every sdiag (JSON or text, 17.x to 24.x) carries: their absence is reported. The
# others are absent in some real versions (23.02's sdiag --json has no bf_cycle_max,
# slurmrestd v0.0.38 no bf_last_depth, old text no pending or running jobs): not a fault.
# (Not the mean cycle: sdiag prints it only once a cycle ran, e.g. after a restart.)
SLURM_REQUIRED = frozenset((
    "server_thread_count", "agent_queue_size", "jobs_submitted", "jobs_started",
    "jobs_completed", "jobs_canceled", "jobs_failed", "schedule_cycle_last_s",
    "schedule_cycle_max_s", "counters_since_s"))
# Counters that grow from the last reset (midnight UTC, `sdiag -r`): what counter_rates reads.
COUNTERS = ("jobs_submitted", "jobs_started", "jobs_completed", "jobs_canceled",
            "jobs_failed", "jobs_backfilled", "schedule_cycles", "bf_cycles")
# data_parser / openapi versions whose diag shape is known (Slurm 21.08 to 25.11).
KNOWN_VERSIONS = tuple(f"v0.0.{minor}" for minor in range(37, 45))

_DUTY = Spec("RecentDaemonCoreDutyCycle", "duty_cycle", MAX_DUTY_CYCLE)
SCHEDD_SPECS = (
    _DUTY, _count("TotalRunningJobs", "jobs_running", MAX_JOBS),
    _count("TotalIdleJobs", "jobs_idle", MAX_JOBS),
    _count("TotalHeldJobs", "jobs_held", MAX_JOBS),
    _count("TotalJobAds", "job_ads", MAX_JOBS),
    _count("MaxJobsRunning", "max_jobs_running", MAX_JOBS),
    _count("RecentJobsSubmitted", "recent_jobs_submitted", MAX_COUNTER),
    _count("RecentJobsStarted", "recent_jobs_started", MAX_COUNTER),
    _count("RecentJobsCompleted", "recent_jobs_completed", MAX_COUNTER),
    Spec("RecentStatsLifetime", "recent_window_s", MAX_CYCLE_S),
    _count("NumUsers", "users"), _count("ShadowsRunning", "shadows_running"),
)
_CYCLE = "LastNegotiationCycle"  # <X>0: the latest cycle (1, 2, ...: the ones before)
NEGOTIATOR_SPECS = (
    _DUTY, Spec(f"{_CYCLE}Duration0", "negotiation_cycle_duration_s", MAX_CYCLE_S),
    Spec(f"{_CYCLE}Period0", "negotiation_cycle_period_s", MAX_CYCLE_S),
    _count(f"{_CYCLE}Matches0", "negotiation_matches", MAX_JOBS),
    _count(f"{_CYCLE}Rejections0", "negotiation_rejections", MAX_JOBS),
    _count(f"{_CYCLE}CandidateSlots0", "negotiation_candidate_slots", MAX_JOBS),
    _count(f"{_CYCLE}TotalSlots0", "negotiation_total_slots", MAX_JOBS),
    _count(f"{_CYCLE}TrimmedSlots0", "negotiation_trimmed_slots", MAX_JOBS),
    _count(f"{_CYCLE}NumIdleJobs0", "negotiation_idle_jobs", MAX_JOBS),
    _count(f"{_CYCLE}NumJobsConsidered0", "negotiation_jobs_considered", MAX_JOBS),
    _count(f"{_CYCLE}NumSchedulers0", "negotiation_schedulers"),
    _count(f"{_CYCLE}ActiveSubmitterCount0", "negotiation_active_submitters"),
    Spec(f"{_CYCLE}MatchRate0", "negotiation_match_rate_per_s", MAX_JOBS),
    _epoch(f"{_CYCLE}End0", "negotiation_cycle_end_s"),
)
DAEMON_SPECS = {"schedd": SCHEDD_SPECS, "negotiator": NEGOTIATOR_SPECS}


# -- numbers ------------------------------------------------------------------------------

def value_problem(value: Any, spec: Spec) -> str | None:
    """Why `value` cannot be `spec`'s field (None if it can): `number_problem`, or below
    the smallest sane value (a time before 2000)."""
    problem = number_problem(value, spec.limit)
    if problem is None and value < spec.low:
        problem = f"{value!r} is below the minimum {spec.low:.0f}"
    return problem


def unwrap(value: Any) -> tuple[bool, Any]:
    """(present, number) of a plain JSON number (<= 23.02) or a {"set", "infinite",
    "number"} object (23.11+). Not set means absent; infinite is kept as inf so that the
    check reports it; any other object is returned as it is, to be reported."""
    if not isinstance(value, dict) or not isinstance(value.get("set"), bool):
        return True, value
    if not value["set"]:
        return False, None
    if value.get("infinite") is True:
        return True, math.inf
    return True, value.get("number")


def _take(fields: dict[str, float], problems: list[str], place: str, spec: Spec,
          value: Any) -> None:
    """Put `value` in `fields` as `spec` says, or report why not at `place`, the origin and
    the path to the value ("sdiag --json: statistics/jobs_failed")."""
    problem = value_problem(value, spec)
    if problem is None:
        fields[spec.field] = float(value) / spec.divisor
    else:
        problems.append(f"{place} = {problem}; field {spec.field} skipped")


def _absent(problems: list[str], place: str, spec: Spec) -> None:
    """Report a value that is not there when every version has it (a truncated answer)."""
    if spec.field in SLURM_REQUIRED:
        problems.append(f"{place} is missing; field {spec.field} skipped")


def _slurm_sample(fields: dict[str, float], problems: list[str], cluster: str, origin: str,
                  slot: datetime) -> Sample:
    """The slurmctld sample of the fields read, or a SourceError when none was usable."""
    if not fields:
        first = f": {problems[0]}" if problems else ""
        raise SourceError(f"{origin}: no usable sdiag statistics{first}")
    tags = {"cluster": cluster, "scheduler": "slurm", "daemon": "slurmctld"}
    try:
        return make_sample(MEASUREMENT, tags, fields, slot)
    except ValueError as exc:
        raise SourceError(f"{origin}: {exc}") from None


# -- Slurm: sdiag --json, slurmrestd /diag -------------------------------------------------

_VERSION = re.compile(r"v\d+\.\d+\.\d+")


def parse_diag_json(text: str | bytes, cluster: str, origin: str,
                    slot: datetime) -> tuple[Sample, list[str]]:
    """The text of `sdiag --json` (22.05+) or slurmrestd's /diag (v0.0.38+): one sample
    and the problems of the fields skipped."""
    return diag_sample(parse_json(text, origin), cluster, origin, slot)


def diag_sample(doc: Any, cluster: str, origin: str,
                slot: datetime) -> tuple[Sample, list[str]]:
    """Decoded `sdiag --json` or /diag: one sample and the problems of the fields skipped."""
    statistics = diag_statistics(doc, origin)
    fields: dict[str, float] = {}
    problems: list[str] = []
    for spec in SLURM_SPECS:
        place = f"{origin}: statistics/{spec.key}"
        present, value = unwrap(statistics[spec.key]) if spec.key in statistics else (False, 0)
        if present:
            _take(fields, problems, place, spec, value)
        else:
            _absent(problems, place, spec)
    return _slurm_sample(fields, problems, cluster, origin, slot), problems


def diag_statistics(doc: Any, origin: str) -> dict[str, Any]:
    """The `statistics` object of an answer with no errors and a known version."""
    if not isinstance(doc, dict):
        raise SourceError(f"{origin}: expected a JSON object, got {type(doc).__name__}")
    check_errors(doc, origin)
    diag_version(doc, origin)
    statistics = doc.get("statistics")
    if not isinstance(statistics, dict):
        what = "missing" if statistics is None else f"a {type(statistics).__name__}"
        raise SourceError(f"{origin}: statistics is {what}, not an object")
    return statistics


def check_errors(doc: dict[str, Any], origin: str) -> None:
    """A SourceError with Slurm's first error when the answer carries any (a controller that
    does not answer gives an `errors` list and otherwise empty statistics)."""
    errors = doc.get("errors", [])
    if not isinstance(errors, list):
        raise SourceError(f"{origin}: errors is a {type(errors).__name__}, not a list")
    if errors:
        first = errors[0]
        if isinstance(first, dict):
            first = first.get("description") or first.get("error") or first
        raise SourceError(f"{origin}: Slurm reported {len(errors)} error(s), the first: "
                          f"{shown(str(first), 200)}")


def diag_version(doc: dict[str, Any], origin: str) -> str:
    """The data_parser (23.02+) or openapi (<= 22.05) version in `meta`, if known: another
    shape than the known ones cannot be read safely."""
    meta = doc.get("meta")
    plugin = meta.get("plugin") or meta.get("plugins") if isinstance(meta, dict) else None
    names = [plugin.get(key) for key in ("data_parser", "type")] \
        if isinstance(plugin, dict) else []
    found = [match.group() for name in names if isinstance(name, str)
             for match in [_VERSION.search(name)] if match]
    if not found:
        raise SourceError(f"{origin}: meta/plugin names no data_parser or openapi version")
    if found[0] not in KNOWN_VERSIONS:
        raise SourceError(f"{origin}: unknown data_parser version {shown(found[0])} (known: "
                          f"{KNOWN_VERSIONS[0]} to {KNOWN_VERSIONS[-1]})")
    return found[0]


# -- Slurm: sdiag text ---------------------------------------------------------------------

# Text labels -> the JSON keys (so the text is read by the same specs). "Last cycle" and
# "Total cycles" mean the main scheduler's or the backfill's by the section they are in.
TEXT_TOP = {
    "Server thread count": "server_thread_count", "Agent queue size": "agent_queue_size",
    "Agent count": "agent_count", "Agent thread count": "agent_thread_count",
    "DBD Agent queue size": "dbd_agent_queue_size", "Jobs submitted": "jobs_submitted",
    "Jobs started": "jobs_started", "Jobs completed": "jobs_completed",
    "Jobs canceled": "jobs_canceled", "Jobs failed": "jobs_failed",
    "Jobs pending": "jobs_pending", "Jobs running": "jobs_running",
}
TEXT_MAIN = {
    "Last cycle": "schedule_cycle_last", "Max cycle": "schedule_cycle_max",
    "Mean cycle": "schedule_cycle_mean", "Total cycles": "schedule_cycle_total",
    "Last queue length": "schedule_queue_length",
}
TEXT_BACKFILL = {
    "Total backfilled jobs (since last stats cycle start)": "bf_last_backfilled_jobs",
    "Total cycles": "bf_cycle_counter", "Last cycle": "bf_cycle_last",
    "Max cycle": "bf_cycle_max", "Mean cycle": "bf_cycle_mean",
    "Last depth cycle": "bf_last_depth", "Last queue length": "bf_queue_len",
}
TEXT_TIMES = {"sdiag output at": "req_time", "Data since": "req_time_start"}
TEXT_SECTIONS = {"Main schedule statistics": TEXT_MAIN, "Backfilling stats": TEXT_BACKFILL}
# JSON key -> where the text says it ("Backfilling stats/Last cycle"), for messages
TEXT_PLACES = {**{key: label for label, key in {**TEXT_TOP, **TEXT_TIMES}.items()},
               **{key: f"{heading}/{label}" for heading, labels in TEXT_SECTIONS.items()
                  for label, key in labels.items()}}
_LABELLED = re.compile(r"([^:]+?):\s*(.*?)\s*$")
_TIME_LINE = re.compile(r"(sdiag output at|Data since)\s+(.*?)\s*$")
_UNIX_TIME = re.compile(r"\((\d+)\)$")  # newer sdiag: "Tue Nov 12 00:00:00 2024 (1731369600)"


def parse_sdiag_text(text: str, cluster: str, origin: str, slot: datetime,
                     zone: tzinfo | None = None) -> tuple[Sample, list[str]]:
    """Plain `sdiag` output: one sample and the problems of the fields skipped. `zone` is
    the time zone of the host that ran sdiag: old versions print local times only."""
    found = sdiag_text_values(text)
    fields: dict[str, float] = {}
    problems: list[str] = []
    for spec in SLURM_SPECS:
        place = f"{origin}: {TEXT_PLACES[spec.key]!r}"
        raw = found.get(spec.key)
        if raw is None:
            _absent(problems, place, spec)
            continue
        try:
            value = _text_time(raw, zone) if spec.low else _text_count(raw)  # times: low > 0
        except ValueError as exc:
            problems.append(f"{place} = {shown(raw)}: {exc}; field {spec.field} skipped")
            continue
        _take(fields, problems, place, spec, value)
    return _slurm_sample(fields, problems, cluster, origin, slot), problems


def sdiag_text_values(text: str) -> dict[str, str]:
    """JSON key -> value text of the lines of sdiag's text output that are read: the top
    lines wherever they are, the indented ones of the section they are in."""
    found: dict[str, str] = {}
    section: dict[str, str] = {}
    for line in text.splitlines():
        timed = _TIME_LINE.match(line)
        labelled = _LABELLED.match(line.strip())
        if timed:
            found[TEXT_TIMES[timed[1]]] = timed[2]
        elif line[:1].isspace():
            if labelled and labelled[1] in section:
                found[section[labelled[1]]] = labelled[2]
        elif labelled and labelled[1] in TEXT_TOP:
            found[TEXT_TOP[labelled[1]]] = labelled[2]
        elif line.strip():
            section = _text_section(line)
    return found


def _text_section(heading: str) -> dict[str, str]:
    """The labels of the section a heading opens (none for the RPC tables, exit reasons)."""
    for name, labels in TEXT_SECTIONS.items():
        if heading.startswith(name):
            return labels
    return {}


def _text_count(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError("is not a whole number")
    return int(raw)  # past 4300 digits a ValueError too: reported like any other


def _text_time(raw: str, zone: tzinfo | None) -> float | int:
    """Unix seconds of "Wed Apr 12 02:00:00 2017" (in `zone`) or of its "(1491955200)"."""
    unix = _UNIX_TIME.search(raw)
    if unix:
        return int(unix[1])  # no float() here: 400 digits must be reported, not overflow
    if zone is None:
        raise ValueError("is a local time and no time zone was given")
    try:
        moment = datetime.strptime(raw, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        raise ValueError("is not a time like 'Wed Apr 12 02:00:00 2017'") from None
    return moment.replace(tzinfo=zone).timestamp()


# -- HTCondor: schedd and negotiator ads -----------------------------------------------------

def daemon_ad_samples(ads: Any, daemon: str, cluster: str, origin: str,
                      slot: datetime) -> tuple[list[Sample], list[str]]:
    """One sample per schedd or negotiator ad (`daemon`), tagged with the ad's Name; an
    ad without a usable Name or value is reported and skipped. A SourceError when no ad
    was usable: an empty answer says nothing about the daemons."""
    if daemon not in DAEMON_SPECS:
        raise ValueError(f"unknown daemon {daemon!r} (one of {', '.join(DAEMON_SPECS)})")
    specs = DAEMON_SPECS[daemon]
    if isinstance(ads, (str, bytes, Mapping)) or not isinstance(ads, Iterable):
        raise SourceError(f"{origin}: expected a list of {daemon} ads, got "
                          f"{type(ads).__name__}")
    samples: list[Sample] = []
    problems: list[str] = []
    count = 0
    for count, ad in enumerate(ads, 1):
        sample = _ad_sample(ad, f"{origin}: {daemon} ad {count}", specs, problems,
                            {"cluster": cluster, "scheduler": "htcondor", "daemon": daemon},
                            slot)
        if sample is not None:
            samples.append(sample)
    if not samples:
        first = f": {problems[0]}" if problems else ""
        raise SourceError(f"{origin}: no usable {daemon} ad among {count}{first}")
    return samples, problems


def _ad_sample(ad: Any, where: str, specs: tuple[Spec, ...], problems: list[str],
               tags: dict[str, str], slot: datetime) -> Sample | None:
    if not isinstance(ad, Mapping):
        problems.append(f"{where} is a {type(ad).__name__}, not an ad; skipped")
        return None
    present, name = ad_value(ad, "Name")
    if not present or not isinstance(name, str) or not name:
        problems.append(f"{where} has no Name; skipped")
        return None
    fields: dict[str, float] = {}
    for spec in specs:
        present, value = ad_value(ad, spec.key)
        if present:
            _take(fields, problems, f"{where} ({shown(name)}): {spec.key}", spec, value)
    if not fields:
        problems.append(f"{where} ({shown(name)}) has none of its statistics; skipped")
        return None
    try:
        return make_sample(MEASUREMENT, {**tags, "daemon_name": name}, fields, slot)
    except ValueError as exc:
        problems.append(f"{where}: {exc}; skipped")
        return None


def ad_value(ad: Mapping[str, Any], attribute: str) -> tuple[bool, Any]:
    """(present, value) of an attribute: missing, null or Undefined is absent; a
    classad2.ClassAd's expression is evaluated; an Error, or an expression that does not
    evaluate, comes back as text so that the check reports it. (classad2.Value.Undefined
    equals 2: a Value is never taken for a number.)"""
    if attribute not in ad:
        return False, None
    try:
        found = ad.eval(attribute) if hasattr(ad, "eval") else ad[attribute]
    except Exception as exc:  # noqa: BLE001 - classad2 raises several kinds on a bad expression
        return True, f"<does not evaluate: {exc}>"
    if type(found).__name__ == "Value":
        return (False, None) if found.name == "Undefined" else (True, f"<{found.name}>")
    return found is not None, found


# -- counters -> rates -----------------------------------------------------------------------

def counter_rates(previous: Mapping[str, FieldValue], current: Mapping[str, FieldValue],
                  elapsed_s: float) -> tuple[dict[str, float], list[str]]:
    """The increase of each counter between two readings `elapsed_s` apart, as
    `<counter>_delta` and `<counter>_per_s`. After a reset (the counters' start time
    changed, or one went down: midnight UTC, `sdiag -r`, a restart) the increase is the new
    value itself, over the time since the reset where the reading says it: never negative."""
    if number_problem(elapsed_s, MAX_CYCLE_S * 365) or not elapsed_s > 0:
        raise SourceError(f"counter rates: elapsed_s = {elapsed_s!r} is not a positive "
                          "number of seconds")
    problems: list[str] = []
    before = _counters(previous, "previous", problems)
    after = _counters(current, "current", problems)
    reset = _was_reset(previous, current, before, after)
    window = _since_reset(current, elapsed_s) if reset else elapsed_s
    rates: dict[str, float] = {}
    for name in COUNTERS:
        if name in before and name in after:
            delta = after[name] if reset else after[name] - before[name]
            rates[f"{name}_delta"] = delta
            rates[f"{name}_per_s"] = delta / window
    return rates, problems


def _counters(fields: Mapping[str, FieldValue], which: str,
              problems: list[str]) -> dict[str, float]:
    """The counters of one reading that are usable numbers; the others reported."""
    usable = {}
    for name in COUNTERS:
        if name in fields:
            problem = number_problem(fields[name], MAX_COUNTER)
            if problem is None:
                usable[name] = float(fields[name])
            else:
                problems.append(f"counter rates: {which} {name} = {problem}; no rate")
    return usable


def _epoch_field(fields: Mapping[str, FieldValue], name: str) -> float | None:
    value = fields.get(name)
    spec = Spec(name, name, MAX_EPOCH_S, 1.0, MIN_EPOCH_S)
    return None if value is None or value_problem(value, spec) else float(value)


def _was_reset(previous: Mapping[str, FieldValue], current: Mapping[str, FieldValue],
               before: dict[str, float], after: dict[str, float]) -> bool:
    since_before = _epoch_field(previous, "counters_since_s")
    since_after = _epoch_field(current, "counters_since_s")
    if since_before is not None and since_after is not None and since_before != since_after:
        return True
    return any(after[name] < before[name] for name in before.keys() & after.keys())


def _since_reset(current: Mapping[str, FieldValue], elapsed_s: float) -> float:
    """Seconds the counters of `current` have been counting, when it says so and that is
    within the interval; else the whole interval."""
    since = _epoch_field(current, "counters_since_s")
    at = _epoch_field(current, "answered_at_s")
    if since is not None and at is not None and 0 < at - since < elapsed_s:
        return at - since
    return elapsed_s
