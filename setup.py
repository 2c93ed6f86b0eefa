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
    """build_py, from a clean tree, then the deployment files into qmonit/_data/."""

    def run(self) -> None:
        # pip builds a checkout in place: build/lib would still hold a module or dashboard
        # deleted since the last build, and the wheel would ship it
        shutil.rmtree(Path(self.build_lib) / "qmonit", ignore_errors=True)
        super().run()
        target = Path(self.build_lib) / "qmonit" / "_data"
        for name in DATA:
            source, copy = ROOT / name, target / name
            if not source.exists():
                raise SystemExit(f"setup.py: {source} is missing; a wheel without it would "
                                 "not deploy (an sdist carries it through MANIFEST.in)")
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, copy, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, copy)


setup(cmdclass={"build_py": BuildWithData})
