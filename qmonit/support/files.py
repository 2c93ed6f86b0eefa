"""Files written whole or not at all, and private: 0600 files in 0700 directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# What another account must read and that holds no secret (the dashboards and Grafana's
# provisioning files, whose passwords are ${ENV} references).
READABLE_FILE = 0o644
READABLE_DIR = 0o755


def private_dir(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create `path` and every missing parent 0700, or `mode` (mkdir(parents=True, mode=...)
    sets the mode of the last part only, and the umask still applies); an existing one is
    left as is."""
    missing = []
    part = Path(path)
    while not part.exists():
        missing.append(part)
        if part.parent == part:
            break
        part = part.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(directory, mode)  # whatever the umask
    return path


def write_text_atomic(path: Path, text: str, mode: int = PRIVATE_FILE) -> None:
    """A reader sees the old file or the new one, never half of one; directories it makes
    are 0700, or 0755 for a READABLE_FILE."""
    private_dir(path.parent, READABLE_DIR if mode == READABLE_FILE else PRIVATE_DIR)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
