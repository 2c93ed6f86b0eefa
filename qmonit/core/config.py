"""The INI configuration: one schema gives the defaults, the validation and config.cfg.example.

Every key can also be set from the environment as QMONIT_<SECTION>_<KEY>
(e.g. QMONIT_INFLUXDB_PASSWORD), which is how secrets are meant to arrive.
Validation happens before any I/O; every error names `[section] key`.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from qmonit.core.settings import Settings, section_name
from qmonit.core.states.rules import SOURCES as RULE_SETS

# The sources `[sources] enabled` may name: qmonit/sources/registry.py declares them (and
# qmonit/simulation/batch.py the simulated ones); this stage cannot import those, so the
# names are kept here and tests/test_registry.py fails when the lists differ.
SOURCE_NAMES = ("simulated", "simulated_batch", "panda", "harvester", "htcondor", "slurm")

ENV_PREFIX = "QMONIT_"


class ConfigError(Exception):
    """A configuration problem; the message names `[section] key`."""


@dataclass(frozen=True)
class Option:
    default: str
    help: str
    kind: str = "str"  # str | int | float | bool | url | path | list | choice
    choices: tuple[str, ...] = ()
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False  # must be more than 0


SCHEMA: dict[str, dict[str, Option]] = {
    "qmonit": {
        "data_dir": Option(
            "~/.local/share/qmonit",
            "Where the embedded database, the spool and the CRIC snapshot live.",
            "path",
        ),
    },
    "http": {
        "max_response_mb": Option(
            "128", "Largest answer read from any HTTP server (PanDA, Harvester, CRIC, DAOD, "
            "InfluxDB, Grafana), in MB, received and decoded alike: past it the exchange "
            "stops and the source fails, naming this key. ATLAS's largest answer, CRIC's "
            "pandaqueue dump, is tens of MB; a gzip bomb costs at most this much memory.",
            "float", positive=True),
    },
    "influxdb": {
        "url": Option(
            "",
            "InfluxDB base URL (v1 API: InfluxDB 1.x, 2.x, 3.x). Empty: use the embedded "
            "SQL time-series store in [sql] url instead.",
            "url",
        ),
        "database": Option("qmonit", "Database (1.x) or DBRP-mapped bucket (2.x/3.x)."),
        "username": Option("", "Basic-auth user; empty for none."),
        "password": Option("", "Basic-auth password.", secret=True),
        "token": Option("", "API token (InfluxDB 1.8+, 2.x, 3.x); used instead of a password.",
                        secret=True),
        "verify_tls": Option("true", "Check the server's TLS certificate.", "bool"),
        "ca_bundle": Option("", "CA bundle file for TLS verification; empty: system CAs.", "path"),
        "timeout_s": Option("10", "Longest one HTTP exchange (a write, a short query) may "
                            "take, seconds: a server that hangs or drips its answer is cut "
                            "off then.", "float", minimum=0.1),
        "query_timeout_s": Option("600", "Longest one aggregation query of the roll-ups and "
                                  "derive may take, seconds (an ATLAS hour takes ~60 s on the "
                                  "store path).", "float", minimum=0.1),
        "batch_size": Option("5000", "Lines per /write request.", "int", minimum=1),
        "write_threads": Option("2", "/write requests in flight at once: InfluxDB takes "
                                "batches on several cores while the next are encoded.", "int",
                                minimum=1),
        "gzip": Option("true", "Compress /write bodies.", "bool"),
        "retry_deadline_s": Option(
            "60", "Give up retrying one batch after this many seconds, then spool it.", "float",
            minimum=0,
        ),
        "retry_initial_s": Option("0.5", "First back-off, doubled on every retry.", "float",
                                  minimum=0),
        "retry_max_s": Option("8", "Longest back-off between two tries.", "float", minimum=0),
        "retention_10m": Option("30d", "Duration of the raw retention policy \"10m\".", "duration"),
        "retention_1h": Option("400d", "Duration of the hourly retention policy \"1h\".",
                               "duration"),
        "retention_1d": Option("INF", "Duration of the daily retention policy \"1d\".",
                               "duration"),
    },
    "sql": {
        "url": Option(
            "",
            "SQLAlchemy URL of the state store, e.g. "
            "mysql+mysqlconnector://qmonit@dbhost/qmonit. Empty: SQLite in data_dir.",
        ),
        "password": Option("", "Password added to [sql] url.", secret=True),
    },
    "panda": {
        "url": Option("", "PanDA server base URL, e.g. https://pandaserver.cern.ch:25443.", "url"),
        "api": Option("v1", "v1: /api/v1/statistics/...; legacy: /server/panda/... .", "choice",
                      choices=("v1", "legacy")),
        "time_window": Option("60", "Minutes over which final states (finished, failed, ...) "
                              "are counted.", "int", minimum=1),
        "token": Option("", "Bearer token (OIDC) for the PanDA API.", secret=True),
        "cert": Option("", "X.509 client certificate (or proxy) file.", "path"),
        "key": Option("", "X.509 client key file; empty if inside cert.", "path"),
        "verify_tls": Option("true", "Check the server's TLS certificate.", "bool"),
        "ca_bundle": Option("", "CA bundle (e.g. /etc/grid-security/certificates).", "path"),
        "timeout_s": Option("60", "Longest one HTTP exchange may take, seconds.", "float",
                            minimum=0.1),
    },
    "cric": {
        "url": Option("", "CRIC base URL, e.g. https://atlas-cric.cern.ch.", "url"),
        "token": Option("", "Bearer token for CRIC, if it needs one.", secret=True),
        "cert": Option("", "X.509 client certificate file.", "path"),
        "key": Option("", "X.509 client key file.", "path"),
        "verify_tls": Option("true", "Check the server's TLS certificate.", "bool"),
        "ca_bundle": Option("", "CA bundle file.", "path"),
        "timeout_s": Option("60", "Longest one HTTP exchange may take, seconds.", "float",
                            minimum=0.1),
        "max_snapshot_age_h": Option(
            "72", "Warn loudly when the cached CRIC snapshot in use is older than this.",
            "float", minimum=0,
        ),
    },
    "sources": {
        "enabled": Option("panda", "Comma-separated sources of the collect job: panda, "
                          "harvester, htcondor, slurm; simulated (PanDA and CRIC of a simulated "
                          "grid), simulated_batch (its Harvester, AutoPyFactory and Slurm).",
                          "list"),
        "simulated_seed": Option("1", "Seed of the simulated grid.", "int"),
        "simulated_scale": Option("small", "small (196 PanDA queues) or atlas (790).",
                                  "choice", choices=("small", "atlas")),
    },
    "collect": {
        "ended_jobs_days": Option("90", "Days batch_jobs_ended keeps a job that left the queue.",
                                  "float", minimum=0),
        "zero_fill_hours": Option(
            "48", "A series seen within this many hours but missing from a successful fetch "
            "is written as 0.", "float", minimum=0,
        ),
        "deadline_s": Option("300", "Longest a collect run may spend writing: past it, what is "
                             "left goes to the spool at once (the next run replays it), so a "
                             "slow store never makes the next slot's cron run wait.", "float",
                             minimum=1),
    },
    "derive": {
        "coverage_min": Option(
            "0.7", "A window with less than this share of its slots from successful cycles is "
            "insufficient: no average shown, no flag raised.", "float", minimum=0, maximum=1),
        "baseline_hours": Option("24", "Window of the robust baseline (median and quartiles) "
                                 "the drop and backlog rules compare with.", "int", minimum=1),
        "seasonal_days": Option("7", "Days of hourly counts kept per queue (queue_hourly) for "
                                "the time-of-day baseline of the drop and backlog rules; 0 "
                                "turns it off.", "int", minimum=0),
        "seasonal_min_days": Option("3", "The time-of-day baseline is used once this many of "
                                    "those days are covered (before, the baseline window's "
                                    "quartiles).", "int", minimum=1),
    },
    "suspicious": {
        "drop_min_baseline": Option("50", "drop: a queue whose running median is below this is "
                                    "never flagged (noise).", "float", minimum=0),
        "drop_relative": Option("0.5", "drop: running at least this share below its median.",
                                "float", minimum=0, maximum=1),
        "drop_absolute": Option("20", "drop: and at least this many jobs below it.", "float",
                                minimum=0),
        "drop_spread": Option("2", "drop/backlog: and beyond this many standard deviations "
                              "from the median, the noise read robustly from the quartiles on "
                              "the side the anomaly does not touch.", "float", minimum=0),
        "drop_critical": Option("0.9", "drop: critical when running is this share below its "
                                "median.", "float", minimum=0, maximum=1),
        "starving_min_activated": Option("50", "starving: activated jobs waiting at least.",
                                         "float", minimum=0),
        "starving_running_ratio": Option("0.05", "starving: while running is below this share "
                                         "of activated.", "float", minimum=0, maximum=1),
        "failing_ratio": Option("0.5", "failing: failed / (finished + failed) above this.",
                                "float", minimum=0, maximum=1),
        "failing_critical": Option("0.8", "failing: critical above this ratio.", "float",
                                   minimum=0, maximum=1),
        "failing_min_ended": Option("20", "failing: only with at least this many ended jobs.",
                                    "float", minimum=0),
        "backlog_factor": Option("3", "backlog: assigned or transferring above this multiple of "
                                 "its median.", "float", minimum=0),
        "backlog_absolute": Option("100", "backlog: and at least this many jobs above it.",
                                   "float", minimum=0),
        "stale_min_jobs": Option("20", "stale: a queue that stopped reporting is flagged when "
                                 "its median of all jobs was at least this.", "float", minimum=0),
        "stale_critical_jobs": Option("500", "stale: critical when the queue that stopped "
                                      "reporting had at least this many jobs on average (a "
                                      "big queue gone silent).", "float", minimum=0),
        "open_cycles": Option("2", "A flag opens when this many of the last window_cycles "
                              "cycles violate.", "int", minimum=1),
        "window_cycles": Option("3", "See open_cycles.", "int", minimum=1),
        "close_cycles": Option("3", "An open flag closes after this many clean cycles in a row.",
                               "int", minimum=1),
    },
    "notify": {
        "email_to": Option("", "Comma-separated recipients of the digest; empty: no e-mail.",
                           "list"),
        "email_from": Option("qmonit@localhost", "Sender address."),
        "smtp_host": Option("localhost", "SMTP server."),
        "smtp_port": Option("25", "SMTP port.", "int", minimum=1),
        "smtp_starttls": Option("false", "Use STARTTLS.", "bool"),
        "smtp_username": Option("", "SMTP user; empty: no authentication."),
        "smtp_password": Option("", "SMTP password.", secret=True),
        "webhook_url": Option("", "Incoming-webhook URL (Mattermost, Slack); empty: none.",
                              "url", secret=True),
        "repeat_critical_hours": Option("6", "Repeat a still-open critical alert at most this "
                                        "often.", "float", minimum=0),
        "timeout_s": Option("20", "Timeout for SMTP and webhook, seconds.", "float",
                            minimum=0.1),
    },
    "states": {
        source: Option("", f"Rule file replacing the built-in {source} state rules "
                       f"(`qmonit states show {source}` prints them); empty: built in.", "path")
        for source in RULE_SETS
    },
    "slurm": {
        "cluster": Option("slurm", "Cluster name, the `cluster` tag."),
        "backend": Option("cli", "cli: squeue/sinfo; pyslurm: the Python bindings (imported "
                          "only then; they must match the Slurm version).", "choice",
                          choices=("cli", "pyslurm")),
        "format": Option("text", "cli backend: text (squeue -O, cheap on large queues) or json "
                         "(squeue --json, Slurm 21.08+).", "choice", choices=("text", "json")),
        "bin_dir": Option("", "Directory of squeue and sinfo; empty: the PATH.", "path"),
        "timeout_s": Option("60", "Longest wait for one Slurm command, seconds.", "float",
                            minimum=0.1),
        "agent_queue_warning": Option(
            "1000", "slurmctld's agent queue (messages waiting to go out to the nodes, sdiag) "
            "from which `qmonit status` warns: a controller that cannot reach its nodes.",
            "int", minimum=1),
        "cycle_warning_s": Option(
            "120", "A main scheduling or backfill cycle at least this long, seconds, makes "
            "`qmonit status` warn: a controller too slow to start jobs.", "float",
            positive=True),
        "atlas_sites": Option(
            "", "The ATLAS sites (CRIC atlas_site) whose PanDA queues run their pilots on "
            "this cluster: an incident of theirs at the batch/site layer names the "
            "cluster's state as evidence.", "list"),
    },
    "htcondor": {
        "cluster": Option("htcondor", "Pool name, the `cluster` tag."),
        "collector": Option("", "Collector host[:port] that locates the schedds; empty: the "
                            "local pool's."),
        "schedds": Option("", "Comma-separated schedd names; empty: every schedd the "
                          "collector knows.", "list"),
        "group_by": Option("Owner, AccountingGroup, x509UserProxyVOName",
                           "Job attributes counts are grouped by (Owner -> owner, "
                           "AccountingGroup -> group, x509UserProxyVOName -> vo).", "list"),
        "factory_schedds": Option("", "Schedds that are AutoPyFactory factories: their pilots "
                                  "also go to `workers`, with done and fault in the last hour.",
                                  "list"),
        "label_attribute": Option("MATCH_APF_QUEUE", "Pilot attribute holding the factory's "
                                  "queue label (the panda_queue)."),
        "timeout_s": Option("60", "Longest wait for one schedd query, seconds.", "float",
                            minimum=0.1),
        "duty_cycle_warning": Option(
            "0.95", "A schedd or negotiator busy this share of its time "
            "(RecentDaemonCoreDutyCycle) makes `qmonit status` warn: it drops work.",
            "float", positive=True),
        "atlas_sites": Option(
            "", "The ATLAS sites (CRIC atlas_site) whose PanDA queues run their pilots in "
            "this pool: an incident of theirs at the batch/site layer names the pool's "
            "state as evidence.", "list"),
    },
    "downsample": {
        "mode": Option("auto", "server: InfluxDB 1.x SELECT ... INTO; client: query the aggregates "
                       "and write them (InfluxDB 2.x/3.x, the embedded store); auto: server on "
                       "InfluxDB 1.x, client elsewhere.", "choice",
                       choices=("auto", "server", "client")),
        "max_hourly_windows": Option("72", "At most this many hours rolled up per run and "
                                     "measurement; a longer gap is caught up over several runs.",
                                     "int", minimum=1),
        "max_daily_windows": Option("31", "At most this many days rolled up per run and "
                                    "measurement.", "int", minimum=1),
        "buffer": Option("true", "With InfluxDB: keep the raw values of the hours not yet "
                         "rolled up in <data_dir>/rollup-buffer.sqlite, so the hourly job need "
                         "not read them back from the store (an ATLAS-scale hour: seconds, not "
                         "half a minute). Set false where more than one qmonit installation "
                         "writes into the same database.", "bool"),
        "buffer_hours": Option("12", "Hours the buffer keeps when the hourly job does not run; "
                               "older hours are then rolled up from the store.", "int",
                               minimum=2),
    },
    "grafana": {
        "url": Option("", "Grafana base URL for `qmonit dashboards push`, e.g. "
                      "https://grafana.example.org.", "url"),
        "token": Option("", "Grafana service-account token (Editor on the folder).", secret=True),
        "folder": Option("QMonit", "Folder the dashboards go into; created when missing."),
        "folder_uid": Option("qmonit", "The folder's uid."),
        "overwrite": Option("true", "Replace a dashboard changed in Grafana since the last "
                            "push; false: refuse (412) and say so.", "bool"),
        "verify_tls": Option("true", "Check Grafana's TLS certificate.", "bool"),
        "ca_bundle": Option("", "CA bundle file for TLS verification; empty: system CAs.", "path"),
        "timeout_s": Option("30", "Longest one HTTP exchange may take, seconds.", "float",
                            minimum=0.1),
        "dashboards_dir": Option("", "Where the *.dashboard.py files are; empty: the dashboards/ "
                                 "directory next to the qmonit package.", "path"),
        "influxdb_datasource": Option("qmonit-influxdb", "uid of the InfluxDB datasource the "
                                      "panels use (provisioned by `dashboards build`)."),
        "sql_datasource": Option("qmonit-mysql", "uid of the MySQL datasource the panels use."),
        "sql_reader_user": Option("", "MySQL/MariaDB account Grafana reads with (SELECT on the "
                                  "dashboards' tables only; `qmonit init` creates it); never "
                                  "the [sql] url user."),
        "sql_reader_password": Option("", "Password of [grafana] sql_reader_user.", secret=True),
        "influxdb_reader_user": Option("", "InfluxDB account Grafana reads with (READ on the "
                                       "database only); never the [influxdb] username."),
        "influxdb_reader_password": Option("", "Password of [grafana] influxdb_reader_user.",
                                           secret=True),
        "raw_up_to": Option("2d", "Time ranges up to this read the raw \"10m\" data.",
                            "duration"),
        "hourly_up_to": Option("62d", "Longer ranges up to this read \"1h\"; longer still "
                               "read \"1d\".", "duration"),
    },
    "spool": {
        "dir": Option("", "Spool directory; empty: data_dir/spool.", "path"),
        "max_mb": Option("512", "Size cap of the spool; past it new points are refused, "
                         "loudly.", "float", minimum=0, positive=True),
    },
    "datadisk": {
        "url": Option("", "The `datadisk` job's search endpoint for the Rucio accounting "
                      "index: Elasticsearch/OpenSearch itself, or Grafana's datasource proxy "
                      "(https://monit-grafana.cern.ch/api/datasources/proxy/ID); _msearch is "
                      "appended. Empty: the job has nothing to do (the simulated grid "
                      "serves its own placement).", "url"),
        "token": Option("", "Bearer token (a Grafana API key through the proxy).",
                        secret=True),
        "verify_tls": Option("true", "Check the server's TLS certificate.", "bool"),
        "ca_bundle": Option("", "CA bundle file.", "path"),
        "timeout_s": Option("120", "Longest the search may take, seconds.", "float",
                            minimum=0.1),
        "index": Option("monit_prod_rucioacc_enr_site*", "Index pattern searched.", "str"),
        "window_h": Option("24", "Accounting documents of this many hours before the job "
                           "are summed (the index holds one snapshot a day).", "float",
                           positive=True),
        "datatype": Option("DAOD", "Datatype counted.", "str"),
        "time_field": Option("metadata.timestamp", "The documents' time field.", "str"),
        "datatype_field": Option("data.datatype", "Field holding the datatype.", "str"),
        "rse_field": Option("data.rse", "Field holding the RSE name.", "str"),
        "files_field": Option("data.files", "Field holding a document's file count.", "str"),
        "bytes_field": Option("data.bytes", "Field holding a document's bytes.", "str"),
    },
    "daemon": {
        "cycle_minute": Option("1", "`qmonit daemon`: collect then derive every 10 minutes at "
                               "this minute of each slot (0-9, UTC), as cron's 1-59/10.", "int",
                               minimum=0, maximum=9),
        "hourly_minute": Option("7", "The hourly roll-up at this minute of every hour (UTC).",
                                "int", minimum=0, maximum=59),
        "daily_minute": Option("17", "The daily roll-up at 00:MM UTC.", "int", minimum=0,
                               maximum=59),
        "lease_ttl_s": Option("60", "The leader's lease in the SQL state store lasts this long "
                              "and is renewed every third of it; a standby daemon (a second "
                              "host on the same stores) takes over once it lapses.", "float",
                              minimum=5),
        "stop_grace_s": Option("120", "On SIGTERM/SIGINT, how long a running job may go on "
                               "before it is stopped.", "float", minimum=0),
    },
    "logging": {
        "level": Option("INFO", "DEBUG, INFO, WARNING or ERROR.", "choice",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        "file": Option("", "Log file; empty: standard error.", "path"),
    },
}

_BOOLS = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}


def parse_duration(text: str) -> str:
    """Check an InfluxQL duration (e.g. 30d, 400d, 12h, INF) and return it normalised."""
    if text.upper() == "INF":
        return "INF"
    if not re.fullmatch(r"(\d+(w|d|h|m|s))+", text):
        raise ValueError("is not a duration like 30d, 12h, 1w or INF")
    return text


_UNIT_S = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(duration: str) -> float:
    """Seconds in a validated duration; INF is infinite."""
    if duration == "INF":
        return float("inf")
    return float(sum(int(n) * _UNIT_S[unit] for n, unit in re.findall(r"(\d+)(\w)", duration)))


def _convert(opt: Option, raw: str, base_dir: Path) -> Any:
    raw = raw.strip()
    if opt.kind == "bool":
        if raw.lower() not in _BOOLS:
            raise ValueError("must be true or false")
        return _BOOLS[raw.lower()]
    if opt.kind in ("int", "float"):
        number: float = int(raw) if opt.kind == "int" else float(raw)
        if opt.minimum is not None and number < opt.minimum:
            raise ValueError(f"must be at least {opt.minimum:g}")
        if opt.maximum is not None and number > opt.maximum:
            raise ValueError(f"must be at most {opt.maximum:g}")
        if opt.positive and number <= 0:
            raise ValueError("must be more than 0")
        return number
    if opt.kind == "choice":  # `debug` is DEBUG: a choice's case carries no meaning
        chosen = [choice for choice in opt.choices if choice.lower() == raw.lower()]
        if not chosen:
            raise ValueError(f"must be one of {', '.join(opt.choices)}")
        return chosen[0]
    if opt.kind == "list":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if opt.kind == "url":
        if raw and urlsplit(raw).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return raw.rstrip("/")
    if opt.kind == "path":
        if not raw:
            return ""
        path = Path(os.path.expanduser(raw))
        return str(path if path.is_absolute() else base_dir / path)
    if opt.kind == "duration":
        return parse_duration(raw)
    return raw


class Config:
    """Validated settings, typed by section: `cfg.settings.influxdb.url` (core/settings.py)."""

    def __init__(self, values: Mapping[str, Mapping[str, Any]], path: str | None = None):
        self._values = {section: dict(keys) for section, keys in values.items()}
        self.path = path
        self.settings = Settings.of(self._values)  # the same values, typed

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.qmonit.data_dir)

    @property
    def spool_dir(self) -> Path:
        return Path(self.settings.spool.dir or self.data_dir / "spool")

    def replaced(self, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
        """A copy with some values replaced (already converted: no check is made)."""
        values = {section: {**keys, **overrides.get(section, {})}
                  for section, keys in self._values.items()}
        return Config(values, self.path)

    @property
    def sql_url(self) -> str:
        return self.settings.sql.url or f"sqlite:///{self.data_dir / 'qmonit.sqlite'}"

    def secrets(self) -> list[str]:
        """Every secret value in force, for redaction from logs and messages."""
        return [
            str(self._values[section][key])
            for section, keys in SCHEMA.items()
            for key, opt in keys.items()
            if opt.secret and self._values[section][key]
        ]


def load(
    path: str | None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Read, merge with the environment, and validate. Raises ConfigError; does no network I/O."""
    environ = os.environ if environ is None else environ
    parser = configparser.ConfigParser(interpolation=None)
    base_dir = Path.cwd()
    if path:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"{path}: no such configuration file")
        untrusted = trust_errors(file, "a configuration")
        if untrusted:
            raise ConfigError(untrusted[0])
        try:
            with file.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid INI file: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror}); qmonit runs as "
                              f"{_user()}") from None
        base_dir = file.resolve().parent
        mode = file.stat().st_mode
        if warn and mode & (stat.S_IRGRP | stat.S_IROTH):
            warn(f"{path} is readable by users other than its owner "
                 f"(mode {stat.filemode(mode)}); it may hold secrets: chmod 600 {path}")
    errors: list[str] = []
    for section in parser.sections():
        if section not in SCHEMA:
            errors.append(f"[{section}]: unknown section{_did_you_mean(section, SCHEMA)} "
                          f"(known: {', '.join(SCHEMA)})")
            continue
        for key in parser[section]:
            if key not in SCHEMA[section]:
                errors.append(f"[{section}] {key}: unknown key"
                              f"{_did_you_mean(key, SCHEMA[section])}")
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX):
            errors.extend(_unknown_env_key(name))
    values: dict[str, dict[str, Any]] = {}
    for section, options in SCHEMA.items():
        values[section] = {}
        for key, opt in options.items():
            env_name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            raw = environ.get(env_name)
            origin = env_name
            if raw is None:
                raw = parser.get(section, key, fallback=opt.default)
                origin = f"[{section}] {key}"
            try:
                values[section][key] = _convert(opt, raw, base_dir)
            except ValueError as exc:
                shown = "(hidden)" if opt.secret else repr(raw)
                errors.append(f"{origin} = {shown}: {exc}")
    if not errors:
        errors.extend(_cross_checks(values))
    if errors:
        where = path or "configuration"
        raise ConfigError(f"{where}: " + "; ".join(errors))
    if warn:
        for warning in _cleartext_warnings(values):
            warn(warning)
    return Config(values, path)


