"""Errors of the label store. Every one is a StoreError, so a caller can report any of them as one line;
the message always names the file."""

from __future__ import annotations


class StoreError(Exception):
    """A problem with a store file that a user can cause or fix; the message names the file."""


class StoreVersionError(StoreError):
    """The file was written by a newer Anomaly Inspector (or names a schema this version does not know)."""


class StoreLockedError(StoreError):
    """Another process (or another handle in this one) has the store open."""


class StoreCorruptError(StoreError):
    """The file is not a store, or is damaged beyond what opening can repair."""


class UnknownImageError(StoreError):
    """An image path or id that the store does not hold."""


class UnknownRunError(StoreError):
    """A run id that the store does not hold."""
