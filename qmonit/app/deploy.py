"""`qmonit deploy FILE [-o PATH]`: the deployment files shipped with qmonit, printed or
written, with the Python qmonit is installed in filled in (a host's other python3 would run
another qmonit, or none)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from qmonit.support.resources import ResourceMissing, resource

# the name a user types -> the shipped file
FILES = {"run.sh": "run.sh", "crontab": "crontab.example", "systemd": "deploy/qmonit.service",
         "config": "config.cfg.example"}
MODES = {"run.sh": 0o700, "crontab": 0o600, "systemd": 0o644, "config": 0o600}


class DeployError(Exception):
    """What the user asked cannot be done; names the file."""


def text_of(name: str, python: str = sys.executable) -> str:
    """A shipped file's text, with this installation's interpreter in run.sh and the unit."""
    try:
        text = resource(FILES[name]).read_text(encoding="utf-8")
    except ResourceMissing as exc:
        raise DeployError(str(exc)) from None
    if name == "run.sh":
        return text.replace('"${QMONIT_PYTHON:-python3}"', f'"${{QMONIT_PYTHON:-{python}}}"')
    if name == "systemd":
        return text.replace("/usr/bin/python3 ", f"{python} ")
    return text


def write(name: str, output: Path, force: bool = False) -> list[Path]:
    """Write one file (run.sh: into the folder OUTPUT, with the jobs/ it runs); never over
    an existing file unless forced. Returns what it wrote."""
    if name == "run.sh":
        if output.exists() and not output.is_dir():
            raise DeployError(f"{output}: run.sh goes into a folder (with its jobs/), and "
                              "this is a file")
        plan = {output / "run.sh": (text_of(name), MODES[name])}
        for job in sorted(resource("jobs").glob("*.py")):
            plan[output / "jobs" / job.name] = (job.read_text(encoding="utf-8"), 0o600)
    else:
        plan = {output: (text_of(name), MODES[name])}
    existing = [str(p) for p in plan if p.exists()]
    if existing and not force:
        raise DeployError(f"{existing[0]}: exists; not overwritten (--force replaces it)")
    for path, (text, mode) in plan.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(path, mode)
    return list(plan)
