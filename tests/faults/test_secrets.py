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
