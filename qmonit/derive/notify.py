"""One digest per run of what opened and closed, by e-mail (SMTP) and webhook (Mattermost, Slack).

Never one message per series. Still-open critical alerts are repeated at most every
[notify] repeat_critical_hours. A notifier that fails is reported to the caller,
which records it; it never stops the derived data from being written.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from qmonit.core.settings import NotifySection
from qmonit.derive.incidents import group, split, worst
from qmonit.stores.state.alerts import Alert
from qmonit.support.http import describe_failure, make_session
from qmonit.support.redact import redact


@dataclass
class Digest:
    """What to tell, per alert (each is marked as told), rendered per incident: the alerts of
    one queue open, change and close as one (see incidents)."""

    slot: datetime
    opened: list[Alert] = field(default_factory=list)
    closed: list[Alert] = field(default_factory=list)
    repeated: list[Alert] = field(default_factory=list)
    open: list[Alert] = field(default_factory=list)  # every open alert, told or not

    def __bool__(self) -> bool:
        return bool(self.opened or self.closed or self.repeated)

    def sections(self) -> dict[str, list[str]]:
        """Opened, Updated, Closed and Still open (critical): one line per incident."""
        new = {a.id for a in self.opened}
        closing = {a.id for a in self.closed}
        told_open = {a.key[0] for a in self.open if a.id not in new and a.notified_open}
        still_open = {a.key[0] for a in self.open}
        out: dict[str, list[str]] = {"Opened": [], "Updated": [], "Closed": [],
                                     "Still open (critical)": []}
        for incident in group([*self.opened, *self.closed]):
            queue = incident.panda_queue
            opened = [a for a in incident.alerts if a.id in new]
            cleared = [a for a in incident.alerts if a.id in closing]
            if opened and queue not in told_open:
                line = describe(opened[0], worst(opened))
                if opened[1:]:
                    line += "; also " + "; ".join(_evidence(a) for a in opened[1:])
                out["Opened"].append(line)
            elif opened or queue in still_open:
                changes = [f"now also {_evidence(a)}" for a in opened]
                changes += [f"cleared {a.key[3]}{_split(a)}" for a in cleared]
                severity = worst(opened + [a for a in self.open if a.key[0] == queue])
                out["Updated"].append(f"[{severity}] {queue}: " + "; ".join(changes))
            if cleared and queue not in still_open:
                if len(cleared) == 1:
                    out["Closed"].append(describe(cleared[0]))
                else:
                    rules = ", ".join(f"{a.key[3]}{_split(a)}" for a in cleared)
                    since = min(a.opened_at for a in cleared)
                    until = max(a.closed_at for a in cleared if a.closed_at)
                    out["Closed"].append(f"[{worst(cleared)}] {queue}: {rules} "
                                         f"(since {since:%Y-%m-%d %H:%M}, closed {until:%H:%M})")
        for incident in group(self.repeated):
            line = describe(incident.principal, incident.severity)
            if incident.evidence:
                line += "; also " + "; ".join(_evidence(a) for a in incident.evidence)
            out["Still open (critical)"].append(line)
        return out

    @property
    def subject(self) -> str:
        counts = {title: len(lines) for title, lines in self.sections().items()}
        parts = []
        if counts["Opened"]:
            critical = sum(i.severity == "critical" for i in group(self.opened)
                           if i.panda_queue not in self._told_open())
            parts.append(f"{counts['Opened']} opened" + (f" ({critical} critical)"
                                                         if critical else ""))
        if counts["Updated"]:
            parts.append(f"{counts['Updated']} updated")
        if counts["Closed"]:
            parts.append(f"{counts['Closed']} closed")
        if counts["Still open (critical)"]:
            parts.append(f"{counts['Still open (critical)']} critical still open")
        return f"qmonit: {', '.join(parts)} at {self.slot:%Y-%m-%d %H:%M} UTC"

    def _told_open(self) -> set[str]:
        new = {a.id for a in self.opened}
        return {a.key[0] for a in self.open if a.id not in new and a.notified_open}

    def text(self) -> str:
        lines = [self.subject, ""]
        for title, entries in self.sections().items():
            if entries:
                lines.append(f"{title}:")
                lines.extend(f"  {entry}" for entry in entries)
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _split(alert: Alert) -> str:
    where = split(alert)
    return f" {where}" if where else ""


def _evidence(alert: Alert) -> str:
    return f"{alert.key[3]}{_split(alert)}: {alert.reason}"


def describe(alert: Alert, severity: str | None = None) -> str:
    """One alert in a line; `severity`: its incident's, where that is higher."""
    queue, _, _, rule = alert.key
    since = f"since {alert.opened_at:%Y-%m-%d %H:%M}"
    if alert.closed_at:
        since += f", closed {alert.closed_at:%H:%M}"
    elif alert.state() == "recovering":
        since += ", recovering: clean at its last cycle"
    elif alert.state() == "unjudged":
        as_of = f" since {alert.as_of:%H:%M}" if alert.as_of else ""
        since += f", unjudged{as_of}: its source is stale"
    layer = f"; likely layer {alert.layer}: {alert.layer_evidence}" if alert.layer else ""
    return (f"[{severity or alert.severity}] {rule} {queue}{_split(alert)}: {alert.reason}"
            f"{layer} ({since})")


def build_digest(candidates: list[Alert], slot: datetime, repeat_hours: float) -> Digest:
    digest = Digest(slot, open=[a for a in candidates if a.closed_at is None])
    for alert in candidates:
        if alert.closed_at is not None:
            if alert.notified_open and not alert.notified_close:
                digest.closed.append(alert)
        elif not alert.notified_open:
            digest.opened.append(alert)
        elif alert.severity == "critical" and (
                alert.last_notified_at is None
                or slot - alert.last_notified_at >= timedelta(hours=repeat_hours)):
            digest.repeated.append(alert)
    return digest


class NotifyError(Exception):
    """A notifier could not deliver; the message names it and why, without secrets."""


def send_email(cfg: NotifySection, digest: Digest) -> None:
    message = EmailMessage()
    message["Subject"] = redact(digest.subject)
    message["From"] = cfg.email_from
    message["To"] = ", ".join(cfg.email_to)
    message.set_content(redact(digest.text()))
    where = f"SMTP {cfg.smtp_host}:{cfg.smtp_port}"
    try:
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_s) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"{where}: authentication failed ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{where}: {type(exc).__name__}: {exc}") from None


def send_webhook(cfg: NotifySection, digest: Digest,
                 session: requests.Session | None = None) -> None:
    url = cfg.webhook_url
    parts = urlsplit(url)
    where = f"webhook {parts.scheme}://{parts.hostname}"  # the path is the hook's secret
    session = session or make_session()
    try:
        response = session.post(url, json={"text": redact(digest.text()), "username": "qmonit"},
                                timeout=cfg.timeout_s)
    except requests.RequestException as exc:
        raise NotifyError(f"{where}: {describe_failure(exc, cfg.timeout_s)}") from None
    if response.status_code >= 300:
        raise NotifyError(f"{where}: HTTP {response.status_code}")


def notifiers(cfg: NotifySection) -> dict[str, Any]:
    """The configured notifiers by name."""
    out = {}
    if cfg.email_to:
        out["email"] = lambda digest: send_email(cfg, digest)
    if cfg.webhook_url:
        out["webhook"] = lambda digest: send_webhook(cfg, digest)
    return out
