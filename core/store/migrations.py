"""Schema migrations: read an older store, write the current layout into a new file.

Migrations never modify the source file. core/store/opening.py writes the result next to the store, keeps the old
file as a backup (`<name>.schema<N>.bak`) and swaps the new one in with os.replace, so a crash during a
migration leaves the original untouched. A read-only open migrates into a temporary copy instead.

Schema 0 (the first prototype, kept here only so its files still open):
    /  attrs: schema_version = 0 (or absent), project_root = absolute path of the image root
    /images          1-D UTF-8 string dataset: image paths relative to project_root
    /labels          group whose *attributes* map image path -> "normal" | "anomalous" | "suspicious"
    /defect_types    group whose attributes map image path -> defect type
    (no hashes, no audit log, no runs; an image without a /labels attribute is unlabeled)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from core.store.errors import StoreCorruptError, StoreVersionError
from core.store.files import file_facts, fsync_dir
from core.store.format import FORMAT_NAME, SCHEMA_VERSION, create_layout
from core.store.hdf5 import Table, get_text_attr, set_text_attr
from core.store.locking import HAVE_FLOCK, acquire_lock, release_lock
from core.store.stamps import utc_now
from core.vocabulary import LABELS, SOURCES


@dataclass
class MigrationContext:
    """What a migration needs besides the two files: where the store will live (to record the project
    root relative to it), who runs it, and a list collecting what the user should be told."""

    store_path: Path
    who: str
    notes: list[str] = field(default_factory=list)


def detect_version(f: h5py.File, path: Path) -> int:
    """Schema version of an open file; refuses files that are not stores or are from the future."""
    if "schema_version" in f.attrs:
        try:
            version = int(f.attrs["schema_version"])
        except (TypeError, ValueError) as exc:
            raise StoreCorruptError(f"{path}: schema_version attribute is not a number") from exc
    elif isinstance(f.get("images"), h5py.Dataset) and isinstance(f.get("labels"), h5py.Group):
        version = 0  # the prototype sometimes did not write the attribute
    else:
        raise StoreCorruptError(f"{path}: an HDF5 file, but not an Anomaly Inspector store")
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path}: written by a newer Anomaly Inspector (store schema {version}; this version reads "
            f"schemas 0 to {SCHEMA_VERSION}). Open it with a newer version.")
    if version < 0:
        raise StoreVersionError(f"{path}: unknown store schema {version}")
    if version >= 1 and get_text_attr(f, "format") != FORMAT_NAME:
        raise StoreCorruptError(f"{path}: an HDF5 file, but not an Anomaly Inspector store")
    return version


# How schema 0 spelled its labels. A frozen part of that old format, not core.vocabulary.LABEL_ALIASES: a
# new alias for people to type must not change what an old file means.
_V0_LABELS = {"normal": "good", "good": "good", "anomalous": "defect", "defect": "defect",
              "suspicious": "suspicious", "unlabeled": "unlabeled"}


def migrate_0_to_1(src: h5py.File, dst: h5py.File, ctx: MigrationContext) -> None:
    """Schema 0 -> 1: labels move from attributes to columns (normal->good, anomalous->defect), hashes
    are computed from the files, and every existing label gets an audit entry (source "import") so that
    replaying the log reproduces the labels, which the current layout promises."""
    old_root = Path(str(src.attrs.get("project_root", ctx.store_path.parent)))
    if not old_root.is_dir():
        ctx.notes.append(f"recorded project root {old_root} not found; using {ctx.store_path.parent}")
        old_root = ctx.store_path.parent
    store_dir = ctx.store_path.parent.resolve()
    try:
        rel = os.path.relpath(old_root.resolve(), store_dir)
    except ValueError:  # another drive on Windows
        rel = ""
    now = utc_now()
    text = create_layout(dst, root_relative=Path(rel).as_posix() if rel else "", root_absolute=str(old_root.resolve()),
                  created=now, who=ctx.who)
    paths = [p.decode() if isinstance(p, bytes) else str(p) for p in src["images"][()]]
    label_attrs = src["labels"].attrs
    defect_attrs = src["defect_types"].attrs if "defect_types" in src else {}
    shas, sizes, missing = [], [], 0
    for rel_path in paths:
        try:
            sha, size = file_facts(old_root / rel_path)
        except OSError:  # the label is still worth keeping without its file
            sha, size = "", -1
        missing += sha == ""
        shas.append(sha.encode())
        sizes.append(size)
    if missing:
        ctx.notes.append(f"{missing} image file(s) not found under {old_root}; their hashes are left empty")
    n = len(paths)
    images = Table(dst["images"], text)
    images.write(0, {"path": paths, "sha256": shas, "nbytes": sizes, "split": [0] * n,
                     "source_defect": [""] * n, "mask_path": [""] * n})
    images.set_n_rows(n)
    labels = {"label": [0] * n, "source": [0] * n, "seq": [-1] * n}
    audit: dict[str, list] = {k: [] for k in Table(dst["audit"], text).columns}
    imp = SOURCES.index("import")
    for i, rel_path in enumerate(paths):
        if rel_path not in label_attrs:
            continue
        raw = str(label_attrs[rel_path])
        name = _V0_LABELS.get(raw)
        if name is None:
            ctx.notes.append(f"{rel_path}: unknown schema-0 label {raw!r} left unlabeled")
            continue
        defect = str(defect_attrs.get(rel_path, "")) if name in ("defect", "suspicious") else ""
        code = LABELS.index(name)
        labels["label"][i], labels["source"][i], labels["seq"][i] = code, imp, len(audit["image"])
        for key, val in (("time", now.encode()), ("who", ctx.who), ("source", imp), ("image", i),
                         ("old_label", 0), ("new_label", code), ("old_defect_type", ""),
                         ("new_defect_type", defect), ("old_note", ""), ("new_note", ""), ("run", "")):
            audit[key].append(val)
    for name in ("labels", "model_labels"):
        table = Table(dst[name], text)
        table.write(0, labels if name == "labels" else {"label": [0] * n, "source": [0] * n, "seq": [-1] * n})
        table.set_n_rows(n)
    audit_table = Table(dst["audit"], text)
    audit_table.write(0, audit)
    audit_table.set_n_rows(len(audit["image"]))
    text.publish()


MIGRATIONS: dict[int, Callable[[h5py.File, h5py.File, MigrationContext], None]] = {0: migrate_0_to_1}


def migrate_file(src_path: Path, dst_path: Path, from_version: int, ctx: MigrationContext) -> None:
    """Run the chain from_version -> SCHEMA_VERSION, writing dst_path (intermediates sit next to it).

    Files are opened without HDF5 locking because the caller already holds our own lock on the store.
    """
    current = src_path
    temps: list[Path] = []
    try:
        for version in range(from_version, SCHEMA_VERSION):
            step = MIGRATIONS.get(version)
            if step is None:
                raise StoreVersionError(f"{src_path}: no migration from store schema {version}")
            target = dst_path if version + 1 == SCHEMA_VERSION else dst_path.with_name(
                f"{dst_path.name}.v{version + 1}")
            if target != dst_path:
                temps.append(target)
            with h5py.File(current, "r", locking=False) as src, h5py.File(target, "w", locking=False) as dst:
                step(src, dst, ctx)
                history = json.loads(get_text_attr(src, "migrations", "[]"))
                history.append({"from": version, "to": version + 1, "time": utc_now(), "who": ctx.who})
                set_text_attr(dst, "migrations", json.dumps(history))
            current = target
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise StoreCorruptError(f"{src_path}: could not migrate from store schema {from_version}: {exc}") from exc
    finally:
        for t in temps:
            t.unlink(missing_ok=True)


def migrate_in_place(path: Path, old_lock: int | None, version: int,
                      ctx: MigrationContext) -> tuple[int | None, Path]:
    """Write the migrated store next to the old one, keep the old one as `<name>.schema<N>.bak` (a hard
    link when possible), and os.replace the new one in. Our lock moves with it: the temporary file is
    locked before it is renamed over the store, so no other process can slip in between."""
    tmp = path.with_name(f".{path.name}.migrating")
    tmp.unlink(missing_ok=True)  # leftover of a migration that crashed (we hold the store's lock)
    new_lock = acquire_lock(tmp, exclusive=True, create=True) if HAVE_FLOCK else None
    try:
        if new_lock is None:  # pragma: no cover - Windows
            tmp.touch()
        migrate_file(path, tmp, version, ctx)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        backup = path.with_name(f"{path.name}.schema{version}.bak")
        k = 1
        while backup.exists():
            k += 1
            backup = path.with_name(f"{path.name}.schema{version}.{k}.bak")
        try:
            os.link(path, backup)
        except OSError:
            shutil.copy2(path, backup)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        release_lock(new_lock)
        tmp.unlink(missing_ok=True)
        raise
    release_lock(old_lock)
    return new_lock, backup
