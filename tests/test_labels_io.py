"""Labels import/export: CSV and ImageFolder round trips, lenient CSV reading, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sslstudio.cli import main
from sslstudio.project import ProjectStore
from sslstudio.project.labels_io import (
    LabelsIOError,
    export_csv,
    export_imagefolder,
    import_csv,
    import_imagefolder,
)

try:
    from sslstudio.data.scan import ImageEntry, ScanResult
except ImportError:  # stand-ins with the contract's fields until sslstudio.data.scan lands
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class ImageEntry:
        relpath: str
        size: int
        mtime_ns: int

    @dataclass
    class ScanResult:
        root: Path
        images: list
        bad: list
        seconds: float


def scan_of(root: Path) -> ScanResult:
    """Index every file under root (the toy folders hold only valid PNGs)."""
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            entries.append(ImageEntry(path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return ScanResult(root=root, images=entries, bad=[], seconds=0.0)


def new_project(tmp_path: Path, images: Path, name: str = "proj") -> ProjectStore:
    store = ProjectStore.create(tmp_path / name, images)
    store.sync_index(scan_of(images))
    return store


def tree(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*")}


# ---------------------------------------------------------------- CSV

def test_csv_round_trip(tmp_path, toy_folder):
    images, truth = toy_folder
    before = tree(images)
    with new_project(tmp_path, images) as store:
        store.set_labels(truth)
        out = tmp_path / "out" / "labels.csv"
        assert export_csv(store, out) == len(truth)
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "filename,label"
    assert lines[1] == "blue/blue_000.png,blue"  # sorted, relative, "/" separators
    with new_project(tmp_path, images, "second") as other:
        report = import_csv(other, out)
        assert other.labels() == truth
    assert report.imported == len(truth) and report.unknown_files == []
    assert tree(images) == before  # the image folder was never touched


def test_csv_import_is_lenient_and_reports_problems(tmp_path, toy_folder):
    images, _ = toy_folder
    absolute = str(images.resolve() / "green" / "green_001.png")
    text = ("\ufeffFilename,Label\r\n"
            "./red/red_000.png,cat\r\n"
            "red\\red_001.png,cat\r\n"
            f"{absolute},dog\r\n"
            "somewhere/else/blue_002.png,bird\r\n"  # unique file name → matched by name
            "red/red_002.png,\r\n"                  # no label: skipped
            "\r\n"
            "nope/missing.png,cat\r\n")
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(text.encode("utf-8"))
    with new_project(tmp_path, images) as store:
        store.set_label("red/red_000.png", "cat")  # already so: counted unchanged
        report = import_csv(store, csv_path)
        assert store.labels() == {"red/red_000.png": "cat", "red/red_001.png": "cat",
                                  "green/green_001.png": "dog", "blue/blue_002.png": "bird"}
    assert (report.imported, report.unchanged, report.matched_by_name,
            report.skipped_empty) == (3, 1, 1, 1)
    assert report.unknown_files == ["nope/missing.png"]
    assert report.new_classes == ["dog", "bird"]
    assert "nope/missing.png" in report.summary()


def test_csv_without_header_semicolons_and_swapped_columns(tmp_path, toy_folder):
    images, _ = toy_folder
    with new_project(tmp_path, images) as store:
        (tmp_path / "a.csv").write_text("red/red_000.png;x\nred/red_001.png;y\n")
        assert import_csv(store, tmp_path / "a.csv").imported == 2
        # a first row naming a project image is data, even if its label reads "label"
        (tmp_path / "c.csv").write_text("red/red_005.png,label\n")
        assert import_csv(store, tmp_path / "c.csv").imported == 1
        (tmp_path / "b.csv").write_text("class,path\nz,red/red_000.png\nw,red/red_000.png\n")
        report = import_csv(store, tmp_path / "b.csv")
        assert store.labels() == {"red/red_000.png": "w", "red/red_001.png": "y",
                                  "red/red_005.png": "label"}
    assert report.conflicts == ["red/red_000.png"]


def test_csv_errors_are_clear(tmp_path, toy_folder):
    images, _ = toy_folder
    with new_project(tmp_path, images) as store:
        with pytest.raises(LabelsIOError, match="not found: .*none.csv"):
            import_csv(store, tmp_path / "none.csv")
        with pytest.raises(LabelsIOError, match="inside the image folder"):
            export_csv(store, images / "labels.csv")
    assert not (images / "labels.csv").exists()


# ---------------------------------------------------------------- ImageFolder

def test_imagefolder_import_from_the_image_folder_itself(tmp_path, toy_folder):
    images, truth = toy_folder  # red/…, green/…, blue/…: already one folder per class
    with new_project(tmp_path, images) as store:
        report = import_imagefolder(store, images)
        assert store.labels() == truth
    assert report.imported == 24 and report.matched_by_name == 0


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_imagefolder_round_trip_with_name_clashes(tmp_path, mode):
    images = tmp_path / "images"
    for sub in ("a", "b", "c/d"):  # the same file name three times
        (images / sub).mkdir(parents=True)
        (images / sub / "x.png").write_bytes(f"fake png {sub}".encode())
    (images / "y.png").write_bytes(b"fake png y")
    labels = {"a/x.png": "cat", "b/x.png": "cat", "c/d/x.png": "cat", "y.png": "dog/wolf"}
    with new_project(tmp_path, images) as store:
        store.set_labels(labels)
        dest = tmp_path / "export"
        report = export_imagefolder(store, dest, mode=mode)
    assert (report.written, report.renamed) == (4, 3)
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == ["cat/a__x.png", "cat/b__x.png", "cat/c__d__x.png", "dog_wolf/y.png"]
    assert (dest / "cat" / "b__x.png").read_bytes() == b"fake png b"
    assert (dest / "dog_wolf" / "y.png").is_symlink() == (mode == "symlink")

    with new_project(tmp_path, images, "fresh") as fresh:
        back = import_imagefolder(fresh, dest)
        assert fresh.labels() == {**labels, "y.png": "dog_wolf"}  # folder-safe class name
    assert back.unknown_files == []


def test_imagefolder_export_refuses_unsafe_destinations(tmp_path, toy_folder):
    images, truth = toy_folder
    before = tree(images)
    with new_project(tmp_path, images) as store:
        store.set_labels(truth)
        with pytest.raises(LabelsIOError, match="inside the image folder"):
            export_imagefolder(store, images / "export")
        with pytest.raises(LabelsIOError, match="contains the image folder"):
            export_imagefolder(store, images.parent)
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "keep.txt").write_text("mine")
        with pytest.raises(LabelsIOError, match="not empty"):
            export_imagefolder(store, tmp_path / "full")
        with pytest.raises(LabelsIOError, match="mode"):
            export_imagefolder(store, tmp_path / "new", mode="move")
    assert tree(images) == before


def test_imagefolder_export_skips_and_reports_vanished_files(tmp_path, toy_folder):
    images, truth = toy_folder
    with new_project(tmp_path, images) as store:
        store.set_labels(truth)
        os.remove(images / "red" / "red_003.png")
        seen = []
        report = export_imagefolder(store, tmp_path / "out",
                                    progress=lambda done, total: seen.append((done, total)))
    assert report.missing == ["red/red_003.png"]
    assert report.written == len(truth) - 1
    assert seen[-1] == (len(truth), len(truth))


def test_imagefolder_import_reports_unknown_files(tmp_path, toy_folder):
    images, _ = toy_folder
    folder = tmp_path / "labelled"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "red_004.png").write_bytes(b"x")     # matches red/red_004.png by name
    (folder / "cat" / "stranger.png").write_bytes(b"x")    # not in the project
    (folder / "cat" / "notes.txt").write_text("ignored")   # not an image
    with new_project(tmp_path, images) as store:
        report = import_imagefolder(store, folder)
        assert store.labels() == {"red/red_004.png": "cat"}
    assert report.matched_by_name == 1
    assert report.unknown_files == ["cat/stranger.png"]


# ---------------------------------------------------------------- CLI

def test_cli_export_import_show(tmp_path, toy_folder, capsys):
    images, truth = toy_folder
    with new_project(tmp_path, images) as store:
        store.set_labels(truth)
    project = str(tmp_path / "proj")
    assert main(["labels", "export", project, "--csv", str(tmp_path / "l.csv")]) == 0
    assert main(["labels", "export", project, "--imagefolder", str(tmp_path / "if")]) == 0
    assert len(list((tmp_path / "if" / "red").iterdir())) == 8
    assert main(["labels", "show", project]) == 0
    out = capsys.readouterr().out
    assert "24 labels written" in out and "24 labelled" in out

    with new_project(tmp_path, images, "two"):
        pass
    assert main(["labels", "import", str(tmp_path / "two"), "--csv",
                 str(tmp_path / "l.csv")]) == 0
    assert "24 labels imported" in capsys.readouterr().out
    with ProjectStore.open(tmp_path / "two") as two:
        assert two.labels() == truth


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["labels", "show", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not an SSL Studio project" in err


def test_cli_init_creates_and_indexes(tmp_path, toy_folder, capsys):
    images, truth = toy_folder
    assert main(["labels", "init", str(tmp_path / "p"), str(images), "--name", "toy"]) == 0
    assert "24 images" in capsys.readouterr().out
    with ProjectStore.open(tmp_path / "p") as store:
        assert sorted(store.image_relpaths()) == sorted(truth)
        assert store.name == "toy"
    assert main(["labels", "init", str(tmp_path / "p"), str(images)]) == 2
    assert "already exists" in capsys.readouterr().err
