import os
import subprocess
import sys
from pathlib import Path

import pytest

from qmonit.core import config

ROOT = Path(__file__).resolve().parents[1]


def test_example_file_is_generated_from_the_schema():
    assert (ROOT / "config.cfg.example").read_text() == config.example_text()


def test_example_file_loads_and_equals_defaults(tmp_path):
    example = tmp_path / "c.cfg"
    example.write_text(config.example_text())
    example.chmod(0o600)
    loaded = config.load(str(example), environ={"QMONIT_PANDA_URL": "https://panda.example"})
    expected = config.defaults({"sources": {"enabled": "simulated"}})
    assert loaded.settings.influxdb == expected.settings.influxdb


@pytest.mark.parametrize("sections, message", [
    ({"influxdb": {"batch_size": "many"}}, "[influxdb] batch_size = 'many': invalid literal"),
    ({"influxdb": {"batch_size": "0"}}, "[influxdb] batch_size = '0': must be at least 1"),
    ({"influxdb": {"verify_tls": "perhaps"}}, "[influxdb] verify_tls = 'perhaps': must be true "
                                              "or false"),
    ({"influxdb": {"url": "influx:8086"}}, "[influxdb] url = 'influx:8086': must be an http"),
    ({"influxdb": {"pasword": "x"}}, "[influxdb] pasword: unknown key (did you mean "
                                     "`password`?)"),
    ({"influx": {"url": "x"}}, "[influx]: unknown section (did you mean `influxdb`?) (known: "),
    ({"logging": {"level": "loud"}}, "[logging] level = 'loud': must be one of DEBUG, INFO, "
                                     "WARNING, ERROR"),
    ({"panda": {"api": "v2"}}, "[panda] api = 'v2': must be one of v1, legacy"),
    ({"influxdb": {"retention_10m": "30 days"}}, "[influxdb] retention_10m = '30 days': is not "
                                                  "a duration"),
    ({"sources": {"enabled": "panda"}}, "[panda] url: required because [sources] enabled "
                                        "lists panda"),
    ({"sources": {"enabled": "condor"}}, "[sources] enabled: unknown source 'condor'"),
    ({"sources": {"enabled": "simulated"}, "influxdb": {"token": "t", "username": "u"}},
     "[influxdb] token: set either token or username/password"),
])
def test_errors_name_section_and_key(write_config, sections, message):
    path = write_config(sections)
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    assert message in str(caught.value)


def test_secret_value_is_not_echoed_in_errors(write_config):
    path = write_config({"sources": {"enabled": "simulated"}})
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={"QMONIT_INFLUXDB_TOKEN": "s3cr3t-token",
                                        "QMONIT_INFLUXDB_USERNAME": "u"})
    assert "s3cr3t-token" not in str(caught.value)


def test_environment_overrides_file_and_carries_secrets(write_config):
    path = write_config({"sources": {"enabled": "simulated"},
                         "influxdb": {"username": "qmonit", "database": "fromfile"}})
    cfg = config.load(str(path), environ={"QMONIT_INFLUXDB_PASSWORD": "pw-from-env",
                                          "QMONIT_INFLUXDB_DATABASE": "fromenv"})
    assert cfg.settings.influxdb.password == "pw-from-env"
    assert cfg.settings.influxdb.database == "fromenv"
    assert cfg.secrets() == ["pw-from-env"]


def test_bad_environment_value_names_the_variable(write_config):
    path = write_config({"sources": {"enabled": "simulated"}})
    with pytest.raises(config.ConfigError, match="QMONIT_INFLUXDB_TIMEOUT_S = 'soon'"):
        config.load(str(path), environ={"QMONIT_INFLUXDB_TIMEOUT_S": "soon"})


def test_warns_when_readable_by_others(write_config):
    path = write_config({"sources": {"enabled": "simulated"}})
    path.chmod(0o644)
    warnings = []
    config.load(str(path), environ={}, warn=warnings.append)
    assert warnings == [f"{path} is readable by users other than its owner (mode -rw-r--r--); "
                        f"it may hold secrets: chmod 600 {path}"]
    path.chmod(0o600)
    warnings.clear()
    config.load(str(path), environ={}, warn=warnings.append)
    assert warnings == []


def test_relative_paths_resolve_against_the_config_file(write_config, tmp_path):
    path = write_config({"sources": {"enabled": "simulated"}, "spool": {"dir": "myspool"}})
    assert config.load(str(path), environ={}).spool_dir == tmp_path / "myspool"


def test_cli_exits_2_with_the_message(write_config):
    path = write_config({"influxdb": {"batch_size": "-5"}, "sources": {"enabled": "simulated"}})
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "run", "collect"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == (f"qmonit: configuration error: {path}: [influxdb] batch_size = '-5': "
                           f"must be at least 1\n")


