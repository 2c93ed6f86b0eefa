"""The schedulers' own health: sdiag (--json, slurmrestd /diag, text) and HTCondor daemon ads
as batch_scheduler samples, hostile values, and counters turned into rates across resets.

Expected values of the real samples are read from the files here, by hand (json.load and
the keys picked one by one, or a regular expression on the text), never by the parser."""

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qmonit.core.sample import make_sample
from qmonit.sources.base import SourceError
from qmonit.sources.scheduler_health import (
    counter_rates,
    daemon_ad_samples,
    diag_sample,
    parse_diag_json,
    parse_sdiag_text,
)

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
SDIAG_2302 = "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sdiag.json"
SDIAG_2405 = "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sdiag_2405.json"
RESTD_V0040 = "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiDiagResp.json"
RESTD_V0038 = "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_diag.json"
TELEGRAF_OUT = "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_expected.out"
SDIAG_TEXT = "vpenso+prometheus-slurm-exporter__test_data_sdiag.txt"
SLURM_TAGS = (("cluster", "qtest"), ("daemon", "slurmctld"), ("scheduler", "slurm"))


def sample_file(name: str) -> Path:
    """A file of ../shared/samples, or a skip where that directory is absent."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is absent")
    return SAMPLES / name


# -- the real sdiag --json and slurmrestd /diag answers ---------------------------------------

def by_hand(statistics: dict) -> dict[str, float]:
    """The fields a reader of Slurm's documentation expects from a `statistics` object:
    plain numbers or {"set", "infinite", "number"} objects, microseconds as seconds."""

    def number(key: str) -> float:
        value = statistics[key]
        return float(value["number"] if isinstance(value, dict) else value)

    same = ("server_thread_count", "agent_queue_size", "agent_count", "agent_thread_count",
            "dbd_agent_queue_size", "schedule_queue_length", "bf_last_depth", "bf_queue_len",
            "jobs_submitted", "jobs_started", "jobs_completed", "jobs_canceled", "jobs_failed",
            "jobs_pending", "jobs_running")
    fields = {key: number(key) for key in same if key in statistics}
    for key in ("schedule_cycle_last", "schedule_cycle_mean", "schedule_cycle_max",
                "bf_cycle_last", "bf_cycle_mean", "bf_cycle_max"):
        if key in statistics:
            fields[f"{key}_s"] = number(key) / 1_000_000
    fields["schedule_cycles"] = number("schedule_cycle_total")
    fields["bf_cycles"] = number("bf_cycle_counter")
    fields["jobs_backfilled"] = number("bf_last_backfilled_jobs")
    fields["counters_since_s"] = number("req_time_start")
    fields["answered_at_s"] = number("req_time")
    return fields


def read_diag(name: str) -> tuple[dict, dict[str, float], list[str]]:
    """A sample file's statistics, the parser's fields of it and its problems."""
    path = sample_file(name)
    statistics = json.loads(path.read_text())["statistics"]
    sample, problems = parse_diag_json(path.read_bytes(), "qtest", name, SLOT)
    assert sample.measurement == "batch_scheduler"
    assert sample.tags == SLURM_TAGS
    assert sample.time == SLOT
    return statistics, dict(sample.fields), problems


def test_sdiag_json_of_slurm_23_02() -> None:
    statistics, fields, problems = read_diag(SDIAG_2302)
    assert fields == by_hand(statistics)
    assert problems == []
    assert len(fields) == 25  # no bf_cycle_max in 23.02's sdiag --json: no field, no zero
    assert "bf_cycle_max_s" not in fields
    assert fields["jobs_submitted"] == 5824.0
    assert fields["schedule_cycle_max_s"] == 1.193926
    assert fields["bf_cycle_last_s"] == 4.097505
    # the counters were reset at midnight UTC
    assert fields["counters_since_s"] == datetime(2023, 11, 2, tzinfo=UTC).timestamp()


def test_sdiag_json_of_slurm_24_05_with_number_objects() -> None:
    statistics, fields, problems = read_diag(SDIAG_2405)
    assert fields == by_hand(statistics)
    assert problems == []
    assert len(fields) == 26
    assert fields["counters_since_s"] == 1739822537.0  # a restart at 20:02:17, not midnight
    assert fields["answered_at_s"] == 1739832148.0
    assert fields["schedule_cycle_mean_s"] == 0.000066
    assert fields["bf_cycle_max_s"] == 0.0  # the file says 0: a real zero


def test_slurmrestd_diag_v0_0_40() -> None:
    statistics, fields, problems = read_diag(RESTD_V0040)
    assert fields == by_hand(statistics)
    assert problems == []
    assert len(fields) == 25  # this answer has no bf_cycle_max either
    assert (fields["jobs_pending"], fields["jobs_running"]) == (25.0, 1.0)
    assert fields["schedule_cycle_max_s"] == 0.014942
    assert fields["counters_since_s"] == datetime(2024, 9, 19, tzinfo=UTC).timestamp()


def test_slurmrestd_diag_v0_0_38_agrees_with_telegraf() -> None:
    statistics, fields, problems = read_diag(RESTD_V0038)
    assert fields == by_hand(statistics)
    assert problems == []
    assert len(fields) == 25  # v0.0.38 has no bf_last_depth
    assert "bf_last_depth" not in fields
    line = next(text for text in sample_file(TELEGRAF_OUT).read_text().splitlines()
                if text.startswith("slurm_diag,"))
    telegraf = {key: float(value) for key, value in re.findall(r"(\w+)=(\d+)i", line)}
    assert telegraf["jobs_submitted"] == fields["jobs_submitted"] == 287.0
    for key in ("jobs_started", "jobs_completed", "jobs_canceled", "jobs_failed",
                "jobs_pending", "jobs_running", "server_thread_count", "bf_queue_len"):
        assert fields[key] == telegraf[key], key
    assert fields["schedule_cycle_last_s"] == telegraf["schedule_cycle_last"] / 1e6 == 0.000298
    assert fields["schedule_cycle_mean_s"] == telegraf["schedule_cycle_mean"] / 1e6


# -- the real sdiag text ----------------------------------------------------------------------

def test_sdiag_text_with_its_local_times() -> None:
    text = sample_file(SDIAG_TEXT).read_text()
    sample, problems = parse_sdiag_text(text, "qtest", "sdiag", SLOT, ZoneInfo("Europe/Berlin"))
    main, backfill = text.split("Main schedule statistics", 1)[1].split("Backfilling stats", 1)

    def top(label: str) -> float:
        return float(re.search(rf"^{re.escape(label)}:\s*(\d+)\s*$", text, re.M)[1])

    def inner(part: str, label: str) -> float:
        return float(re.search(rf"^\s+{re.escape(label)}:\s*(\d+)\s*$", part, re.M)[1])

    def local(label: str) -> float:
        shown = re.search(rf"^{label}\s+(.+?)\s*$", text, re.M)[1]
        moment = datetime.strptime(shown, "%a %b %d %H:%M:%S %Y")
        return moment.replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    expected = {
        "server_thread_count": top("Server thread count"),
        "agent_queue_size": top("Agent queue size"), "agent_count": top("Agent count"),
        "dbd_agent_queue_size": top("DBD Agent queue size"),
        "jobs_submitted": top("Jobs submitted"), "jobs_started": top("Jobs started"),
        "jobs_completed": top("Jobs completed"), "jobs_canceled": top("Jobs canceled"),
        "jobs_failed": top("Jobs failed"),
        "schedule_cycle_last_s": inner(main, "Last cycle") / 1e6,
        "schedule_cycle_max_s": inner(main, "Max cycle") / 1e6,
        "schedule_cycle_mean_s": inner(main, "Mean cycle") / 1e6,
        "schedule_cycles": inner(main, "Total cycles"),
        "schedule_queue_length": inner(main, "Last queue length"),
        "bf_cycle_last_s": inner(backfill, "Last cycle") / 1e6,
        "bf_cycle_max_s": inner(backfill, "Max cycle") / 1e6,
        "bf_cycle_mean_s": inner(backfill, "Mean cycle") / 1e6,
        "bf_cycles": inner(backfill, "Total cycles"),
        "bf_last_depth": inner(backfill, "Last depth cycle"),
        "bf_queue_len": inner(backfill, "Last queue length"),
        "jobs_backfilled": inner(backfill,
                                 "Total backfilled jobs (since last stats cycle start)"),
        "counters_since_s": local("Data since"), "answered_at_s": local("sdiag output at"),
    }
    assert dict(sample.fields) == expected
    assert problems == []
    assert sample.tags == SLURM_TAGS
    # 02:00 in Berlin (summer time) is the midnight UTC reset
    assert expected["counters_since_s"] == datetime(2017, 4, 12, tzinfo=UTC).timestamp()
    assert (expected["schedule_cycles"], expected["bf_queue_len"]) == (34585.0, 57064.0)
    assert expected["schedule_cycle_last_s"] == 0.097209  # main, not backfill: 1.94289


def test_sdiag_text_without_a_time_zone_keeps_everything_but_the_times() -> None:
    text = sample_file(SDIAG_TEXT).read_text()
    sample, problems = parse_sdiag_text(text, "qtest", "sdiag", SLOT)
    assert problems == [
        "sdiag: 'Data since' = Wed Apr 12 02:00:00 2017: is a local time and no time zone "
        "was given; field counters_since_s skipped",
        "sdiag: 'sdiag output at' = Wed Apr 12 11:04:01 2017: is a local time and no time "
        "zone was given; field answered_at_s skipped"]
    assert len(sample.fields) == 21
    assert sample.field("jobs_started") == 35395.0


def test_sdiag_text_cut_after_the_job_counts() -> None:
    text = sample_file(SDIAG_TEXT).read_text().split("Main schedule statistics")[0]
    sample, problems = parse_sdiag_text(text, "qtest", "sdiag", SLOT, UTC)
    assert problems == [
        f"sdiag: 'Main schedule statistics/{label}' is missing; field {field} skipped"
        for label, field in (("Last cycle", "schedule_cycle_last_s"),
                             ("Max cycle", "schedule_cycle_max_s"))]  # the mean: once a cycle ran
    assert dict(sample.fields) == {
        "server_thread_count": 3.0, "agent_queue_size": 0.0, "agent_count": 0.0,
        "dbd_agent_queue_size": 0.0, "jobs_submitted": 9706.0, "jobs_started": 35395.0,
        "jobs_completed": 31254.0, "jobs_canceled": 2835.0, "jobs_failed": 0.0,
        "counters_since_s": datetime(2017, 4, 12, 2, tzinfo=UTC).timestamp(),
        "answered_at_s": datetime(2017, 4, 12, 11, 4, 1, tzinfo=UTC).timestamp()}


# A newer sdiag's text, written here in its format (Unix times after the local ones, agent
# threads, pending and running jobs, exit-reason sections whose lines must not be read).
NEW_TEXT = """\
*******************************************************
sdiag output at Mon Feb 17 22:42:28 2025 (1739832148)
Data since      Mon Feb 17 00:00:00 2025 (1739750400)
*******************************************************
Server thread count:  5
Agent queue size:     2
Agent count:          1
Agent thread count:   3
DBD Agent queue size: 17

