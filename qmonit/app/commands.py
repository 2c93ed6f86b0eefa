"""What each `qmonit` sub-command does, once the configuration is valid."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from qmonit.app import preflight
from qmonit.collect.components import Components, build
from qmonit.core.config import Config
from qmonit.core.sample import SLOT, slot_start
from qmonit.sources.base import SourceError
from qmonit.stores.sql import safe_db_url, state_errors
from qmonit.stores.state import lease, metadata, schema
from qmonit.stores.timeseries.spool import DAMAGED
from qmonit.support import logs
from qmonit.support.clock import Clock, SystemClock

log = logging.getLogger("qmonit")


def dispatch(args: argparse.Namespace, cfg: Config, clock: Clock | None = None) -> int:
    """Run the command `args` names; every part asks `clock` the time."""
    clock = clock or SystemClock()
    if args.command == "demo":
        return demo(args, cfg)
    if args.command == "dashboards":
        return dashboards(args, cfg)
    if args.command == "daemon":
        return daemon(args, cfg)
    if args.command == "run" and args.dry_run:
        if args.job != "collect":
            print(f"qmonit run {args.job}: --dry-run is for collect only", file=sys.stderr)
            return 2
        from qmonit.app.dryrun import dry_run

        return dry_run(cfg, args.at or clock.now())
    if args.command == "run" and args.at is not None and args.at > clock.now() + SLOT:
        print(f"qmonit run {args.job}: --at {args.at:%Y-%m-%dT%H:%MZ} is in the future; a slot "
              "can be collected, derived or rolled up only once it has begun (nothing done)",
              file=sys.stderr)
        return 2
    parts = build(cfg, clock)
    if args.command in ("run", "suspicious"):
        missing: list[str] = []  # none seen: the command itself says what is wrong
        with state_errors() as caught:
            # an installation upgraded under cron runs on before `qmonit init` adds the
            # daemon's tables
            missing = [t for t in schema.missing_tables(parts.engine)
                       if t not in lease.DAEMON_ONLY]
        if caught.error:
            log.debug("state store not inspected: %s", caught.error)
        else:
            every = [t.name for t in metadata.metadata.sorted_tables
                     if t.name not in lease.DAEMON_ONLY]
            if len(missing) < len(every):  # initialised, perhaps by an older qmonit
                if _upgrade(parts, missing):
                    return 1
                missing = []
        if missing:
            print(f"qmonit {args.command}: the state store {safe_db_url(parts.engine)} has no "
                  f"tables yet ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
                  "run `qmonit init` first", file=sys.stderr)
            return 1
    handler: Callable[[argparse.Namespace, Components], int] = {
        "init": preflight.init, "check": preflight.check, "run": run, "spool": spool,
        "suspicious": suspicious, "states": states, "status": status, "jobs": jobs,
        "top": top,
    }[args.command]
    return handler(args, parts)


def _upgrade(parts: Components, tables: list[str]) -> bool:
    """Add the tables and columns a newer qmonit reads, and move what it moved (as `qmonit
    init` would), so an upgrade under cron goes on without a manual step. True when that
    failed (said on stderr)."""
    with state_errors() as caught:
        missing = tables + schema.missing_columns(parts.engine)
        if missing:
            schema.create_tables(parts.engine)
            log.warning("state store %s: added %s (this qmonit reads them; `qmonit init` "
                        "does the same)", safe_db_url(parts.engine), ", ".join(missing))
    if caught.error:
        print(f"qmonit: {caught.error}; run `qmonit init`", file=sys.stderr)
    return bool(caught.error)


def run(args: argparse.Namespace, parts: Components) -> int:
    if args.job in ("hourly", "daily"):
        return run_rollup(parts, args.job, args.at or parts.clock.now(), args.since)
    if args.job == "datadisk":
        from qmonit.datadisk.job import run_datadisk

        placed = run_datadisk(parts, args.at or parts.clock.now())
        log.info("datadisk %s UTC: %d datadisks%s in %.1f s", f"{placed.hour:%Y-%m-%d %H:%M}",
                 placed.datadisks, f"; failed: {placed.error}" if placed.error else "",
                 placed.duration_s)
        return placed.exit_code
    slot = slot_start(args.at or parts.clock.now())
    if args.job == "derive":
        return run_derive(parts, slot)
    from qmonit.collect.cycle import collect

    report = collect(parts, slot)
    summary = ", ".join(f"{s.source} {s.status} ({s.points} points)" for s in report.sources)
    d = report.delivery
    # the closing line says what failed: 'every source ok' over a state store that refused
    # every write read as success (issue 34)
    failed = ([f"state store failed ({len(report.state_errors)} step(s))"]
              if report.state_errors else []) + (
        [f"writes failed ({d.spooled} points spooled)"] if d.errors else [])
    log.log(logging.ERROR if report.exit_code else logging.INFO,
            "collect %s UTC: %s; levels %d points; written %d, spooled %d, rejected %d, "
            "lost %d, replayed %d in %.1f s%s", f"{slot:%Y-%m-%d %H:%M}", summary,
            report.levels, d.written, d.spooled, d.rejected, d.lost, report.replay.points,
            report.duration_s, "; " + ", ".join(failed) if failed else "")
    return report.exit_code


def run_derive(parts: Components, slot: datetime) -> int:
    from qmonit.derive.job import derive

    report = derive(parts, slot)
    notified = ", ".join(f"{name} {'failed' if error else 'sent'}"
                         for name, error in report.notified.items()) or "nothing to send"
    log.info("derive %s UTC: %d findings from %d queries, %d flags open (%d opened, %d closed); "
             "notifications: %s; %.1f s", f"{slot:%Y-%m-%d %H:%M}", len(report.findings),
             report.queries, len(report.open_flags), len(report.opened), len(report.closed),
             notified, report.duration_s)
    return report.exit_code


def run_rollup(parts: Components, job: str, now: datetime, since: datetime | None) -> int:
    from qmonit.rollup.downsample import rollup

    report = rollup(parts, job, now, since)
    pending = sum(report.pending.values())
    log.info("%s roll-up (%s path): %d window(s), %d points%s in %.1f s", job, report.mode,
             report.windows, report.points,
             f", {pending} window(s) left for the next run" if pending else "",
             report.duration_s)
    return report.exit_code


def daemon(args: argparse.Namespace, cfg: Config) -> int:
    from qmonit.app.daemon import run_daemon
    from qmonit.core import config
    from qmonit.stores.sql import make_engine

    engine = make_engine(cfg.sql_url, cfg.settings.sql.password)
    missing: list[str] = []
    with state_errors() as caught:
        missing = schema.missing_tables(engine)
    engine.dispose()
    if caught.error:
        print(f"qmonit daemon: {caught.error}", file=sys.stderr)
        return 1
    if missing:
        print(f"qmonit daemon: the state store {safe_db_url(engine)} lacks tables "
              f"({', '.join(missing[:3])}): run `qmonit init` first", file=sys.stderr)
        return 1
    return run_daemon(args.config, lambda: config.load(args.config) if args.config else cfg,
                      lambda c: make_engine(c.sql_url, c.settings.sql.password))


def status(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.app.status import Thresholds, as_json, gather, render

    warning, critical = args.warning, args.critical
    if not 0 < warning <= critical:  # a monitoring plugin's usage error is UNKNOWN
        print(f"QMONIT UNKNOWN - -w {warning:g} and -c {critical:g}: give 0 < -w <= -c "
              "(minutes)")
        return 3
    report = gather(parts, thresholds=Thresholds(timedelta(minutes=warning),
                                                 timedelta(minutes=critical)))
    print(as_json(report) if args.json else render(report, parts.clock.now()), end="")
    return report.code


def jobs(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.app import jobs as lookup

    try:
        query = lookup.query_of(args)
    except lookup.JobsError as exc:
        print(f"qmonit jobs: {exc}", file=sys.stderr)
        return 2
    with state_errors() as caught:
        rows = lookup.find_jobs(parts.engine, query)
        like = lookup.owners_like(parts.engine, query.owner) if query.owner and not rows \
            else None
    if caught.error:
        print(f"qmonit jobs: {caught.error}", file=sys.stderr)
        return 1
    if not rows:
        print(f"qmonit jobs: {lookup.nothing_found(query, like)}", file=sys.stderr)
        return 1
    print(lookup.render(rows, args.json), end="")
    return 0


def top(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.app import jobs as lookup

    if args.limit < 1:
        print(f"qmonit top: --limit {args.limit}: must be at least 1", file=sys.stderr)
        return 2
    with state_errors() as caught:
        owners = lookup.top_owners(parts.engine, args.cluster, args.limit)
        workers = lookup.top_workers(parts.engine, args.cluster, args.limit)
    if caught.error:
        print(f"qmonit top: {caught.error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"owners": owners, "workers": workers}, indent=2))
        return 0
    where = f" of cluster {args.cluster}" if args.cluster else ""
    if not owners:
        print(f"No running or pending jobs{where}.")
        return 0
    print(f"Owners by running and pending jobs{where}:")
    print(lookup.render(owners), end="")
    print(f"\nWorkers by running jobs{where}:")
    print(lookup.render(workers) if workers else "(no running job names a worker)\n", end="")
    return 0


def suspicious(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.app.suspicious import render

    with state_errors() as caught:
        print(render(parts.engine, parts.clock.now(), as_json=args.json), end="")
    if caught.error:
        print(f"qmonit suspicious: {caught.error}", file=sys.stderr)
        return 1
    return 0


def states(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.sources.registry import source_of_rule_set
    from qmonit.sources.trial import render, trial_counts

    if getattr(args, "input", None) and args.action == "test":
        return _states_on_recorded(args, parts)
    if args.source == "cric":
        print(f"qmonit states {args.action} cric: CRIC has no state rules (it gives the "
              "topology); `qmonit states test cric --input FILE` reads a recorded answer",
              file=sys.stderr)
        return 2
    rules = parts.rules[args.source]
    if args.action == "show":
        print(rules.show())
        return 0
    wanted = source_of_rule_set(args.source).name
    source = next((s for s in parts.sources if s.name == wanted), None)
    if source is None:
        print(f"qmonit states test {args.source}: the {wanted} source is not enabled "
              f"([sources] enabled)", file=sys.stderr)
        return 2
    try:
        if args.json:  # as on recorded outputs: every sample the source gives collect
            from qmonit.sources.recorded import samples_json

            print(samples_json(source.collect(parts.clock.now()).samples), end="")
            return 0
        counts = trial_counts(args.source, source, rules, parts.clock.now())
    except SourceError as exc:
        print(f"qmonit states test {args.source}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.source} state rules from {rules.origin} on the live jobs of {wanted}:")
    print(render(counts), end="")
    return 0


def _states_on_recorded(args: argparse.Namespace, parts: Components) -> int:
    from qmonit.sources.recorded import RecordedInputError, read_recorded, samples_json
    from qmonit.sources.registry import recorded_reader
    from qmonit.sources.trial import render

    try:
        found = read_recorded(args.source, recorded_reader(args.source), args.input,
                              parts.rules, parts.clock.now())
    except RecordedInputError as exc:  # 2: a file of the wrong kind; 1: its source failed
        print(f"qmonit states test {args.source}: {exc}", file=sys.stderr)
        return exc.exit_code
    counts, samples = found.counts, found.samples
    for problem in found.problems:
        print(f"qmonit states test {args.source}: {problem}", file=sys.stderr)
    if args.json:
        print(samples_json(samples), end="")
        return 0
    rules = parts.rules.get(args.source)
    origin = f"state rules from {rules.origin}" if rules else "topology"
    print(f"{args.source} {origin} on {', '.join(str(p) for p in args.input)}:")
    if rules:
        print(render(counts), end="")
    else:  # CRIC: the queues and the topology tags collect would give their points
        for (queue, _, status, cloud), _count in sorted(counts.items()):
            print(f"{queue}  status {status}  cloud {cloud or '-'}")
    print(f"{len(samples)} sample(s) collect would write")
    return 0


def spool(args: argparse.Namespace, parts: Components) -> int:
    if args.action == "replay":
        from qmonit.collect.cycle import replay_spool

        result, errors = replay_spool(parts)
        left = parts.spool.files()
        print(f"replayed {result.files} file(s), {result.points} points to "
              f"{parts.store.location()}; {len(left)} file(s) pending")
        for problem in result.damaged + errors:
            print(problem)
        if result.error:
            print(f"replay stopped: {result.error}")
        return 1 if result.error or result.damaged or errors else 0
    files = parts.spool.files()
    aside = parts.spool.damaged()
    if not files and not aside:
        print(f"spool {parts.spool.directory}: empty")
        return 0
    total = sum(f.size for f in files)
    print(f"spool {parts.spool.directory}: {len(files)} file(s), "
          f"{sum(f.points for f in files)} points, {total} of {parts.spool.max_bytes} bytes")
    damaged = 0
    for f in files:
        wrong = parts.spool.verify(f)
        damaged += wrong is not None
        print(f"  {f.created:%Y-%m-%d %H:%M:%S} UTC  rp {f.retention:>3}  {f.points:>8} points  "
              f"{f.size:>10} bytes  {f.path.name}" + (f"  DAMAGED: {wrong}" if wrong else ""))
    if aside:
        print(f"damaged files moved aside in {parts.spool.directory / DAMAGED} "
              f"({len(aside)}): " + ", ".join(path.name for path in aside))
    return 1 if damaged or aside else 0


def _provisioning(args: argparse.Namespace, cfg: Config,
                  out_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The provisioning files; without a configuration file (the embedded default) only the
    dashboards are built: Grafana's datasources need its reading accounts, which only a
    configuration names (with one, a missing reader is an error)."""
    from qmonit.grafana.provision import ReaderError, documents

    try:
        return documents(cfg, args.grafana_path or out_dir)
    except ReaderError as exc:
        if args.config:
            raise
        return {}, [f"provisioning files not written (no configuration file): {exc}"]


