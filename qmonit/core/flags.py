"""Hysteresis: a flag opens when M of the last N cycles violate, closes after K clean cycles.

The state of one flag is its recent history ("1" violated, "0" clean, newest last)
and whether it is open. Re-running the same slot replaces that slot's step instead
of adding one, so a re-run changes nothing; an older slot leaves the state alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Hysteresis:
    open_cycles: int  # M
    window_cycles: int  # N
    close_cycles: int  # K

    @property
    def memory(self) -> int:
        return max(self.window_cycles, self.close_cycles)


@dataclass(frozen=True)
class FlagState:
    history: str
    is_open: bool
    last_slot: datetime
    history_before: str  # as it was before last_slot's step, for re-runs of that slot
    open_before: bool


def advance(state: FlagState | None, violated: bool, slot: datetime,
            rule: Hysteresis) -> tuple[bool, FlagState | None]:
    """(was the flag open before this slot, the new state; None when there is nothing to keep)."""
    if state is not None and slot < state.last_slot:
        return state.is_open, state
    if state is not None and slot == state.last_slot:
        history, was_open = state.history_before, state.open_before
    elif state is not None:
        history, was_open = state.history, state.is_open
    else:
        history, was_open = "", False
    new_history = (history + ("1" if violated else "0"))[-rule.memory:]
    if was_open:
        k = rule.close_cycles
        is_open = not (len(new_history) >= k and new_history.endswith("0" * k))
    else:
        is_open = new_history[-rule.window_cycles:].count("1") >= rule.open_cycles
    if not is_open and not was_open and "1" not in new_history:
        return was_open, None
    return was_open, FlagState(new_history, is_open, slot, history, was_open)
