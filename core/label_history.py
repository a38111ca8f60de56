"""Undo / redo of labeling actions. Each step remembers the label state before and after, so undoing
writes the old state back as a new, audited change (the store's log is append-only: history is never
rewritten, an undo is one more entry)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelState:
    label: str
    defect_type: str = ""
    note: str = ""


@dataclass(frozen=True)
class LabelStep:
    image_id: int
    before: LabelState
    after: LabelState


class LabelHistory:
    def __init__(self, limit: int = 1000):
        self._done: list[LabelStep] = []
        self._undone: list[LabelStep] = []
        self._limit = limit

    def record(self, step: LabelStep) -> None:
        """A new action clears the redo list, as in every editor."""
        if step.before == step.after:
            return
        self._done.append(step)
        del self._done[:-self._limit]
        self._undone.clear()

    def undo(self) -> tuple[int, LabelState] | None:
        """The image and the state to write back, or None when there is nothing to undo."""
        if not self._done:
            return None
        step = self._done.pop()
        self._undone.append(step)
        return step.image_id, step.before

    def redo(self) -> tuple[int, LabelState] | None:
        if not self._undone:
            return None
        step = self._undone.pop()
        self._done.append(step)
        return step.image_id, step.after

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)