Jobs submitted: 4210
Jobs started:   4102
Jobs completed: 3990
Jobs canceled:  12
Jobs failed:    many

Job states ts:  Mon Feb 17 22:42:17 2025 (1739832137)
Jobs pending:   820
Jobs running:   2301

Main schedule statistics (microseconds):
\tLast cycle:   1500
\tMax cycle:    250000
\tTotal cycles: 7000
\tMean cycle:   3125
\tMean depth cycle:  40
\tCycles per minute: 5
\tLast queue length: 819

Main scheduler exit:
\tEnd of job queue:6900
\tHit default_queue_depth:100
\tLast cycle:   99

Backfilling stats (WARNING: data obtained in the middle of backfilling execution.)
\tTotal backfilled jobs (since last slurm start): 90000
\tTotal backfilled jobs (since last stats cycle start): 640
\tTotal cycles: 301
\tLast cycle when: Mon Feb 17 22:41:50 2025 (1739832110)
\tLast cycle: 4200000
\tMax cycle:  9000000
\tMean cycle: 3000000
\tLast depth cycle: 512
\tLast depth cycle (try sched): 200
\tLast queue length: 800

Latency for 1000 calls to gettimeofday(): 33 microseconds

Remote Procedure Call statistics by message type
\tREQUEST_PARTITION_INFO                  ( 2009) count:6      ave_time:231    total_time:1391
"""


def test_newer_sdiag_text_reads_unix_times_and_skips_a_bad_count() -> None:
    sample, problems = parse_sdiag_text(NEW_TEXT, "qtest", "sdiag", SLOT)
    assert problems == ["sdiag: 'Jobs failed' = many: is not a whole number; "
                        "field jobs_failed skipped"]
    assert dict(sample.fields) == {
        "server_thread_count": 5.0, "agent_queue_size": 2.0, "agent_count": 1.0,
        "agent_thread_count": 3.0, "dbd_agent_queue_size": 17.0,
        "jobs_submitted": 4210.0, "jobs_started": 4102.0, "jobs_completed": 3990.0,
        "jobs_canceled": 12.0, "jobs_pending": 820.0, "jobs_running": 2301.0,
        "schedule_cycle_last_s": 0.0015, "schedule_cycle_max_s": 0.25,
        "schedule_cycles": 7000.0, "schedule_cycle_mean_s": 0.003125,
        "schedule_queue_length": 819.0, "jobs_backfilled": 640.0, "bf_cycles": 301.0,
        "bf_cycle_last_s": 4.2, "bf_cycle_max_s": 9.0, "bf_cycle_mean_s": 3.0,
        "bf_last_depth": 512.0, "bf_queue_len": 800.0,
        "counters_since_s": 1739750400.0, "answered_at_s": 1739832148.0}


def test_sdiag_text_with_a_bad_time_and_a_huge_count() -> None:
    text = NEW_TEXT.replace("Mon Feb 17 00:00:00 2025 (1739750400)", "yesterday") \
        .replace("Agent count:          1", "Agent count:          " + "9" * 5000)
    sample, problems = parse_sdiag_text(text, "qtest", "sdiag", SLOT, UTC)
    assert problems[0].startswith(f"sdiag: 'Agent count' = {'9' * 60!r}...: Exceeds the limit")
    assert problems[0].endswith("; field agent_count skipped")
    assert problems[1:] == [
        "sdiag: 'Jobs failed' = many: is not a whole number; field jobs_failed skipped",
        "sdiag: 'Data since' = yesterday: is not a time like 'Wed Apr 12 02:00:00 2017'; "
        "field counters_since_s skipped"]
    assert "agent_count" not in dict(sample.fields)
    assert sample.field("answered_at_s") == 1739832148.0


def test_sdiag_text_with_nothing_of_sdiag_is_a_source_error() -> None:
    with pytest.raises(SourceError) as raised:
        parse_sdiag_text("sdiag: Unable to contact slurm controller (connect failure)\n",
                         "qtest", "sdiag", SLOT, UTC)
    assert str(raised.value) == ("sdiag: no usable sdiag statistics: sdiag: 'Server thread "
                                 "count' is missing; field server_thread_count skipped")


# -- hostile JSON -----------------------------------------------------------------------------

STATISTICS = {  # a hand-made statistics object of a 23.11 controller
    "server_thread_count": 4, "agent_queue_size": 0, "agent_count": 0,
    "agent_thread_count": 0, "dbd_agent_queue_size": 3,
    "schedule_cycle_last": 2500, "schedule_cycle_mean": 1250,
    "schedule_cycle_max": {"set": True, "infinite": False, "number": 80000},
    "jobs_submitted": 100, "jobs_started": 90, "jobs_completed": 80, "jobs_canceled": 2,
    "jobs_failed": 1,
    "req_time_start": {"set": True, "infinite": False, "number": 1767225600},
}


def diag_doc(**changed: object) -> dict:
    """A /diag answer with `changed` statistics (None: the key removed)."""
    statistics = {**STATISTICS, **changed}
    return {"meta": {"plugin": {"type": "openapi/slurmctld",
                                "data_parser": "data_parser/v0.0.40"}},
            "statistics": {key: value for key, value in statistics.items()
                           if value is not None},
            "errors": [], "warnings": []}


def test_a_clean_hand_made_answer() -> None:
    sample, problems = diag_sample(diag_doc(), "qtest", "/diag", SLOT)
    assert problems == []
    assert sample == make_sample("batch_scheduler", dict(SLURM_TAGS), {
        "server_thread_count": 4, "agent_queue_size": 0, "agent_count": 0,
        "agent_thread_count": 0, "dbd_agent_queue_size": 3, "schedule_cycle_last_s": 0.0025,
        "schedule_cycle_mean_s": 0.00125, "schedule_cycle_max_s": 0.08,
        "jobs_submitted": 100, "jobs_started": 90, "jobs_completed": 80, "jobs_canceled": 2,
        "jobs_failed": 1, "counters_since_s": 1767225600}, SLOT)


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("jobs_started", "12", "statistics/jobs_started = '12' is not a number; "
                           "field jobs_started skipped"),
    ("agent_queue_size", -3, "statistics/agent_queue_size = -3 is negative; "
                             "field agent_queue_size skipped"),
    ("server_thread_count", [4], "statistics/server_thread_count = [4] is not a number; "
                                 "field server_thread_count skipped"),
    ("jobs_canceled", True, "statistics/jobs_canceled = True is not a number; "
                            "field jobs_canceled skipped"),
    ("schedule_cycle_max", {"set": True, "infinite": True, "number": 0},
     "statistics/schedule_cycle_max = inf is not finite; field schedule_cycle_max_s skipped"),
    ("schedule_cycle_max", {"set": True, "infinite": False, "number": "80000"},
     "statistics/schedule_cycle_max = '80000' is not a number; "
     "field schedule_cycle_max_s skipped"),
    ("schedule_cycle_last", 1e11, "statistics/schedule_cycle_last = 100000000000.0 is above "
                                  "the maximum 8.64e+10; field schedule_cycle_last_s skipped"),
    ("req_time_start", 5, "statistics/req_time_start = 5 is below the minimum 946684800; "
                          "field counters_since_s skipped"),
    ("req_time_start", {"set": False, "infinite": False, "number": 0},
     "statistics/req_time_start is missing; field counters_since_s skipped"),
    ("jobs_failed", None, "statistics/jobs_failed is missing; field jobs_failed skipped"),
    ("jobs_submitted", 10**400, f"statistics/jobs_submitted = {10**400!r} is above the "
                                "maximum 1e+09; field jobs_submitted skipped"),
])
def test_one_bad_value_costs_only_its_field(key: str, value: object, problem: str) -> None:
    sample, problems = diag_sample(diag_doc(**{key: value}), "qtest", "/diag", SLOT)
    assert problems == [f"/diag: {problem}"]
    assert len(sample.fields) == 13
    assert sample.field("jobs_completed") == 80.0


def test_nan_in_the_text_of_an_answer() -> None:
    text = json.dumps(diag_doc(jobs_failed=math.nan))
    assert '"jobs_failed": NaN' in text
    sample, problems = parse_diag_json(text, "qtest", "sdiag --json", SLOT)
    assert problems == ["sdiag --json: statistics/jobs_failed = nan is not finite; "
                        "field jobs_failed skipped"]
    assert sample.field("jobs_failed") is None
    assert sample.field("jobs_submitted") == 100.0


def test_an_unset_optional_value_is_no_field_and_no_problem() -> None:
    unset = {"set": False, "infinite": False, "number": 0}
    sample, problems = diag_sample(diag_doc(bf_cycle_max=unset, jobs_pending=unset),
                                   "qtest", "/diag", SLOT)
    assert problems == []
    assert len(sample.fields) == 14


def truncated_error(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("the text decodes")


@pytest.mark.parametrize(("doc", "message"), [
    ([], "expected a JSON object, got list"),
    ({**diag_doc(), "statistics": None}, "statistics is missing, not an object"),
    ({key: value for key, value in diag_doc().items() if key != "statistics"},
     "statistics is missing, not an object"),
    ({**diag_doc(), "statistics": [STATISTICS]}, "statistics is a list, not an object"),
    ({**diag_doc(), "meta": {"plugin": {"data_parser": "data_parser/v0.0.99"}}},
     "unknown data_parser version v0.0.99 (known: v0.0.37 to v0.0.44)"),
    ({**diag_doc(), "meta": {}}, "meta/plugin names no data_parser or openapi version"),
    ({**diag_doc(), "meta": "v0.0.40"}, "meta/plugin names no data_parser or openapi version"),
    ({**diag_doc(), "errors": [{"error_number": 1007, "error": "Protocol authentication error",
                                "description": "Unable to contact slurm controller"}]},
     "Slurm reported 1 error(s), the first: Unable to contact slurm controller"),
    ({**diag_doc(), "errors": "down"}, "errors is a str, not a list"),
    (diag_doc(**{key: "x" for key in STATISTICS}),
     "no usable sdiag statistics: /diag: statistics/server_thread_count = 'x' is not a "
     "number; field server_thread_count skipped"),
])
def test_an_unusable_answer_is_a_source_error(doc: object, message: str) -> None:
    with pytest.raises(SourceError) as raised:
        diag_sample(doc, "qtest", "/diag", SLOT)
    assert str(raised.value) == f"/diag: {message}"


def test_truncated_json_is_a_source_error() -> None:
    text = json.dumps(diag_doc())[:150]
    with pytest.raises(SourceError) as raised:
        parse_diag_json(text, "qtest", "sdiag --json", SLOT)
    assert str(raised.value) == ("sdiag --json: response is not valid JSON "
                                 f"({truncated_error(text)})")


def test_a_cluster_name_that_cannot_be_a_tag_is_a_source_error() -> None:
    with pytest.raises(SourceError) as raised:
        diag_sample(diag_doc(), "q\ntest", "/diag", SLOT)
    assert str(raised.value) == ("/diag: batch_scheduler: tag cluster = 'q\\ntest' holds the "
                                 "control character '\\n' (names must be printable)")


# -- HTCondor daemon ads ----------------------------------------------------------------------

SCHEDD_AD = {  # as condor_status -schedd -json gives it, trimmed
    "MyType": "Scheduler", "Name": "schedd01.example.org", "TotalRunningJobs": 1520,
    "TotalIdleJobs": 310, "TotalHeldJobs": 7, "TotalJobAds": 1837, "MaxJobsRunning": 10000,
    "RecentDaemonCoreDutyCycle": 0.4375, "RecentJobsSubmitted": 61, "RecentJobsStarted": 42,
    "RecentJobsCompleted": 40, "RecentStatsLifetime": 1200, "NumUsers": 12,
    "ShadowsRunning": 1520, "CondorVersion": "$CondorVersion: 24.0.1 2024-10-31 $",
}
HTCONDOR_TAGS = {"cluster": "qpool", "scheduler": "htcondor"}


def test_a_schedd_ad() -> None:
    samples, problems = daemon_ad_samples([SCHEDD_AD], "schedd", "qpool", "collector", SLOT)
    assert problems == []
    assert samples == [make_sample("batch_scheduler", {
        **HTCONDOR_TAGS, "daemon": "schedd", "daemon_name": "schedd01.example.org"}, {
        "jobs_running": 1520, "jobs_idle": 310, "jobs_held": 7, "job_ads": 1837,
        "max_jobs_running": 10000, "duty_cycle": 0.4375, "recent_jobs_submitted": 61,
        "recent_jobs_started": 42, "recent_jobs_completed": 40, "recent_window_s": 1200,
        "users": 12, "shadows_running": 1520}, SLOT)]


NEGOTIATOR_AD = """\
MyType = "Negotiator"
Name = "negotiator@cm.example.org"
RecentDaemonCoreDutyCycle = 0.0625
LastNegotiationCycleDuration0 = 14
LastNegotiationCyclePeriod0 = 74
LastNegotiationCycleMatches0 = 233
LastNegotiationCycleRejections0 = error
LastNegotiationCycleCandidateSlots0 = 4096
LastNegotiationCycleTotalSlots0 = 4400
LastNegotiationCycleTrimmedSlots0 = 4096
LastNegotiationCycleNumIdleJobs0 = undefined
LastNegotiationCycleNumJobsConsidered0 = 1800
LastNegotiationCycleNumSchedulers0 = 3
LastNegotiationCycleActiveSubmitterCount0 = 21
LastNegotiationCycleMatchRate0 = real("NaN")
LastNegotiationCycleEnd0 = 1795262400
LastNegotiationCycleDuration1 = 99
"""


def test_a_negotiator_ad_through_the_real_classad_parser() -> None:
    classad2 = pytest.importorskip("classad2")
    ads = list(classad2.parseAds(NEGOTIATOR_AD))
    samples, problems = daemon_ad_samples(ads, "negotiator", "qpool", "collector", SLOT)
    where = "collector: negotiator ad 1 (negotiator@cm.example.org)"
    assert problems == [
        f"{where}: LastNegotiationCycleRejections0 = '<Error>' is not a number; "
        "field negotiation_rejections skipped",
        f"{where}: LastNegotiationCycleMatchRate0 = nan is not finite; "
        "field negotiation_match_rate_per_s skipped"]
    assert samples == [make_sample("batch_scheduler", {
        **HTCONDOR_TAGS, "daemon": "negotiator", "daemon_name": "negotiator@cm.example.org"}, {
        "duty_cycle": 0.0625, "negotiation_cycle_duration_s": 14,
        "negotiation_cycle_period_s": 74, "negotiation_matches": 233,
        "negotiation_candidate_slots": 4096, "negotiation_total_slots": 4400,
        "negotiation_trimmed_slots": 4096, "negotiation_jobs_considered": 1800,
        "negotiation_schedulers": 3, "negotiation_active_submitters": 21,
        "negotiation_cycle_end_s": 1795262400}, SLOT)]


def test_an_undefined_count_is_no_field_though_it_equals_2() -> None:
    classad2 = pytest.importorskip("classad2")
    assert classad2.Value.Undefined == 2  # the trap: JobStatus 2 is Running
    ad = {**SCHEDD_AD, "TotalRunningJobs": classad2.Value.Undefined}
    samples, problems = daemon_ad_samples([ad], "schedd", "qpool", "collector", SLOT)
    assert problems == []
    assert samples[0].field("jobs_running") is None
    assert samples[0].field("jobs_idle") == 310.0


def test_bad_ads_are_skipped_one_by_one() -> None:
    ads = [SCHEDD_AD, "schedd02", {"TotalRunningJobs": 5}, {"Name": "s\r03", "TotalIdleJobs": 1},
           {"Name": "s04", "TotalRunningJobs": "5", "TotalIdleJobs": math.nan,
            "MaxJobsRunning": None}]
    samples, problems = daemon_ad_samples(ads, "schedd", "qpool", "collector", SLOT)
    assert problems == [
        "collector: schedd ad 2 is a str, not an ad; skipped",
        "collector: schedd ad 3 has no Name; skipped",
        "collector: schedd ad 4: batch_scheduler: tag daemon_name = 's\\r03' holds the "
        "control character '\\r' (names must be printable); skipped",
        "collector: schedd ad 5 (s04): TotalRunningJobs = '5' is not a number; "
        "field jobs_running skipped",
        "collector: schedd ad 5 (s04): TotalIdleJobs = nan is not finite; "
        "field jobs_idle skipped",
        "collector: schedd ad 5 (s04) has none of its statistics; skipped"]
    assert [sample.tag("daemon_name") for sample in samples] == ["schedd01.example.org"]


@pytest.mark.parametrize(("ads", "message"), [
    ([], "no usable schedd ad among 0"),
    ([{"Name": "s1"}], "no usable schedd ad among 1: collector: schedd ad 1 (s1) has none of "
                       "its statistics; skipped"),
    (SCHEDD_AD, "expected a list of schedd ads, got dict"),
    ("schedd01", "expected a list of schedd ads, got str"),
    (None, "expected a list of schedd ads, got NoneType"),
])
def test_no_usable_ad_is_a_source_error(ads: object, message: str) -> None:
    with pytest.raises(SourceError) as raised:
        daemon_ad_samples(ads, "schedd", "qpool", "collector", SLOT)
    assert str(raised.value) == f"collector: {message}"


# -- counters -> rates ------------------------------------------------------------------------

MIDNIGHT = datetime(2026, 11, 21, tzinfo=UTC).timestamp()


def test_rates_between_two_readings() -> None:
    previous = {"jobs_submitted": 100.0, "jobs_failed": 4.0, "jobs_running": 50.0,
                "counters_since_s": MIDNIGHT, "answered_at_s": MIDNIGHT + 3000}
    current = {"jobs_submitted": 160.0, "jobs_failed": 4.0, "jobs_running": 20.0,
               "counters_since_s": MIDNIGHT, "answered_at_s": MIDNIGHT + 3600}
    rates, problems = counter_rates(previous, current, 600.0)
    assert problems == []
    assert rates == {"jobs_submitted_delta": 60.0, "jobs_submitted_per_s": 0.1,
                     "jobs_failed_delta": 0.0, "jobs_failed_per_s": 0.0}


def test_the_midnight_reset_counts_from_the_reset() -> None:
    previous = {"jobs_submitted": 5000.0, "jobs_completed": 4700.0,
                "counters_since_s": MIDNIGHT - 86400, "answered_at_s": MIDNIGHT - 480}
    current = {"jobs_submitted": 30.0, "jobs_completed": 4800.0,
               "counters_since_s": MIDNIGHT, "answered_at_s": MIDNIGHT + 120}
    rates, problems = counter_rates(previous, current, 600.0)
    assert problems == []
    # jobs_completed grew (4700 -> 4800) yet was reset too: 4800 since midnight, not 100
    assert rates == {"jobs_submitted_delta": 30.0, "jobs_submitted_per_s": 0.25,
                     "jobs_completed_delta": 4800.0, "jobs_completed_per_s": 40.0}


def test_a_counter_that_went_down_is_a_reset_even_without_times() -> None:
    rates, problems = counter_rates({"jobs_started": 900.0, "bf_cycles": 30.0},
                                    {"jobs_started": 45.0, "bf_cycles": 31.0}, 600.0)
    assert problems == []
    assert rates == {"jobs_started_delta": 45.0, "jobs_started_per_s": 0.075,
                     "bf_cycles_delta": 31.0, "bf_cycles_per_s": 31.0 / 600}


def test_bad_counters_give_no_rate_and_say_why() -> None:
    rates, problems = counter_rates({"jobs_failed": "3", "jobs_started": 10.0},
                                    {"jobs_failed": 5.0, "jobs_started": math.inf,
                                     "jobs_canceled": 2.0}, 600.0)
    assert rates == {}
    assert problems == [
        "counter rates: previous jobs_failed = '3' is not a number; no rate",
        "counter rates: current jobs_started = inf is not finite; no rate"]


@pytest.mark.parametrize("elapsed", [0.0, -600.0, math.nan, math.inf])
def test_rates_need_a_positive_interval(elapsed: float) -> None:
    with pytest.raises(SourceError) as raised:
        counter_rates({"jobs_started": 1.0}, {"jobs_started": 2.0}, elapsed)
    assert str(raised.value) == (f"counter rates: elapsed_s = {elapsed!r} is not a positive "
                                 "number of seconds")
