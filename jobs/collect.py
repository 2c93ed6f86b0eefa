#!/usr/bin/env python3
"""Cron job: collect one 10-minute slot (`qmonit run collect`); arguments are passed on."""

import sys

from qmonit.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "collect", *sys.argv[1:]]))
