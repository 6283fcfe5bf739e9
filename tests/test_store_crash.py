"""A label the user saw applied survives kill -9: a real child process is killed while writing.

The child reports each label on stdout right after set_label/set_labels
returns; the parent kills it with SIGKILL at random moments (and right after a
big bulk write began), reopens the project and checks that every reported
label is there, that a half-done bulk write left all or nothing, and that
SQLite's integrity check passes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sslstudio.project import ProjectStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

N_IMAGES = 20_000
REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys
from sslstudio.project import ProjectStore

project, rnd, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = ProjectStore.open(project)
names = store.image_relpaths()
out = sys.stdout
out.write("READY\n"); out.flush()

def cls(j):
    return f"r{rnd}-{j % 3}"

j = 0
while j < len(names):
    if mode == "single" or j % 5020 < 20:  # single labels
        store.set_label(names[j], cls(j))
        out.write(f"L\t{names[j]}\t{cls(j)}\n"); out.flush()
        j += 1
    else:  # a bulk write: one transaction
        count = 50 if mode == "single" else 5000
        batch = {names[k]: cls(k) for k in range(j, min(j + count, len(names)))}
        out.write(f"B\t{j}\t{len(batch)}\n"); out.flush()
        store.set_labels(batch)
        out.write("".join(f"L\t{r}\t{c}\n" for r, c in batch.items()) + f"D\t{j}\n"); out.flush()
        j += len(batch)
out.write("END\n"); out.flush()
import time; time.sleep(60)
"""


@dataclass
class Scan:  # what sync_index reads from a ScanResult
    root: Path
    images: list
    bad: list


@dataclass(frozen=True)
class Entry:
    relpath: str
    size: int
    mtime_ns: int


class ChildOutput:
    """Collects the child's lines in a thread so the child never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.bulk_started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                self.ready.set()
            elif line.startswith("B\t"):
                self.bulk_started.set()

    def join(self) -> None:
        self._thread.join(timeout=10)


def run_and_kill(project: Path, rnd: int, mode: str, delay: float) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(project), str(rnd), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO_ROOT)
    output = ChildOutput(proc)
    try:
        assert output.ready.wait(20), f"child did not start: {proc.stderr.read()}"
        if mode == "bulk":
            assert output.bulk_started.wait(20), "child never began a bulk write"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        output.join()
    assert proc.returncode == -signal.SIGKILL
    return output.lines


def test_labels_survive_sigkill(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    project = tmp_path / "proj"
    names = [f"d{i % 50:02d}/img_{i:06d}.png" for i in range(N_IMAGES)]
    with ProjectStore.create(project, images) as store:
        store.sync_index(Scan(images, [Entry(n, 10, 1) for n in names], []))
        names = store.image_relpaths()  # the child's order

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    plans = [("single", rng.uniform(0.02, 0.6)) for _ in range(4)]
    plans += [("bulk", rng.uniform(0.0, 0.004)) for _ in range(3)]
    total_reported = unfinished_bulks = 0
    for rnd, (mode, delay) in enumerate(plans):
        lines = run_and_kill(project, rnd, mode, delay)
        context = f"seed {seed}, round {rnd} ({mode}, killed {delay * 1000:.0f} ms in)"
        reported = dict(line.split("\t")[1:] for line in lines if line.startswith("L\t"))
        bulks = {int(line.split("\t")[1]): int(line.split("\t")[2])
                 for line in lines if line.startswith("B\t")}
        for line in lines:
            if line.startswith("D\t"):
                bulks.pop(int(line.split("\t")[1]))
        total_reported += len(reported)

        with ProjectStore.open(project) as store:
            assert store.integrity_check() == ["ok"], context
            labels = store.labels()
        lost = [r for r, c in reported.items() if labels.get(r) != c]
        assert not lost, f"{len(lost)} reported labels lost, e.g. {lost[:3]} ({context})"
        for start, count in bulks.items():  # the bulk the kill interrupted: all or nothing
            expected = {names[k]: f"r{rnd}-{k % 3}" for k in range(start, start + count)}
            applied = sum(labels.get(r) == c for r, c in expected.items())
            assert applied in (0, count), f"bulk write half applied: {applied}/{count} ({context})"
            unfinished_bulks += 1
    assert total_reported > 0, f"the child never reported a label (seed {seed})"
    print(f"crash test: {total_reported} labels checked over {len(plans)} kills, "
          f"{unfinished_bulks} kills during a bulk write")
