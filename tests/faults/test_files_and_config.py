"""Files and configuration: what qmonit writes is private under cron's umask 022, what it
reads and trusts (config, rule files, dashboards, bin_dir) only its owner can change, run.sh
writes through no planted link, `demo --dir` deletes only its own files, and names hold no
Unicode format character."""

import json
import os
import pwd
import stat
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qmonit.core import config
from qmonit.core.sample import make_sample
from qmonit.stores.timeseries.spool import Spool
from tests.servers import Reply, environ_without_qmonit

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CRIC_PATH = "/api/atlas/pandaqueue/query/"
PANDA_PATH = "/api/v1/statistics/job_stats_by_site_share_and_resource_type"


def qmonit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qmonit", *args], capture_output=True,
                          text=True, env=environ_without_qmonit(), cwd=cwd)


@contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- file modes --------------------------------------------------------------------------------

def test_a_collect_under_umask_022_writes_only_private_files(write_config, tmp_path, http,
                                                             influx_db):
    http.route(CRIC_PATH, Reply(200, (DATA / "cric_pandaqueue.json").read_text()))
    http.route(PANDA_PATH, Reply(200, (DATA / "panda_job_stats_v1.json").read_text()))
    (tmp_path / "logs").mkdir()
    data_dir = tmp_path / "var" / "lib" / "data"  # three levels qmonit makes
    cfg = write_config({"qmonit": {"data_dir": str(data_dir)},
                        "influxdb": influx_db,
                        "panda": {"url": http.url}, "cric": {"url": http.url},
                        "logging": {"file": str(tmp_path / "logs" / "qmonit.log")}})
    with umask(0o022):
        assert qmonit("-c", str(cfg), "init").returncode == 0
        done = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T12:00")
    assert done.returncode == 0, done.stderr
    made = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in sorted(tmp_path.rglob("*"))
            if p.relative_to(tmp_path).parts[0] in ("var", "logs")}
    assert made == {
        "logs": "0o755",  # the operator's own directory
        "logs/qmonit.log": "0o600",
        "var": "0o700",
        "var/lib": "0o700",
        "var/lib/data": "0o700",
        "var/lib/data/cric_pandaqueue.json": "0o600",
        "var/lib/data/qmonit.sqlite": "0o600",
        "var/lib/data/rollup-buffer.sqlite": "0o600",
    }


def test_a_store_that_is_down_spools_into_private_files(write_config, tmp_path, influx_db):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    data_dir = tmp_path / "data"
    sections = {"qmonit": {"data_dir": str(data_dir)}, "sources": {"enabled": "simulated"},
                "downsample": {"buffer": "false"}}
    up = write_config({**sections, "influxdb": influx_db}, name="up.cfg")
    cfg = write_config({**sections,
                        "influxdb": {**influx_db, "url": f"http://127.0.0.1:{port}"}})
    with umask(0o022):
        assert qmonit("-c", str(up), "init").returncode == 0
        done = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:00")
    assert done.returncode == 1, done.stderr
    spooled = sorted((data_dir / "spool").glob("*.jsonl.gz"))
    assert spooled, done.stderr
    assert (oct(mode(data_dir)), oct(mode(data_dir / "spool"))) == ("0o700", "0o700")
    assert {oct(mode(p)) for p in spooled} == {"0o600"}


def test_rejected_points_made_first_leave_every_spool_level_private(tmp_path):
    spool = Spool(tmp_path / "a" / "spool", 1 << 20)
    with umask(0o022):
        kept = spool.put_rejected(["jobs x=1"], "field type conflict")
        put = spool.put([make_sample("jobs", {"panda_queue": "Q"}, {"jobs": 1}, T)], "10m")
    assert [oct(mode(p)) for p in (tmp_path / "a", tmp_path / "a" / "spool",
                                    kept.parent, kept, put)] == \
        ["0o700", "0o700", "0o700", "0o600", "0o600"]


# -- the configuration and what it names -------------------------------------------------------

@pytest.mark.parametrize("bits, shown", [(0o602, "-rw-----w-"), (0o620, "-rw--w----"),
                                         (0o666, "-rw-rw-rw-")])
def test_a_configuration_others_can_change_is_refused(write_config, bits, shown):
    path = write_config({"sources": {"enabled": "simulated"}})
    path.chmod(bits)
    done = qmonit("-c", str(path), "check")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"qmonit: configuration error: {path}: writable by group or others "
                           f"(mode {shown}); qmonit refuses a configuration others can change: "
                           f"chmod go-w {path}\n")


