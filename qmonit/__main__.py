"""Entry point for `python -m qmonit`."""

import sys

from qmonit.cli import main

sys.exit(main())