def test_cli_missing_file_exits_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(tmp_path / "nope.cfg"),
                           "check"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "nope.cfg: no such configuration file" in done.stderr


def test_readme_carries_the_generated_reference():
    assert config.reference_markdown() in (ROOT / "docs" / "configuration.md").read_text()


def test_an_unknown_key_far_from_any_gets_no_guess(write_config):
    path = write_config({"sources": {"enabled": "simulated"}, "influxdb": {"colour": "x"}})
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    assert str(caught.value) == f"{path}: [influxdb] colour: unknown key"


def test_an_unknown_environment_key_gets_the_closest_one(write_config):
    path = write_config({"sources": {"enabled": "simulated"}})
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={"QMONIT_INFLUXDB_PASWORD": "x"})
    assert "QMONIT_INFLUXDB_PASWORD: no such key [influxdb] pasword (did you mean " \
           "`password`?) (known: " in str(caught.value)


@pytest.mark.parametrize("written, level", [("debug", "DEBUG"), ("Warning", "WARNING"),
                                            ("INFO", "INFO")])
def test_a_choice_is_read_whatever_its_case(write_config, written, level):
    path = write_config({"sources": {"enabled": "simulated"}, "logging": {"level": written}})
    assert config.load(str(path), environ={}).settings.logging.level == level


@pytest.mark.parametrize("url", ["mysql://qmonit@db.example.org/qmonit",
                                 "mariadb://qmonit@db.example.org/qmonit",
                                 "mysql+pymysql://qmonit@db.example.org/qmonit",
                                 "mysql+mysqldb://qmonit@db.example.org/qmonit",
                                 "mysql+mysqlconnector://qmonit@db.example.org/qmonit"])
def test_mysql_urls_get_the_installed_driver(write_config, url):
    path = write_config({"sources": {"enabled": "simulated"}, "sql": {"url": url}})
    assert config.load(str(path), environ={}).sql_url == \
        "mysql+mysqlconnector://qmonit@db.example.org/qmonit"


def test_a_mysql_url_without_driver_reaches_the_server(write_config, mariadb):
    """`mysql://` crashed with `No module named 'MySQLdb'`, exit 1 (issue 34)."""
    typed = mariadb.replace("mysql+mysqlconnector://", "mysql://")
    path = write_config({"sources": {"enabled": "simulated"}, "sql": {"url": typed}})
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "check"],
                          capture_output=True, text=True)
    # "answers;" or "answers," (tables missing or present: the session's database is shared)
    assert [word.rstrip(";,") for word in done.stdout.splitlines()[0].split()[:3]] == [
        "sql", mariadb, "answers"]
    assert "MySQLdb" not in done.stdout + done.stderr


@pytest.mark.parametrize("command, code, stream", [("check", 2, "stderr"),
                                                   ("status", 3, "stdout")])
def test_a_password_for_the_sqlite_store_is_refused(write_config, command, code, stream):
    """It crashed every command with `Invalid SQLite URL`, and status exited 1 (issue 34)."""
    path = write_config({"sources": {"enabled": "simulated"}})
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), command],
                          capture_output=True, text=True,
                          env={**os.environ, "QMONIT_SQL_PASSWORD": "s3cret-pw"})
    assert done.returncode == code
    message = (f"{path}: [sql] password (or QMONIT_SQL_PASSWORD) is set but the state store "
               "is SQLite (the default in data_dir), which has no password: unset it, or set "
               "[sql] url to a MySQL/MariaDB URL")
    assert message in getattr(done, stream)
    assert "s3cret-pw" not in done.stdout + done.stderr


@pytest.mark.parametrize("command, code, stream, prefix", [
    ("check", 2, "stderr", "qmonit: configuration error: "),
    ("status", 3, "stdout", "QMONIT UNKNOWN - configuration error: ")])
def test_no_configuration_file_is_said_as_such(tmp_path, command, code, stream, prefix):
    """It said `[panda] url: required because [sources] enabled lists panda` (issue 34)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMONIT_")}
    done = subprocess.run([sys.executable, "-m", "qmonit", command], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert done.returncode == code
    assert getattr(done, stream) == (
        f"{prefix}no configuration file: none given with -c FILE or $QMONIT_CONFIG, and no "
        "QMONIT_<SECTION>_<KEY> variable is set (`qmonit config example > config.cfg` writes "
        "one to start from)\n")


def test_settings_from_the_environment_alone_need_no_file(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QMONIT_")},
           "QMONIT_SOURCES_ENABLED": "simulated", "QMONIT_QMONIT_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "qmonit", "check"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert done.stdout.splitlines()[0].split()[:2] == [
        "sql", f"sqlite:///{tmp_path}/qmonit.sqlite"]