def test_a_configuration_owned_by_another_user_is_refused(write_config):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to nobody")
    nobody = pwd.getpwnam("nobody")
    path = write_config({"sources": {"enabled": "simulated"}})
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    done = qmonit("-c", str(path), "check")
    assert done.returncode == 2
    assert done.stderr == (f"qmonit: configuration error: {path}: owned by nobody (uid "
                           f"{nobody.pw_uid}), neither root nor root who runs qmonit; qmonit "
                           f"refuses a configuration another user can change: chown root "
                           f"{path}\n")


def test_a_rule_file_dashboards_and_bin_dir_others_can_change_are_refused(write_config,
                                                                          tmp_path):
    rules = tmp_path / "slurm.rules"
    rules.write_text((ROOT / "qmonit" / "core" / "states" / "slurm.rules").read_text())
    rules.chmod(0o666)
    boards = tmp_path / "boards"
    boards.mkdir(mode=0o700)
    (boards / "x.dashboard.py").write_text("dashboard = None\n")
    (boards / "x.dashboard.py").chmod(0o646)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bin_dir.chmod(0o777)
    path = write_config({"sources": {"enabled": "simulated"},
                         "states": {"slurm": str(rules)},
                         "grafana": {"dashboards_dir": str(boards)},
                         "slurm": {"bin_dir": str(bin_dir)}})
    done = qmonit("-c", str(path), "check")
    assert done.returncode == 2
    assert done.stderr == (
        f"qmonit: configuration error: {path}: "
        f"[states] slurm: {rules}: writable by group or others (mode -rw-rw-rw-); qmonit "
        f"refuses a rule file others can change: chmod go-w {rules}; "
        f"[slurm] bin_dir: {bin_dir}: writable by group or others (mode drwxrwxrwx); qmonit "
        f"refuses a directory of commands others can change: chmod go-w {bin_dir}; "
        f"[grafana] dashboards_dir: {boards}/x.dashboard.py: writable by group or others "
        f"(mode -rw-r--rw-); qmonit refuses dashboard code others can change: chmod go-w "
        f"{boards}/x.dashboard.py\n")


def test_secrets_sent_without_tls_are_warned_about(write_config):
    path = write_config({
        "sources": {"enabled": "panda"},
        "panda": {"url": "http://panda.example.org:25080", "token": "PANDATOKEN"},
        "cric": {"url": "https://cric.example.org", "token": "CRICTOKEN"},  # TLS: no warning
        "influxdb": {"url": "http://influx.example.org:8086", "username": "qmonit",
                     "password": "INFLUXPW"},
        "datadisk": {"url": "http://127.0.0.1:9200", "token": "LOCAL"},  # loopback: none
        "notify": {"smtp_host": "smtp.example.org", "smtp_port": "587",
                   "smtp_username": "qmonit", "smtp_password": "SMTPPW"},
    })
    warnings = []
    config.load(str(path), environ={}, warn=warnings.append)
    assert warnings == [
        "[influxdb] password is sent in clear text: [influxdb] url is "
        "http://influx.example.org:8086, not https://",
        "[panda] token is sent in clear text: [panda] url is http://panda.example.org:25080, "
        "not https://",
        "[notify] smtp_password is sent in clear text to smtp.example.org:587: [notify] "
        "smtp_username is set but smtp_starttls is false; set smtp_starttls = true",
    ]
    done = qmonit("-c", str(path), "config", "example")  # no config read: no warning
    assert done.stderr == ""


# -- run.sh ------------------------------------------------------------------------------------

def run_sh(cfg: Path, log_dir: Path, *args):
    env = {**environ_without_qmonit(), "QMONIT_CONFIG": str(cfg),
           "QMONIT_LOG_DIR": str(log_dir), "QMONIT_PYTHON": sys.executable}
    return subprocess.run([str(ROOT / "run.sh"), *args], env=env, capture_output=True,
                          text=True, cwd=cfg.parent)


@pytest.mark.parametrize("planted", ["collect.log", "collect.lock"])
def test_run_sh_writes_through_no_planted_symlink(write_config, tmp_path, planted):
    cfg = write_config({"sources": {"enabled": "simulated"}})
    log_dir = tmp_path / "log"
    log_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (log_dir / planted).symlink_to(victim)
    done = run_sh(cfg, log_dir, "collect", "--at", "2026-11-21T12:00")
    assert done.returncode == 2
    assert done.stderr.endswith(f" ERROR run.sh: {log_dir}/{planted} is a symbolic link; "
                                "refusing to write through it (remove it)\n")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in log_dir.iterdir()) == [planted]  # nothing run, nothing made


