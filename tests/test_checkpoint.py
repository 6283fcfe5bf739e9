"""Atomic checkpoints: a crash mid-write or a corrupt file never loses the previous state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sslstudio.train import checkpoint as ckpt


def _state(step: int) -> dict:
    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "rng": ckpt.capture_rng_state(), "config": '{"task": "rotation"}'}


def test_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    state = _state(7)
    ckpt.save_checkpoint(state, path)
    loaded, source, warning = ckpt.load_checkpoint(path)
    assert source == path and warning is None and loaded["step"] == 7
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["optimizer"]["state"][0]["exp_avg"].shape == (3, 4)
    # the same file through plain torch.load(weights_only=True): nothing pickled beyond data
    assert torch.load(path, weights_only=True)["config"] == '{"task": "rotation"}'


def test_second_save_keeps_the_previous_as_prev(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1), path)
    ckpt.save_checkpoint(_state(2), path)
    assert torch.load(ckpt.prev_path(path), weights_only=True)["step"] == 1
    assert ckpt.load_checkpoint(path)[0]["step"] == 2


def test_crash_during_write_leaves_previous_checkpoint_usable(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1), path)
    real_save = torch.save

    def dying_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(_state(2), path)
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.load_checkpoint(path)[0]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left over


def test_corrupt_last_falls_back_to_prev_with_a_warning(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1), path)
    ckpt.save_checkpoint(_state(2), path)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as after a power cut
    with pytest.warns(UserWarning, match="previous checkpoint"):
        state, source, warning = ckpt.load_checkpoint(path)
    assert state["step"] == 1 and source.name == "last.pt.prev" and "last.pt" in warning


def test_missing_or_all_corrupt_raises_a_readable_error(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no usable checkpoint"):
        ckpt.load_checkpoint(tmp_path / "last.pt")
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="last.pt"):
        ckpt.load_checkpoint(tmp_path / "last.pt")


def test_rng_state_restores_every_generator(tmp_path):
    state = ckpt.capture_rng_state()
    path = tmp_path / "rng.pt"
    ckpt.save_checkpoint({"model": {}, "step": 0, "rng": state}, path)
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    ckpt.restore_rng_state(ckpt.load_checkpoint(path)[0]["rng"])
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]
