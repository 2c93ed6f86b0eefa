#!/usr/bin/env python3
"""`qmonit daemon` under run.sh's lock: the crontab watchdog line starts it when it is not
running (see crontab.example); arguments are passed on."""

import sys

from qmonit.app.cli import main

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "daemon"]))