def test_run_sh_makes_private_logs_and_runs_no_planted_module(write_config, tmp_path):
    cfg = write_config({"sources": {"enabled": "simulated"}})
    log_dir = tmp_path / "new" / "log"
    # a stranger's qmonit package where the job runs and where run.sh was called from
    for where in (tmp_path, log_dir):
        planted = where / "qmonit"
        planted.mkdir(parents=True)
        (planted / "__init__.py").write_text("")
        (planted / "__main__.py").write_text(
            f"open({str(tmp_path / 'ran')!r}, 'a').write('planted ran\\n')\n")
    log_dir.chmod(0o755)
    (tmp_path / "new").chmod(0o755)
    assert qmonit("-c", str(cfg), "init").returncode == 0
    with umask(0o022):
        done = run_sh(cfg, tmp_path / "fresh" / "log", "collect", "--at", "2026-11-21T10:00")
        done_planted = run_sh(cfg, log_dir, "collect", "--at", "2026-11-21T10:00")
    assert (done.returncode, done_planted.returncode) == (0, 0), done.stderr
    assert not (tmp_path / "ran").exists()
    fresh = tmp_path / "fresh"
    assert [oct(mode(p)) for p in (fresh, fresh / "log", fresh / "log" / "collect.log",
                                    fresh / "log" / "collect.lock")] == \
        ["0o700", "0o700", "0o600", "0o600"]


def test_the_daemons_children_start_isolated_in_data_dir(write_config, tmp_path):
    from qmonit.app.daemon import ProcessRunner

    cfg = write_config({"sources": {"enabled": "simulated"}})
    data_dir = tmp_path / "data"
    planted = data_dir / "qmonit"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'a').write('planted ran\\n')\n")
    assert qmonit("-c", str(cfg), "init").returncode == 0
    at = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    run = ProcessRunner(str(cfg), cwd=str(data_dir))("collect", at, 120.0, lambda: "")
    assert run.exit_code == 0
    assert not (tmp_path / "ran").exists()


# -- demo --dir --------------------------------------------------------------------------------

def test_demo_refuses_a_non_empty_directory_it_did_not_make(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work\n")
    (home / "qmonit.sqlite").write_text("someone else's\n")
    done = qmonit("demo", "--hours", "1", "--dir", str(home))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"qmonit demo: {home}: not empty and not made by `qmonit demo`; "
                           "nothing was deleted: give a new or empty --dir\n")
    assert sorted((p.name, p.read_text()) for p in home.iterdir()) == [
        ("qmonit.sqlite", "someone else's\n"), ("thesis.tex", "years of work\n")]


def test_demo_again_in_its_own_directory_deletes_only_its_own_files(tmp_path):
    where = tmp_path / "demo"
    assert qmonit("demo", "--hours", "1", "--dir", str(where), "--serial").returncode == 0
    (where / "notes.txt").write_text("mine\n")
    again = qmonit("demo", "--hours", "1", "--dir", str(where), "--serial")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in where.iterdir()) == [".qmonit-demo", "notes.txt",
                                                      "qmonit.sqlite"]
    assert (where / "notes.txt").read_text() == "mine\n"
    assert oct(mode(where)) == "0o700"


# -- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("char, name", [("\u202e", "RIGHT-TO-LEFT OVERRIDE"),
                                        ("\u200b", "ZERO WIDTH SPACE"),
                                        ("\ufeff", "ZERO WIDTH NO-BREAK SPACE")])
def test_a_tag_holding_a_format_character_is_refused(char, name):
    queue = f"CERN-PROD{char}gpj.exe"
    with pytest.raises(ValueError) as refused:
        make_sample("jobs", {"panda_queue": queue}, {"jobs": 1}, T)
    assert str(refused.value) == (
        f"jobs: tag panda_queue = {queue!r} holds the format character "
        f"U+{ord(char):04X} {name} (names must not hold invisible or direction-changing "
        "characters)")


def test_a_name_in_another_script_is_kept():
    sample = make_sample("jobs", {"panda_queue": "Łódź-Ω-東京"}, {"jobs": 1}, T)
    assert sample.tags == (("panda_queue", "Łódź-Ω-東京"),)
    assert json.dumps(sample.tags)  # a plain name, stored as it is
