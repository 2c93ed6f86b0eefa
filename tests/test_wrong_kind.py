"""A file or an answer of the wrong kind is refused by name, never read as zero samples:
`qmonit states test SOURCE --input FILE` exits 2 naming what the file looks like, and a live
endpoint that answers another kind is a source error (issue 32, item 4)."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from qmonit.app import cli
from qmonit.core import config
from qmonit.core.config import default_section
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.base import SourceError
from qmonit.sources.cric import PATH as CRIC_PATH
from qmonit.sources.cric import CricTopology
from qmonit.sources.harvester import PATH as HARVESTER_PATH
from qmonit.sources.harvester import HarvesterWorkers
from qmonit.sources.kinds import READERS, describe, kind_of, kind_of_text, refusal
from qmonit.sources.panda import PATHS, PandaJobStats
from qmonit.sources.slurm import SINFO_FIELDS, SQUEUE_FIELDS, SlurmSource
from tests.conftest import DATA
from tests.conftest import SHARED_SAMPLES as SAMPLES
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
V1 = (DATA / "panda_job_stats_v1.json").read_text()
WORKERS = (DATA / "harvester_worker_stats.json").read_text()
CRIC = (DATA / "cric_pandaqueue.json").read_text()
REST_META = {"plugin": {"type": "openapi/slurmctld", "name": "Slurm OpenAPI slurmctld",
                        "data_parser": "data_parser/v0.0.41"},
             "client": {"source": "[cluster]:6820", "user": "root", "group": "root"},
             "command": [], "slurm": {"release": "24.05.3"}}
REST_JOBS = {"jobs": [], "last_backfill": {"set": True, "infinite": False, "number": 0},
             "last_update": {"set": True, "infinite": False, "number": 0},
             "meta": REST_META, "errors": [], "warnings": []}
REST_PARTITIONS = {"partitions": [{"name": "batch", "nodes": {"total": 2}}],
                   "meta": REST_META, "errors": [], "warnings": []}
SQUEUE_JSON = {"meta": {"plugins": {"data_parser": "data_parser/v0.0.39"},
                        "command": ["squeue", "--json"]},
               "jobs": [{"job_id": 7, "job_state": ["RUNNING"], "user_name": "alice",
                         "partition": "cpu", "tres_alloc_str": "cpu=2,mem=1G"}],
               "errors": [], "warnings": []}
SINFO_JSON = {"meta": {"plugins": {"data_parser": "data_parser/v0.0.39"},
                       "command": ["sinfo", "-N", "--json"]},
              "sinfo": [{"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["n1"]},
                         "cpus": {"total": 8, "allocated": 0}, "gres": {}}],
              "errors": [], "warnings": []}
QUEUEDATA = {"nickname": "CERN", "panda_resource": "CERN", "atlas_site": "CERN-PROD",
             "cloud": "CERN", "status": "online", "corecount": 8}
SLURM_READS = "slurm reads squeue --json, sinfo --json, slurmrestd /jobs, /nodes or " \
    "/partitions, " \
    "squeue -O or sinfo -N -O text"
NODES_READS = "slurm_nodes reads sinfo --json, slurmrestd /nodes or sinfo -N -O text"
CRIC_READS = "cric reads CRIC's pandaqueue query JSON, or one queuedata.json record"


def states_test(capsys, write_config, source, *paths):
    """The real CLI in this process: (exit code, stdout, stderr)."""
    cfg = write_config({"sources": {"enabled": "simulated"}})
    code = cli.main(["-c", str(cfg), "states", "test", source, "--input", *map(str, paths)])
    out = capsys.readouterr()
    return code, out.out, out.err


def written(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# -- recorded files: every wrong pairing of the issue ---------------------------------------

@pytest.mark.parametrize("source, doc, message", [
    ("slurm_nodes", REST_JOBS, f"a slurmrestd /jobs answer, not nodes ({NODES_READS})"),
    ("slurm_nodes", REST_PARTITIONS,
     f"a slurmrestd /partitions answer, not nodes ({NODES_READS})"),
    ("slurm", QUEUEDATA, "a CRIC pandaqueue record (queuedata.json), not Slurm jobs, nodes "
                         f"or partitions ({SLURM_READS})"),
    ("cric", REST_JOBS, f"a slurmrestd /jobs answer, not CRIC pandaqueues ({CRIC_READS})"),
    ("slurm_nodes", SQUEUE_JSON, f"squeue --json output, not nodes ({NODES_READS})"),
    ("panda", json.loads(WORKERS),
     "Harvester worker statistics, not PanDA job statistics (panda reads the PanDA server's "
     "job statistics, API v1 or legacy)"),
    ("harvester", json.loads(V1),
     "PanDA job statistics, not Harvester worker statistics (harvester reads the PanDA "
     "server's Harvester worker statistics)"),
    ("htcondor", SINFO_JSON, "sinfo --json output (node groups), not HTCondor ads (htcondor "
                             "reads condor_q or condor_status -long or -json)"),
])
def test_a_file_of_the_wrong_kind_exits_2_naming_what_it_is(capsys, write_config, tmp_path,
                                                            source, doc, message):
    path = written(tmp_path, "answer.json", doc)
    code, out, err = states_test(capsys, write_config, source, path)
    assert (code, out) == (2, "")
    assert err == f"qmonit states test {source}: {path}: {message}\n"


def test_something_unrecognisable_names_its_keys(capsys, write_config, tmp_path):
    path = written(tmp_path, "odd.json", {"a": 1, "b": [], "c": "x"})
    code, _, err = states_test(capsys, write_config, "slurm_nodes", path)
    assert code == 2
    assert err == (f"qmonit states test slurm_nodes: {path}: not a slurm_nodes output qmonit "
                   f"reads (a JSON object with keys a, b, c; {NODES_READS})\n")
    text = written(tmp_path, "squeue.txt", "15451729,RUNNING\n")
    code, _, err = states_test(capsys, write_config, "slurm", text)
    assert code == 2
    assert err == (f"qmonit states test slurm: {text}: not a slurm output qmonit reads (text "
                   f"whose first line is 15451729,RUNNING; {SLURM_READS})\n")


def test_text_of_the_wrong_kind_is_refused_too(capsys, write_config, tmp_path):
    squeue = "|".join(["1", "RUNNING", "None", "cpu", "alice", "g", "a", "2", "cpu=2",
                       "n1", "N/A", "N/A", "N/A"]) + "|\n"
    assert len(squeue.split("|")) == len(SQUEUE_FIELDS) + 1
    path = written(tmp_path, "squeue.txt", squeue)
    code, _, err = states_test(capsys, write_config, "slurm_nodes", path)
    assert code == 2
    assert err == f"qmonit states test slurm_nodes: {path}: squeue -O text, not nodes " \
                  f"({NODES_READS})\n"
    # squeue -o %P|%T|%C|%r|%u has 5 fields, as sinfo -N -O has: its CPUs are no A/I/O/T
    five = written(tmp_path, "five.txt", "cpu|RUNNING|2|None|user2\n")
    code, _, err = states_test(capsys, write_config, "slurm_nodes", five)
    assert code == 2
    assert err.startswith(f"qmonit states test slurm_nodes: {five}: not a slurm_nodes output "
                          "qmonit reads (text of 5 '|'-separated fields: neither squeue -O ")
    assert f"nor sinfo -N -O {','.join(SINFO_FIELDS)} (CPUsState as A/I/O/T)" in err


def test_the_right_kind_with_nothing_in_it_is_still_zero_samples(capsys, write_config,
                                                                 tmp_path):
    jobs = written(tmp_path, "jobs.json", REST_JOBS)
    code, out, err = states_test(capsys, write_config, "slurm", jobs)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "0 sample(s) collect would write"
    nodes = written(tmp_path, "nodes.json", {"nodes": [], "meta": REST_META, "errors": []})
    code, out, _ = states_test(capsys, write_config, "slurm_nodes", nodes)
    assert (code, out.splitlines()[-1]) == (0, "0 sample(s) collect would write")


def test_a_slurm_error_answer_is_the_error_it_reports_exit_1(capsys, write_config, tmp_path):
    path = written(tmp_path, "down.json", {
        "meta": REST_META, "jobs": [], "warnings": [],
        "errors": [{"description": "Unable to contact slurm controller", "error_number": 1}]})
    code, _, err = states_test(capsys, write_config, "slurm", path)
    assert code == 1
    assert err == (f"qmonit states test slurm: {path}: Slurm reported an error: Unable to "
                   "contact slurm controller\n")
    code, _, err = states_test(capsys, write_config, "cric", path)
    assert code == 2
    assert err == (f"qmonit states test cric: {path}: a Slurm error answer (Unable to contact "
                   f"slurm controller), not CRIC pandaqueues ({CRIC_READS})\n")


# -- the recorded samples: each told apart, each a source reads still read -------------------

KINDS = {
    "JeffersonLab+clas12-utilities__condor_q_nobatch_json_single_job.json": "condor_json",
    "MarshallWace+slurm-exporter__pkg_slurm_test_data_sinfo-nodes.json": "slurm_nodes",
    "PanDAWMS+pilot3__queuedata.json": "cric_record",
    "eschanet+QMonit__test_references_test_input_agis_pandaqueue.json": "cric_queues",
    "eschanet+QMonit__test_references_test_output_agis_pandaqueue.json": "cric_queues",
    "eschanet+QMonit__test_references_test_input_agis_site.json": "unknown",
    "eschanet+QMonit__test_references_test_input_grafana_datadisks.json":
        "elasticsearch_msearch",
    "eschanet+QMonit__test_references_test_output_grafana_datadisks.json": "unknown",
    "fluidstackio+slurm-exporter__example_rest_api_response_rest_api_example_response_"
    "nodes.json": "slurm_nodes",
    "htcondor+htcondor__src_condor_tests_StatusAds_basic4slot": "condor_long",
    "htcondor+htcondor__src_condor_tests_StatusAds_partionable8core": "condor_long",
    "htcondor+htcondor__src_condor_tests_StatusAds_small1slot": "condor_long",
    "htcondor+htcondor__src_condor_tests_cmd_status-af_orig_first_test.ads": "condor_long",
    "htcondor+htcondor__src_condor_tests_cmd_status-af_orig_second_test.ads": "condor_long",
    "htcondor+htcondor__src_condor_tests_python_bindings_test.old.ad": "condor_long",
    "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_diag.json":
        "slurm_diag",
    "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_jobs.json":
        "slurm_jobs",
    "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_nodes.json":
        "slurm_nodes",
    "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_partitions.json":
        "slurm_partitions",
    "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_reservations.json":
        "slurm_reservations",
    "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiDiagResp.json": "slurm_diag",
    "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiJobInfoResp.json": "slurm_jobs",
    "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiNodesResp.json": "slurm_nodes",
    "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiPartitionResp.json":
        "slurm_partitions",
    # placeholders in `errors` ("description"): an error answer
    "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiSharesResp.json": "slurm_error",
    "lcrownover+prometheus-slurm-exporter__testdata_V0041OpenapiJobInfoResp.json": "slurm_error",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sdiag.json": "slurm_diag",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sdiag_2405.json": "slurm_diag",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sinfo_dataparser.json":
        "slurm_node_groups",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sinfo_out.json": "slurm_nodes",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_squeue_out.json": "slurm_jobs",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_sinfo_fallback.txt": "unknown",
    "rivosinc+prometheus-slurm-exporter__exporter_fixtures_squeue_fallback.txt": "unknown",
    "SckyzO+slurm_exporter__test_data_slurm-24.11.7_queue_all_states.txt": "unknown",
    "SckyzO+slurm_exporter__test_data_slurm-24.11.7_squeue_jobs.txt": "unknown",
    "vpenso+prometheus-slurm-exporter__test_data_squeue.txt": "unknown",
    "vpenso+prometheus-slurm-exporter__test_data_sinfo.txt": "unknown",
    **{f"rackslab+Slurm-web__tests_assets_slurmrestd_{version}_slurm-{what}.json":
       f"slurm_{what}" for version in ("23.11", "24.05_0.0.41", "24.11_0.0.42",
                                        "25.05_0.0.43", "25.11_0.0.44")
       for what in ("jobs", "nodes")},
}
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")


@needs_samples
def test_every_recorded_sample_is_told_apart():
    kinds = {name: kind_of_text((SAMPLES / name).read_text()).key for name in KINDS
             if (SAMPLES / name).exists()}
    assert kinds == {name: kind for name, kind in KINDS.items() if name in kinds}
    assert describe(json.loads((SAMPLES / "rackslab+Slurm-web__tests_assets_slurmrestd_"
                                          "23.11_slurm-jobs.json").read_text())) == \
        "a slurmrestd /jobs answer"
    assert describe((SAMPLES / "rivosinc+prometheus-slurm-exporter__exporter_fixtures_"
                                "sdiag.json").read_text()) == "sdiag --json output"


@needs_samples
@pytest.mark.parametrize("source", ["slurm", "slurm_nodes", "htcondor", "cric"])
def test_every_recorded_sample_a_source_reads_is_still_read(capsys, write_config, source):
    names = [name for name, kind in KINDS.items() if kind in READERS[source].kinds
             and kind != "slurm_error" and (SAMPLES / name).exists()]
    assert names
    for name in names:
        code, out, err = states_test(capsys, write_config, source, SAMPLES / name)
        assert code == 0, (name, err)
        assert out.endswith(" sample(s) collect would write\n"), name
        assert not out.endswith("\n0 sample(s) collect would write\n"), name


@needs_samples
@pytest.mark.parametrize("source, name, what", [
    ("slurm_nodes", "rackslab+Slurm-web__tests_assets_slurmrestd_23.11_slurm-jobs.json",
     f"a slurmrestd /jobs answer, not nodes ({NODES_READS})"),
    ("slurm_nodes",
     "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiPartitionResp.json",
     f"a slurmrestd /partitions answer, not nodes ({NODES_READS})"),
    ("slurm_nodes", "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_"
                    "partitions.json",
     f"a slurmrestd /partitions answer, not nodes ({NODES_READS})"),
    ("slurm", "PanDAWMS+pilot3__queuedata.json", "a CRIC pandaqueue record (queuedata.json), "
                                                 f"not Slurm jobs, nodes or partitions "
                                                 f"({SLURM_READS})"),
    ("cric", "rackslab+Slurm-web__tests_assets_slurmrestd_25.11_0.0.44_slurm-jobs.json",
     f"a slurmrestd /jobs answer, not CRIC pandaqueues ({CRIC_READS})"),
    ("cric", "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiJobInfoResp.json",
     f"a slurmrestd /jobs answer, not CRIC pandaqueues ({CRIC_READS})"),
    ("slurm_nodes", "rivosinc+prometheus-slurm-exporter__exporter_fixtures_squeue_out.json",
     f"Slurm jobs JSON (squeue --json or slurmrestd /jobs), not nodes ({NODES_READS})"),
])
def test_the_recorded_wrong_pairings_of_the_issue(capsys, write_config, source, name, what):
    if not (SAMPLES / name).exists():
        pytest.skip(f"{name} is absent")
    code, out, err = states_test(capsys, write_config, source, SAMPLES / name)
    assert (code, out) == (2, "")
    assert err == f"qmonit states test {source}: {SAMPLES / name}: {what}\n"


# -- the classifier on hand-made documents ---------------------------------------------------

def test_kinds_of_hand_made_documents():
    v1 = json.loads(V1)
    assert kind_of(v1).key == kind_of(v1["data"]).key == "panda_job_stats"
    assert kind_of(json.loads(WORKERS)).label == "Harvester worker statistics"
    assert kind_of({"success": False, "message": "DB down"}).key == "panda_v1"
    assert kind_of(json.loads(CRIC)).label == "CRIC pandaqueues (keyed by queue)"
    assert kind_of(QUEUEDATA).key == "cric_record"
    assert kind_of(SQUEUE_JSON).label == "squeue --json output"
    assert kind_of({"nodes": []}).label == "Slurm nodes JSON (sinfo --json or slurmrestd /nodes)"
    assert kind_of({"meta": REST_META, "licenses": []}).label == \
        "a Slurm JSON answer with keys meta, licenses"
    assert kind_of([]).key == "empty_list"
    assert kind_of([1, "a"]).label == "a JSON list of 2 number and string item(s)"
    assert kind_of("x").label == "a JSON string"
    assert kind_of_text("").label == "an empty file"
    assert kind_of_text("{").label.startswith("text that is not valid JSON (")
    assert refusal("slurm", kind_of(SQUEUE_JSON)) is None


# -- live answers of the wrong kind ----------------------------------------------------------

def slurm_fed(squeue, sinfo):
    def run(argv, timeout):
        return json.dumps(squeue if argv[0].endswith("squeue") else sinfo)

    return SlurmSource(default_section(
        SlurmSection, cluster="c1", bin_dir="", format="json", timeout_s=5),
                       load_rules("slurm"), run)


def test_sinfo_printing_jobs_is_a_source_error_not_zero_nodes():
    with pytest.raises(SourceError) as caught:
        slurm_fed(SQUEUE_JSON, SQUEUE_JSON).collect(T)
    assert str(caught.value) == "sinfo -N --json printed squeue --json output, not nodes"
    with pytest.raises(SourceError) as caught:
        slurm_fed(SINFO_JSON, SINFO_JSON).collect(T)
    assert str(caught.value) == "squeue --json printed sinfo --json output (node groups), " \
                                "not jobs"
    with pytest.raises(SourceError) as caught:
        slurm_fed(SQUEUE_JSON, REST_PARTITIONS).collect(T)
    assert str(caught.value) == "sinfo -N --json printed a slurmrestd /partitions answer, " \
                                "not nodes"


def settings(section, url):
    cfg = config.defaults({section: {"url": url, "timeout_s": "2"},
                           "sources": {"enabled": "simulated"}})
    return getattr(cfg.settings, section)


def test_panda_and_harvester_urls_answering_each_other_are_source_errors(http):
    http.route(PATHS["v1"], Reply(200, json.dumps({"success": True, "message": "",
                                                   "data": json.loads(WORKERS)})))
    http.route(HARVESTER_PATH, Reply(200, V1))
    with pytest.raises(SourceError) as caught:
        PandaJobStats(settings("panda", http.url)).collect(T)
    assert str(caught.value) == (f"PanDA {http.url}{PATHS['v1']} answered Harvester worker "
                                 "statistics, not PanDA job statistics")
    with pytest.raises(SourceError) as caught:
        HarvesterWorkers(settings("panda", http.url), load_rules("harvester")).collect(T)
    assert str(caught.value) == (f"PanDA {http.url}{HARVESTER_PATH} answered PanDA job "
                                 "statistics, not Harvester worker statistics")


def test_a_slurm_answer_at_the_cric_url_is_a_failure_not_queues(http, tmp_path):
    http.route(CRIC_PATH, Reply(200, json.dumps(REST_JOBS)), Reply(200, CRIC),
               Reply(200, json.dumps(REST_JOBS)))
    source = CricTopology(settings("cric", http.url), tmp_path / "cric.json")
    refused = f"CRIC {http.url}{CRIC_PATH} answered a slurmrestd /jobs answer, not CRIC " \
              "pandaqueues"
    first = source.load()
    assert (first.status, first.queues) == ("missing", {})
    assert first.message == f"{refused}; no cached snapshot yet: every queue is tagged unknown"
    assert source.load().status == "fresh"
    cached = source.load()  # the snapshot serves; not the answer's keys as queues
    assert (cached.status, sorted(cached.queues)) == ("cached", ["AGLT2_UCORE", "SLAC_ES-lsf"])
    assert cached.message.startswith(f"{refused}; using the cached snapshot of ")


def test_collect_records_the_cric_failure_and_writes_no_queue(make_config, http):
    from qmonit.collect.components import build
    from qmonit.collect.cycle import collect
    from qmonit.stores.state import queues as state_queues
    from qmonit.stores.state import schema
    from qmonit.stores.state.status import source_status

    http.route(PATHS["v1"], Reply(200, V1))
    http.route(CRIC_PATH, Reply(200, json.dumps(REST_JOBS)))
    parts = build(make_config({"panda": {"url": http.url, "timeout_s": "2"},
                               "cric": {"url": http.url, "timeout_s": "2"}}))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert report.exit_code == 1
    refused = (f"CRIC {http.url}{CRIC_PATH} answered a slurmrestd /jobs answer, not CRIC "
               "pandaqueues; no cached snapshot yet: every queue is tagged unknown")
    runs = {s.source: (s.status, s.points, s.message) for s in report.sources}
    assert runs["cric"] == ("failed", 0, refused)
    assert runs["panda"][:2] == ("ok", 26)
    with parts.engine.connect() as conn:
        rows = {r.source: (r.status, r.message) for r in conn.execute(select(source_status))}
        queues = conn.execute(select(state_queues.queues.c.panda_queue)).all()
    assert rows["cric"] == ("failed", refused)
    assert queues == []  # not last_backfill, last_update, meta
    parts.engine.dispose()


def test_check_names_the_wrong_kind_and_probes_harvester_as_harvester(write_config, http,
                                                                       capsys):
    http.route(PATHS["v1"], Reply(200, V1))
    http.route(HARVESTER_PATH, Reply(200, WORKERS))
    http.route(CRIC_PATH, Reply(200, json.dumps(REST_JOBS)))
    cfg = write_config({"panda": {"url": http.url}, "cric": {"url": http.url},
                        "sources": {"enabled": "panda, harvester"}})
    assert cli.main(["-c", str(cfg), "check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:4] == [
        f"panda      PanDA {http.url}{PATHS['v1']}  answers, 3 queues, 26 counts",
        f"harvester  PanDA {http.url}{HARVESTER_PATH}  answers, 2 queues, 9 counts, "
        "2 record(s) skipped",
        f"cric       CRIC {http.url}{CRIC_PATH}  FAILED: CRIC {http.url}{CRIC_PATH} answered "
        "a slurmrestd /jobs answer, not CRIC pandaqueues"]
