"""The `qmonit` command line. Exit codes: 0 all well, 1 a source or sink failed, 2 bad input."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from qmonit import __version__
from qmonit.core import config
from qmonit.core.states.rules import COMMON_STATES as STATES
from qmonit.core.states.rules import SOURCES as RULE_SETS
from qmonit.support import logs, redact

log = logging.getLogger("qmonit")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2026-11-21T12:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


JOBS = {
    "collect": "ask every configured source once, enrich with CRIC, write the counts (InfluxDB "
               "or the embedded store) and the current state (SQL)",
    "derive": "moving averages, the suspicious-site rules and flags, notifications",
    "hourly": "roll the 10-minute points of the last hours up into the 1h retention policy",
    "daily": "roll the hourly points up into the 1d retention policy",
    "datadisk": "DAOD replicas per RSE from the accounting, against CRIC's datadisks and the "
                "analysis jobs",
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="qmonit", description=__doc__)
    top.add_argument("-c", "--config", default=os.environ.get("QMONIT_CONFIG"),
                     help="INI configuration file (default: $QMONIT_CONFIG)")
    top.add_argument("--version", action="version", version=f"qmonit {__version__}",
                     help="print qmonit's version and exit")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        """A sub-command whose --help page says what `qmonit --help` says of it."""
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                              epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)

    command("init", "create the database, retention policies and tables (idempotent)")
    command("check", "validate the configuration and reach every endpoint; say what answers")
    run = command("run", "run one job for one slot (what cron runs through run.sh)",
                  epilog="jobs:\n" + "\n".join(
                      textwrap.fill(text, 79, initial_indent=f"  {job:<10}",
                                    subsequent_indent=" " * 12) for job, text in JOBS.items())
                  + "\n\n" + textwrap.fill("exit: 0 all well; 1 a source or sink failed (the "
                                            "rest was written); 2 bad configuration or "
                                            "arguments", 79))
    run.add_argument("job", choices=list(JOBS), help="the job (see below)")
    run.add_argument("--at", type=_parse_time, help="pin the slot (ISO 8601, UTC if no zone)")
    run.add_argument("--since", type=_parse_time,
                     help="hourly/daily: roll up again from this time (a backfill)")
    run.add_argument("--dry-run", action="store_true",
                     help="collect: ask every source once and print the line protocol it "
                     "would write, writing nothing anywhere (Telegraf's --test)")
    demo = command("demo", "a simulated grid through the real pipeline on the embedded "
                   "stores, no servers; prints a report")
    demo.add_argument("--hours", type=int, default=24,
                      help="simulated hours, six 10-minute cycles each (default: 24)")
    demo.add_argument("--scale", choices=["small", "atlas"], default="small",
                      help="small: 196 PanDA queues; atlas: 790, as ATLAS (default: small)")
    demo.add_argument("--seed", type=int, default=1,
                      help="the simulation's random seed: the same seed, the same grid "
                      "(default: 1)")
    demo.add_argument("--dir", type=Path, help="where the demo database goes "
                      "(default: <data_dir>/demo)")
    demo.add_argument("--serial", action="store_true",
                      help="ask the sources in this process too (default: a second process "
                           "asks them, slots ahead)")
    jobs = command("jobs", "look batch jobs up, current and ended together: by owner, job "
                   "id, worker, state, cluster, and the time they ran (BBQ's first page)",
                   epilog="exit: 0 jobs shown; 1 none matches (or the state store failed); "
                          "2 bad arguments")
    jobs.add_argument("--owner", default="", help="the owner (user) exactly")
    jobs.add_argument("--job", default="", help="the job id (Slurm 1234 or 1234_7, HTCondor "
                      "schedd#1234.0)")
    jobs.add_argument("--worker", default="", help="a host: an HTCondor slot on it or a Slurm "
                      "job whose node list names it")
    jobs.add_argument("--state", default="", help=f"the common state: {', '.join(STATES)}")
    jobs.add_argument("--cluster", default="", help="the cluster as configured")
    when = jobs.add_mutually_exclusive_group()
    when.add_argument("--at", type=_parse_time, metavar="TIME",
                      help="running at TIME (ISO 8601, UTC if no zone)")
    when.add_argument("--between", type=_parse_time, nargs=2, metavar=("T1", "T2"),
                      help="running at some time between T1 and T2")
    jobs.add_argument("--limit", type=int, default=50, help="at most this many, the latest "
                      "started first (default: 50)")
    jobs.add_argument("--json", action="store_true", help="as JSON")
    counted = command("top", "the current batch jobs counted: owners by running and pending jobs "
                  "(CPUs, GPUs), workers by running jobs")
    counted.add_argument("--cluster", default="", help="one cluster only")
    counted.add_argument("--limit", type=int, default=20, help="rows of each (default: 20)")
    counted.add_argument("--json", action="store_true", help="as JSON")
    suspicious = command("suspicious", "the open suspicious-site incidents, as a table")
    suspicious.add_argument("--json", action="store_true", help="as JSON")
    states = command("states", "the state rules: show them, or test them on the live jobs of "
                     "a configured source or on recorded outputs")
    states.add_argument("action", choices=["show", "test"],
                        help="show: print the rules; test: map jobs through them and count")
    # the registry's rule sets and cric (tests/test_registry.py): kept in the core stage so
    # that parsing the command line does not import every source
    states.add_argument("source", choices=[*RULE_SETS, "cric"],
                        help="whose rules (cric: recorded answers only)")
    states.add_argument("--input", nargs="+", type=Path, metavar="FILE",
                        help="test: read these recorded outputs instead of the live source "
                        "(squeue/sinfo text or JSON, condor_q/condor_status -long or -json, "
                        "PanDA, Harvester or CRIC JSON)")
    states.add_argument("--json", action="store_true",
                        help="test: print every sample collect would write, as JSON lines")
    command("daemon", "run collect, derive and the roll-ups on their schedule in one process "
            "(instead of cron), leading or standing by for another host")
    status = command("status", "last runs, source ages, spool, leases, critical alerts; exit "
                     "code as a Nagios/Icinga check (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.add_argument("-w", "--warning", type=float, default=30, metavar="MIN",
                        help="WARNING when collect has not run, or a source not succeeded, "
                        "for MIN minutes (default: 30)")
    status.add_argument("-c", "--critical", type=float, default=30, metavar="MIN",
                        help="CRITICAL after MIN minutes (default: 30: three missed cycles, "
                        "no warning before)")
    spool = command("spool", "inspect or replay points that could not be written")
    spool.add_argument("action", choices=["status", "replay"],
                       help="status: list the spooled files; replay: write them now")
    boards = command("dashboards", "build the Grafana dashboards and provisioning files, or "
                     "push the dashboards to Grafana")
    boards.add_argument("action", choices=["build", "push"],
                        help="build: write JSON and provisioning files; push: send the "
                        "dashboards to [grafana] url")
    boards.add_argument("-o", "--output", type=Path, help="build: where the JSON and "
                        "provisioning files go (default: <data_dir>/grafana)")
    boards.add_argument("--grafana-path", type=Path, metavar="DIR",
                        help="build: the absolute folder Grafana's host reads the dashboards' "
                        "JSON from, written into the provisioning file (default: the output "
                        "folder, for a Grafana on this host); copy the JSON there")
    deploy = command("deploy", "print or write a deployment file shipped with qmonit "
                     "(run.sh with its jobs, crontab, systemd unit, config)")
    deploy.add_argument("file", choices=["run.sh", "crontab", "systemd", "config"],
                        help="which file")
    deploy.add_argument("-o", "--output", type=Path, help="write it there (run.sh: a folder, "
                        "which gets run.sh and jobs/); default: print it")
    deploy.add_argument("--force", action="store_true", help="replace files that exist")
    cfg = command("config", "print the example configuration, or its reference as Markdown")
    cfg.add_argument("action", choices=["example", "reference"],
                     help="example: config.cfg.example to copy and edit; reference: every "
                     "key as a Markdown table")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    # collect and derive pause the collector for their cycle (gc_pause); the rest of a run
    # (roll-ups, dashboards) makes many short-lived rows too: with the default threshold
    # (700) the collector would run thousands of times, each walking every long-lived object.
    gc.set_threshold(50_000, 20, 100)
    # everything qmonit writes (databases, spool, logs, the CRIC snapshot) names owners,
    # queues and alerts: private whatever cron's umask (022) is; restored for an in-process
    # caller (the tests)
    previous_umask = os.umask(0o077)
    try:
        return _main(argv)
    except BrokenPipeError:  # `qmonit ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        os.umask(previous_umask)


def _deploy(args: argparse.Namespace) -> int:
    from qmonit.app import deploy

    try:
        if args.output is None:
            sys.stdout.write(deploy.text_of(args.file))
            return 0
        for path in deploy.write(args.file, args.output, args.force):
            print(f"wrote {path}")
    except deploy.DeployError as exc:
        print(f"qmonit deploy: {exc}", file=sys.stderr)
        return 2
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    if args.command == "config":
        text = config.example_text() if args.action == "example" else config.reference_markdown()
        sys.stdout.write(text)
        return 0
    if args.command == "deploy":
        return _deploy(args)
    warnings: list[str] = []
    try:
        needs_no_config = args.command == "demo" or (
            args.command in ("states", "dashboards") and args.action in ("show", "build")) or (
            args.command == "states" and bool(args.input))  # recorded outputs: no servers
        if needs_no_config and not args.config:
            cfg = config.defaults({"sources": {"enabled": "simulated"}})
        elif not args.config and not config.settings_in(os.environ):
            raise config.ConfigError(
                "no configuration file: none given with -c FILE or $QMONIT_CONFIG, and no "
                "QMONIT_<SECTION>_<KEY> variable is set (`qmonit config example > config.cfg` "
                "writes one to start from)")
        else:
            cfg = config.load(args.config, warn=warnings.append)
    except config.ConfigError as exc:
        if args.command == "status":  # a check: the monitoring plugin's UNKNOWN
            print(f"QMONIT UNKNOWN - configuration error: {exc}")
            return 3
        print(f"qmonit: configuration error: {exc}", file=sys.stderr)
        return 2
    redact.register(cfg.secrets())  # every text that leaves: logs, output, stored messages
    if not isinstance(sys.stdout, redact.RedactingStream):
        sys.stdout, sys.stderr = (redact.RedactingStream(sys.stdout),
                                  redact.RedactingStream(sys.stderr))
    logs.setup(cfg.settings.logging.level, cfg.settings.logging.file, cfg.secrets())
    for warning in warnings:
        log.warning(warning)
    from qmonit.app import commands  # imported late: keeps `qmonit config example` light

    return commands.dispatch(args, cfg)