def trust_errors(path: str | Path, what: str) -> list[str]:
    """A file or directory that decides what qmonit runs and where its secrets go (the
    configuration, rule files, dashboards, [slurm] bin_dir) must be changeable by its owner
    alone, and that owner must be root or the user qmonit runs as. [] when it can be
    trusted or does not exist (its absence is reported where it is used)."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return [f"{path}: writable by group or others (mode {stat.filemode(info.st_mode)}); "
                f"qmonit refuses {what} others can change: chmod go-w {path}"]
    if info.st_uid not in (0, os.geteuid()):
        user = _user()
        return [f"{path}: owned by {_owner(info.st_uid)} (uid {info.st_uid}), neither root nor "
                f"{user} who runs qmonit; qmonit refuses {what} another user can change: "
                f"chown {user} {path}"]
    return []


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _trusted_paths_errors(values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    errors = []
    for source, path in values["states"].items():
        errors += [f"[states] {source}: {e}" for e in trust_errors(path, "a rule file") if path]
    if values["slurm"]["bin_dir"]:
        errors += [f"[slurm] bin_dir: {e}"
                   for e in trust_errors(values["slurm"]["bin_dir"], "a directory of commands")]
    boards = values.get("grafana", {}).get("dashboards_dir", "")
    if boards:
        errors += [f"[grafana] dashboards_dir: {e}"
                   for e in trust_errors(boards, "a directory of dashboard code")]
        if Path(boards).is_dir():
            for code in sorted(Path(boards).glob("*.py")):  # `dashboards build` executes them
                errors += [f"[grafana] dashboards_dir: {e}"
                           for e in trust_errors(code, "dashboard code")]
    return errors


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _cleartext_warnings(values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Secrets that would cross the network unencrypted: a warning, not a refusal (a test
    server, a trusted LAN); the loopback never leaves the host."""
    warnings = []
    for section, keys in (("influxdb", ("token", "password")), ("panda", ("token",)),
                          ("cric", ("token",)), ("datadisk", ("token",)),
                          ("grafana", ("token",))):
        url = values.get(section, {}).get("url", "")
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname in _LOOPBACK:
            continue
        for key in keys:
            if values[section][key]:
                warnings.append(f"[{section}] {key} is sent in clear text: [{section}] url is "
                                f"http://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
                                f", not https://")
    notify = values["notify"]
    if (notify["smtp_username"] and not notify["smtp_starttls"]
            and notify["smtp_host"] not in _LOOPBACK):
        warnings.append(f"[notify] smtp_password is sent in clear text to "
                        f"{notify['smtp_host']}:{notify['smtp_port']}: [notify] smtp_username "
                        f"is set but smtp_starttls is false; set smtp_starttls = true")
    return warnings


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _unknown_env_key(name: str) -> list[str]:
    """An environment variable named for a section but for no key of it: a typo that would
    otherwise leave the default (often a secret that never arrives) in force."""
    rest = name[len(ENV_PREFIX):].lower()
    for section in sorted(SCHEMA, key=len, reverse=True):
        if rest.startswith(f"{section}_"):
            key = rest[len(section) + 1:]
            if key not in SCHEMA[section]:
                return [f"{name}: no such key [{section}] {key}"
                        f"{_did_you_mean(key, SCHEMA[section])} (known: "
                        f"{', '.join(SCHEMA[section])})"]
            return []
    return []


