"""Editors for a pretext task's options, built from the task's own `TaskOption` list.

The form knows nothing of any particular task: the kind of editor follows the option's
choices and the type of its default, the range its minimum and maximum, so a new option
in a task module shows up here without a GUI change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

INT_LIMIT = 2**31 - 1   # QSpinBox holds a C int
FLOAT_LIMIT = 1e6


def readable_name(name: str) -> str:
    """"stroke_p" → "Stroke chance", "projection_dim" → "Projection dim"."""
    if name.endswith("_p"):  # the tasks' convention for a probability
        name = name[:-2] + "_chance"
    words = name.split("_")
    return " ".join([words[0].capitalize(), *words[1:]])


def float_decimals(option) -> int:
    """Enough places to show the default and the bounds exactly (0.38 needs 2, 15.0 needs 0),
    and at least 2 for small ranges so a probability can be set to 0.05."""
    shown = [v for v in (option.default, option.minimum, option.maximum) if v is not None]
    places = next((p for p in range(6) if all(round(v, p) == v for v in shown)), 6)
    small = option.maximum is None or option.maximum <= 10
    return max(places, 2 if small else 1)


def editor_range(option, limit: float) -> tuple[float, float]:
    """The option's own bounds, else ±limit; with no minimum given, a non-negative default
    means a count or a size, not a signed value, so the range starts at 0."""
    low = option.minimum if option.minimum is not None else \
        (0 if option.default >= 0 else -limit)
    high = option.maximum if option.maximum is not None else limit
    return low, high


@dataclass
class Editor:
    option: Any                      # the TaskOption
    widget: QWidget
    read: Callable[[], Any]
    write: Callable[[Any], None]

    def value(self) -> Any:
        return self.option.coerce(self.read())

    def differs(self) -> bool:
        value, default = self.value(), self.option.default
        if isinstance(default, float):  # the spin box rounds to its decimals
            return not math.isclose(value, default, rel_tol=1e-9, abs_tol=1e-12)
        return value != default


def make_editor(option, on_change: Callable[[], None]) -> Editor:
    """The widget for one option: combo for choices, check box, spin boxes or a line edit."""
    kind = type(option.default)
    if option.choices is not None:
        box = QComboBox()
        for choice in option.choices:
            box.addItem(str(choice), choice)
        box.currentIndexChanged.connect(on_change)
        return Editor(option, box, box.currentData,
                      lambda v: box.setCurrentIndex(max(0, box.findData(v))))
    if kind is bool:
        check = QCheckBox()
        check.toggled.connect(on_change)
        return Editor(option, check, check.isChecked, lambda v: check.setChecked(bool(v)))
    if kind is int:
        spin = QSpinBox()
        low, high = editor_range(option, INT_LIMIT)
        spin.setRange(int(math.ceil(low)), int(math.floor(high)))
        spin.valueChanged.connect(on_change)
        return Editor(option, spin, spin.value, lambda v: spin.setValue(int(v)))
    if kind is float:
        spin = QDoubleSpinBox()
        spin.setDecimals(float_decimals(option))
        low, high = editor_range(option, FLOAT_LIMIT)
        spin.setRange(low, high)
        span = high - low
        spin.setSingleStep(0.05 if span <= 2 else 0.5 if span <= 20 else 1.0)
        spin.valueChanged.connect(on_change)
        return Editor(option, spin, spin.value, lambda v: spin.setValue(float(v)))
    line = QLineEdit()
    line.textChanged.connect(on_change)
    return Editor(option, line, line.text, lambda v: line.setText(str(v)))


class TaskOptionsForm(QWidget):
    """One editor per option of the current task; values() gives those changed from the defaults."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, Editor] = {}
        self.labels: dict[str, QLabel] = {}
        self._quiet = False  # no `changed` while the form itself writes many editors
        self.form = QFormLayout()
        self.empty = QLabel("This task has no options.")
        caption = QLabel("Hover an option for what it does. Bold: changed from the "
                         "recommended value.")
        caption.setWordWrap(True)
        caption.setStyleSheet("color: palette(mid)")
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip("Back to the task's recommended values")
        self.reset_button.clicked.connect(self.reset)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.reset_button)
        layout = QVBoxLayout(self)  # default margins: indented like the Advanced form
        layout.addLayout(self.form)
        layout.addWidget(self.empty)
        layout.addWidget(caption)
        layout.addLayout(buttons)

    def set_options(self, options, values: dict | None = None) -> None:
        """Replace the editors by those of `options` (a task's TaskOption tuple)."""
        while self.form.rowCount():
            self.form.removeRow(0)  # deletes the row's label and editor
        self.editors, self.labels = {}, {}
        for option in options:
            editor = make_editor(option, self._edited)
            label = QLabel(option.label or readable_name(option.name))
            tip = f"{option.help} (default {option.default}; option {option.name})"
            label.setToolTip(tip)
            editor.widget.setToolTip(tip)
            self.form.addRow(label, editor.widget)
            self.editors[option.name], self.labels[option.name] = editor, label
        self.empty.setVisible(not self.editors)
        self.reset_button.setEnabled(bool(self.editors))
        self.set_values(values or {})

    def set_values(self, values: dict) -> None:
        """Show `values` (option name → value); the other options show their defaults.

        Names the task does not know and values it rejects are ignored: a form saved by an
        older version must still open.
        """
        self._quiet = True
        try:
            for name, editor in self.editors.items():
                value = editor.option.default
                if name in values:
                    try:
                        value = editor.option.coerce(values[name])
                    except TypeError:
                        pass
                editor.write(value)
        finally:
            self._quiet = False
        self._edited()

    def values(self) -> dict:
        """The options changed from their defaults, coerced to the options' types."""
        return {name: editor.value() for name, editor in self.editors.items()
                if editor.differs()}

    def reset(self) -> None:
        self.set_values({})

    def _edited(self, *_) -> None:
        if self._quiet:
            return
        for name, editor in self.editors.items():
            font = self.labels[name].font()
            font.setBold(editor.differs())
            self.labels[name].setFont(font)
        self.changed.emit()