def dashboards(args: argparse.Namespace, cfg: Config) -> int:
    from qmonit.grafana.build import DashboardError, build_all, write_json
    from qmonit.grafana.provision import ReaderError
    from qmonit.grafana.push import GrafanaError, push_all
    from qmonit.support.files import READABLE_FILE, write_text_atomic

    out_dir = args.output or Path(cfg.data_dir) / "grafana"
    if args.action == "build" and args.grafana_path and not args.grafana_path.is_absolute():
        print(f"qmonit dashboards build: --grafana-path {args.grafana_path}: not an absolute "
              "path (Grafana's provisioning needs the folder as its host sees it)",
              file=sys.stderr)
        return 2
    try:
        built = build_all(cfg)
        if args.action == "build":
            texts, notes = _provisioning(args, cfg, out_dir)
    except (DashboardError, ReaderError) as exc:
        print(f"qmonit dashboards: {exc}", file=sys.stderr)
        return 2
    if args.action == "build":
        for path in write_json(built, out_dir):
            print(f"wrote {path}")
        for relative, text in texts.items():
            write_text_atomic(out_dir / "provisioning" / relative, text, READABLE_FILE)
            print(f"wrote {out_dir / 'provisioning' / relative}")
        for note in notes:
            log.warning(note)
        return 0
    if not cfg.settings.grafana.url:  # a usage error: nothing was tried
        print("qmonit dashboards push: [grafana] url is empty: say where Grafana is (or use "
              "`qmonit dashboards build` and Grafana's provisioning)", file=sys.stderr)
        return 2
    try:
        report = push_all(cfg.settings.grafana, built, cfg.settings.http.max_response_mb)
    except GrafanaError as exc:
        print(f"qmonit dashboards push: {exc}", file=sys.stderr)
        return 1
    for title, url, version in report.pushed:
        print(f"pushed {title} to folder {report.folder}: {url} (version {version})")
    for _title, reason in report.failed:
        print(f"qmonit dashboards push: {reason}", file=sys.stderr)
    return report.exit_code


def demo(args: argparse.Namespace, cfg: Config) -> int:
    from qmonit.app.demo import run_demo

    logs.setup("CRITICAL" if cfg.settings.logging.level != "DEBUG" else "DEBUG")
    directory = args.dir or Path(cfg.data_dir) / "demo"
    return run_demo(directory, args.hours, args.scale, args.seed, serial=args.serial)