def settings_in(environ: Mapping[str, str]) -> list[str]:
    """The QMONIT_<SECTION>_<KEY> variables of `environ` (not QMONIT_CONFIG and the like)."""
    return sorted(name for name in environ if name.startswith(ENV_PREFIX) and any(
        name[len(ENV_PREFIX):].lower().startswith(f"{section}_") for section in SCHEMA))


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean `x`?)` for the closest known name, or nothing."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


MYSQL_DRIVER = "mysql+mysqlconnector"  # the driver qmonit installs (mysql-connector-python)


def _sql_url(values: dict[str, dict[str, Any]]) -> list[str]:
    """Check [sql] url, and write MySQL and MariaDB URLs with the driver qmonit installs:
    `mysql://` (what most people type) would ask SQLAlchemy for MySQLdb, which is not here."""
    url, password = values["sql"]["url"], values["sql"]["password"]
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url or "sqlite://")
    except ArgumentError:
        return ["[sql] url: not a database URL such as "
                "mysql+mysqlconnector://user@host/qmonit or sqlite:////path/qmonit.sqlite"]
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb"):
        values["sql"]["url"] = parsed.set(drivername=MYSQL_DRIVER).render_as_string(
            hide_password=False)
        return []
    if backend != "sqlite":
        return [f"[sql] url: {backend} is not supported (MySQL/MariaDB or SQLite)"]
    if password:  # an SQLite URL takes no password: it would fail every command
        return ["[sql] password (or QMONIT_SQL_PASSWORD) is set but the state store is SQLite "
                f"({'[sql] url' if url else 'the default in data_dir'}), which has no "
                "password: unset it, or set [sql] url to a MySQL/MariaDB URL"]
    return []


