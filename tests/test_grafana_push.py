"""`qmonit dashboards push` against a local HTTP server that records what Grafana would get."""

from __future__ import annotations

import json
from pathlib import Path

from qmonit.app import cli
from qmonit.core import config
from qmonit.grafana.build import Built
from qmonit.grafana.push import push_all
from qmonit.grafana.schema import problems
from tests.servers import Reply
from tests.test_grafana_schema import schema_faults

TOKEN = "glsa_Secret-Token-123"
UIDS = ["qmonit-batch", "qmonit-daod", "qmonit-factories", "qmonit-jobs", "qmonit-pipeline",
        "qmonit-suspicious"]


def saved(n: int) -> Reply:
    return Reply(200, json.dumps({"status": "success", "uid": UIDS[n], "version": n + 1,
                                  "url": f"/d/{UIDS[n]}/x"}))


def push(write_config, http, capsys, **grafana) -> tuple[int, str, str]:
    cfg = write_config({"sources": {"enabled": "simulated"},
                        "grafana": {"url": http.url, "token": TOKEN, **grafana}})
    code = cli.main(["-c", str(cfg), "dashboards", "push"])
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    return code, out, err


def test_push_creates_the_folder_and_uploads_every_dashboard(write_config, http, capsys):
    http.routes["/api/folders/qmonit"] = [Reply(404, '{"message": "folder not found"}')]
    http.routes["/api/folders"] = [Reply(200, '{"uid": "qmonit", "title": "QMonit"}')]
    http.routes["/api/dashboards/db"] = [saved(n) for n in range(6)]
    code, out, err = push(write_config, http, capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"pushed {title} to folder QMonit: /d/{uid}/x (version {n + 1})"
        for n, (title, uid) in enumerate(zip(
            ["Batch Clusters", "DAOD distribution", "Pilot Factories", "Jobs Monitoring",
             "Pipeline Health", "Suspicious Sites"], UIDS, strict=True))]
    methods = [(r.method, r.path) for r in http.requests]
    assert methods == [("GET", "/api/folders/qmonit"), ("POST", "/api/folders")] + \
        [("POST", "/api/dashboards/db")] * 6
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in http.requests)
    assert json.loads(http.requests[1].body) == {"uid": "qmonit", "title": "QMonit"}
    bodies = [json.loads(r.body) for r in http.requests[2:]]
    assert [b["dashboard"]["uid"] for b in bodies] == UIDS
    assert all(b["folderUid"] == "qmonit" and b["overwrite"] is True
               and "id" not in b["dashboard"] for b in bodies)  # Grafana goes by the uid
    assert bodies[3]["message"] == "qmonit dashboards push (jobs.dashboard.py)"


def test_an_existing_folder_is_used_and_overwrite_false_is_sent(write_config, http, capsys):
    http.routes["/api/folders/ops"] = [Reply(200, '{"uid": "ops", "title": "Ops"}')]
    http.routes["/api/dashboards/db"] = [saved(n) for n in range(6)]
    code, _, _ = push(write_config, http, capsys, folder="Ops", folder_uid="ops",
                      overwrite="false")
    assert code == 0
    assert [r.path for r in http.requests].count("/api/folders") == 0
    assert {json.loads(r.body)["overwrite"] for r in http.requests[1:]} == {False}


def test_a_refused_token_is_said_plainly_and_stops_the_push(write_config, http, capsys):
    http.routes["/api/folders/qmonit"] = [Reply(401, '{"message": "invalid API key"}')]
    code, out, err = push(write_config, http, capsys)
    assert code == 1 and out == ""
    assert err == ("qmonit dashboards push: folder QMonit: 401 unauthorised (Grafana: invalid "
                   "API key): the token was refused; check [grafana] token (or "
                   "QMONIT_GRAFANA_TOKEN) and that it has not expired\n")
    assert len(http.requests) == 1


def test_a_token_without_rights_on_the_folder_is_403(write_config, http, capsys):
    http.routes["/api/folders/qmonit"] = [Reply(200, "{}")]
    http.routes["/api/dashboards/db"] = [Reply(403, '{"message": "Access denied"}')]
    code, _, err = push(write_config, http, capsys)
    assert code == 1
    assert err == ("qmonit dashboards push: dashboard Batch Clusters: 403 forbidden (Grafana: "
                   "Access denied): the token may not write to folder QMonit; it needs the "
                   "Editor role on it\n")
    assert len(http.requests) == 2  # the other four would be refused the same way


