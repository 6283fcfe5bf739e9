"""ProjectStore: one project folder = one SQLite database plus cache and run folders.

Layout of a project folder::

    project.sqlite   image index, classes, labels, runs, models, settings (WAL)
    cache/           decoded image caches          runs/    pretraining / classifier runs
    models/          classifiers                   thumbnails/  gallery thumbnails

Durability: the database runs in WAL mode with synchronous=FULL and every
public method that changes data commits before it returns, so a label the user
saw applied survives a kill -9 (and, as far as SQLite and the disk can promise,
a power cut).

Threads: the store may be shared by the GUI thread and worker threads. Each
thread gets its own SQLite connection (threading.local), so reads run
concurrently and writes are serialised by SQLite itself (BEGIN IMMEDIATE with a
30 s busy timeout). close() closes every thread's connection; call it once, when
no other thread uses the store any more.

Labels of images that disappear from the folder are kept (the image row is
flagged missing), and labels of unreadable images are kept too: labels()
returns every label; callers that need pixels intersect it with what they have
(image_relpaths() or the decoded cache), or pass present_only=True.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslstudio.plural import count
from sslstudio.project import schema

try:  # the shared data types; the stand-ins keep the store importable while data/ is written
    from sslstudio.data.scan import BadFile, ImageEntry
except ImportError:  # pragma: no cover - only until sslstudio.data.scan exists
    @dataclass(frozen=True)
    class ImageEntry:  # type: ignore[no-redef]
        relpath: str
        size: int
        mtime_ns: int

    @dataclass(frozen=True)
    class BadFile:  # type: ignore[no-redef]
        relpath: str
        reason: str

DB_NAME = "project.sqlite"
SUBDIRS = ("cache", "runs", "models", "thumbnails")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class ProjectError(Exception):
    """A project folder that cannot be created or opened; the message says why."""


class UnknownImageError(KeyError):
    """A relpath that is not in the project's image index."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else "unknown image"


class UnknownClassError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown class"


@dataclass(frozen=True)
class ClassInfo:
    name: str
    color: str   # "#rrggbb"
    count: int   # labelled images (present or not)
    id: int


@dataclass(frozen=True)
class SyncSummary:
    """What sync_index changed."""
    added: int
    updated: int        # size/mtime changed, or came back after being missing or bad
    missing: int        # labelled images no longer in the folder (rows kept, flagged)
    removed: int        # unlabelled images no longer in the folder (rows dropped)
    bad: int            # unreadable files now recorded
    total: int          # readable, present images after the sync

    def __str__(self) -> str:
        return (f"{count(self.total, 'image')} ({self.added:,} new, {self.updated:,} updated, "
                f"{self.removed:,} gone), {self.bad:,} unreadable, "
                f"{count(self.missing, 'labelled image')} missing")


def _connect(db_path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing is implicit.
    conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _clean_class_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"class name must be a string, not {type(name).__name__}")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("class name is empty")
    if any(ord(ch) < 32 for ch in cleaned):
        raise ValueError(f"class name {cleaned!r} contains control characters")
    return cleaned


def resolve_project_dir(arg: str | os.PathLike) -> Path:
    """A project given on the command line: a path, or a bare name under the default projects dir."""
    from sslstudio.paths import default_projects_dir

    path = Path(arg).expanduser()
    text = str(arg)
    bare = not path.is_absolute() and "/" not in text and "\\" not in text and text not in (".", "..")
    if bare and not path.exists():
        return default_projects_dir() / text
    return path.absolute()


