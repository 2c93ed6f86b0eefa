"""qmonit as users install it: the wheel carries the dashboards, run.sh and its jobs, the
example configuration and crontab, the systemd unit and the licence; `qmonit deploy`
prints or writes them with the installation's interpreter filled in."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from qmonit.app import cli

ROOT = Path(__file__).resolve().parents[1]
STALE = ["qmonit/core/registry.py", "qmonit/_data/dashboards/gone.dashboard.py"]
# what setup.py copies into qmonit/_data/ (the repository's top level keeps them)
DEPLOYMENT = ["run.sh", "crontab.example", "config.cfg.example", "deploy/qmonit.service",
              "LICENSE"]


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """The checkout's files (tracked and new, not ignored) copied aside, with a build/lib
    left over from an earlier build: a module and a dashboard since deleted."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    tree = tmp_path_factory.mktemp("source")
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    for stale in STALE:
        (tree / "build/lib" / stale).parent.mkdir(parents=True, exist_ok=True)
        (tree / "build/lib" / stale).write_text("# deleted since the last build\n")
    return tree


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(source_tree)], check=True, capture_output=True)
    (path,) = out.glob("qmonit-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_carries_what_a_deployment_needs(wheel):
    names = set(wheel.namelist())
    boards = sorted(p.name for p in (ROOT / "dashboards").glob("*.dashboard.py"))
    jobs = sorted(p.name for p in (ROOT / "jobs").glob("*.py"))
    rules = sorted(p.name for p in (ROOT / "qmonit/core/states").glob("*.rules"))
    assert len(boards) == 6 and len(jobs) == 6 and len(rules) == 6
    expected = {f"qmonit/_data/dashboards/{b}" for b in boards} | \
        {f"qmonit/_data/jobs/{j}" for j in jobs} | \
        {f"qmonit/core/states/{r}" for r in rules} | \
        {"qmonit/_data/run.sh", "qmonit/_data/crontab.example",
         "qmonit/_data/config.cfg.example", "qmonit/_data/deploy/qmonit.service",
         "qmonit/_data/LICENSE", "qmonit/app/cli.py", "qmonit/grafana/helpers.py"}
    assert expected - names == set()
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "bench"))]
    assert not set(STALE) & names
    licence = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "License: Apache-2.0" in wheel.read(licence[0]).decode()


def test_the_sdist_carries_what_its_wheel_copies(source_tree, tmp_path):
    """python -m build and pip install of the .tar.gz build the wheel from the sdist."""
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                    "build_meta.build_sdist(sys.argv[1])", str(tmp_path)],
                   cwd=source_tree, check=True, capture_output=True)
    (path,) = tmp_path.glob("qmonit-*.tar.gz")
    with tarfile.open(path) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    boards = {f"dashboards/{p.name}" for p in (ROOT / "dashboards").glob("*.dashboard.py")}
    jobs = {f"jobs/{p.name}" for p in (ROOT / "jobs").glob("*.py")}
    assert (boards | jobs | set(DEPLOYMENT)) - names == set()
    assert not [n for n in names if "__pycache__" in n]


def test_deploy_prints_run_sh_with_this_interpreter(capsys):
    assert cli.main(["deploy", "run.sh"]) == 0
    text = capsys.readouterr().out
    assert f'"${{QMONIT_PYTHON:-{sys.executable}}}" -I "$here/jobs/$job.py"' in text
    assert cli.main(["deploy", "systemd"]) == 0
    assert f"ExecStart={sys.executable} -I -m qmonit daemon" in capsys.readouterr().out


def test_deploy_writes_private_files_and_never_over_one(tmp_path, capsys):
    assert cli.main(["deploy", "run.sh", "-o", str(tmp_path / "opt")]) == 0
    run_sh = tmp_path / "opt" / "run.sh"
    assert stat.S_IMODE(run_sh.stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "opt" / "jobs").iterdir()) == \
        sorted(p.name for p in (ROOT / "jobs").glob("*.py"))
    assert cli.main(["deploy", "config", "-o", str(tmp_path / "config.cfg")]) == 0
    assert stat.S_IMODE((tmp_path / "config.cfg").stat().st_mode) == 0o600
    capsys.readouterr()
    assert cli.main(["deploy", "config", "-o", str(tmp_path / "config.cfg")]) == 2
    assert capsys.readouterr().err == \
        f"qmonit deploy: {tmp_path / 'config.cfg'}: exists; not overwritten (--force " \
        "replaces it)\n"
    assert cli.main(["deploy", "config", "-o", str(tmp_path / "config.cfg"), "--force"]) == 0
    assert cli.main(["deploy", "run.sh", "-o", str(tmp_path / "config.cfg")]) == 2
    assert "run.sh goes into a folder (with its jobs/), and this is a file" in \
        capsys.readouterr().err


def test_dashboards_build_without_a_configuration_writes_the_dashboards_only(tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.delenv("QMONIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["dashboards", "build", "-o", str(tmp_path / "boards")]) == 0
    assert sorted(p.name for p in (tmp_path / "boards").iterdir()) == sorted(
        p.name.replace(".dashboard.py", ".json") for p in (ROOT / "dashboards").glob("*.py"))
    assert "provisioning files not written (no configuration file): [grafana] " \
        "sql_reader_user is empty" in capsys.readouterr().err