def _cross_checks(values: dict[str, dict[str, Any]]) -> list[str]:
    errors = _sql_url(values)
    log_file = values["logging"]["file"]
    if log_file and not Path(log_file).parent.is_dir():
        errors.append(f"[logging] file: directory {Path(log_file).parent} does not exist")
    known_sources = SOURCE_NAMES
    for name in values["sources"]["enabled"]:
        if name not in known_sources:
            errors.append(f"[sources] enabled: unknown source {name!r} "
                          f"(known: {', '.join(known_sources)})")
    if {"panda", "simulated"} <= set(values["sources"]["enabled"]):
        errors.append("[sources] enabled: panda and simulated both feed `jobs`; choose one")
    for name in ("panda", "harvester"):
        if name in values["sources"]["enabled"] and not values["panda"]["url"]:
            errors.append(f"[panda] url: required because [sources] enabled lists {name}")
    if values["slurm"]["backend"] == "pyslurm" and values["slurm"]["format"] == "json":
        errors.append("[slurm] format: json applies to the cli backend only")
    untrusted = _trusted_paths_errors(values)
    errors.extend(untrusted)
    if not untrusted:
        errors.extend(_rule_file_errors(values["states"]))
    influx = values["influxdb"]
    if influx["token"] and (influx["username"] or influx["password"]):
        errors.append("[influxdb] token: set either token or username/password, not both")
    if influx["password"] and not influx["username"]:
        errors.append("[influxdb] username: required when a password is set")
    flags = values["suspicious"]
    if flags["open_cycles"] > flags["window_cycles"]:
        errors.append("[suspicious] open_cycles: cannot exceed [suspicious] window_cycles")
    for section in ("panda", "cric"):
        if values[section]["key"] and not values[section]["cert"]:
            errors.append(f"[{section}] cert: required when [{section}] key is set")
    return errors


