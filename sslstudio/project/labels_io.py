"""Labels in and out of a project: CSV (`filename,label`) and ImageFolder (one folder per class).

Paths in a CSV are relative to the project's image folder. Reading is lenient
about what spreadsheets and other tools write: a UTF-8 BOM, Windows line
endings, `;` or tab separators, "./" prefixes, backslashes, absolute paths
inside the image folder, and (when unambiguous) a bare file name. Every import
applies its labels in one transaction and returns an ImportReport that lists
what could not be matched. Nothing is ever written into the image folder.
`read_csv_labels` reads a CSV the same way for the commands that work on a
folder without a project (classify, evaluate, pretrain --labels).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sslstudio.plural import count
from sslstudio.project.store import ProjectStore

try:
    from sslstudio.data.formats import IMAGE_EXTENSIONS
except ImportError:  # pragma: no cover - only until sslstudio.data.formats exists
    IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

FILE_HEADERS = {"filename", "file", "file_name", "path", "filepath", "relpath", "image",
                "image_path", "name"}
LABEL_HEADERS = {"label", "class", "class_name", "category", "target"}
FLAT_SEPARATOR = "__"  # sub/dir/x.png exported as sub__dir__x.png when x.png clashes


class LabelsIOError(Exception):
    """Bad input or destination for an import/export; the message says which and why."""


@dataclass
class ImportReport:
    source: Path
    imported: int = 0          # labels added or changed
    unchanged: int = 0         # rows that repeated the current label
    matched_by_name: int = 0   # rows matched by file name alone (path differed)
    skipped_empty: int = 0     # rows without a label
    unknown_files: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # images given two labels (last wins)
    new_classes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.imported} labels imported from {self.source}"]
        if self.unchanged:
            parts.append(f"{self.unchanged} unchanged")
        if self.matched_by_name:
            parts.append(f"{self.matched_by_name} matched by file name")
        if self.skipped_empty:
            parts.append(f"{self.skipped_empty} rows without a label skipped")
        if self.new_classes:
            parts.append(f"new classes: {', '.join(self.new_classes)}")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} images labelled twice (last label kept)")
        if self.unknown_files:
            parts.append(f"{len(self.unknown_files)} files not in the project: "
                         f"{_first_few(self.unknown_files)}")
        return "; ".join(parts)

    def read_warnings(self, folder) -> list[str]:
        """What a command reading this CSV for `folder` should warn about, one line each."""
        lines = []
        if self.unknown_files:
            lines.append(f"{count(len(self.unknown_files), 'labelled file')} not found in "
                         f"{folder}: {_first_few(self.unknown_files)}")
        if self.conflicts:
            lines.append(f"{count(len(self.conflicts), 'image')} labelled twice in {self.source} "
                         f"(the last label kept): {_first_few(self.conflicts)}")
        return lines


def _first_few(names: list[str], shown: int = 5) -> str:
    """'a, b, c, d, e …': the first names of a list, for a one-line message."""
    return ", ".join(names[:shown]) + (" …" if len(names) > shown else "")


@dataclass
class ExportReport:
    dest: Path
    written: int = 0
    renamed: int = 0                                            # name clashes resolved
    missing: list[str] = field(default_factory=list)            # labelled but file gone
    cancelled: bool = False

    def summary(self) -> str:
        text = f"{self.written} files written to {self.dest}"
        if self.renamed:
            text += f"; {self.renamed} renamed to avoid name clashes"
        if self.missing:
            text += f"; {len(self.missing)} labelled files no longer exist (skipped)"
        if self.cancelled:
            text += "; cancelled before the end"
        return text


# ---------------------------------------------------------------- matching paths

class _PathMatcher:
    """Maps the many ways a file can be written to one relpath of the project."""

    def __init__(self, root: Path, relpaths: Iterable[str]) -> None:
        self.root = Path(root).resolve()
        self.known = set(relpaths)
        by_name: dict[str, list[str]] = {}
        for relpath in self.known:
            by_name.setdefault(relpath.rsplit("/", 1)[-1], []).append(relpath)
        self.unique_names = {name: paths[0] for name, paths in by_name.items() if len(paths) == 1}

    @classmethod
    def of(cls, store: ProjectStore) -> _PathMatcher:
        return cls(store.image_root, store.known_relpaths())

    def relative_to_root(self, path: Path) -> str | None:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def match(self, candidates: Iterable[str | None]) -> tuple[str | None, bool]:
        """The first candidate that is a known relpath; else a unique file name. (relpath, by_name)."""
        candidates = [c for c in candidates if c]
        for candidate in candidates:
            if candidate in self.known:
                return candidate, False
        for candidate in candidates:
            name = candidate.rsplit("/", 1)[-1]
            if name in self.unique_names:
                return self.unique_names[name], True
        return None, False


def normalize_relpath(raw: str) -> str:
    """'.\\sub\\x.png' → 'sub/x.png': the project's spelling of a path."""
    path = raw.strip().replace("\\", "/")
    path = re.sub(r"/{2,}", "/", path)
    while path.startswith("./"):
        path = path[2:]
    return path


