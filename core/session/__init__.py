"""The review session: what the window shows and edits, without Qt (after napari's components / _qt split).

A ReviewSession opens a project (a folder's project store, or a store file), owns the store, the current
run and the label history, and does every store write on one owner thread. The window is a view: it calls the
session and connects the session's events to widgets; tests drive the same session without a display.

Modules: events (a tiny thread-safe publish / subscribe), store_owner (the owner thread and the store proxy
that sends writes to it), run_state (the shown run, followed incrementally while it grows), review (the
session itself).
"""

from core.session.events import Events
from core.session.review import ReviewSession, ThresholdData
from core.session.run_state import RunState
from core.session.store_owner import OwnedStore, StoreOwner

__all__ = ["Events", "OwnedStore", "ReviewSession", "RunState", "StoreOwner", "ThresholdData"]