def _rule_file_errors(paths: Mapping[str, str]) -> list[str]:
    """A configured rule file with a mistake stops qmonit at start, naming line and reason."""
    from qmonit.core.states.rules import RuleError, load_rules

    errors = []
    for source, path in paths.items():
        if path:
            try:
                load_rules(source, path)
            except RuleError as exc:
                errors.append(f"[states] {source}: {exc}")
    return errors


def example_text() -> str:
    """The text of config.cfg.example, generated from SCHEMA so the two cannot drift."""
    lines = [
        "# qmonit configuration. Every key shows its default; uncomment to change it.",
        "# Any key can also come from the environment as QMONIT_<SECTION>_<KEY>,",
        "# e.g. QMONIT_INFLUXDB_PASSWORD: the way to pass secrets.",
        "# Copy this file to config.cfg and edit it (`qmonit config example` writes it anew",
        "# from the schema of the qmonit installed).",
    ]
    for section, options in SCHEMA.items():
        lines += ["", f"[{section}]"]
        for key, opt in options.items():
            note = " Secret: prefer the environment." if opt.secret else ""
            lines.append(f"# {opt.help}{note}")
            lines.append(f"#{key} = {opt.default}")
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """The README's configuration reference table, generated from SCHEMA."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for section, options in SCHEMA.items():
        for key, opt in options.items():
            default = f"`{opt.default}`" if opt.default else "(empty)"
            env = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            secret = f" **Secret**: set `{env}`." if opt.secret else ""
            lines.append(f"| `[{section}] {key}` | {default} | {opt.help}{secret} |")
    return "\n".join(lines) + "\n"


def defaults(overrides: Mapping[str, Mapping[str, str]] | None = None) -> Config:
    """A validated Config from the defaults plus text overrides, with no file and no env."""
    parser_values = {s: {k: o.default for k, o in keys.items()} for s, keys in SCHEMA.items()}
    for section, keys in (overrides or {}).items():
        parser_values[section].update(keys)
    values = {
        s: {k: _convert(SCHEMA[s][k], v, Path.cwd()) for k, v in keys.items()}
        for s, keys in parser_values.items()
    }
    errors = _cross_checks(values)
    if errors:
        raise ConfigError("; ".join(errors))
    return Config(values)


SectionT = TypeVar("SectionT")


def default_section(cls: type[SectionT], **values: Any) -> SectionT:
    """A section of its defaults, some `values` (already converted) replacing them: a source
    or store built without a configuration file (the simulation, tests)."""
    name = section_name(cls)
    made = {key: _convert(opt, opt.default, Path.cwd()) for key, opt in SCHEMA[name].items()}
    return cls(**{**made, **values})
