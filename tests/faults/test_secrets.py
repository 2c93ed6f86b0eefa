"""A server that echoes the Authorization header into its error body: the token reaches
no output, no stored message, no spool file."""

import gzip
import json
import sqlite3
import subprocess
import sys

from tests.servers import Reply, environ_without_qmonit

PANDA_TOKEN = "panda-token-echoed-4d2"
GRAFANA_TOKEN = "grafana-token-echoed-8e1"
PANDA = "/api/v1/statistics/job_stats_by_site_share_and_resource_type"


def qmonit(config, *args):
    env = {**environ_without_qmonit(), "QMONIT_PANDA_TOKEN": PANDA_TOKEN,
           "QMONIT_GRAFANA_TOKEN": GRAFANA_TOKEN}
    return subprocess.run([sys.executable, "-m", "qmonit", "-c", str(config), *args],
                          capture_output=True, text=True, env=env)


def test_an_echoed_token_is_masked_everywhere_it_could_leave(write_config, http, tmp_path):
    http.route(PANDA, Reply(500, "internal error; your request was:", echo=True))
    http.route("/api/folders/qmonit", Reply(500, '{"message": "db locked"}'))
    http.route("/api/search", Reply(401, "", echo=True))
    http.route("/api/dashboards/db", Reply(400, '{"message": "bad"}', echo=True))
    cfg = write_config({"panda": {"url": http.url}, "sources": {"enabled": "panda"},
                        "grafana": {"url": http.url}})
    outputs = {}
    for command in (["init"], ["check"], ["states", "test", "panda"],
                    ["run", "collect", "--at", "2026-11-21T12:00Z"],
                    ["dashboards", "push"]):
        done = qmonit(cfg, *command)
        outputs[" ".join(command)] = done.stdout + done.stderr
    # the servers did get the tokens, and did echo them
    assert http.hits(PANDA)[0].headers["Authorization"] == f"Bearer {PANDA_TOKEN}"
    assert any(r.headers.get("Authorization") == f"Bearer {GRAFANA_TOKEN}"
               for r in http.requests if r.path.startswith("/api/"))
    assert "Bearer ***" in outputs["check"]
    assert "Bearer ***" in outputs["states test panda"]
    for command, text in outputs.items():
        assert PANDA_TOKEN not in text and GRAFANA_TOKEN not in text, command
    data = tmp_path / "data"
    with sqlite3.connect(data / "qmonit.sqlite") as conn:
        stored = [row[0] for row in conn.execute("SELECT message FROM source_status")]
        stored += [row[0] for row in conn.execute("SELECT value FROM ts_points "
                                                  "WHERE typeof(value) = 'text'")] \
            if "ts_points" in {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master")} else []
    assert any("Bearer ***" in message for message in stored)
    assert not any(PANDA_TOKEN in message for message in stored)
    for spooled in data.glob("spool/**/*.gz"):
        with gzip.open(spooled, "rt") as handle:
            assert PANDA_TOKEN not in handle.read()
    assert json.dumps(outputs)


CUT_TOKEN = "QXTOKEN-7f3a9c1e2b5d"  # registered as [panda] token
LOOSE_TOKEN = "PANDATOKEN-0c4e8a17b9f2d3"  # registered nowhere: masked by its look
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def no_prefix_of(token: str, text: str) -> bool:
    """No piece of `token` from its start, 3 characters or longer, is in `text`."""
    return all(token[:length] not in text for length in range(3, len(token) + 1))


def test_a_traceback_with_a_token_is_masked_in_the_log_file(tmp_path):
    import logging
    import re

    from qmonit.support import logs
    log_file = tmp_path / "qmonit.log"
    logs.setup("INFO", str(log_file), [CUT_TOKEN])
    try:
        raise RuntimeError(f"HTTP 401: Authorization: Bearer {LOOSE_TOKEN} refused; "
                           f"token={CUT_TOKEN}")
    except RuntimeError:
        logging.getLogger("qmonit.collect.cycle").exception("source %s failed", "panda")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = log_file.read_text().splitlines()
    assert re.fullmatch(f"{TIMESTAMP} ERROR qmonit.collect.cycle: source panda failed", lines[0])
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: HTTP 401: Authorization: Bearer *** refused; token=***"
    assert no_prefix_of(LOOSE_TOKEN, log_file.read_text())
    assert no_prefix_of(CUT_TOKEN, log_file.read_text())


def test_a_token_across_the_cut_leaves_no_prefix_in_check_status_or_log(write_config, http,
                                                                        tmp_path):
    body = "e" * 195 + CUT_TOKEN + " " + "f" * (250 - 196 - len(CUT_TOKEN))
    assert len(body) == 250 and body.index(CUT_TOKEN) < 200 < body.index(CUT_TOKEN) + 20
    http.route(PANDA, Reply(500, body))
    log_file = tmp_path / "qmonit.log"
    cfg = write_config({"panda": {"url": http.url}, "sources": {"enabled": "panda"},
                        "logging": {"file": str(log_file)}})
    env = {**environ_without_qmonit(), "QMONIT_PANDA_TOKEN": CUT_TOKEN}
    done = {command: subprocess.run([sys.executable, "-m", "qmonit", "-c", str(cfg), *command],
                                    capture_output=True, text=True, env=env)
            for command in (("init",), ("check",), ("run", "collect", "--at",
                                                    "2026-11-21T12:00Z"))}
    reason = f"PanDA {http.url}{PANDA}: HTTP 500: " + "e" * 195 + "*** f"
    check = done[("check",)]
    assert f"FAILED: {reason}" in check.stdout, check.stdout + check.stderr
    assert done[("run", "collect", "--at", "2026-11-21T12:00Z")].returncode == 1
    with sqlite3.connect(tmp_path / "data" / "qmonit.sqlite") as conn:
        stored = dict(conn.execute("SELECT source, message FROM source_status "
                                   "WHERE job = 'collect'").fetchall())
    assert stored["panda"] == reason
    logged = log_file.read_text()
    assert f"source panda failed, nothing written for it: {reason}" in logged
    everything = logged + "".join(d.stdout + d.stderr for d in done.values()) + stored["panda"]
    assert no_prefix_of(CUT_TOKEN, everything)


def test_a_slurm_client_gets_no_qmonit_secret(write_config, tmp_path):
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name in ("squeue", "sinfo"):  # each dumps its environment and lists nothing
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nenv > {tmp_path}/{name}.env\n")
        script.chmod(0o700)
    cfg = write_config({"sources": {"enabled": "slurm"},
                        "slurm": {"bin_dir": str(bin_dir), "cluster": "t1"}})
    env = {**environ_without_qmonit(), "QMONIT_PANDA_TOKEN": PANDA_TOKEN,
           "QMONIT_GRAFANA_TOKEN": GRAFANA_TOKEN, "QMONIT_INFLUXDB_USERNAME": "writer",
           "QMONIT_INFLUXDB_PASSWORD": "influx-pw-5b0", "SITE_API_TOKEN": "site-token-1a9",
           "https_proxy": "http://proxyuser:proxy-pw-77@127.0.0.1:3128",
           "SLURM_CONF": str(tmp_path / "slurm.conf"), "HARMLESS_MARK": "kept-7"}
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(cfg), "states", "test",
                           "slurm"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("squeue", "sinfo"):
        dumped = (tmp_path / f"{name}.env").read_text()
        keys = {line.split("=", 1)[0] for line in dumped.splitlines() if "=" in line}
        assert {"QMONIT_PANDA_TOKEN", "QMONIT_GRAFANA_TOKEN", "QMONIT_INFLUXDB_USERNAME",
                "QMONIT_INFLUXDB_PASSWORD", "SITE_API_TOKEN", "https_proxy"} & keys == set()
        assert "HARMLESS_MARK=kept-7" in dumped.splitlines()
        assert f"SLURM_CONF={tmp_path / 'slurm.conf'}" in dumped.splitlines()
        for secret in (PANDA_TOKEN, GRAFANA_TOKEN, "influx-pw-5b0", "site-token-1a9",
                       "proxy-pw-77"):
            assert secret not in dumped


LOOKS_SECRET = [  # (text, what leaves) for credentials registered nowhere
    ("Authorization: Basic dXNlcjpwYXNzd29yZA== refused",
     "Authorization: Basic *** refused"),
    ("{'Authorization': 'Token influx-tok-55'}", "{'Authorization': 'Token ***'}"),
    ("echo: Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig", "echo: Bearer ***"),
    ("mysql+mysqlconnector://qmonit:db-pw-9@db.example:3306/q",
     "mysql+mysqlconnector://qmonit:***@db.example:3306/q"),
    ("GET /query?db=qmonit&p=influx-pw&u=w&token=abc123&q=1",
     "GET /query?db=qmonit&p=influx-pw&u=w&token=***&q=1"),
    ("QMONIT_INFLUXDB_PASSWORD=influx-pw-3 password=x1",
     "QMONIT_INFLUXDB_PASSWORD=*** password=***"),
    ('{"user": "w", "password": "a b c"}', '{"user": "w", "password": "***"}'),
    # kept: no credential in them
    ("a bearer token over http://panda.example", "a bearer token over http://panda.example"),
    ("http://influx.example:8086/write@x", "http://influx.example:8086/write@x"),
    ("Access denied for user 'w'@'h' (using password: YES)",
     "Access denied for user 'w'@'h' (using password: YES)"),
    ("max_tokens=5 timeout_s=10", "max_tokens=5 timeout_s=10"),
]


def test_what_looks_like_a_credential_is_masked_even_unregistered():
    from qmonit.support.redact import brief, redact

    for text, shown in LOOKS_SECRET:
        assert redact(text) == shown, text
        assert redact(shown) == shown, shown  # masking twice changes nothing
    assert brief("x" * 10 + "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig", 20) == "xxxxxxxxxxBearer ***"


def test_a_scheduler_client_environment_and_qmonits_own():
    from qmonit.support.redact import child_environment

    parent = {"PATH": "/usr/bin", "QMONIT_PANDA_TOKEN": "t-1", "QMONIT_CONFIG": "/etc/q.cfg",
              "BEARER_TOKEN": "t-2", "DB_PASSWORD": "p-1", "SLURM_CONF": "/etc/slurm.conf",
              "http_proxy": "http://u:p-2@proxy:3128", "LANG": "C.UTF-8"}
    assert child_environment(environ=parent) == {
        "PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm.conf", "LANG": "C.UTF-8"}
    # the daemon's `qmonit run` reads its secrets from the environment as the daemon did
    assert child_environment(qmonit_child=True, environ=parent) == parent