def _apply(store: ProjectStore, report: ImportReport,
           found: dict[str, str], by_name: set[str]) -> ImportReport:
    current = store.labels()
    changes = {r: c for r, c in found.items() if current.get(r) != c}
    before = set(store.class_names())
    report.new_classes = [c for c in dict.fromkeys(changes.values()) if c not in before]
    try:
        store.set_labels(changes)
    except ValueError as exc:  # e.g. a label made of control characters
        raise LabelsIOError(f"cannot import {report.source}: {exc}") from exc
    report.imported = len(changes)
    report.unchanged = len(found) - len(changes)
    report.matched_by_name = len(by_name)
    return report


def _check_outside_images(store: ProjectStore, path: Path, what: str) -> None:
    root = store.image_root.resolve()
    resolved = path.resolve()
    if resolved == root or root in resolved.parents:
        raise LabelsIOError(f"{what} {path} is inside the image folder {root}; "
                            f"SSL Studio never writes there, choose another place")


# ---------------------------------------------------------------- CSV

def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # old spreadsheet exports; never fails


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    for delimiter in (",", ";", "\t"):
        if delimiter in first:
            return delimiter
    return ","


def import_csv(store: ProjectStore, path: str | os.PathLike) -> ImportReport:
    """Set the labels listed in a `filename,label` CSV; see ImportReport for what is counted."""
    found, by_name, report = _read_csv(Path(path), _PathMatcher.of(store))
    return _apply(store, report, found, by_name)


def read_csv_labels(path: str | os.PathLike, relpaths: Iterable[str],
                    image_root: str | os.PathLike) -> tuple[dict[str, str], ImportReport]:
    """relpath → label from a CSV, matched against the images `relpaths` of `image_root`
    with import_csv's leniency, for commands that work on a folder without a project.
    The report lists what did not match (unknown_files), conflicts and empty rows."""
    found, by_name, report = _read_csv(Path(path), _PathMatcher(Path(image_root), relpaths))
    report.matched_by_name = len(by_name)
    return found, report


def _read_csv(path: Path, matcher: _PathMatcher) -> tuple[dict[str, str], set[str], ImportReport]:
    if not path.is_file():
        raise LabelsIOError(f"CSV file not found: {path}")
    try:
        text = _read_text(path)
    except OSError as exc:
        raise LabelsIOError(f"cannot read {path}: {exc}") from exc
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=_sniff_delimiter(text))
            if any(cell.strip() for cell in row)]
    file_col, label_col = 0, 1
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        named = any(h in FILE_HEADERS or h in LABEL_HEADERS for h in header)
        if named and matcher.match([normalize_relpath(c) for c in rows[0]])[0] is None:
            file_col = next((i for i, h in enumerate(header) if h in FILE_HEADERS), 0)
            label_col = next((i for i, h in enumerate(header) if h in LABEL_HEADERS),
                             1 if file_col == 0 else 0)
            rows = rows[1:]
    report = ImportReport(source=path)
    found: dict[str, str] = {}
    by_name: set[str] = set()
    for row in rows:
        raw = row[file_col].strip() if len(row) > file_col else ""
        label = row[label_col].strip() if len(row) > label_col else ""
        if not raw:
            continue
        if not label:
            report.skipped_empty += 1
            continue
        relpath = normalize_relpath(raw)
        absolute = (matcher.relative_to_root(Path(raw).resolve())
                    if os.path.isabs(raw) else None)
        _record(report, found, by_name, *matcher.match([relpath, absolute]), label, raw)
    return found, by_name, report


def _record(report: ImportReport, found: dict[str, str], by_name: set[str], match: str | None,
            named: bool, label: str, shown_as: str) -> None:
    """Note one imported label: unknown file, conflict with an earlier row, or a match."""
    if match is None:
        report.unknown_files.append(shown_as)
        return
    if match in found and found[match] != label:
        report.conflicts.append(match)
    found[match] = label
    if named:
        by_name.add(match)


def export_csv(store: ProjectStore, path: str | os.PathLike) -> int:
    """Write every label (missing files included) as `filename,label`; returns rows written."""
    path = Path(path).absolute()
    _check_outside_images(store, path, "the CSV file")
    labels = store.labels()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["filename", "label"])
            writer.writerows(labels.items())
        os.replace(tmp, path)  # a reader never sees half a file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LabelsIOError(f"cannot write {path}: {exc}") from exc
    return len(labels)


