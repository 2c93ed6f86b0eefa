"""The files qmonit ships beside its code (dashboards, run.sh and its jobs, the example
configuration and crontab, the systemd unit): inside an installed wheel they are under
qmonit/_data/ (setup.py copies them there at build time); in a checkout, or an editable
install, they are the repository's own files."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


class ResourceMissing(FileNotFoundError):
    """A shipped file is in neither place: names the file and both places looked in."""


def resource(name: str) -> Path:
    """The path of a shipped file or folder by its repository name ('dashboards',
    'run.sh', 'deploy/qmonit.service')."""
    packaged = Path(str(files("qmonit"))) / "_data" / name
    if packaged.exists():
        return packaged
    checkout = CHECKOUT / name
    if checkout.exists():
        return checkout
    raise ResourceMissing(f"{name}: not shipped with this qmonit (looked in {packaged} and "
                          f"{checkout})")
