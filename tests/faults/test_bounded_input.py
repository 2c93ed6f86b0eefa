"""Hostile sizes: answers larger than [http] max_response_mb (plain or a gzip bomb), JSON
nested thousands deep, parsers that give up, Slurm node lists and arrays of millions."""

import gzip
import json
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.core import config
from qmonit.core.batchjobs import count_jobs, map_states
from qmonit.core.config import default_section
from qmonit.core.settings import PandaSection, SlurmSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.base import Collection, SourceError, parse_json
from qmonit.sources.harvester import PATH as HARVESTER_PATH
from qmonit.sources.panda import PATHS, PandaJobStats
from qmonit.sources.slurm import (
    ARRAY_TASKS_LISTED,
    SQUEUE_FIELDS,
    SlurmSource,
    jobs_per_node,
    parse_nodes_json,
    parse_squeue_json,
    parse_squeue_text,
)
from qmonit.stores.state import schema
from qmonit.stores.state.status import source_status
from qmonit.support.http import BadEncoding, ResponseTooLarge, Session
from tests.conftest import DATA
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MB = 2**20
V1 = (DATA / "panda_job_stats_v1.json").read_text()
CRIC = (DATA / "cric_pandaqueue.json").read_text()
HARVESTER = (DATA / "harvester_worker_stats.json").read_text()
CRIC_PATH = "/api/atlas/pandaqueue/query/"
DEEP = "[" * 5000 + "]" * 5000  # 10 KB


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """256 MB of zeros, gzipped: 260,934 bytes."""
    return gzip.compress(bytes(256 * MB), 9)


def test_the_gzip_bomb_is_inflated_only_up_to_the_cap(http, bomb):
    assert len(bomb) == 260_934
    http.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(ResponseTooLarge) as caught:
        Session(max_response_mb=64).get(f"{http.url}/bomb", timeout=30)
    # one 64 KiB read inflates past 64 MB: inflating stops at cap + 1 bytes
    assert (caught.value.received, caught.value.decoded) == (65_536, 64 * MB + 1)
    assert str(caught.value) == ("answer larger than 64 MB ([http] max_response_mb): stopped "
                                 "after 65536 bytes received, 67108865 decoded")


def test_a_body_without_length_stops_one_read_past_the_cap(http):
    http.route("/big", Reply(200, bytes(3 * MB), length=False))
    with pytest.raises(ResponseTooLarge) as caught:
        Session(max_response_mb=1).get(f"{http.url}/big", timeout=30)
    assert (caught.value.received, caught.value.decoded) == (MB + 65_536, MB + 65_536)


def test_a_content_length_above_the_cap_is_refused_unread(http):
    http.route("/big", Reply(200, bytes(3 * MB)))
    with pytest.raises(ResponseTooLarge) as caught:
        Session(max_response_mb=1).get(f"{http.url}/big", timeout=30)
    assert caught.value.received == 0
    assert str(caught.value) == ("answer larger than 1 MB ([http] max_response_mb): "
                                 "Content-Length 3145728; not read")


def test_answers_at_the_cap_gzip_deflate_and_raw_deflate_are_read_whole(http):
    http.route("/exact", Reply(200, bytes(MB), length=False))
    http.route("/gzip", Reply(200, gzip.compress(V1.encode()), {"Content-Encoding": "gzip"}))
    http.route("/deflate", Reply(200, zlib.compress(V1.encode()),
                                 {"Content-Encoding": "deflate"}))
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    http.route("/raw", Reply(200, raw.compress(V1.encode()) + raw.flush(),
                             {"Content-Encoding": "deflate"}))
    session = Session(max_response_mb=1)
    assert len(session.get(f"{http.url}/exact", timeout=30).content) == MB
    for path in ("/gzip", "/deflate", "/raw"):
        assert session.get(f"{http.url}{path}", timeout=30).json() == json.loads(V1), path
    assert http.requests[-1].headers["Accept-Encoding"] == "gzip, deflate"


def test_an_encoding_not_asked_for_is_refused(http):
    http.route("/br", Reply(200, b"\x0b\x02\x80{}\x03", {"Content-Encoding": "br"}))
    with pytest.raises(BadEncoding, match=r"^the answer's Content-Encoding 'br' was not "
                                          r"asked for \(only gzip, deflate\)$"):
        Session().get(f"{http.url}/br", timeout=30)
    assert issubclass(BadEncoding, requests.RequestException)


def test_panda_names_itself_the_url_without_secrets_and_the_cap(http, bomb):
    http.route(PATHS["v1"], Reply(200, bomb, {"Content-Encoding": "gzip"}))
    panda = PandaJobStats(default_section(PandaSection, api="v1",
                                          url=http.url.replace("//", "//user:pw@"),
                                          time_window=60, timeout_s=30.0),
                          max_response_mb=64)
    with pytest.raises(SourceError) as caught:
        panda.collect(T)
    assert str(caught.value) == (
        f"PanDA {http.url}{PATHS['v1']}: answer larger than 64 MB ([http] max_response_mb): "
        "stopped after 65536 bytes received, 67108865 decoded")


