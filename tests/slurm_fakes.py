"""What a healthy slurmctld prints for the calls a Slurm source makes beside squeue and
sinfo: `sdiag` (its health) and `scontrol show reservations` (none), for the tests whose
stand-in runner answers squeue and sinfo only. Their --json forms print nothing, as a
client without JSON output: the source reads the text instead."""

from __future__ import annotations

from datetime import UTC, datetime

from qmonit.simulation.batch import sdiag_text

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def health_answer(argv: list[str]) -> str | None:
    """The answer to a health or reservations call, or None for any other command."""
    name = argv[0].rsplit("/", 1)[-1]
    if name == "sdiag":
        return "" if "--json" in argv else sdiag_text(AT)
    if name == "scontrol":
        return "" if "--json" in argv else "No reservations in the system\n"
    return None
