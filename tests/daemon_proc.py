"""One `qmonit daemon` on a fast shared clock whose jobs record themselves in a table:
run as a real process by tests/test_daemon_lease.py (two of them, one real MariaDB).

    python -m tests.daemon_proc SQL_URL HOLDER START_ISO ORIGIN_WALL FACTOR
"""

import sys
from datetime import datetime

from sqlalchemy import text

from qmonit.app.daemon import Daemon, Run
from qmonit.core import config
from qmonit.stores.sql import make_engine
from qmonit.support import logs
from tests.daemon_clock import FastClock

JOB_S = 30.0  # each job takes 30 s of the fast clock


def main() -> int:
    url, holder, start, origin, factor = sys.argv[1:6]
    clock = FastClock(datetime.fromisoformat(start), float(origin), float(factor))
    cfg = config.defaults({"sql": {"url": url}, "sources": {"enabled": "simulated"},
                           "daemon": {"lease_ttl_s": "60"}, "logging": {"level": "INFO"}})
    logs.setup("INFO", "", [])
    engine = make_engine(url)

    def record(job: str, at: datetime, deadline_s: float, tick) -> Run:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO daemon_runs (holder, job, at, started) VALUES "
                              "(:h, :j, :a, :s)"), {"h": holder, "j": job, "a": at.isoformat(),
                                                    "s": clock.now().isoformat()})
        began = clock.now()
        while (clock.now() - began).total_seconds() < JOB_S:
            clock.sleep(5.0, daemon.wake)
            tick()
        return Run(job, at, exit_code=0, duration_s=JOB_S)

    daemon = Daemon(lambda: cfg, lambda c: make_engine(c.sql_url), record, clock=clock,
                    holder=holder)
    daemon.install_signals()
    return daemon.serve()


if __name__ == "__main__":
    sys.exit(main())
