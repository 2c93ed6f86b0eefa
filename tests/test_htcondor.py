"""The HTCondor source through its query interface, on ads parsed by the real classad2 from
the real formats (condor_q -long, condor_q -json, condor_status -long), and a real
connection error from the htcondor2 bindings on a closed port."""

import time
from datetime import UTC, datetime
from pathlib import Path

import classad2
import pytest

from qmonit.core.config import default_section
from qmonit.core.sample import make_sample
from qmonit.core.settings import HtcondorSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.base import SourceError
from qmonit.sources.htcondor import (
    JOB_PROJECTION,
    BindingsPool,
    BindingsSchedd,
    HTCondorSource,
    job_from_ad,
    nodes_from_slots,
)
from tests.condor_ads import AdPool, AdSchedd, parse_json, parse_long
from tests.servers import free_port

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
NOW = int(time.time())

SCHEDD_JOBS = f"""
ClusterId = 1
ProcId = 0
JobStatus = 2
LastJobStatus = 1
Owner = "alice"
AccountingGroup = "group_atlas.prod.alice"
x509UserProxyVOName = "atlas"
RequestCpus = 8
RequestMemory = 16000
QDate = {NOW - 7200}
JobStartDate = {NOW - 3600}
EnteredCurrentStatus = {NOW - 3600}
RemoteHost = "slot1_1@wn01.example.org"

ClusterId = 1
ProcId = 1
JobStatus = 2
LastJobStatus = 1
Owner = "alice"
AccountingGroup = "group_atlas.prod.alice"
x509UserProxyVOName = "atlas"
RequestCpus = 8
RequestMemory = 16000
QDate = {NOW - 7200}
EnteredCurrentStatus = {NOW - 1800}

ClusterId = 2
ProcId = 0
JobStatus = 1
Owner = "bob"
RequestCpus = 1
MemoryUsage = undefined
RequestMemory = ifthenelse(MemoryUsage isnt undefined, MemoryUsage, 2000)
QDate = {NOW - 600}
EnteredCurrentStatus = {NOW - 600}

ClusterId = 3
ProcId = 0
JobStatus = 5
LastJobStatus = 2
HoldReasonCode = 34
Owner = "bob"
RequestCpus = 1
RequestMemory = 2000
EnteredCurrentStatus = {NOW - 60}

ClusterId = 4
ProcId = 0
JobStatus = 1
LastJobStatus = 4
Owner = "bob"
RequestCpus = 1
RequestMemory = 2000

ClusterId = 5
ProcId = 0
JobStatus = 2
Owner = "carol"
AccountingGroup = "group_cms.carol"
x509UserProxyVOName = "cms"
RequestCpus = 4
RequestGpus = 1
RequestMemory = 8000
EnteredCurrentStatus = {NOW - 100}

ClusterId = 6
ProcId = 0
JobStatus = "sideways"
Owner = "mallory"
"""

FACTORY_PILOTS = "\n\n".join(
    f"""ClusterId = {100 + n}
ProcId = 0
JobStatus = {status}
Owner = "apf"
MATCH_APF_QUEUE = "{queue}"
RequestCpus = 1
RequestMemory = 2000""" for n, (status, queue) in enumerate([
        (1, "CERN-PROD_UCORE"), (1, "CERN-PROD_UCORE"), (2, "CERN-PROD_UCORE"),
        (5, "CERN-PROD_UCORE"), (2, "BNL_PROD")]))

FACTORY_HISTORY = "\n\n".join(
    f"""ClusterId = {90 + n}
ProcId = 0
JobStatus = {status}
ExitCode = {code}
MATCH_APF_QUEUE = "{queue}"
EnteredCurrentStatus = {entered}""" for n, (status, code, queue, entered) in enumerate([
        (4, 0, "CERN-PROD_UCORE", NOW - 300), (4, 0, "CERN-PROD_UCORE", NOW - 900),
        (4, 1, "CERN-PROD_UCORE", NOW - 1200), (3, 0, "BNL_PROD", NOW - 60),
        (4, 0, "BNL_PROD", NOW - 7200)]))  # the last ended two hours ago: not counted

SLOTS = """
Machine = "wn01.example.org"
Name = "slot1@wn01.example.org"
SlotType = "Partitionable"
State = "Unclaimed"
Cpus = 8
TotalSlotCpus = 32
Gpus = 1
TotalSlotGpus = 4

Machine = "wn01.example.org"
Name = "slot1_1@wn01.example.org"
SlotType = "Dynamic"
State = "Claimed"
Activity = "Busy"
Cpus = 8
Gpus = 1

Machine = "wn01.example.org"
Name = "slot1_2@wn01.example.org"
SlotType = "Dynamic"
State = "Claimed"
Cpus = 16
Gpus = 2

Machine = "wn02.example.org"
Name = "slot1@wn02.example.org"
SlotType = "Static"
State = "Claimed"
Cpus = 1

Machine = "wn02.example.org"
Name = "slot2@wn02.example.org"
SlotType = "Static"
State = "Unclaimed"
Cpus = 1

Machine = "wn03.example.org"
Name = "slot1@wn03.example.org"
SlotType = "Partitionable"
State = "Drained"
Cpus = 16
TotalSlotCpus = 16
"""

