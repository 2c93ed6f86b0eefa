"""The configuration as typed sections: `cfg.settings.slurm.timeout_s` is a float, checked
by mypy where it is read, instead of `cfg.settings.slurm.timeout_s` as Any.

One frozen class per section of qmonit/core/config.py SCHEMA, a field per key, typed by the
key's kind (str, url, path, choice and duration: str; list: a tuple of str); the values are
the validated ones `config.load` made. tests/test_settings.py fails when a section or key of
SCHEMA has no field here, or a field's type does not match its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB, HttpClient


@dataclass(frozen=True, slots=True)
class QmonitSection:
    """[qmonit]: qmonit/core/config.py SCHEMA says what each key means."""

    data_dir: str


@dataclass(frozen=True, slots=True)
class HttpSection:
    """[http]: qmonit/core/config.py SCHEMA says what each key means."""

    max_response_mb: float


@dataclass(frozen=True, slots=True)
class InfluxdbSection:
    """[influxdb]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    database: str
    username: str
    password: str
    token: str
    verify_tls: bool
    ca_bundle: str
    timeout_s: float
    query_timeout_s: float
    batch_size: int
    write_threads: int
    gzip: bool
    retry_deadline_s: float
    retry_initial_s: float
    retry_max_s: float
    retention_10m: str
    retention_1h: str
    retention_1d: str

    def retentions(self) -> dict[str, str]:
        """Each retention policy's duration (store.init)."""
        return {"10m": self.retention_10m, "1h": self.retention_1h, "1d": self.retention_1d}

    def client(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> HttpClient:
        return HttpClient(self.timeout_s, max_response_mb, self.verify_tls, self.ca_bundle)


@dataclass(frozen=True, slots=True)
class SqlSection:
    """[sql]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    password: str


@dataclass(frozen=True, slots=True)
class PandaSection:
    """[panda]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    api: str
    time_window: int
    token: str
    cert: str
    key: str
    verify_tls: bool
    ca_bundle: str
    timeout_s: float

    def client(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> HttpClient:
        return HttpClient(self.timeout_s, max_response_mb, self.verify_tls, self.ca_bundle,
                          self.token, cert=self.cert, key=self.key)


@dataclass(frozen=True, slots=True)
class CricSection:
    """[cric]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    token: str
    cert: str
    key: str
    verify_tls: bool
    ca_bundle: str
    timeout_s: float
    max_snapshot_age_h: float

    def client(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> HttpClient:
        return HttpClient(self.timeout_s, max_response_mb, self.verify_tls, self.ca_bundle,
                          self.token, cert=self.cert, key=self.key)


@dataclass(frozen=True, slots=True)
class SourcesSection:
    """[sources]: qmonit/core/config.py SCHEMA says what each key means."""

    enabled: tuple[str, ...]
    simulated_seed: int
    simulated_scale: str


@dataclass(frozen=True, slots=True)
class CollectSection:
    """[collect]: qmonit/core/config.py SCHEMA says what each key means."""

    ended_jobs_days: float
    zero_fill_hours: float
    deadline_s: float


@dataclass(frozen=True, slots=True)
class DeriveSection:
    """[derive]: qmonit/core/config.py SCHEMA says what each key means."""

    coverage_min: float
    baseline_hours: int
    seasonal_days: int
    seasonal_min_days: int


@dataclass(frozen=True, slots=True)
class SuspiciousSection:
    """[suspicious]: qmonit/core/config.py SCHEMA says what each key means."""

    drop_min_baseline: float
    drop_relative: float
    drop_absolute: float
    drop_spread: float
    drop_critical: float
    starving_min_activated: float
    starving_running_ratio: float
    failing_ratio: float
    failing_critical: float
    failing_min_ended: float
    backlog_factor: float
    backlog_absolute: float
    stale_min_jobs: float
    stale_critical_jobs: float
    open_cycles: int
    window_cycles: int
    close_cycles: int


@dataclass(frozen=True, slots=True)
class NotifySection:
    """[notify]: qmonit/core/config.py SCHEMA says what each key means."""

    email_to: tuple[str, ...]
    email_from: str
    smtp_host: str
    smtp_port: int
    smtp_starttls: bool
    smtp_username: str
    smtp_password: str
    webhook_url: str
    repeat_critical_hours: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class StatesSection:
    """[states]: qmonit/core/config.py SCHEMA says what each key means."""

    panda: str
    harvester: str
    htcondor: str
    apf: str
    slurm: str
    slurm_nodes: str

    def file_of(self, rule_set: str) -> str:
        """The rule file configured for a rule set ("": the one shipped)."""
        return {"panda": self.panda, "harvester": self.harvester, "htcondor": self.htcondor,
                "apf": self.apf, "slurm": self.slurm, "slurm_nodes": self.slurm_nodes}[rule_set]


@dataclass(frozen=True, slots=True)
class SlurmSection:
    """[slurm]: qmonit/core/config.py SCHEMA says what each key means."""

    cluster: str
    backend: str
    format: str
    bin_dir: str
    timeout_s: float
    agent_queue_warning: int
    cycle_warning_s: float
    atlas_sites: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HtcondorSection:
    """[htcondor]: qmonit/core/config.py SCHEMA says what each key means."""

    cluster: str
    collector: str
    schedds: tuple[str, ...]
    group_by: tuple[str, ...]
    factory_schedds: tuple[str, ...]
    label_attribute: str
    timeout_s: float
    duty_cycle_warning: float
    atlas_sites: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DownsampleSection:
    """[downsample]: qmonit/core/config.py SCHEMA says what each key means."""

    mode: str
    max_hourly_windows: int
    max_daily_windows: int
    buffer: bool
    buffer_hours: int

    def limit(self, key: str) -> int:
        """The bound a roll-up window names (rollup_spec Window.limit_key)."""
        return {"max_hourly_windows": self.max_hourly_windows,
                "max_daily_windows": self.max_daily_windows}[key]


@dataclass(frozen=True, slots=True)
class GrafanaSection:
    """[grafana]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    token: str
    folder: str
    folder_uid: str
    overwrite: bool
    verify_tls: bool
    ca_bundle: str
    timeout_s: float
    dashboards_dir: str
    influxdb_datasource: str
    sql_datasource: str
    sql_reader_user: str
    sql_reader_password: str
    influxdb_reader_user: str
    influxdb_reader_password: str
    raw_up_to: str
    hourly_up_to: str

    def client(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> HttpClient:
        return HttpClient(self.timeout_s, max_response_mb, self.verify_tls, self.ca_bundle,
                          self.token)


@dataclass(frozen=True, slots=True)
class SpoolSection:
    """[spool]: qmonit/core/config.py SCHEMA says what each key means."""

    dir: str
    max_mb: float


@dataclass(frozen=True, slots=True)
class DatadiskSection:
    """[datadisk]: qmonit/core/config.py SCHEMA says what each key means."""

    url: str
    token: str
    verify_tls: bool
    ca_bundle: str
    timeout_s: float
    index: str
    window_h: float
    datatype: str
    time_field: str
    datatype_field: str
    rse_field: str
    files_field: str
    bytes_field: str

    def client(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> HttpClient:
        return HttpClient(self.timeout_s, max_response_mb, self.verify_tls, self.ca_bundle,
                          self.token)


@dataclass(frozen=True, slots=True)
class DaemonSection:
    """[daemon]: qmonit/core/config.py SCHEMA says what each key means."""

    cycle_minute: int
    hourly_minute: int
    daily_minute: int
    lease_ttl_s: float
    stop_grace_s: float


@dataclass(frozen=True, slots=True)
class LoggingSection:
    """[logging]: qmonit/core/config.py SCHEMA says what each key means."""

    level: str
    file: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Every section, typed."""

    qmonit: QmonitSection
    http: HttpSection
    influxdb: InfluxdbSection
    sql: SqlSection
    panda: PandaSection
    cric: CricSection
    sources: SourcesSection
    collect: CollectSection
    derive: DeriveSection
    suspicious: SuspiciousSection
    notify: NotifySection
    states: StatesSection
    slurm: SlurmSection
    htcondor: HtcondorSection
    downsample: DownsampleSection
    grafana: GrafanaSection
    spool: SpoolSection
    datadisk: DatadiskSection
    daemon: DaemonSection
    logging: LoggingSection

    @classmethod
    def of(cls, values: Mapping[str, Mapping[str, Any]]) -> Settings:
        """The sections of validated values (section -> key -> value)."""
        return cls(
            qmonit=QmonitSection(**values["qmonit"]),
            http=HttpSection(**values["http"]),
            influxdb=InfluxdbSection(**values["influxdb"]),
            sql=SqlSection(**values["sql"]),
            panda=PandaSection(**values["panda"]),
            cric=CricSection(**values["cric"]),
            sources=SourcesSection(**values["sources"]),
            collect=CollectSection(**values["collect"]),
            derive=DeriveSection(**values["derive"]),
            suspicious=SuspiciousSection(**values["suspicious"]),
            notify=NotifySection(**values["notify"]),
            states=StatesSection(**values["states"]),
            slurm=SlurmSection(**values["slurm"]),
            htcondor=HtcondorSection(**values["htcondor"]),
            downsample=DownsampleSection(**values["downsample"]),
            grafana=GrafanaSection(**values["grafana"]),
            spool=SpoolSection(**values["spool"]),
            datadisk=DatadiskSection(**values["datadisk"]),
            daemon=DaemonSection(**values["daemon"]),
            logging=LoggingSection(**values["logging"]))


def section_name(cls: type) -> str:
    """The configuration section a class of this module is (SlurmSection: "slurm")."""
    for field in fields(Settings):
        if field.type == cls.__name__:
            return field.name
    raise KeyError(f"{cls.__name__} is not a section of Settings")