class ProjectStore:
    """The project database; see the module docstring for durability and threads."""

    def __init__(self, project_dir: Path) -> None:
        # Use create() or open(); this only wires up an already validated folder.
        self.project_dir = Path(project_dir)
        self.db_path = self.project_dir / DB_NAME
        self.cache_dir = self.project_dir / "cache"
        self.runs_dir = self.project_dir / "runs"
        self.models_dir = self.project_dir / "models"
        self.thumbnails_dir = self.project_dir / "thumbnails"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self.image_root = Path(self._get_meta("image_root"))
        self.name = self._get_meta("name")

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, project_dir: str | os.PathLike, image_root: str | os.PathLike,
               name: str | None = None) -> ProjectStore:
        project_dir = Path(project_dir).expanduser().absolute()
        image_root = Path(image_root).expanduser().resolve()
        if not image_root.is_dir():
            raise ProjectError(f"image folder not found: {image_root}")
        if (project_dir / DB_NAME).exists():
            raise ProjectError(f"a project already exists in {project_dir}; open it instead")
        if _is_within(project_dir.resolve(), image_root):
            raise ProjectError(f"the project folder {project_dir} is inside the image folder "
                               f"{image_root}; choose a folder outside it (SSL Studio never "
                               f"writes into the image folder)")
        try:
            project_dir.mkdir(parents=True, exist_ok=True)
            for sub in SUBDIRS:
                (project_dir / sub).mkdir(exist_ok=True)
            # Build under a temporary name so a crash never leaves a half-made project.sqlite.
            tmp = project_dir / (DB_NAME + ".creating")
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
            conn = _connect(tmp)
            try:
                schema.create_v1(conn)
                schema.migrate(conn)
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [
                    ("image_root", str(image_root)),
                    ("name", name or project_dir.name),
                    ("created_at", repr(time.time())),
                ])
                conn.execute("COMMIT")
            finally:
                conn.close()
            os.replace(tmp, project_dir / DB_NAME)
        except OSError as exc:
            raise ProjectError(f"cannot create a project in {project_dir}: {exc}") from exc
        return cls.open(project_dir)

    @classmethod
    def open(cls, project_dir: str | os.PathLike) -> ProjectStore:
        """Open (and migrate) an existing project; ProjectError says what is wrong."""
        project_dir = Path(project_dir).expanduser().absolute()
        if project_dir.name == DB_NAME and project_dir.is_file():
            project_dir = project_dir.parent
        db_path = project_dir / DB_NAME
        if not project_dir.exists():
            raise ProjectError(f"project folder not found: {project_dir}")
        if not project_dir.is_dir():
            raise ProjectError(f"not a project folder (it is a file): {project_dir}")
        if not db_path.is_file():
            raise ProjectError(f"not an SSL Studio project: {project_dir} has no {DB_NAME}")
        _check_and_migrate(db_path)
        store = cls(project_dir)
        for sub in SUBDIRS:  # recreate folders a user may have cleaned away
            (project_dir / sub).mkdir(exist_ok=True)
        return store

    def close(self) -> None:
        """Close every thread's connection (the WAL is checkpointed by the last one)."""
        with self._connections_lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProjectStore({str(self.project_dir)!r})"

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._closed:
            with self._connections_lock:
                if self._closed:
                    raise ProjectError(f"project {self.project_dir} is closed")
                conn = _connect(self.db_path)
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction; IMMEDIATE takes the write lock up front."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    # ------------------------------------------------------------------ meta / settings
    def set_image_root(self, image_root: str | os.PathLike) -> None:
        """Point the project at a moved image folder (relpaths stay the same)."""
        root = Path(image_root).expanduser().resolve()
        if not root.is_dir():
            raise ProjectError(f"image folder not found: {root}")
        if _is_within(self.project_dir.resolve(), root):
            raise ProjectError(f"the project folder {self.project_dir} is inside the image "
                               f"folder {root}")
        with self._write() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'image_root'", (str(root),))
        self.image_root = root

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A small JSON value saved with the project (last used task, window state...)."""
        value = self._get_meta(f"setting:{key}")
        return default if value is None else json.loads(value)

    def set_setting(self, key: str, value: Any) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         (f"setting:{key}", json.dumps(value)))

    def schema_version(self) -> int:
        return schema.read_version(self._conn())

    # ------------------------------------------------------------------ image index
    def sync_index(self, scan: Any) -> SyncSummary:
        """Bring the index in line with a ScanResult of this project's image folder.

        New files are added, changed ones updated, unreadable ones recorded with
        their reason. A file that is gone keeps its row (flagged missing) when it
        has a label, so no label is ever dropped; unlabelled gone files are removed.
        """
        if Path(scan.root).resolve() != self.image_root.resolve():
            raise ValueError(f"the scan is of {scan.root}, but this project's image folder "
                             f"is {self.image_root}")
        with self._write() as conn:
            existing = {row[1]: row for row in conn.execute(
                "SELECT id, relpath, size, mtime_ns, bad_reason, missing FROM images")}
            seen: set[str] = set()
            inserts: list[tuple] = []
            updates: list[tuple] = []
            for entry in scan.images:
                seen.add(entry.relpath)
                old = existing.get(entry.relpath)
                if old is None:
                    inserts.append((entry.relpath, entry.size, entry.mtime_ns, None))
                elif (old[2], old[3], old[4], old[5]) != (entry.size, entry.mtime_ns, None, 0):
                    updates.append((entry.size, entry.mtime_ns, None, old[0]))
            bad_count = 0
            for bad in scan.bad:
                seen.add(bad.relpath)
                bad_count += 1
                old = existing.get(bad.relpath)
                if old is None:
                    inserts.append((bad.relpath, 0, 0, bad.reason))
                elif (old[4], old[5]) != (bad.reason, 0):
                    updates.append((old[2], old[3], bad.reason, old[0]))
            conn.executemany("INSERT INTO images(relpath, size, mtime_ns, bad_reason) "
                             "VALUES (?, ?, ?, ?)", inserts)
            conn.executemany("UPDATE images SET size = ?, mtime_ns = ?, bad_reason = ?, "
                             "missing = 0 WHERE id = ?", updates)
            gone = [(row[0],) for relpath, row in existing.items() if relpath not in seen]
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS gone_ids(id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM gone_ids")
            conn.executemany("INSERT INTO gone_ids(id) VALUES (?)", gone)
            removed = conn.execute(
                "DELETE FROM images WHERE id IN (SELECT id FROM gone_ids) "
                "AND id NOT IN (SELECT image_id FROM labels)").rowcount
            conn.execute("UPDATE images SET missing = 1 WHERE id IN (SELECT id FROM gone_ids)")
            missing = conn.execute("SELECT COUNT(*) FROM images WHERE missing = 1").fetchone()[0]
            conn.execute("DELETE FROM gone_ids")
            total = conn.execute("SELECT COUNT(*) FROM images WHERE missing = 0 "
                                 "AND bad_reason IS NULL").fetchone()[0]
        return SyncSummary(added=sum(1 for row in inserts if row[3] is None),
                           updated=len(updates), missing=missing, removed=removed,
                           bad=bad_count, total=total)

    def record_bad(self, bad_files: Iterable[Any]) -> None:
        """Mark indexed images unreadable (e.g. decode failures found while building a cache)."""
        rows = [(bad.reason, bad.relpath) for bad in bad_files]
        with self._write() as conn:
            conn.executemany("UPDATE images SET bad_reason = ? WHERE relpath = ?", rows)

    def image_relpaths(self) -> list[str]:
        """Readable images present in the folder, sorted."""
        return [row[0] for row in self._conn().execute(
            "SELECT relpath FROM images WHERE missing = 0 AND bad_reason IS NULL "
            "ORDER BY relpath")]

    def image_entries(self) -> list[ImageEntry]:
        """Like image_relpaths() with size and mtime (the decoded cache's keys)."""
        return [ImageEntry(*row) for row in self._conn().execute(
            "SELECT relpath, size, mtime_ns FROM images WHERE missing = 0 "
            "AND bad_reason IS NULL ORDER BY relpath")]

    def bad_files(self) -> list[BadFile]:
        return [BadFile(*row) for row in self._conn().execute(
            "SELECT relpath, bad_reason FROM images WHERE missing = 0 "
            "AND bad_reason IS NOT NULL ORDER BY relpath")]

    def missing_relpaths(self) -> list[str]:
        """Labelled images that are no longer in the folder (their labels are kept)."""
        return [row[0] for row in self._conn().execute(
            "SELECT relpath FROM images WHERE missing = 1 ORDER BY relpath")]

    def known_relpaths(self) -> list[str]:
        """Every indexed path, unreadable and missing ones included (what labels may refer to)."""
        return [row[0] for row in self._conn().execute(
            "SELECT relpath FROM images ORDER BY relpath")]

    def has_image(self, relpath: str) -> bool:
        return self._conn().execute("SELECT 1 FROM images WHERE relpath = ?",
                                    (relpath,)).fetchone() is not None

    # ------------------------------------------------------------------ classes
    def classes(self) -> list[ClassInfo]:
        """Classes in display order with their colour and number of labels."""
        return [ClassInfo(name=row[1], color=row[2], count=row[3], id=row[0])
                for row in self._conn().execute(
                    "SELECT c.id, c.name, c.color, COUNT(l.image_id) FROM classes c "
                    "LEFT JOIN labels l ON l.class_id = c.id "
                    "GROUP BY c.id ORDER BY c.position, c.id")]

    def class_names(self) -> list[str]:
        return [info.name for info in self.classes()]

    def add_class(self, name: str, color: str | None = None) -> int:
        """Add a class (ValueError if it exists); without a colour the next free palette colour."""
        name = _clean_class_name(name)
        if color is not None and not _COLOR_RE.match(color):
            raise ValueError(f"colour must look like '#rrggbb', got {color!r}")
        with self._write() as conn:
            if self._class_id(conn, name) is not None:
                raise ValueError(f"class {name!r} already exists")
            return self._insert_class(conn, name, color)

    def rename_class(self, old: str, new: str) -> None:
        new = _clean_class_name(new)
        with self._write() as conn:
            class_id = self._require_class(conn, old)
            if new == old:
                return
            if self._class_id(conn, new) is not None:
                raise ValueError(f"class {new!r} already exists; merge the classes instead")
            conn.execute("UPDATE classes SET name = ? WHERE id = ?", (new, class_id))

    def merge_classes(self, source: str, target: str) -> int:
        """Move every label of `source` to `target` and drop `source`; returns labels moved."""
        with self._write() as conn:
            source_id = self._require_class(conn, source)
            target_id = self._require_class(conn, target)
            if source_id == target_id:
                return 0
            moved = conn.execute("UPDATE labels SET class_id = ?, updated_at = ? "
                                 "WHERE class_id = ?",
                                 (target_id, time.time(), source_id)).rowcount
            conn.execute("DELETE FROM classes WHERE id = ?", (source_id,))
            return moved

    def delete_class(self, name: str) -> int:
        """Delete a class and its labels; returns the number of labels removed."""
        with self._write() as conn:
            class_id = self._require_class(conn, name)
            removed = conn.execute("DELETE FROM labels WHERE class_id = ?", (class_id,)).rowcount
            conn.execute("DELETE FROM classes WHERE id = ?", (class_id,))
            return removed

    def set_class_color(self, name: str, color: str) -> None:
        if not _COLOR_RE.match(color):
            raise ValueError(f"colour must look like '#rrggbb', got {color!r}")
        with self._write() as conn:
            class_id = self._require_class(conn, name)
            conn.execute("UPDATE classes SET color = ? WHERE id = ?", (color, class_id))

    def reorder_classes(self, names: list[str]) -> None:
        """Set the display order; classes not named keep their order after the named ones."""
        with self._write() as conn:
            ids = [self._require_class(conn, name) for name in names]
            rest = [row[0] for row in conn.execute(
                "SELECT id FROM classes ORDER BY position, id") if row[0] not in ids]
            conn.executemany("UPDATE classes SET position = ? WHERE id = ?",
                             [(pos, class_id) for pos, class_id in enumerate(ids + rest)])

    @staticmethod
    def _class_id(conn: sqlite3.Connection, name: str) -> int | None:
        row = conn.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _require_class(self, conn: sqlite3.Connection, name: str) -> int:
        class_id = self._class_id(conn, name)
        if class_id is None:
            raise UnknownClassError(f"no class named {name!r} in project {self.name!r}")
        return class_id

    @staticmethod
    def _insert_class(conn: sqlite3.Connection, name: str, color: str | None) -> int:
        if color is None:
            used = {row[0].lower() for row in conn.execute("SELECT color FROM classes")}
            index = 0
            while schema.palette_color(index) in used:
                index += 1
            color = schema.palette_color(index)
        position = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM classes").fetchone()[0]
        return conn.execute("INSERT INTO classes(name, color, position) VALUES (?, ?, ?)",
                            (name, color, position)).lastrowid

    # ------------------------------------------------------------------ labels
    def set_label(self, relpath: str, class_name: str | None) -> None:
        """Label one image (None removes its label); committed before returning.

        A class name the project does not know yet is created on the fly (what
        keyboard shortcuts and CSV imports want). An unknown relpath raises
        UnknownImageError and changes nothing.
        """
        self.set_labels({relpath: class_name})

    def set_labels(self, mapping: Mapping[str, str | None]) -> None:
        """Apply many label changes in one transaction: all of them or none."""
        cleaned = {relpath: (None if name is None else _clean_class_name(name))
                   for relpath, name in mapping.items()}
        if not cleaned:
            return
        now = time.time()
        with self._write() as conn:
            image_ids = self._image_ids(conn, cleaned)
            class_ids: dict[str, int] = {}
            for name in dict.fromkeys(n for n in cleaned.values() if n is not None):
                # new classes are created in order of first appearance
                class_id = self._class_id(conn, name)
                class_ids[name] = class_id if class_id is not None else \
                    self._insert_class(conn, name, None)
            conn.executemany("DELETE FROM labels WHERE image_id = ?",
                             [(image_ids[r],) for r, name in cleaned.items() if name is None])
            conn.executemany(
                "INSERT INTO labels(image_id, class_id, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(image_id) DO UPDATE SET class_id = excluded.class_id, "
                "updated_at = excluded.updated_at",
                [(image_ids[r], class_ids[name], now)
                 for r, name in cleaned.items() if name is not None])

    def _image_ids(self, conn: sqlite3.Connection, relpaths: Iterable[str]) -> dict[str, int]:
        relpaths = list(relpaths)
        if len(relpaths) > 200:  # one scan of the index beats thousands of lookups
            known = dict(conn.execute("SELECT relpath, id FROM images"))
            ids = {r: known[r] for r in relpaths if r in known}
        else:
            ids = {}
            for r in relpaths:
                row = conn.execute("SELECT id FROM images WHERE relpath = ?", (r,)).fetchone()
                if row:
                    ids[r] = row[0]
        unknown = [r for r in relpaths if r not in ids]
        if unknown:
            shown = ", ".join(repr(r) for r in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise UnknownImageError(f"not in the image index of project {self.name!r}: "
                                    f"{shown}{more}")
        return ids

    def labels(self, *, present_only: bool = False) -> dict[str, str]:
        """relpath → class name for every labelled image (present_only: readable, present ones)."""
        where = " WHERE i.missing = 0 AND i.bad_reason IS NULL" if present_only else ""
        return dict(self._conn().execute(
            "SELECT i.relpath, c.name FROM labels l JOIN images i ON i.id = l.image_id "
            "JOIN classes c ON c.id = l.class_id" + where + " ORDER BY i.relpath"))

    def labels_for(self, relpaths: Iterable[str]) -> dict[str, str | None]:
        """Current label (or None) of each given image; handy for undo."""
        conn = self._conn()
        result: dict[str, str | None] = {}
        for relpath in relpaths:
            row = conn.execute(
                "SELECT c.name FROM images i JOIN labels l ON l.image_id = i.id "
                "JOIN classes c ON c.id = l.class_id WHERE i.relpath = ?", (relpath,)).fetchone()
            result[relpath] = row[0] if row else None
        return result

    def label_of(self, relpath: str) -> str | None:
        return self.labels_for([relpath])[relpath]

    # ------------------------------------------------------------------ runs and models
    def _store_path(self, path: str | os.PathLike) -> str:
        """Paths inside the project are stored relative so a moved project still works."""
        path = Path(path).absolute()
        if _is_within(path, self.project_dir):
            return path.relative_to(self.project_dir).as_posix()
        return str(path)

    def _load_path(self, stored: str) -> str:
        return str(self.project_dir / stored) if not Path(stored).is_absolute() else stored

    def add_run(self, kind: str, path: str | os.PathLike, config: dict,
                status: str = "created") -> int:
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO runs(kind, path, config_json, status, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (kind, self._store_path(path), json.dumps(config, default=str), status,
                 time.time())).lastrowid

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Change status, summary (dict), config (dict) or path of a run."""
        columns = {"status": ("status", str), "path": ("path", self._store_path),
                   "summary": ("summary_json", lambda v: json.dumps(v, default=str)),
                   "config": ("config_json", lambda v: json.dumps(v, default=str))}
        unknown = set(fields) - set(columns)
        if unknown:
            raise TypeError(f"update_run() cannot change {sorted(unknown)}; "
                            f"allowed: {sorted(columns)}")
        if not fields:
            return
        sets = ", ".join(f"{columns[key][0]} = ?" for key in fields)
        values = [columns[key][1](value) for key, value in fields.items()]
        with self._write() as conn:
            if conn.execute(f"UPDATE runs SET {sets} WHERE id = ?",
                            (*values, run_id)).rowcount == 0:
                raise KeyError(f"no run with id {run_id}")

    def runs(self, kind: str | None = None) -> list[dict]:
        query = ("SELECT id, kind, path, config_json, status, summary_json, created_at "
                 "FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id")
        return [{"id": row[0], "kind": row[1], "path": self._load_path(row[2]),
                 "config": json.loads(row[3]), "status": row[4],
                 "summary": json.loads(row[5]), "created_at": row[6]}
                for row in self._conn().execute(query, (kind,) if kind else ())]

    def delete_run(self, run_id: int) -> None:
        """Forget a run (its folder on disk is left alone)."""
        with self._write() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def add_model(self, path: str | os.PathLike, info: dict) -> int:
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO models(path, info_json, created_at) VALUES (?, ?, ?)",
                (self._store_path(path), json.dumps(info, default=str), time.time())).lastrowid

    def models(self) -> list[dict]:
        return [{"id": row[0], "path": self._load_path(row[1]), "info": json.loads(row[2]),
                 "created_at": row[3]}
                for row in self._conn().execute(
                    "SELECT id, path, info_json, created_at FROM models ORDER BY id")]

    def delete_model(self, model_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))

    def integrity_check(self) -> list[str]:
        """SQLite's full integrity check; ['ok'] when the file is sound."""
        return [row[0] for row in self._conn().execute("PRAGMA integrity_check")]


def _check_and_migrate(db_path: Path) -> None:
    """Refuse corrupt, foreign or too-new databases with a readable reason; migrate old ones."""
    try:
        conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise ProjectError(f"cannot open {db_path}: {exc}") from exc
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:  # locked, read-only, no room: not damage
            raise ProjectError(f"cannot use {db_path}: {exc} (SSL Studio needs to write to "
                               f"the project folder)") from exc
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"{db_path} is damaged or not an SQLite database ({exc})") from exc
        marker = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
            marker = row[0] if row else None
        if marker != schema.APP_MARKER:
            raise ProjectError(f"{db_path} is an SQLite database but not an SSL Studio project")
        version = schema.read_version(conn)
        if version > schema.CURRENT_VERSION:
            raise ProjectError(f"{db_path} was written by a newer SSL Studio (schema version "
                               f"{version}; this version reads up to "
                               f"{schema.CURRENT_VERSION}); please update SSL Studio")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise ProjectError(f"{db_path} is damaged: {'; '.join(problems[:3])}")
        schema.migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{db_path} is damaged or unreadable ({exc})") from exc
    finally:
        conn.close()
