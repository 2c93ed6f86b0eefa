#!/usr/bin/env python3
"""Cron job: roll the 10-minute data up into the "1d" policy (`qmonit run daily`)."""

import sys

from qmonit.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "daily", *sys.argv[1:]]))