def test_the_cap_is_a_checked_setting(write_config):
    defaults = config.defaults({"sources": {"enabled": "simulated"}})
    assert defaults.settings.http.max_response_mb == 128.0
    with pytest.raises(config.ConfigError, match=r"\[http\] max_response_mb = '0': must be "
                                                 r"more than 0"):
        config.load(str(write_config({"http": {"max_response_mb": "0"}})), environ={})


# -- a real `qmonit run collect` fed the bomb and a 256 MB body ------------------------------

MEASURE = textwrap.dedent("""\
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


@pytest.mark.parametrize("kind", ["gzip bomb", "256 MB with Content-Length",
                                  "256 MB without Content-Length"])
def test_a_collect_fed_a_huge_answer_stays_under_300_mb(http, bomb, write_config, kind):
    if kind == "gzip bomb":
        reply = Reply(200, bomb, {"Content-Encoding": "gzip"})
        stopped = "stopped after 131072 bytes received, 134217729 decoded"
    else:
        length = "without" not in kind
        body = b'{"success": true, "data": "' + b"x" * (256 * MB) + b'"}'
        reply = Reply(200, body, length=length)
        stopped = (f"Content-Length {len(body)}; not read" if length else
                   "stopped after 134283264 bytes received, 134283264 decoded")
    http.route(PATHS["v1"], reply)
    http.route(HARVESTER_PATH, Reply(200, HARVESTER))
    http.route(CRIC_PATH, Reply(200, CRIC))
    path = write_config({"panda": {"url": http.url}, "cric": {"url": http.url},
                         "sources": {"enabled": "panda, harvester"}})
    qmonit = [sys.executable, "-m", "qmonit", "-c", str(path)]
    assert subprocess.run([*qmonit, "init"], capture_output=True).returncode == 0
    done = subprocess.run([sys.executable, "-c", MEASURE, *qmonit, "run", "collect", "--at",
                           "2026-11-21T12:00Z"], capture_output=True, text=True, timeout=300)
    exit_code, peak_kb = map(int, done.stdout.split())
    assert exit_code == 1
    message = (f"PanDA {http.url}{PATHS['v1']}: answer larger than 128 MB "
               f"([http] max_response_mb): {stopped}")
    assert message in done.stderr
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    engine = build(config.load(str(path), environ={})).engine
    with engine.connect() as conn:
        rows = {r.source: (r.status, r.message) for r in conn.execute(select(source_status))}
    assert rows["panda"] == ("failed", message)
    assert rows["harvester"][0] == "ok"  # the other source was written


# -- JSON nested 5,000 deep, and parsers that give up -------------------------------------

def test_json_nested_deeper_than_64_is_a_source_error():
    assert len(DEEP) == 10_000
    for text in (DEEP, "[" * 65 + "]" * 65, '{"a": ' * 65 + "1" + "}" * 65):
        with pytest.raises(SourceError, match=r"^X: response is not valid JSON \(nested deeper "
                                              r"than 64 levels\)$"):
            parse_json(text, "X")
    assert parse_json("[" * 64 + "]" * 64, "X") is not None


def test_deep_json_from_harvester_and_cric_is_recorded_and_panda_still_writes(
        http, make_config, influx_db):
    http.route(PATHS["v1"], Reply(200, V1))
    http.route(HARVESTER_PATH, Reply(200, DEEP))
    http.route(CRIC_PATH, Reply(200, DEEP))
    parts = build(make_config({"influxdb": influx_db, "panda": {"url": http.url},
                               "cric": {"url": http.url},
                               "sources": {"enabled": "panda, harvester"}}))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert report.exit_code == 1
    statuses = {s.source: (s.status, s.message) for s in report.sources}
    harvester = (f"PanDA {http.url}{HARVESTER_PATH}: response is not valid JSON (nested "
                 "deeper than 64 levels)")
    assert statuses["harvester"] == ("failed", harvester)
    assert statuses["panda"][0] == "ok"
    assert statuses["cric"][0] == "failed"
    assert statuses["cric"][1].startswith(f"CRIC {http.url}{CRIC_PATH}: response is not valid "
                                          "JSON (nested deeper than 64 levels); no cached")
    with parts.engine.connect() as conn:
        rows = {r.source: (r.status, r.message) for r in conn.execute(select(source_status))}
    assert rows["harvester"] == ("failed", harvester)
    queues = {r["panda_queue"] for r in parts.store.rows(
        'SELECT "jobs", panda_queue FROM "10m"."jobs"')}
    assert queues == set(json.loads(V1)["data"])  # PanDA written whole
    assert parts.store.rows('SELECT "workers" FROM "10m"."workers"') == []
    runs = {r["source"]: r["status"] for r in parts.store.rows(
        'SELECT "errors", source, status FROM "10m"."qmonit_run"')}
    assert runs["harvester"] == "failed"


class GivesUp:
    """A source whose parser raises what parsers raise on hostile input."""

    def __init__(self, exc: BaseException):
        self.name, self.exc = "slurm", exc

    def collect(self, slot: datetime) -> Collection:
        raise self.exc


@pytest.mark.parametrize("exc, said", [
    (RecursionError("maximum recursion depth exceeded"), "RecursionError: nested too deep"),
    (MemoryError(), "MemoryError: too large for memory"),
    (OverflowError("cannot convert float infinity to integer"),
     "OverflowError: cannot convert float infinity to integer"),
    (ValueError("invalid literal for int() with base 10: 'x'"),
     "ValueError: invalid literal for int() with base 10: 'x'"),
])
def test_a_parser_that_gives_up_fails_its_source_only(http, make_config, exc, said):
    http.route(PATHS["v1"], Reply(200, V1))
    parts = build(make_config({"panda": {"url": http.url}}))
    parts.sources.append(GivesUp(exc))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert report.exit_code == 1
    statuses = {s.source: (s.status, s.message) for s in report.sources}
    assert statuses["slurm"] == ("failed", f"slurm: its answer could not be parsed ({said})")
    assert statuses["panda"][0] == "ok"


# -- Slurm: node lists and arrays of millions, counted ---------------------------------------

def test_a_node_list_of_two_million_and_an_array_of_100000_are_counted_not_expanded():
    doc = {"jobs": [
        {"job_id": 1, "job_state": "RUNNING", "user_name": "u", "partition": "p",
         "nodes": "n[0-2000000]", "tres_alloc_str": "cpu=2000001"},
        {"job_id": 2, "job_state": "RUNNING", "user_name": "u", "partition": "p",
         "nodes": "n[7,1999999],gpu1", "tres_alloc_str": "cpu=3"},
        {"job_id": 3, "array_job_id": 3, "array_task_string": "1-100000%50",
         "job_state": "PENDING", "user_name": "u", "partition": "p",
         "tres_req_str": "cpu=1,mem=100M"},
        {"job_id": 4, "array_job_id": 4, "array_task_string": "0-999999:2",
         "job_state": "PENDING", "user_name": "u", "partition": "p", "tres_req_str": "cpu=1"},
    ]}
    nodes_doc = {"nodes": [{"name": name, "state": "allocated", "cpus": 1, "alloc_cpus": 1}
                           for name in ("n0", "n7", "n1999999", "n2000001", "n07", "gpu1")]}
    tracemalloc.start()
    jobs, problems = parse_squeue_json(doc)
    per_node = jobs_per_node(jobs)
    nodes = parse_nodes_json(nodes_doc, per_node)
    samples = count_jobs(map_states(jobs, load_rules("slurm"), T), "c", "slurm", T)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 * MB, peak
    assert problems == []
    assert [j.job_id for j in jobs] == ["1", "2", "3_[1-100000%50]", "4_[0-999999:2]"]
    assert [j.tasks for j in jobs] == [1, 1, 100_000, 500_000]
    assert {n.node: n.jobs for n in nodes} == {"n0": 1.0, "n7": 2.0, "n1999999": 2.0,
                                               "n2000001": 0.0, "n07": 0.0, "gpu1": 1.0}
    pending = sorted((s.field("jobs"), s.field("cpus"), s.field("memory_mb")) for s in samples
                     if s.tag("state") == "pending")
    assert pending == [(600_000.0, 600_000.0, 100_000 * 100.0)]  # both arrays: one series


def test_an_array_up_to_the_listed_size_is_still_one_record_per_task():
    doc = {"jobs": [{"job_id": 5, "array_job_id": 5, "job_state": "PENDING",
                     "array_task_string": f"1-{ARRAY_TASKS_LISTED}", "tres_req_str": "cpu=1"}]}
    jobs, _ = parse_squeue_json(doc)
    assert len(jobs) == ARRAY_TASKS_LISTED
    assert (jobs[0].job_id, jobs[-1].job_id, jobs[-1].tasks) == ("5_1", "5_10000", 1)


def test_squeue_text_with_a_node_list_of_two_million():
    fields = dict.fromkeys(SQUEUE_FIELDS, "N/A")
    fields.update({"JobArrayID": "9", "State": "RUNNING", "NumCPUs": "1",
                   "tres-alloc": "cpu=1", "NodeList": "wn[0000000-2000000]"})
    jobs, problems = parse_squeue_text("|".join(fields.values()) + "|\n")
    assert problems == []
    per_node = jobs_per_node(jobs)
    assert [per_node.get(n, 0) for n in ("wn0000000", "wn1234567", "wn2000000", "wn0",
                                         "wn2000001")] == [1, 1, 1, 0, 0]


def test_squeue_json_nested_5000_deep_is_a_source_error(tmp_path):
    squeue = tmp_path / "squeue"
    squeue.write_text(f"#!/bin/sh\necho '{DEEP}'\n")
    squeue.chmod(0o755)
    source = SlurmSource(default_section(
        SlurmSection, cluster="c", bin_dir=str(tmp_path), format="json", timeout_s=30.0),
        load_rules("slurm"))
    with pytest.raises(SourceError) as caught:
        source.collect(T)
    assert str(caught.value) == (f"{tmp_path}/squeue --json: output is not valid JSON (nested "
                                 "deeper than 64 levels)")