# ---------------------------------------------------------------- ImageFolder

def _folder_name(class_name: str) -> str:
    """A class name made safe as one folder name on every OS."""
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", class_name).strip().rstrip(".")
    return name if name not in ("", ".", "..") else "_"


def _free_name(relpath: str, taken: set[str], ambiguous: set[str]) -> str:
    """File name for relpath inside one class folder; `taken` holds lower-cased used names.

    A file name shared by several project images becomes the flattened path
    (sub__x.png) so that importing the folder back finds the right image.
    """
    pure = PurePosixPath(relpath)
    first = relpath.replace("/", FLAT_SEPARATOR) if pure.name in ambiguous else pure.name
    if first.lower() not in taken:
        return first
    n = 2
    while f"{pure.stem}-{n}{pure.suffix}".lower() in taken:
        n += 1
    return f"{pure.stem}-{n}{pure.suffix}"


def export_imagefolder(store: ProjectStore, dest: str | os.PathLike, mode: str = "copy", *,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: Callable[[], bool] | None = None) -> ExportReport:
    """Write dest/<class>/<file> for every labelled image, by copy or symlink.

    dest must be empty or new and outside the image folder. Files are named by
    their file name, or by their flattened path (sub__x.png) when several
    project images share that name, so import_imagefolder maps them back.
    """
    if mode not in ("copy", "symlink"):
        raise LabelsIOError(f"mode must be 'copy' or 'symlink', not {mode!r}")
    dest = Path(dest).absolute()
    root = store.image_root.resolve()
    _check_outside_images(store, dest, "the export folder")
    if root in dest.resolve().parents or dest.resolve() in root.parents:
        raise LabelsIOError(f"the export folder {dest} contains the image folder {root}; "
                            f"choose an empty folder elsewhere")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabelsIOError(f"the export folder {dest} is not empty; choose a new or empty folder")
    labels = store.labels()
    folders: dict[str, Path] = {}
    for class_name in dict.fromkeys(labels.values()):
        base = name = _folder_name(class_name)
        n = 2
        while any(p.name.lower() == name.lower() for p in folders.values()):
            name = f"{base}_{n}"
            n += 1
        folders[class_name] = dest / name
    report = ExportReport(dest=dest)
    name_counts = Counter(r.rsplit("/", 1)[-1] for r in store.known_relpaths())
    ambiguous = {name for name, count in name_counts.items() if count > 1}
    taken: dict[str, set[str]] = {c: set() for c in folders}
    try:
        for done, (relpath, class_name) in enumerate(labels.items()):
            if cancel is not None and cancel():
                report.cancelled = True
                break
            source = root / relpath
            if not source.is_file():
                report.missing.append(relpath)
                continue
            name = _free_name(relpath, taken[class_name], ambiguous)
            report.renamed += name != PurePosixPath(relpath).name
            taken[class_name].add(name.lower())
            target = folders[class_name] / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "copy":
                shutil.copy2(source, target)
            else:
                os.symlink(source, target)
            report.written += 1
            if progress is not None:
                progress(done + 1, len(labels))
    except OSError as exc:
        hint = " (symbolic links may need extra rights here; try copy)" if mode == "symlink" else ""
        raise LabelsIOError(f"export to {dest} failed: {exc}{hint}") from exc
    return report


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.startswith(".") and _is_image(Path(filename)):
                yield Path(dirpath) / filename


def import_imagefolder(store: ProjectStore, folder: str | os.PathLike) -> ImportReport:
    """Label images from a folder-per-class layout (e.g. a previous export).

    Each file is matched to a project image by, in order: where its symlink
    points, its place in the image folder (when `folder` is the image folder or
    inside it), its path below the class folder, its flattened export name, and
    finally its file name when only one project image has that name.
    """
    folder = Path(folder).expanduser().resolve()  # file symlinks inside stay unresolved
    if not folder.is_dir():
        raise LabelsIOError(f"ImageFolder not found: {folder}")
    matcher = _PathMatcher.of(store)
    report = ImportReport(source=folder)
    found: dict[str, str] = {}
    by_name: set[str] = set()
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_dir in class_dirs:
        label = class_dir.name.strip()
        for path in _walk_images(class_dir):
            below = path.relative_to(class_dir).as_posix()
            candidates = [
                matcher.relative_to_root(path.resolve()) if path.is_symlink() else None,
                matcher.relative_to_root(path),
                below,
                below.replace(FLAT_SEPARATOR, "/") if FLAT_SEPARATOR in below else None,
            ]
            _record(report, found, by_name, *matcher.match(candidates), label,
                    path.relative_to(folder).as_posix())
    return _apply(store, report, found, by_name)