SETTINGS = default_section(
    HtcondorSection, cluster="pool1", group_by=("Owner", "AccountingGroup", "x509UserProxyVOName"),
    factory_schedds=("apf.example.org",), label_attribute="MATCH_APF_QUEUE")


def job_point(partition, owner, group, vo, state, native, reason, jobs, cpus, gpus, memory):
    return make_sample("batch_jobs", {
        "cluster": "pool1", "scheduler": "htcondor", "partition": partition, "owner": owner,
        "group": group, "vo": vo, "state": state, "native_state": native, "reason": reason,
    }, {"jobs": jobs, "cpus": cpus, "gpus": gpus, "memory_mb": memory}, SLOT)


def source(schedds, slots=SLOTS):
    return HTCondorSource(SETTINGS, load_rules("htcondor"), load_rules("apf"),
                          AdPool(schedds, parse_long(slots)))


def test_jobs_counted_by_owner_group_and_vo_with_mapped_states():
    schedd = AdSchedd("ce01.example.org", parse_long(SCHEDD_JOBS))
    htcondor = source([schedd])
    out = htcondor.collect(SLOT)
    assert out.problems == ["HTCondor schedd ce01.example.org: job 6.0: JobStatus 'sideways' "
                            "is not 1-7; skipped"]
    jobs = {s for s in out.samples if s.measurement == "batch_jobs"}
    assert jobs == {
        job_point("ce01.example.org", "alice", "group_atlas.prod.alice", "atlas", "running",
                  "Running", "none", 2, 16, 0, 32000),
        job_point("ce01.example.org", "bob", "none", "none", "pending", "Idle", "none",
                  1, 1, 0, 2000),  # RequestMemory evaluated by classad2
        job_point("ce01.example.org", "bob", "none", "none", "failed", "Held", "none",
                  1, 1, 0, 2000),  # hold code 34: memory limit, counted as failed
        job_point("ce01.example.org", "bob", "none", "none", "completed", "Idle", "none",
                  1, 1, 0, 2000),  # LastJobStatus Completed: does not go back to pending
        job_point("ce01.example.org", "carol", "group_cms.carol", "cms", "running", "Running",
                  "none", 1, 4, 1, 8000),
    }
    # queried with a projection, never the whole ad
    constraint, projection = schedd.queries[0]
    assert constraint == "true"
    assert {"JobStatus", "Owner", "AccountingGroup", "x509UserProxyVOName", "RequestCpus"} \
        <= set(projection)
    held = next(j for j in out.jobs if j.job_id == "ce01.example.org#3.0")
    assert (held.state, held.cause, held.reason, held.substate) == \
        ("failed", "memory limit exceeded", "34", "Running")


def test_slots_static_partitionable_and_dynamic_per_node():
    nodes = {n.node: n for n in nodes_from_slots(parse_long(SLOTS))}
    assert [(n.node, n.node_state, n.cpus, n.cpus_alloc, n.gpus, n.gpus_alloc, n.jobs)
            for n in nodes.values()] == [
        ("wn01.example.org", "mixed", 32.0, 24.0, 4.0, 3.0, 2.0),
        ("wn02.example.org", "mixed", 2.0, 1.0, 0.0, 0.0, 1.0),
        ("wn03.example.org", "drained", 16.0, 0.0, 0.0, 0.0, 0.0),
    ]


def test_factory_pilots_with_done_and_fault_of_the_last_hour():
    factory = AdSchedd("apf.example.org", parse_long(FACTORY_PILOTS),
                       parse_long(FACTORY_HISTORY))
    out = source([factory]).collect(SLOT)
    workers = {(s.tag("panda_queue"), s.tag("worker_status"), s.tag("state")): s.field("workers")
               for s in out.samples if s.measurement == "workers"}
    assert workers == {
        ("CERN-PROD_UCORE", "created", "pending"): 2.0,
        ("CERN-PROD_UCORE", "running", "running"): 1.0,
        ("CERN-PROD_UCORE", "fault", "failed"): 2.0,  # one held now, one exit 1 in the hour
        ("CERN-PROD_UCORE", "done", "completed"): 2.0,
        ("BNL_PROD", "running", "running"): 1.0,
        ("BNL_PROD", "fault", "failed"): 1.0,  # removed
        ("BNL_PROD", "done", "completed"): 0.0,  # its only done pilot ended 2 h ago
    }
    sample = next(s for s in out.samples if s.measurement == "workers")
    assert {k for k, _ in sample.tags} == {"factory", "factory_type", "panda_queue", "job_type",
                                           "resource_type", "worker_status", "state"}
    assert sample.tag("factory_type") == "apf"
    pilots = {s.tag("panda_queue") for s in out.samples if s.measurement == "batch_jobs"}
    assert pilots == {"CERN-PROD_UCORE", "BNL_PROD"}


