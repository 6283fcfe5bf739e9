"""Two processes under torch.distributed.run (gloo, CPU) finish with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sslstudio.pretext.base", reason="the pretext tasks are not written yet")
pytest.importorskip("sslstudio.models.backbones", reason="the backbones are not written yet")
pytest.importorskip("sslstudio.data.cache", reason="the decoded cache is not written yet")

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_two_gloo_processes_end_with_identical_weights(tmp_path, toy_folder):
    root, _ = toy_folder
    out = tmp_path / "ddp-run"
    env = {**os.environ, "SSLSTUDIO_RANK_DIGEST": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "sslstudio", "pretrain", str(root),
               "--task", "rotation", "--out", str(out), "--image-size", "16",
               "--batch-size", "4", "--steps", "6", "--device", "cpu", "--quiet",
               "--preview-every", "3"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    digests = [(out / f"rank{r}.digest").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["kind"] == "start")
    assert start["world_size"] == 2 and start["global_batch"] == 8
    assert [e["kind"] for e in events].count("start") == 1  # only rank 0 writes the log
    assert events[-1]["kind"] == "end" and events[-1]["status"] == "completed"
    assert any(e["kind"] == "preview" for e in events)
    assert (out / "backbone.safetensors").is_file()
