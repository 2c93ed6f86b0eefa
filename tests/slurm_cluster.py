"""A one-node Slurm cluster (Debian's slurm-wlm and munge) for the tests: no systemd, no cgroups."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

CONF = """ClusterName=qtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={dir}/run/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/run/slurmctld.pid
SlurmdPidFile={dir}/run/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=100
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MessageTimeout=3
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=8000 State=UNKNOWN
PartitionName=batch Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=localhost MaxTime=INFINITE State=UP
"""


def available() -> str | None:
    """Why a Slurm cluster cannot start here, or None."""
    for binary in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch"):
        if not shutil.which(binary):
            return f"{binary} not found: apt-get install slurm-wlm munge (see .ci/run)"
    if os.geteuid() != 0:
        return "the one-node Slurm cluster runs its daemons as root"
    return None


class SlurmCluster:
    def __init__(self) -> None:
        # munged refuses a socket below a directory others cannot search; mkdtemp gives 700
        self.dir = Path(tempfile.mkdtemp(prefix="qmonit-slurm-"))
        for sub in ("", "run", "state", "spool", "log", "munge"):
            (self.dir / sub).mkdir(exist_ok=True)
            (self.dir / sub).chmod(0o755)
        (self.dir / "munge").chmod(0o700)
        self.conf = self.dir / "slurm.conf"
        self.conf.write_text(CONF.format(dir=self.dir, ctld_port=free_port(), d_port=free_port()))
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / "log" / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def start(self) -> SlurmCluster:
        key = self.dir / "munge" / "munge.key"
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={self.dir}/run/munge.sock",
                               f"--key-file={key}", f"--pid-file={self.dir}/run/munged.pid",
                               f"--seed-file={self.dir}/munge/seed",
                               f"--log-file={self.dir}/log/munged.log"])
        self._wait(lambda: (self.dir / "run" / "munge.sock").exists(), "munged")
        self.start_controller()
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost"])
        self._wait(lambda: "idle" in self.run("sinfo", "-h", "-N", "-o", "%T", check=False),
                   "slurmd to register")
        return self

    def start_controller(self) -> None:
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait(lambda: self.run("squeue", "-h", check=False) is not None
                   and self._answers(), "slurmctld")

    def _answers(self) -> bool:
        return subprocess.run(["scontrol", "ping"], env=self.env, capture_output=True,
                              text=True).stdout.count("UP") > 0

    def stop_controller(self) -> None:
        self._stop("slurmctld")

    def run(self, *argv: str, user: str | None = None, check: bool = True) -> str:
        command = list(argv)
        if user:
            command = ["runuser", "-u", user, "--", *command]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True,
                              cwd="/tmp", check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def submit(self, *options: str, user: str | None = None) -> str:
        out = self.run("sbatch", "--parsable", "-o", "/dev/null", *options, "--wrap",
                       "sleep 600", user=user)
        return out.strip().split(";")[0]

    def _wait(self, ready, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)
        logs = "\n".join(p.read_text(errors="replace")[-800:] for p in
                         sorted((self.dir / "log").glob("*")))
        raise RuntimeError(f"Slurm test cluster: {what} not ready in {timeout:g} s\n{logs}")

    def wait_for(self, ready, what: str, timeout: float = 30) -> None:
        self._wait(ready, what, timeout)

    def _stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @contextmanager
    def as_the_slurm(self) -> Iterator[SlurmCluster]:
        """The cluster started is this process's Slurm (SLURM_CONF) until the block ends;
        then it is stopped and SLURM_CONF is what it was."""
        before = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            yield self
        finally:
            self.stop()
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before

    def stop(self) -> None:
        if "slurmctld" in self.processes:
            self.run("scancel", "--full", "-u", "root", check=False)
            self.run("scancel", "--full", "-u", "nobody", check=False)
            time.sleep(0.5)
        for name in ("slurmctld", "slurmd", "munged"):
            self._stop(name)
        subprocess.run(["pkill", "-f", f"{self.dir}/spool"], check=False)  # job steps left over
        shutil.rmtree(self.dir, ignore_errors=True)