def test_a_schedd_that_does_not_answer_fails_alone():
    """A real htcondor2 schedd object at a closed port raises HTCondorException."""
    import htcondor2

    port = free_port()
    ad = classad2.ClassAd({"MyType": "Scheduler", "Name": "dead.example.org",
                           "MyAddress": f"<127.0.0.1:{port}>",
                           "CondorVersion": "$CondorVersion: 25.0.0 2025-01-01 $"})
    dead = BindingsSchedd("dead.example.org", htcondor2.Schedd(ad))
    alive = AdSchedd("ce01.example.org", parse_long(SCHEDD_JOBS))
    out = source([dead, alive]).collect(SLOT)
    problem = next(p for p in out.problems if "dead.example.org" in p)
    assert problem.startswith("HTCondor schedd dead.example.org: ")
    assert problem.endswith("; its jobs are not counted this cycle")
    assert {s.tag("partition") for s in out.samples if s.measurement == "batch_jobs"} == \
        {"ce01.example.org"}
    with pytest.raises(SourceError) as caught:
        source([dead]).collect(SLOT)
    assert str(caught.value).startswith("HTCondor: no schedd answered: HTCondor schedd "
                                        "dead.example.org: ")


def test_a_collector_that_does_not_answer_is_a_source_error():
    pool = BindingsPool(default_section(HtcondorSection,
                                        collector=f"127.0.0.1:{free_port()}"))
    htcondor = HTCondorSource(SETTINGS, load_rules("htcondor"), load_rules("apf"), pool)
    with pytest.raises(SourceError) as caught:
        htcondor.collect(SLOT)
    assert str(caught.value) == "HTCondor collector: Failed communication with collector."


needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")


@needs_samples
def test_recorded_condor_q_long_and_json_jobs():
    group_by = ("Owner", "AccountingGroup", "x509UserProxyVOName")
    long_ad = parse_long((SAMPLES / "htcondor+htcondor__src_condor_tests_python_bindings_"
                                    "test.old.ad").read_text())[0]
    job = job_from_ad(long_ad, "s", group_by)
    assert (job.job_id, job.owner, job.native_state, job.substate, job.cpus, job.memory_mb) == \
        ("s#15.0", "bbockelm", "Idle", "Held", 1.0, 1.0)  # RequestMemory is an expression
    projected = classad2.ClassAd({key: long_ad.lookup(key) for key in JOB_PROJECTION + group_by
                                  if key in long_ad})  # what a schedd query returns
    assert job_from_ad(projected, "s", group_by).memory_mb == 1.0  # (ImageSize + 1023) / 1024
    json_ad = parse_json((SAMPLES / "JeffersonLab+clas12-utilities__condor_q_nobatch_json_"
                                    "single_job.json").read_text())[0]
    job = job_from_ad(json_ad, "s", group_by)
    assert (job.job_id, job.owner, job.native_state, job.substate, job.cpus, job.memory_mb,
            job.worker) == ("s#3472942.81", "gemc", "Running", "Idle", 1.0, 1741.0,
                            "glidein_11052_156649344@CRUSH-OSG-C7-10-5-219-52")


@needs_samples
def test_recorded_condor_status_long_slots():
    def nodes(name):
        return [(n.node, n.node_state, n.cpus, n.cpus_alloc, n.jobs) for n in nodes_from_slots(
            parse_long((SAMPLES / f"htcondor+htcondor__src_condor_tests_{name}").read_text()))]
    assert nodes("StatusAds_partionable8core") == [("ingwe.cs.wisc.edu", "mixed", 8.0, 4.0, 4.0)]
    assert nodes("StatusAds_basic4slot") == [("ingwe.cs.wisc.edu", "mixed", 4.0, 2.0, 2.0)]
    assert nodes("cmd_status-af_orig_first_test.ads") == [
        ("gthain.localdomain", "idle", 8.0, 0.0, 0.0)]


def test_slot_ads_that_fail_leave_the_job_counts_standing():
    class NoSlots(AdPool):
        def slots(self, projection):
            raise RuntimeError("Failed communication with collector.")

    schedd = AdSchedd("ce01.example.org", parse_long(SCHEDD_JOBS))
    out = HTCondorSource(SETTINGS, load_rules("htcondor"), load_rules("apf"),
                         NoSlots([schedd], [])).collect(SLOT)
    assert out.problems[-1] == ("HTCondor collector: slot ads: Failed communication with "
                                "collector.; batch_nodes not written")
    assert {s.measurement for s in out.samples} == {"batch_jobs"}