def test_a_wrong_url_is_404_and_names_the_path_without_the_token(write_config, http, capsys):
    code, _, err = push(write_config, http, capsys)
    assert code == 1
    # The folder looks missing (404), so qmonit tries to create it: that 404 is the answer.
    assert err == (f"qmonit dashboards push: creating folder QMonit: 404 not found at "
                   f"{http.url}/api/folders: check [grafana] url (a Grafana served "
                   f"under a sub-path needs it in the URL)\n")


def test_a_dashboard_changed_in_grafana_is_412_and_the_others_still_go(write_config, http,
                                                                      capsys):
    http.routes["/api/folders/qmonit"] = [Reply(200, "{}")]
    conflict = Reply(412, '{"message": "The dashboard has been changed by someone else", '
                          '"status": "version-mismatch"}')
    http.routes["/api/dashboards/db"] = [saved(0), saved(1), conflict, saved(3), saved(4),
                                         saved(5)]
    code, out, err = push(write_config, http, capsys, overwrite="false")
    assert code == 1
    assert len(out.splitlines()) == 5
    assert err == ("qmonit dashboards push: dashboard Pilot Factories: 412 precondition failed "
                   "(version-mismatch): the dashboard was changed in Grafana since it was last "
                   "pushed; set [grafana] overwrite = true to replace it, or copy the change "
                   "into its .dashboard.py file\n")


def test_grafana_not_answering_and_no_url_configured(write_config, http, capsys):
    http.close()
    code, _, err = push(write_config, http, capsys)
    assert code == 1
    assert err.startswith(f"qmonit dashboards push: folder QMonit: Grafana at {http.url} ")
    cfg = write_config({"sources": {"enabled": "simulated"}})
    assert cli.main(["-c", str(cfg), "dashboards", "push"]) == 2  # usage: nothing tried
    assert capsys.readouterr().err == ("qmonit dashboards push: [grafana] url is empty: say "
                                       "where Grafana is (or use `qmonit dashboards build` "
                                       "and Grafana's provisioning)\n")


def test_what_push_sends_is_one_of_grafanas_schema_version_42(write_config, http, capsys):
    http.routes["/api/folders/qmonit"] = [Reply(200, "{}")]
    http.routes["/api/dashboards/db"] = [saved(n) for n in range(6)]
    code, _, err = push(write_config, http, capsys)
    assert code == 0, err
    sent = [json.loads(r.body)["dashboard"] for r in http.requests[1:]]
    assert [d["uid"] for d in sent] == UIDS
    for dashboard in sent:
        assert dashboard["schemaVersion"] == 42
        assert schema_faults(dashboard) == [], dashboard["uid"]  # Grafana's own model
        assert problems(dashboard) == []


def test_a_dashboard_not_of_schema_version_42_is_not_sent(write_config, http):
    http.routes["/api/folders/qmonit"] = [Reply(200, "{}")]
    http.routes["/api/dashboards/db"] = [saved(1)]
    old = Built("old", Path("old.dashboard.py"), {"uid": "old", "title": "Old",
                                                   "schemaVersion": 12, "rows": [],
                                                   "panels": []})
    current = Built("daod", Path("daod.dashboard.py"), {"uid": "qmonit-daod", "title": "DAOD",
                                                        "schemaVersion": 42, "panels": []})
    cfg = write_config({"sources": {"enabled": "simulated"}, "grafana": {"url": http.url}})
    report = push_all(config.load(str(cfg), environ={}).settings.grafana, [old, current])
    assert report.failed == [("Old", "dashboard Old: not sent, not a Grafana dashboard of "
                                     "schemaVersion 42: schemaVersion is 12, not 42 (and 1 more)")]
    assert report.pushed == [("DAOD", "/d/qmonit-daod/x", 2)]
    assert [json.loads(r.body)["dashboard"]["uid"] for r in http.requests
            if r.path == "/api/dashboards/db"] == ["qmonit-daod"]
