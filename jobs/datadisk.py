#!/usr/bin/env python3
"""Cron job: the DAOD placement of the hour (`qmonit run datadisk`); arguments are passed on."""

import sys

from qmonit.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "datadisk", *sys.argv[1:]]))
