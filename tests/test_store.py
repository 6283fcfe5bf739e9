"""ProjectStore: layout, clear open errors, migration, index sync, classes, labels, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from sslstudio.project import ProjectError, ProjectStore, UnknownClassError, UnknownImageError
from sslstudio.project import schema
from sslstudio.project.store import resolve_project_dir

try:
    from sslstudio.data.scan import BadFile, ImageEntry, ScanResult
except ImportError:  # stand-ins with the contract's fields until sslstudio.data.scan lands
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class ImageEntry:
        relpath: str
        size: int
        mtime_ns: int

    @dataclass(frozen=True)
    class BadFile:
        relpath: str
        reason: str

    @dataclass
    class ScanResult:
        root: Path
        images: list
        bad: list
        seconds: float


def make_scan(root: Path, relpaths, bad=(), size=100, mtime=1) -> ScanResult:
    return ScanResult(root=root, images=[ImageEntry(r, size, mtime) for r in relpaths],
                      bad=[BadFile(r, reason) for r, reason in bad], seconds=0.0)


@pytest.fixture
def store(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    st = ProjectStore.create(tmp_path / "proj", images, name="demo")
    st.sync_index(make_scan(images, ["a/1.png", "a/2.png", "b/3.png", "b/4.png"]))
    yield st
    st.close()


# ---------------------------------------------------------------- create / open

def test_create_lays_out_project_with_durable_settings(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    st = ProjectStore.create(tmp_path / "proj", images)
    for sub in ("cache", "runs", "models", "thumbnails"):
        assert (tmp_path / "proj" / sub).is_dir()
    assert st.cache_dir == tmp_path / "proj" / "cache"
    assert st.image_root == images.resolve()
    assert st.name == "proj"
    conn = st._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert st.schema_version() == schema.CURRENT_VERSION == 2
    st.close()
    reopened = ProjectStore.open(tmp_path / "proj")
    assert reopened.image_root == images.resolve()
    reopened.close()


def test_create_refuses_existing_project_and_bad_places(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ProjectStore.create(tmp_path / "proj", images).close()
    with pytest.raises(ProjectError, match="already exists"):
        ProjectStore.create(tmp_path / "proj", images)
    with pytest.raises(ProjectError, match="inside the image folder"):
        ProjectStore.create(images / "proj", images)
    assert not (images / "proj").exists()
    with pytest.raises(ProjectError, match="image folder not found"):
        ProjectStore.create(tmp_path / "other", tmp_path / "nope")


def test_open_missing_folder_and_non_project(tmp_path):
    with pytest.raises(ProjectError, match="project folder not found") as err:
        ProjectStore.open(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ProjectError, match="not an SSL Studio project"):
        ProjectStore.open(tmp_path / "plain")


def test_open_corrupt_file(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "project.sqlite").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ProjectError, match="damaged or not an SQLite database") as err:
        ProjectStore.open(proj)
    assert "project.sqlite" in str(err.value)


def test_open_damaged_project(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with ProjectStore.create(tmp_path / "proj", images) as st:
        names = [f"dir/{i:05d}.png" for i in range(3000)]
        st.sync_index(make_scan(images, names))
        st.set_labels({n: "a" for n in names})
    db = tmp_path / "proj" / "project.sqlite"
    with open(db, "r+b") as handle:  # scribble over pages in the middle of the file
        handle.seek(db.stat().st_size // 2)
        handle.write(bytes(range(256)) * 32)
    with pytest.raises(ProjectError, match="damaged") as err:
        ProjectStore.open(tmp_path / "proj")
    assert str(db) in str(err.value)


def test_open_foreign_sqlite(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    conn = sqlite3.connect(proj / "project.sqlite")
    conn.execute("CREATE TABLE meta(key TEXT, value TEXT)")  # even a same-named table
    conn.execute("CREATE TABLE songs(title TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="not an SSL Studio project"):
        ProjectStore.open(proj)


def test_open_newer_schema_refused(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ProjectStore.create(tmp_path / "proj", images).close()
    conn = sqlite3.connect(tmp_path / "proj" / "project.sqlite")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="newer SSL Studio .*99"):
        ProjectStore.open(tmp_path / "proj")


def test_v1_project_is_migrated_with_data_intact(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    proj = tmp_path / "old"
    proj.mkdir()
    conn = sqlite3.connect(proj / "project.sqlite", isolation_level=None)
    schema.create_v1(conn)  # exactly what version 1 wrote
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                     [("image_root", str(images)), ("name", "old")])
    conn.executemany("INSERT INTO images(id, relpath, size, mtime_ns) VALUES (?, ?, 10, 1)",
                     [(1, "x.png"), (2, "y.png"), (3, "z.png")])
    conn.executemany("INSERT INTO classes(id, name, position) VALUES (?, ?, ?)",
                     [(1, "cat", 0), (2, "dog", 1)])
    conn.executemany("INSERT INTO labels(image_id, class_id, updated_at) VALUES (?, ?, 0)",
                     [(1, 1), (2, 2), (3, 2)])
    conn.execute("INSERT INTO runs(kind, path, config_json, status, created_at) "
                 "VALUES ('pretrain', 'runs/r1', '{\"task\": \"rotation\"}', 'completed', 0)")
    conn.close()
    with pytest.raises(sqlite3.OperationalError):  # v1 had no colours
        sqlite3.connect(proj / "project.sqlite").execute("SELECT color FROM classes")

    st = ProjectStore.open(proj)
    assert st.schema_version() == 2
    assert st.labels() == {"x.png": "cat", "y.png": "dog", "z.png": "dog"}
    infos = st.classes()
    assert [(c.name, c.count) for c in infos] == [("cat", 1), ("dog", 2)]
    assert infos[0].color != infos[1].color and all(c.color.startswith("#") for c in infos)
    (run,) = st.runs()
    assert run["config"] == {"task": "rotation"} and run["summary"] == {}
    assert run["path"] == str(proj / "runs" / "r1")
    assert st.image_relpaths() == ["x.png", "y.png", "z.png"]
    st.close()
    assert ProjectStore.open(proj).schema_version() == 2  # idempotent


# ---------------------------------------------------------------- index

def test_sync_index_adds_updates_flags_missing_and_keeps_labels(store):
    root = store.image_root
    assert store.image_relpaths() == ["a/1.png", "a/2.png", "b/3.png", "b/4.png"]
    store.set_label("a/1.png", "cat")
    # a/1.png (labelled) and a/2.png (unlabelled) vanish, b/3 changes, one new, one bad
    summary = store.sync_index(ScanResult(
        root=root, images=[ImageEntry("b/3.png", 999, 5), ImageEntry("b/4.png", 100, 1),
                           ImageEntry("c/5.png", 7, 7)],
        bad=[BadFile("c/broken.jpg", "truncated file")], seconds=0.0))
    assert (summary.added, summary.updated, summary.missing, summary.removed,
            summary.bad, summary.total) == (1, 1, 1, 1, 1, 3)
    assert store.image_relpaths() == ["b/3.png", "b/4.png", "c/5.png"]
    assert [e.size for e in store.image_entries()] == [999, 100, 7]
    assert [(b.relpath, b.reason) for b in store.bad_files()] == [("c/broken.jpg", "truncated file")]
    assert store.missing_relpaths() == ["a/1.png"]
    assert store.labels() == {"a/1.png": "cat"}  # the label of a missing image survives
    assert store.labels(present_only=True) == {}
    # the file comes back: it is present again with its label
    store.sync_index(make_scan(root, ["a/1.png", "b/3.png"]))
    assert store.missing_relpaths() == []
    assert store.labels(present_only=True) == {"a/1.png": "cat"}
    assert store.bad_files() == []


def test_sync_index_refuses_scan_of_other_folder(store, tmp_path):
    with pytest.raises(ValueError, match="image folder"):
        store.sync_index(make_scan(tmp_path, ["a/1.png"]))
    assert len(store.image_relpaths()) == 4


def test_record_bad_hides_image_but_keeps_label(store):
    store.set_label("b/3.png", "dog")
    store.record_bad([BadFile("b/3.png", "cannot identify image file")])
    assert "b/3.png" not in store.image_relpaths()
    assert [(b.relpath, b.reason) for b in store.bad_files()] == [
        ("b/3.png", "cannot identify image file")]
    assert store.labels() == {"b/3.png": "dog"}


# ---------------------------------------------------------------- labels

def test_set_label_is_committed_before_returning(store):
    store.set_label("a/1.png", "cat")
    # a separate connection (another process would see the same) sees it at once
    other = sqlite3.connect(store.db_path)
    rows = other.execute("SELECT i.relpath, c.name FROM labels l JOIN images i ON i.id = "
                         "l.image_id JOIN classes c ON c.id = l.class_id").fetchall()
    other.close()
    assert rows == [("a/1.png", "cat")]


def test_set_label_creates_class_overwrites_and_removes(store):
    store.set_label("a/1.png", "cat")
    store.set_label("a/2.png", " cat ")  # whitespace trimmed, same class
    assert store.class_names() == ["cat"]
    store.set_label("a/1.png", "dog")
    assert store.labels() == {"a/1.png": "dog", "a/2.png": "cat"}
    store.set_label("a/1.png", None)
    assert store.labels() == {"a/2.png": "cat"}
    assert store.labels_for(["a/1.png", "a/2.png"]) == {"a/1.png": None, "a/2.png": "cat"}
    with pytest.raises(ValueError, match="empty"):
        store.set_label("a/1.png", "  ")


def test_unknown_image_is_a_clear_error_and_changes_nothing(store):
    with pytest.raises(UnknownImageError) as err:
        store.set_labels({"a/1.png": "cat", "zz/nothere.png": "cat"})
    assert "zz/nothere.png" in str(err.value) and "demo" in str(err.value)
    assert isinstance(err.value, KeyError)
    assert store.labels() == {} and store.classes() == []  # all or nothing


def test_set_labels_bulk(store):
    store.set_labels({"a/1.png": "cat", "a/2.png": "cat", "b/3.png": "dog", "b/4.png": None})
    assert store.labels() == {"a/1.png": "cat", "a/2.png": "cat", "b/3.png": "dog"}
    assert [(c.name, c.count) for c in store.classes()] == [("cat", 2), ("dog", 1)]


def test_big_bulk_uses_index_scan_path(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    st = ProjectStore.create(tmp_path / "p", images)
    names = [f"img_{i:05d}.png" for i in range(1000)]
    st.sync_index(make_scan(images, names))
    st.set_labels({n: ("even" if i % 2 == 0 else "odd") for i, n in enumerate(names)})
    assert [(c.name, c.count) for c in st.classes()] == [("even", 500), ("odd", 500)]
    with pytest.raises(UnknownImageError, match="and 1 more"):
        st.set_labels({**{n: "x" for n in names}, **{f"no{i}.png": "x" for i in range(6)}})
    assert "x" not in st.class_names()
    st.close()


# ---------------------------------------------------------------- classes

def test_classes_add_rename_merge_delete(store):
    cat = store.add_class("cat")
    assert isinstance(cat, int)
    store.add_class("dog")
    store.add_class("bird", color="#123456")
    colors = [c.color for c in store.classes()]
    assert len(set(colors)) == 3 and colors[2] == "#123456"
    with pytest.raises(ValueError, match="already exists"):
        store.add_class("cat")
    with pytest.raises(ValueError, match="#rrggbb"):
        store.add_class("fish", color="red")

    store.set_labels({"a/1.png": "cat", "a/2.png": "dog", "b/3.png": "bird"})
    store.rename_class("cat", "kitten")
    assert store.labels()["a/1.png"] == "kitten"
    with pytest.raises(ValueError, match="merge"):
        store.rename_class("kitten", "dog")
    with pytest.raises(UnknownClassError, match="'lion'"):
        store.rename_class("lion", "tiger")

    assert store.merge_classes("kitten", "dog") == 1
    assert store.labels() == {"a/1.png": "dog", "a/2.png": "dog", "b/3.png": "bird"}
    assert [(c.name, c.count) for c in store.classes()] == [("dog", 2), ("bird", 1)]

    assert store.delete_class("dog") == 2
    assert store.labels() == {"b/3.png": "bird"}
    assert store.class_names() == ["bird"]


def test_default_colours_stay_distinct_for_many_classes(store):
    for i in range(40):
        store.add_class(f"c{i}")
    colors = [c.color for c in store.classes()]
    assert len(set(colors)) == 40
    store.reorder_classes(["c5", "c1"])
    assert store.class_names()[:3] == ["c5", "c1", "c0"]


# ---------------------------------------------------------------- runs, models, settings

def test_runs_models_and_settings_round_trip(store):
    run_id = store.add_run("pretrain", store.runs_dir / "r1", {"task": "jigsaw", "steps": 10})
    store.update_run(run_id, status="completed", summary={"loss": 0.5})
    (run,) = store.runs(kind="pretrain")
    assert run["status"] == "completed" and run["summary"] == {"loss": 0.5}
    assert run["config"]["task"] == "jigsaw"
    assert Path(run["path"]) == store.runs_dir / "r1"
    assert store.runs(kind="classifier") == []
    with pytest.raises(TypeError, match="cannot change"):
        store.update_run(run_id, colour="red")
    with pytest.raises(KeyError):
        store.update_run(12345, status="x")
    stored = sqlite3.connect(store.db_path).execute("SELECT path FROM runs").fetchone()[0]
    assert stored == "runs/r1"  # relative: the project folder can move

    model_id = store.add_model(store.models_dir / "m1", {"classes": ["a", "b"]})
    assert store.models()[0]["id"] == model_id
    assert store.models()[0]["info"] == {"classes": ["a", "b"]}
    store.delete_model(model_id)
    assert store.models() == []

    store.set_setting("last_task", {"name": "rotation"})
    assert store.get_setting("last_task") == {"name": "rotation"}
    assert store.get_setting("nothing", 3) == 3


# ---------------------------------------------------------------- threads

def test_labels_from_many_threads(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    st = ProjectStore.create(tmp_path / "p", images)
    names = [f"{i:04d}.png" for i in range(200)]
    st.sync_index(make_scan(images, names))
    errors = []

    def worker(k):
        try:
            for n in names[k::4]:
                st.set_label(n, f"class{k}")
            st.labels()  # reads interleave with other threads' writes
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    labels = st.labels()
    assert len(labels) == 200
    assert all(labels[n] == f"class{i % 4}" for i, n in enumerate(names))
    st.close()
    with pytest.raises(ProjectError, match="closed"):
        st.labels()


def test_resolve_project_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "sslstudio-home"  # SSLSTUDIO_HOME, set by conftest
    assert resolve_project_dir("flowers") == home / "projects" / "flowers"
    (tmp_path / "here").mkdir()
    assert resolve_project_dir("here") == tmp_path / "here"
    assert resolve_project_dir("./x") == tmp_path / "x"
