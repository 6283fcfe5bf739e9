"""The project database schema: version 1 DDL plus one function per upgrade.

A new database is built by running the version 1 DDL and then every migration,
so a fresh project and an upgraded old one always end up with the same tables.
To change the schema: append a function to MIGRATIONS (it receives a
connection inside an open transaction) and never edit an old step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

APP_MARKER = "sslstudio-project"  # meta['app']: tells our databases from foreign ones

# Distinct, colour-blind-friendlier defaults first; later classes get generated hues. No
# grey: the embedding map draws unlabelled images grey, and a grey class (tab10's eighth
# colour, the digit 7 of ten classes) vanished among them.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#e7ba52", "#637939", "#ad494a", "#a55194",
)

SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    relpath    TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    bad_reason TEXT
);
CREATE TABLE classes (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL
);
CREATE TABLE labels (
    image_id   INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    class_id   INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    updated_at REAL NOT NULL
);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL,
    info_json  TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def palette_color(index: int) -> str:
    """The index-th default class colour: the palette, then golden-ratio hues."""
    if index < len(PALETTE):
        return PALETTE[index]
    import colorsys

    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.85)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """v2: class colours, run summaries, a 'missing' flag for images, label-count index."""
    conn.execute("ALTER TABLE classes ADD COLUMN color TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE runs ADD COLUMN summary_json TEXT NOT NULL DEFAULT '{}'")
    conn.execute("ALTER TABLE images ADD COLUMN missing INTEGER NOT NULL DEFAULT 0")
    conn.execute("CREATE INDEX labels_by_class ON labels(class_id)")
    ids = [row[0] for row in conn.execute("SELECT id FROM classes ORDER BY position, id")]
    conn.executemany("UPDATE classes SET color = ? WHERE id = ?",
                     [(palette_color(i), class_id) for i, class_id in enumerate(ids)])


# MIGRATIONS[i] upgrades version i+1 to version i+2.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_to_v2]
CURRENT_VERSION = 1 + len(MIGRATIONS)


def read_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])


def create_v1(conn: sqlite3.Connection) -> None:
    """Write an empty version 1 database (also used by tests to fake an old project)."""
    conn.executescript(SCHEMA_V1)
    conn.execute("INSERT INTO meta(key, value) VALUES ('app', ?)", (APP_MARKER,))
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to CURRENT_VERSION, one committed step at a time; returns the old version.

    The version is re-read inside each write transaction so two processes opening
    the same old project at once do not both run a step.
    """
    start = read_version(conn)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = read_version(conn)
            if version >= CURRENT_VERSION:
                conn.execute("COMMIT")
                return start
            MIGRATIONS[version - 1](conn)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                         (str(version + 1),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
