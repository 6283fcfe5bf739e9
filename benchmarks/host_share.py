"""How much of the CPU the host gave to this machine while a benchmark ran.

On a shared virtual machine the hypervisor may hand our cores to other guests
("steal" time in /proc/stat). A benchmark run then takes longer for reasons that are
not ours: on 2026-12-07 the 2-core box had 60% of its CPU time stolen for minutes, and
self-training on 10,000 images took 2.5 s a step instead of 0.25 s. Printing the stolen
share next to each timing tells such a row apart from a real slowdown.

    with CpuShare() as share:          # or share = CpuShare().start() ... share.stop()
        run()
    print(share.stolen)    # fraction of the elapsed CPU time the host took, or None
"""

from __future__ import annotations

from pathlib import Path

PROC_STAT = Path("/proc/stat")


def _cpu_times() -> list[int] | None:
    """user nice system idle iowait irq softirq steal, in clock ticks, or None off Linux."""
    try:
        fields = PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    return [int(v) for v in fields[1:9]]


class CpuShare:
    """Context manager: .stolen is the fraction of CPU time stolen by the host meanwhile
    (None where /proc/stat is missing)."""

    def __init__(self) -> None:
        self.stolen: float | None = None
        self._start: list[int] | None = None

    def __enter__(self) -> "CpuShare":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "CpuShare":
        self._start = _cpu_times()
        return self

    def stop(self) -> None:
        """Read the stolen share since start()."""
        end = _cpu_times()
        if self._start is None or end is None:
            return
        delta = [b - a for a, b in zip(self._start, end)]
        total = sum(delta)
        if total <= 0:
            return
        self.stolen = delta[7] / total     # the eighth field: steal


def describe(stolen: float | None) -> str:
    """A stolen share for a table cell: '12%', or '-' when unknown."""
    return "-" if stolen is None else f"{stolen:.0%}"
