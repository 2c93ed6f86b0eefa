"""Entry point for `python -m qmonit`."""

import sys

from qmonit.app.cli import main

sys.exit(main())
