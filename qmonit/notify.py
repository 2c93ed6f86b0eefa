"""One digest per run of what opened and closed, by e-mail (SMTP) and webhook (Mattermost, Slack).

Never one message per series. Still-open critical alerts are repeated at most every
[notify] repeat_critical_hours. A notifier that fails is reported to the caller,
which records it; it never stops the derived data from being written.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from qmonit.http import describe_failure, make_session
from qmonit.redact import redact
from qmonit.stores.alerts import Alert


@dataclass
class Digest:
    slot: datetime
    opened: list[Alert] = field(default_factory=list)
    closed: list[Alert] = field(default_factory=list)
    repeated: list[Alert] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.opened or self.closed or self.repeated)

    @property
    def subject(self) -> str:
        parts = []
        if self.opened:
            critical = sum(a.severity == "critical" for a in self.opened)
            parts.append(f"{len(self.opened)} opened" + (f" ({critical} critical)"
                                                         if critical else ""))
        if self.closed:
            parts.append(f"{len(self.closed)} closed")
        if self.repeated:
            parts.append(f"{len(self.repeated)} critical still open")
        return f"qmonit: {', '.join(parts)} at {self.slot:%Y-%m-%d %H:%M} UTC"

    def text(self) -> str:
        lines = [self.subject, ""]
        for title, alerts in (("Opened", self.opened), ("Closed", self.closed),
                              ("Still open (critical)", self.repeated)):
            if alerts:
                lines.append(f"{title}:")
                lines.extend(f"  {describe(a)}" for a in alerts)
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def describe(alert: Alert) -> str:
    queue, label, resource, rule = alert.key
    where = queue if (label, resource) == ("all", "all") else f"{queue} {label}/{resource}"
    since = f"since {alert.opened_at:%Y-%m-%d %H:%M}"
    if alert.closed_at:
        since += f", closed {alert.closed_at:%H:%M}"
    return f"[{alert.severity}] {rule} {where}: {alert.reason} ({since})"


def build_digest(candidates: list[Alert], slot: datetime, repeat_hours: float) -> Digest:
    digest = Digest(slot)
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


def send_email(cfg: Mapping[str, Any], digest: Digest) -> None:
    message = EmailMessage()
    message["Subject"] = redact(digest.subject)
    message["From"] = cfg["email_from"]
    message["To"] = ", ".join(cfg["email_to"])
    message.set_content(redact(digest.text()))
    where = f"SMTP {cfg['smtp_host']}:{cfg['smtp_port']}"
    try:
        with smtplib.SMTP(cfg["smtp_host"], cfg["smtp_port"], timeout=cfg["timeout_s"]) as smtp:
            if cfg["smtp_starttls"]:
                smtp.starttls(context=ssl.create_default_context())
            if cfg["smtp_username"]:
                smtp.login(cfg["smtp_username"], cfg["smtp_password"])
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"{where}: authentication failed ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{where}: {type(exc).__name__}: {exc}") from None


def send_webhook(cfg: Mapping[str, Any], digest: Digest,
                 session: requests.Session | None = None) -> None:
    url = cfg["webhook_url"]
    parts = urlsplit(url)
    where = f"webhook {parts.scheme}://{parts.hostname}"  # the path is the hook's secret
    session = session or make_session({})
    try:
        response = session.post(url, json={"text": redact(digest.text()), "username": "qmonit"},
                                timeout=cfg["timeout_s"])
    except requests.RequestException as exc:
        raise NotifyError(f"{where}: {describe_failure(exc, cfg['timeout_s'])}") from None
    if response.status_code >= 300:
        raise NotifyError(f"{where}: HTTP {response.status_code}")


def notifiers(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The configured notifiers by name."""
    out = {}
    if cfg["email_to"]:
        out["email"] = lambda digest: send_email(cfg, digest)
    if cfg["webhook_url"]:
        out["webhook"] = lambda digest: send_webhook(cfg, digest)
    return out
