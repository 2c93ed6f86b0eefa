#!/usr/bin/env python3
"""Cron job: derive averages and suspicious flags for the slot (`qmonit run derive`)."""

import sys

from qmonit.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "derive", *sys.argv[1:]]))
