#!/usr/bin/env python3
"""Benchmark: scheduler outputs -> counts.

1. A 120,000-job Slurm queue in the real `squeue -h -r -O ...` output format (what the cli
   backend reads): parse, map states, count. Target: under 3 s and 500 MB.
2. 50,000 HTCondor job ads as classad2 objects (what a schedd query with a projection
   returns): read, map states, count. Target: under 3 s and 500 MB.
Peak memory is the process's maximum resident size after the step.
Run from the repository root: python3 benchmarks/batch.py
"""

from __future__ import annotations

import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.core.config import default_section  # noqa: E402
from qmonit.core.settings import HtcondorSection, SlurmSection  # noqa: E402
from qmonit.core.states.rules import load_rules  # noqa: E402
from qmonit.sources.htcondor import HTCondorSource  # noqa: E402
from qmonit.sources.slurm import SlurmSource  # noqa: E402
from tests.condor_ads import parse_long  # noqa: E402

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REASONS = ("Priority", "Resources", "Dependency", "AssocGrpCpuLimit", "JobHeldUser",
           "BeginTime", "QOSMaxJobsPerUserLimit", "ReqNodeNotAvail, UnavailableNodes:wn[001-004]")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def squeue_text(jobs: int, rng: random.Random) -> str:
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    lines = []
    for n in range(jobs):
        running = rng.random() < 0.45
        state = "RUNNING" if running else ("COMPLETING" if rng.random() < 0.01 else "PENDING")
        reason = "None" if state != "PENDING" else rng.choice(REASONS)
        cpus = rng.choice((1, 1, 1, 8, 8, 16))
        gpus = ",gres/gpu=1" if rng.random() < 0.02 else ""
        job_id = f"{1000000 + n}" if rng.random() < 0.8 else f"{900000 + n // 100}_{n % 100}"
        submit = now - timedelta(seconds=rng.randint(60, 86400 * 3))
        start = submit + timedelta(seconds=30) if running else None
        node = f"wn{rng.randint(1, 423):03d}" if running else ""
        lines.append("|".join([
            job_id, state, reason, rng.choice(("atlas", "cms", "gpu", "long")),
            f"user{(user := rng.randint(1, 400))}", "grid", f"acct{user % 40}", str(cpus),
            f"cpu={cpus},mem={cpus * 2000}M,node=1,billing={cpus}{gpus}", node,
            submit.isoformat(), start.isoformat() if start else "N/A", "Unknown"]) + "|")
    return "\n".join(lines) + "\n"


def slurm(jobs: int) -> None:
    text = squeue_text(jobs, random.Random(1))
    sinfo = "".join(f"wn{n:03d}|mixed|40/24/0/64|gpu:4|gpu:1|\n" for n in range(1, 424))

    def run(argv, timeout):
        return text if argv[0].endswith("squeue") else sinfo

    source = SlurmSource(default_section(
        SlurmSection, cluster="bench", bin_dir="", format="text", timeout_s=60.0),
        load_rules("slurm"), run=run)
    start = time.perf_counter()
    out = source.collect(SLOT)
    elapsed = time.perf_counter() - start
    counted = sum(s.field("jobs") for s in out.samples if s.measurement == "batch_jobs")
    print(f"Slurm: {jobs:,} jobs ({len(text) / 1e6:.1f} MB of squeue text) -> "
          f"{len(out.samples):,} points ({counted:,.0f} jobs counted) in {elapsed:.2f} s; "
          f"peak {peak_mb():.0f} MB (targets < 3 s, < 500 MB)")


def condor_ads(jobs: int, rng: random.Random) -> list:
    now = int(time.time())
    blocks = []
    for n in range(jobs):
        status = rng.choice((1, 1, 2, 2, 2, 5))
        hold = f"\nHoldReasonCode = {rng.choice((1, 3, 12, 34))}" if status == 5 else ""
        blocks.append(
            f"ClusterId = {100000 + n // 10}\nProcId = {n % 10}\nJobStatus = {status}\n"
            f"LastJobStatus = 1\nOwner = \"user{rng.randint(1, 300)}\"\n"
            f"AccountingGroup = \"group_{rng.choice(('atlas', 'cms', 'lhcb'))}.prod\"\n"
            f"x509UserProxyVOName = \"{rng.choice(('atlas', 'cms', 'lhcb'))}\"\n"
            f"RequestCpus = {rng.choice((1, 8))}\nRequestMemory = 2000\n"
            f"QDate = {now - 7200}\nEnteredCurrentStatus = {now - 600}{hold}")
    return parse_long("\n\n".join(blocks))


class Answer:
    """A schedd that returns its ads as a projected query would."""

    def __init__(self, name, ads):
        self.name, self.ads = name, ads

    def query(self, constraint, projection):
        return self.ads

    def history(self, constraint, projection):
        return []


class Pool:
    def __init__(self, schedds):
        self._schedds = schedds

    def schedds(self):
        return self._schedds

    def slots(self, projection):
        return []

    def daemon_ads(self, daemon, projection):
        return []


def htcondor(jobs: int) -> None:
    ads = condor_ads(jobs, random.Random(2))
    source = HTCondorSource(default_section(
        HtcondorSection, cluster="bench",
        group_by=("Owner", "AccountingGroup", "x509UserProxyVOName"), factory_schedds=(),
        label_attribute="MATCH_APF_QUEUE"),
                            load_rules("htcondor"), load_rules("apf"),
                            Pool([Answer("schedd1", ads)]))
    start = time.perf_counter()
    out = source.collect(SLOT)
    elapsed = time.perf_counter() - start
    counted = sum(s.field("jobs") for s in out.samples if s.measurement == "batch_jobs")
    print(f"HTCondor: {jobs:,} job ads -> {len(out.samples):,} points ({counted:,.0f} jobs "
          f"counted) in {elapsed:.2f} s; peak {peak_mb():.0f} MB (targets < 3 s, < 500 MB)")


if __name__ == "__main__":
    slurm(120_000)
    htcondor(50_000)
