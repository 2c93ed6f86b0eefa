"""The wheel carries the deployment files beside the code: the dashboards, run.sh and its
jobs, the example configuration and crontab, the systemd unit and the licence are copied
into qmonit/_data/ at build time (qmonit.support.resources finds them there when
installed, and in the checkout otherwise)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# what the wheel carries, as paths of the repository (the top level stays as specified)
DATA = ["dashboards", "jobs", "run.sh", "crontab.example", "config.cfg.example",
        "deploy/qmonit.service", "LICENSE"]


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "qmonit" / "_data"
        for name in DATA:
            source, copy = ROOT / name, target / name
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, copy, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, copy)


setup(cmdclass={"build_py": BuildWithData})
