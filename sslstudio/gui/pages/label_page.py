"""Label page: the gallery, a class panel, keyboard labelling, undo/redo, filters, a preview.

Keys (when the gallery has focus): 1–9 give the selected images the class at
that position, a letter gives the class starting with it (when only one does),
0 / Backspace / Delete remove the label; Ctrl+Z / Ctrl+Shift+Z undo and redo.
When every class is named by one digit (handwritten digits), 0–9 give the class of
that name instead, and Backspace / Delete clear.
Every change is written to the store before the tag appears (the store commits
per call), and each undo or redo is written at once too.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QKeySequence, QPixmap, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sslstudio import plural
from sslstudio.gui.widgets.gallery import GalleryModel, GalleryView, loader_for
from sslstudio.project.suggest import SUGGEST_COUNT

# above this many images the suggestions' k-means runs in a worker: on 100,000 images it
# takes 6-14 s on 2 cores, 0.2 s on 2,400 (docs/benchmarks-classifier.md)
SUGGEST_IN_BACKGROUND_ABOVE = 5000

PREVIEW_SIZE = 360
CLEAR_KEYS = {Qt.Key.Key_Backspace, Qt.Key.Key_Delete}   # and 0, unless classes are digits
POSITION_KEYS_HINT = ("Keys: <b>1–9</b> class by position · <b>letter</b> class by first "
                      "letter · <b>0</b>/<b>Backspace</b> clear · <b>Ctrl+Z</b> undo · "
                      "Shift/Ctrl-click or Ctrl+A to select many")
NAMED_KEYS_HINT = ("Keys: <b>0–9</b> the class of that name · <b>Backspace</b> clear · "
                   "<b>Ctrl+Z</b> undo · Shift/Ctrl-click or Ctrl+A to select many")
STRATEGY_TEXT = {
    "least_confident": "least confident predictions first",
    "k_center": "diverse picks from the embedding (k-centre)",
    "representative": "typical images of the groups in the embedding that no label reaches "
                      "yet (k-means)",
    "spread": "a spread-out sample (no pretrained backbone yet: pretrain for smarter picks)",
}


# ---------------------------------------------------------------------------- undo commands
class _StoreCommand(QUndoCommand):
    """Base: the page refreshes after every do/undo; the first redo is skipped because
    the page applied the change itself (so errors surface before anything is pushed)."""

    def __init__(self, page: LabelPage, text: str) -> None:
        super().__init__(text)
        self.page = page
        self._first = True

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self.page._guarded(self.apply)

    def undo(self) -> None:
        self.page._guarded(self.revert)

    def apply(self) -> None:
        raise NotImplementedError

    def revert(self) -> None:
        raise NotImplementedError


class LabelCommand(_StoreCommand):
    def __init__(self, page, before: dict, after: dict, text: str) -> None:
        super().__init__(page, text)
        self.before, self.after = before, after

    def apply(self) -> None:
        self.page.store.set_labels(self.after)
        self.page._labels_applied(self.after)

    def revert(self) -> None:
        self.page.store.set_labels(self.before)
        self.page._labels_applied(self.before)


class AddClassCommand(_StoreCommand):
    def __init__(self, page, name: str, color: str) -> None:
        super().__init__(page, f"add class {name}")
        self.name, self.color = name, color

    def apply(self) -> None:
        self.page.store.add_class(self.name, self.color)
        self.page._classes_changed()

    def revert(self) -> None:
        self.page.store.delete_class(self.name)
        self.page._classes_changed()


class RenameClassCommand(_StoreCommand):
    def __init__(self, page, old: str, new: str) -> None:
        super().__init__(page, f"rename {old} to {new}")
        self.old, self.new = old, new

    def apply(self) -> None:
        self.page.store.rename_class(self.old, self.new)
        self.page._classes_changed()

    def revert(self) -> None:
        self.page.store.rename_class(self.new, self.old)
        self.page._classes_changed()


class RemoveClassCommand(_StoreCommand):
    """Delete a class, or merge it into another; undo brings back the class and its labels."""

    def __init__(self, page, name: str, into: str | None, color: str, order: list[str],
                 relpaths: list[str]) -> None:
        text = f"merge {name} into {into}" if into else f"delete class {name}"
        super().__init__(page, text)
        self.name, self.into, self.color = name, into, color
        self.order, self.relpaths = order, relpaths

    def apply(self) -> None:
        store = self.page.store
        if self.into:
            store.merge_classes(self.name, self.into)
        else:
            store.delete_class(self.name)
        self.page._classes_changed()

    def revert(self) -> None:
        store = self.page.store
        store.add_class(self.name, self.color)
        store.reorder_classes([n for n in self.order if n in set(store.class_names())])
        store.set_labels({r: self.name for r in self.relpaths})
        self.page._classes_changed()


# ---------------------------------------------------------------------------- helpers
def swatch(color: str, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def named_by_digits(names: list[str]) -> bool:
    """Every class is named by one digit, as for handwritten digits."""
    return bool(names) and all(len(n) == 1 and n in "0123456789" for n in names)


def digit_keys(names: list[str]) -> dict[int, str]:
    """Digit key → class. Classes named 0–9 take the key of their name, so 7 labels "7"
    rather than the eighth class; otherwise 1–9 give the class at that position (and 0
    clears)."""
    if named_by_digits(names):
        return {int(n): n for n in names}
    return {i + 1: name for i, name in enumerate(names[:9])}


def letter_shortcuts(names: list[str]) -> dict[str, str]:
    """First letter → class, for letters that start exactly one class name."""
    by_letter: dict[str, list[str]] = {}
    for name in names:
        first = name[:1].lower()
        if first.isalpha():
            by_letter.setdefault(first, []).append(name)
    return {letter: found[0] for letter, found in by_letter.items() if len(found) == 1}


def features_for_suggestions(run_dir: str, store, progress=None):
    """(relpaths, features) of the backbone in `run_dir`: the Inspect page's saved map when it
    still fits, else computed (and saved for the Inspect page). Runs in a worker."""
    from sslstudio.gui.pages.inspect_page import compute_embeddings, load_embedding_cache

    return load_embedding_cache(run_dir, store) or compute_embeddings(run_dir, store, progress)


def load_preview(path: Path, box: int = PREVIEW_SIZE) -> QImage:
    """A preview-sized image (worker thread); DecodeError says why it cannot be read."""
    try:
        from sslstudio.data.decode import load_rgb
        image = load_rgb(path)
    except ImportError:
        from PIL import Image, ImageOps
        with Image.open(path) as raw:
            image = ImageOps.exif_transpose(raw).convert("RGB")
    image.thumbnail((box, box))
    return QImage(image.tobytes(), image.width, image.height, 3 * image.width,
                  QImage.Format.Format_RGB888).copy()


class _KeyFilter(QObject):
    def __init__(self, page: LabelPage) -> None:
        super().__init__(page)
        self.page = page

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress:
            return self.page.handle_key(event.key(), event.modifiers(), event.text())
        return False


# ---------------------------------------------------------------------------- the page
class LabelPage(QWidget):
    title = "Label"

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.undo_stack = QUndoStack(self)
        self.all_relpaths: list[str] = []
        self.labels: dict[str, str] = {}
        self.class_infos = []
        self.suggestions: list[str] = []
        self.embed_worker = None
        self.suggest_worker = None
        self.preview_worker = None
        self._preview_for: str | None = None
        self._build()
        ctx.project_changed.connect(self.on_project_changed)
        ctx.labels_changed.connect(self._external_labels_changed)
        if hasattr(ctx, "index_changed"):
            ctx.index_changed.connect(self._index_changed)
        if hasattr(ctx, "predictions_changed"):
            ctx.predictions_changed.connect(self._predictions_changed)
        self.on_project_changed()

    @property
    def store(self):
        return self.ctx.store

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.filter_combo = QComboBox()
        self.filter_combo.setMinimumWidth(220)
        self.filter_combo.currentIndexChanged.connect(self._apply_filter)
        self.suggest_button = QPushButton("What to label next?")
        self.suggest_button.setToolTip("Pick images that teach the classifier most")
        self.suggest_button.clicked.connect(self.suggest_next)
        self.undo_button = QToolButton()
        self.undo_button.setText("Undo")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button = QToolButton()
        self.redo_button.setText("Redo")
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_stack.undoTextChanged.connect(lambda t: self.undo_button.setToolTip(
            f"Undo {t} (Ctrl+Z)" if t else "Nothing to undo"))
        self.undo_stack.redoTextChanged.connect(lambda t: self.redo_button.setToolTip(
            f"Redo {t} (Ctrl+Shift+Z)" if t else "Nothing to redo"))
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        undo_action = self.undo_stack.createUndoAction(self, "Undo")
        undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        redo_action = self.undo_stack.createRedoAction(self, "Redo")
        redo_action.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Shift+Z")])
        for action in (undo_action, redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
        self.view_count = QLabel("")

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter_combo)
        top.addWidget(self.suggest_button)
        top.addWidget(self.view_count, 1)
        top.addWidget(self.undo_button)
        top.addWidget(self.redo_button)

        self.model = GalleryModel(self)
        self.gallery = GalleryView()
        self.gallery.setModel(self.model)
        self.gallery.installEventFilter(_KeyFilter(self))
        self.gallery.current_relpath_changed.connect(self._show_preview)
        self.gallery.selectionModel().selectionChanged.connect(self._selection_changed)
        self.gallery.doubleClicked.connect(lambda *_: self.gallery.setFocus())

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(top)
        left_layout.addWidget(self.gallery, 1)
        self.hint = QLabel(POSITION_KEYS_HINT)
        self.hint.setWordWrap(True)
        left_layout.addWidget(self.hint)

        # right: preview, then the classes
        self.preview = QLabel("Select an image")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(QSize(280, 260))
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.preview.setObjectName("labelPreview")
        self.preview_caption = QLabel("")
        self.preview_caption.setWordWrap(True)
        self.preview_caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.counts_label = QLabel("")
        self.counts_label.setObjectName("labelCounts")
        self.class_list = QListWidget()
        self.class_list.setObjectName("classList")
        self.class_list.setIconSize(QSize(14, 14))
        self.class_list.itemDoubleClicked.connect(lambda item: self.assign_class(
            item.data(Qt.ItemDataRole.UserRole)))
        self.class_list.itemSelectionChanged.connect(self._class_selection_changed)
        self.add_button = QPushButton("Add class…")
        self.add_button.clicked.connect(lambda: self.add_class())
        self.assign_button = QPushButton("Assign")
        self.assign_button.setToolTip("Give the selected images this class (or double-click it)")
        self.assign_button.clicked.connect(lambda: self.assign_class(self.selected_class()))
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(lambda: self.rename_class())
        self.merge_button = QPushButton("Merge into…")
        self.merge_button.clicked.connect(lambda: self.merge_class())
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.delete_class())
        self.color_button = QPushButton("Colour…")
        self.color_button.clicked.connect(lambda: self.change_color())
        row1 = QHBoxLayout()
        row1.addWidget(self.add_button)
        row1.addWidget(self.assign_button)
        row1.addWidget(self.color_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.rename_button)
        row2.addWidget(self.merge_button)
        row2.addWidget(self.delete_button)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 0, 0, 0)
        right_layout.addWidget(self.preview, 3)
        right_layout.addWidget(self.preview_caption)
        right_layout.addWidget(QLabel("<b>Classes</b>"))
        right_layout.addWidget(self.counts_label)
        right_layout.addWidget(self.class_list, 2)
        right_layout.addLayout(row1)
        right_layout.addLayout(row2)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([800, 380])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._class_selection_changed()

    # ------------------------------------------------------------------ loading
    def on_project_changed(self, *args) -> None:
        self.undo_stack.clear()
        self.suggestions = []
        self._preview_for = None
        store = self.store
        self.model.set_loader(loader_for(self.ctx))
        if store is not None:
            self.model.loader.set_keys(*self._entry_columns(store))
        self.reload()

    @staticmethod
    def _entry_columns(store):
        entries = store.image_entries()
        return ([e.relpath for e in entries], [e.size for e in entries],
                [e.mtime_ns for e in entries])

    def reload(self, *args) -> None:
        """Re-read images, labels and classes from the store (project opened, index re-synced)."""
        store = self.store
        if store is None:
            self.all_relpaths, self.labels, self.class_infos = [], {}, []
        else:
            self.all_relpaths = store.image_relpaths()
            self.labels = store.labels(present_only=True)
            self.class_infos = store.classes()
        self.model.set_predictions(getattr(self.ctx, "predictions", {}) or {})
        self._refresh_classes()
        self._apply_filter()
        for widget in (self.suggest_button, self.add_button, self.filter_combo):
            widget.setEnabled(store is not None)

    def _index_changed(self) -> None:
        if self.store is not None and self.model.loader is not None:
            self.model.loader.set_keys(*self._entry_columns(self.store))   # fresh cache keys
        self.reload()

    def _external_labels_changed(self, *args) -> None:
        if getattr(self, "_emitting", False) or self.store is None:
            return
        self.labels = self.store.labels(present_only=True)
        self.class_infos = self.store.classes()
        self._refresh_classes()
        self.model.set_labels(self.labels, self._colors())

    def _predictions_changed(self) -> None:
        self.model.set_predictions(getattr(self.ctx, "predictions", {}) or {})
        self._refresh_filters()

    def _colors(self) -> dict[str, str]:
        return {c.name: c.color for c in self.class_infos}

    def class_names(self) -> list[str]:
        return [c.name for c in self.class_infos]

    # ------------------------------------------------------------------ classes panel
    def _refresh_classes(self) -> None:
        selected = self.selected_class()
        self.class_list.blockSignals(True)
        self.class_list.clear()
        names = self.class_names()
        key_of = {name: str(digit) for digit, name in digit_keys(names).items()}
        self.hint.setText(NAMED_KEYS_HINT if named_by_digits(names) else POSITION_KEYS_HINT)
        for info in self.class_infos:
            key = key_of.get(info.name, " ")
            item = QListWidgetItem(swatch(info.color), f"{key}   {info.name}   ({info.count})")
            item.setData(Qt.ItemDataRole.UserRole, info.name)
            item.setToolTip(f"{info.name}: {info.count} labelled; key {key.strip() or '—'}")
            self.class_list.addItem(item)
            if info.name == selected:
                item.setSelected(True)
                self.class_list.setCurrentItem(item)
        self.class_list.blockSignals(False)
        labelled = sum(1 for r in self.all_relpaths if r in self.labels)
        total = len(self.all_relpaths)
        self.counts_label.setText(f"{labelled:,} of {total:,} images labelled · "
                                  f"{total - labelled:,} unlabelled")
        if not self.class_infos:
            self.counts_label.setText(self.counts_label.text() +
                                      "<br>No classes yet: click <b>Add class…</b>")
        self._refresh_filters()
        self._class_selection_changed()

    def selected_class(self) -> str | None:
        item = self.class_list.currentItem()
        if item is None or not item.isSelected():
            return None
        return item.data(Qt.ItemDataRole.UserRole)

    def _class_selection_changed(self) -> None:
        has = self.selected_class() is not None
        for button in (self.rename_button, self.delete_button, self.color_button,
                       self.assign_button):
            button.setEnabled(has)
        self.merge_button.setEnabled(has and len(self.class_infos) > 1)

    def _classes_changed(self) -> None:
        """Classes (or many labels) changed in the store: re-read and repaint."""
        store = self.store
        self.labels = store.labels(present_only=True)
        self.class_infos = store.classes()
        self.model.set_labels(self.labels, self._colors())
        self._refresh_classes()
        self._notify()

    def _notify(self) -> None:
        self._emitting = True
        try:
            self.ctx.notify_labels_changed() if hasattr(self.ctx, "notify_labels_changed") \
                else self.ctx.labels_changed.emit()
        finally:
            self._emitting = False

    def _guarded(self, action) -> bool:
        """Run a store change; a failure becomes a dialog and the view is re-read."""
        try:
            action()
            return True
        except Exception as exc:  # noqa: BLE001 - the user must see why, the app must go on
            self.ctx.show_error("The labels could not be changed", exc)
            if self.store is not None:
                self._classes_changed()
            return False

    def add_class(self, name: str | None = None, color: str | None = None) -> bool:
        if self.store is None:
            return False
        if name is None:
            name, ok = QInputDialog.getText(self, "Add class", "Class name:")
            if not ok or not name.strip():
                return False
        name = name.strip()

        def do():
            self.store.add_class(name, color)
        if not self._guarded(do):
            return False
        created = next(c for c in self.store.classes() if c.name == name)
        self.undo_stack.push(AddClassCommand(self, name, created.color))
        self._classes_changed()
        return True

    def rename_class(self, old: str | None = None, new: str | None = None) -> bool:
        old = old or self.selected_class()
        if self.store is None or not old:
            return False
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename class", f"New name for {old}:", text=old)
            if not ok:
                return False
        new = new.strip()
        if not new or new == old:
            return False
        if not self._guarded(lambda: self.store.rename_class(old, new)):
            return False
        self.undo_stack.push(RenameClassCommand(self, old, new))
        self._classes_changed()
        return True

    def merge_class(self, source: str | None = None, target: str | None = None) -> bool:
        source = source or self.selected_class()
        if self.store is None or not source:
            return False
        if target is None:
            others = [n for n in self.class_names() if n != source]
            if not others:
                return False
            target, ok = QInputDialog.getItem(self, "Merge classes",
                                              f"Move every image of {source} into:", others,
                                              0, False)
            if not ok:
                return False
        return self._remove_class(source, target)

    def delete_class(self, name: str | None = None, confirm: bool = True) -> bool:
        name = name or self.selected_class()
        if self.store is None or not name:
            return False
        count = next((c.count for c in self.class_infos if c.name == name), 0)
        question = (f"Delete {name} and remove its label from {plural.count(count, 'image')}? "
                    f"(Undo brings them back.)")
        if confirm and count and QMessageBox.question(
                self, "Delete class", question) != QMessageBox.StandardButton.Yes:
            return False
        return self._remove_class(name, None)

    def _remove_class(self, name: str, into: str | None) -> bool:
        store = self.store
        info = next((c for c in store.classes() if c.name == name), None)
        if info is None:
            return False
        order = store.class_names()
        relpaths = [r for r, c in store.labels().items() if c == name]
        action = (lambda: store.merge_classes(name, into)) if into else \
            (lambda: store.delete_class(name))
        if not self._guarded(action):
            return False
        self.undo_stack.push(RemoveClassCommand(self, name, into, info.color, order, relpaths))
        self._classes_changed()
        return True

    def change_color(self, name: str | None = None, color: str | None = None) -> bool:
        name = name or self.selected_class()
        if self.store is None or not name:
            return False
        if color is None:
            current = QColor(self._colors().get(name, "#888888"))
            chosen = QColorDialog.getColor(current, self, f"Colour of {name}")
            if not chosen.isValid():
                return False
            color = chosen.name()
        if not self._guarded(lambda: self.store.set_class_color(name, color)):
            return False
        self._classes_changed()
        return True

    # ------------------------------------------------------------------ labelling
    def handle_key(self, key, modifiers, text: str) -> bool:
        """Labelling keys on the gallery; returns True when the key was used."""
        if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier |
                        Qt.KeyboardModifier.MetaModifier):
            return False
        if key in CLEAR_KEYS:
            self.assign_class(None)
            return True
        if Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
            digit = int(key) - int(Qt.Key.Key_0)
            names = self.class_names()
            name = digit_keys(names).get(digit)
            if name is not None:
                self.assign_class(name)
            elif digit == 0 and not named_by_digits(names):
                self.assign_class(None)
            else:
                self.ctx.status(f"No class has the key {digit}: add classes on the right")
            return True
        letter = text.lower() if text and text.isalpha() and len(text) == 1 else ""
        if letter:
            name = letter_shortcuts(self.class_names()).get(letter)
            if name:
                self.assign_class(name)
                return True
        return False

    def assign_class(self, class_name: str | None, relpaths: list[str] | None = None) -> int:
        """Label the selected images (or `relpaths`) with class_name (None clears); undoable."""
        store = self.store
        if store is None:
            return 0
        targets = relpaths if relpaths is not None else self.gallery.selected_relpaths()
        if not targets:
            self.ctx.status("Select images first (click, Shift/Ctrl-click, Ctrl+A)")
            return 0
        before = {r: self.labels.get(r) for r in targets}
        after = {r: class_name for r in targets}
        if before == after:
            return 0
        if not self._guarded(lambda: store.set_labels(after)):
            return 0
        what = class_name or "no label"
        self.undo_stack.push(LabelCommand(self, before, after,
                                          f"label {plural.count(len(targets), 'image')} {what}"))
        self._labels_applied(after)
        self.ctx.status(f"{plural.count(len(targets), 'image')} → {what}")
        if relpaths is None and len(targets) == 1:
            self._advance()
        return len(targets)

    def _labels_applied(self, changes: dict[str, str | None]) -> None:
        """The store now holds `changes`; bring the view and counts in line."""
        for relpath, name in changes.items():
            if name is None:
                self.labels.pop(relpath, None)
            else:
                self.labels[relpath] = name
        known = set(self.class_names())
        if any(name is not None and name not in known for name in changes.values()):
            self.class_infos = self.store.classes()   # a class was created on the fly
            self.model.set_labels(self.labels, self._colors())
        else:
            self.class_infos = self.store.classes()
            self.model.update_labels(changes)
        self._refresh_classes()
        self._show_preview(self.gallery.current_relpath())
        self._notify()

    def _advance(self) -> None:
        """After labelling one image, move to the next so labelling is one key per image."""
        index = self.gallery.currentIndex()
        if index.isValid() and index.row() + 1 < self.model.rowCount():
            self.gallery.setCurrentIndex(self.model.index(index.row() + 1))

    def _selection_changed(self, *args) -> None:
        count = len(self.gallery.selectionModel().selectedIndexes())
        shown = self.model.rowCount()
        self.view_count.setText(f"{shown:,} shown" + (f" · {count:,} selected" if count else ""))

    # ------------------------------------------------------------------ filters
    def _refresh_filters(self) -> None:
        current = self.filter_combo.currentData()
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem("All images", "all")
        self.filter_combo.addItem("Unlabelled", "unlabelled")
        self.filter_combo.addItem("Labelled", "labelled")
        for info in self.class_infos:
            self.filter_combo.addItem(swatch(info.color), f"Class: {info.name}",
                                      f"class:{info.name}")
        predictions = getattr(self.ctx, "predictions", {}) or {}
        if predictions:
            self.filter_combo.addItem("Least confident predictions", "least_confident")
            self.filter_combo.addItem("Prediction differs from label", "disagree")
            for name in sorted({p[0] for p in predictions.values()}):
                self.filter_combo.addItem(f"Predicted: {name}", f"predicted:{name}")
        if self.suggestions:
            self.filter_combo.addItem(f"Suggested ({len(self.suggestions)})", "suggested")
        index = self.filter_combo.findData(current) if current is not None else 0
        self.filter_combo.setCurrentIndex(max(index, 0))
        self.filter_combo.blockSignals(False)

    def filtered_relpaths(self, kind: str, arg: str | None = None) -> list[str]:
        labels = self.labels
        predictions = getattr(self.ctx, "predictions", {}) or {}
        if kind == "unlabelled":
            return [r for r in self.all_relpaths if r not in labels]
        if kind == "labelled":
            return [r for r in self.all_relpaths if r in labels]
        if kind == "class":
            return [r for r in self.all_relpaths if labels.get(r) == arg]
        if kind == "predicted":
            return [r for r in self.all_relpaths if r in predictions and predictions[r][0] == arg]
        if kind == "least_confident":
            pool = [r for r in self.all_relpaths if r in predictions and r not in labels]
            return sorted(pool, key=lambda r: predictions[r][1])
        if kind == "disagree":
            return [r for r in self.all_relpaths
                    if r in labels and r in predictions and predictions[r][0] != labels[r]]
        if kind == "suggested":
            return list(self.suggestions)
        return list(self.all_relpaths)

    def set_filter(self, kind: str, arg: str | None = None) -> bool:
        index = self.filter_combo.findData(f"{kind}:{arg}" if arg else kind)
        if index < 0:
            return False
        self.filter_combo.setCurrentIndex(index)
        self._apply_filter()
        return True

    def _apply_filter(self, *args) -> None:
        kind, _, arg = (self.filter_combo.currentData() or "all").partition(":")
        relpaths = self.filtered_relpaths(kind, arg or None)
        if relpaths != self.model.relpaths:
            self.model.set_relpaths(relpaths)
        self.model.set_labels(self.labels, self._colors())
        self._selection_changed()
        if relpaths and not self.gallery.currentIndex().isValid():
            self.gallery.setCurrentIndex(self.model.index(0))

    # ------------------------------------------------------------------ suggestions
    def suggest_next(self) -> list[str]:
        """Show the images worth labelling next. Without the newest backbone's features yet
        (none at all, or a map an older backbone drew), the features are computed (or read
        from the Inspect page's cache) first and the suggestions follow when they are ready;
        the call then returns []."""
        from sslstudio.gui.pages.inspect_page import backbone_runs

        embeddings = getattr(self.ctx, "embeddings", None) or None
        predictions = getattr(self.ctx, "predictions", None) or None
        runs = backbone_runs(self.store) if self.store is not None else []
        newest = str(runs[0]["path"]) if runs else None
        stale = newest is not None and getattr(self.ctx, "embeddings_source", None) != newest
        if not predictions and stale and self._embed_for_suggestions(newest):
            return []
        return self._show_suggestions(embeddings, predictions)

    def _show_suggestions(self, embeddings, predictions, why: str | None = None) -> list[str]:
        """Pick the next images (project/suggest.py) and show them; `why` replaces the status
        text that names the strategy."""
        from sslstudio.project.suggest import suggest_next

        args = (list(self.all_relpaths), dict(self.labels), SUGGEST_COUNT)
        kwargs = dict(embeddings=embeddings, predictions=predictions, seed=len(self.labels))
        if embeddings and not predictions and len(args[0]) > SUGGEST_IN_BACKGROUND_ABOVE:
            if self.suggest_worker is None:
                self.suggest_button.setEnabled(False)
                self.ctx.status(f"Choosing the images to label next among {len(args[0]):,}…")
                self.suggest_worker = self.ctx.run_in_background(
                    suggest_next, *args, **kwargs,
                    on_result=lambda result: self._suggestions_ready(result, why),
                    on_error=self._suggesting_failed, on_cancelled=self._suggesting_failed)
            return []
        return self._suggestions_ready(suggest_next(*args, **kwargs), why)

    def _suggestions_ready(self, result, why: str | None = None) -> list[str]:
        if self.suggest_worker is not None:
            self.suggest_worker = None
            self.suggest_button.setEnabled(self.store is not None)
        picked, strategy = result
        present = set(self.all_relpaths)       # the user may have labelled (or reopened) meanwhile
        picked = [r for r in picked if r in present and r not in self.labels]
        self.suggestions = picked
        self._refresh_filters()
        if not picked:
            done = all(r in self.labels for r in self.all_relpaths)
            self.ctx.status("Every image is labelled" if done else
                            "The suggested images were labelled meanwhile: ask again")
            return []
        self.set_filter("suggested")
        self.gallery.setFocus()
        self.ctx.status(why or f"{len(picked)} images to label next: "
                               f"{STRATEGY_TEXT.get(strategy, strategy)}")
        return picked

    def _suggesting_failed(self, *error) -> None:
        self.suggest_worker = None
        self._suggest_spread_instead("choose from the features", error)

    def _suggest_spread_instead(self, failed: str, error: tuple) -> None:
        """A worker for the suggestions failed or was cancelled: a spread-out sample instead."""
        from sslstudio.gui.workers import error_text

        self.suggest_button.setEnabled(self.store is not None)
        reason = error_text(error) if error else "cancelled"
        self._show_suggestions(None, None, why=f"Could not {failed} ({reason}); "
                                               f"showing a spread-out sample instead")

    def _embed_for_suggestions(self, run_dir: str) -> bool:
        """Start computing the features of the backbone in `run_dir` for the suggestions."""
        if self.embed_worker is not None:
            return True
        self.suggest_button.setEnabled(False)
        self.ctx.status(f"Computing features with {Path(run_dir).name} to choose the images "
                        f"to label…")
        self.embed_worker = self.ctx.run_in_background(
            features_for_suggestions, run_dir, self.store,
            on_result=lambda result: self._embedded_for_suggestions(result, run_dir),
            on_error=self._embedding_failed, on_cancelled=self._embedding_failed)
        return True

    def _embedded_for_suggestions(self, result, run_dir: str) -> None:
        self.embed_worker = None
        self.suggest_button.setEnabled(True)
        relpaths, features = result
        self.ctx.set_embeddings({r: features[i] for i, r in enumerate(relpaths)}, run_dir)
        self.suggest_next()

    def _embedding_failed(self, *error) -> None:
        self.embed_worker = None
        self._suggest_spread_instead("compute features for the suggestions", error)

    # ------------------------------------------------------------------ preview
    def _show_preview(self, relpath: str | None) -> None:
        store = self.store
        if relpath is None or store is None:
            self.preview.setText("Select an image")
            self.preview.setPixmap(QPixmap())
            self.preview_caption.setText("")
            return
        label = self.labels.get(relpath)
        caption = f"<b>{relpath}</b><br>label: {label or '—'}"
        prediction = (getattr(self.ctx, "predictions", {}) or {}).get(relpath)
        if prediction:
            caption += f" · predicted: {prediction[0]} ({prediction[1]:.0%})"
        self.preview_caption.setText(caption)
        if self._preview_for == relpath:
            return
        self._preview_for = relpath
        self.preview_worker = self.ctx.run_in_background(
            load_preview, Path(store.image_root) / relpath,
            on_result=lambda image, r=relpath: self._preview_loaded(r, image),
            on_error=lambda exc, r=relpath: self._preview_failed(r, exc))

    def _preview_loaded(self, relpath: str, image: QImage) -> None:
        if relpath != self._preview_for:
            return
        pixmap = QPixmap.fromImage(image)
        target = self.preview.size()
        self.preview.setPixmap(pixmap.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))

    def _preview_failed(self, relpath: str, exc: BaseException) -> None:
        if relpath == self._preview_for:
            reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
            self.preview.setPixmap(QPixmap())
            self.preview.setText(f"Cannot show this image:\n{reason}")

    def on_shown(self) -> None:
        self.gallery.setFocus()
        self.gallery.request_visible()
