"""The pretraining engine end to end on the toy folder: learning, events, stop, resume, errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import denormals_flushed
from sslstudio.train.control import RunControl
from sslstudio.train.loader import BatchPlan, fit_batch_size

from sslstudio.cli import main
from sslstudio.train.checkpoint import load_checkpoint
from sslstudio.train.events import ConsoleProgress, JsonlWriter
from sslstudio.train.pretrain import PretrainConfig, PretrainError, run_pretraining


@pytest.fixture
def engine_layers():
    """Engine runs need the tasks, backbones and cache (written alongside); pure tests do not."""
    pytest.importorskip("sslstudio.pretext.base", reason="the pretext tasks are not written yet")
    pytest.importorskip("sslstudio.models.backbones", reason="the backbones are not written yet")
    pytest.importorskip("sslstudio.data.cache", reason="the decoded cache is not written yet")


needs_layers = pytest.mark.usefixtures("engine_layers")


def config_for(tmp_path: Path, root: Path, name: str = "run", **overrides) -> PretrainConfig:
    values = dict(folder=str(root), out=str(tmp_path / "runs" / name), task="rotation",
                  backbone="small_cnn", image_size=16, batch_size=4, epochs=1, lr=1e-3,
                  device="cpu", seed=0, preview_every=0, quality_every=0,
                  cache_dir=str(tmp_path / "cache"))
    values.update(overrides)
    return PretrainConfig(**values)


def read_events(run_dir: str | Path) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------- pure parts
def test_config_json_round_trip_and_validation():
    config = PretrainConfig(folder="imgs", out="run", task="rotation", minutes=2.5,
                            labels={"a/x.png": "cat"}, task_options={"grid": 3})
    again = PretrainConfig.from_json(config.to_json())
    assert again == config
    assert PretrainConfig.from_dict({"image_root": "imgs", "run_dir": "r", "junk": 1}).out == "r"
    with pytest.raises(PretrainError, match="one budget"):
        PretrainConfig(folder="i", out="o", epochs=2, minutes=1.0).validate()
    with pytest.raises(PretrainError, match="batch size must be positive"):
        PretrainConfig(folder="i", out="o", batch_size=0).validate()
    with pytest.raises(PretrainError, match="unknown precision 'half'"):
        PretrainConfig(folder="i", out="o", precision="half").validate()


def test_console_progress_redraws_one_line_and_ends_it(tmp_path):
    import io

    stream = io.StringIO()
    progress = ConsoleProgress(stream, min_interval=0)
    progress({"kind": "start", "step": 0, "task": "rotation", "dataset_size": 24,
              "device": "cpu", "total_steps": 2})
    for step in (1, 2):
        progress({"kind": "step", "step": step, "loss": 1.0 / step, "metrics": {"accuracy": 0.5},
                  "images_per_s": 100.0, "eta_s": 3.0, "total_steps": 2})
    progress({"kind": "end", "step": 2, "status": "completed", "message": ""})
    text = stream.getvalue()
    assert text.count("\r") == 2 and "2/2 loss 0.5000" in text and text.endswith("completed at step 2\n")
    writer = JsonlWriter(tmp_path / "m.jsonl")
    writer({"kind": "step", "step": 1, "loss": float("nan")})  # NaN is not JSON: written as null
    writer.close()
    assert json.loads((tmp_path / "m.jsonl").read_text())["loss"] is None


def test_console_progress_while_planning_and_on_errors():
    import io

    stream = io.StringIO()
    progress = ConsoleProgress(stream, min_interval=0)
    progress({"kind": "start", "step": 0, "task": "jigsaw", "dataset_size": 24, "device": "cpu",
              "total_steps": None, "config": {"minutes": 2.0}, "resumed_from": None})
    progress({"kind": "step", "step": 3, "loss": 1.0, "metrics": {}, "images_per_s": 9.0,
              "eta_s": 50.0, "total_steps": None})
    progress({"kind": "error", "step": 3, "message": "loss became NaN"})
    progress({"kind": "end", "step": 3, "status": "failed", "message": "loss became NaN"})
    text = stream.getvalue()
    assert "2 min budget" in text and "None" not in text and "3 (timing)" in text
    assert text.count("loss became NaN") == 1 and progress.shown_error == "loss became NaN"


def test_batch_plan_shards_are_disjoint_and_cover_the_epoch():
    plans = [BatchPlan(num_images=50, batch_size=6, seed=3, world_size=2, rank=r) for r in (0, 1)]
    assert plans[0].steps_per_epoch == 4  # 50 // 12, the ragged tail is dropped
    seen = np.concatenate([p.indices(s) for p in plans for s in range(4)])
    assert len(seen) == len(set(seen.tolist())) == 48
    assert not np.array_equal(plans[0].indices(0), plans[0].indices(4))  # a new order each epoch
    assert np.array_equal(plans[0].indices(5), BatchPlan(50, 6, 3, 2, 0).indices(5))
    assert fit_batch_size(64, 24) == 24 and fit_batch_size(64, 24, world_size=2) == 12


# ---------------------------------------------------------------------------- learning
@needs_layers
def test_rotation_learns_and_the_run_folder_is_complete(tmp_path, toy_folder):
    root, truth = toy_folder
    seen: list[dict] = []
    config = config_for(tmp_path, root, epochs=None, steps=36, batch_size=8, lr=2e-3,
                        preview_every=12, quality_every=18, labels=truth)
    summary = run_pretraining(config, listeners=[seen.append])
    assert summary["status"] == "completed" and summary["steps"] == 36
    events = read_events(config.out)
    assert [e["kind"] for e in events] == [e["kind"] for e in seen]  # same stream, file and callable
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "cache" and "start" in kinds and kinds[-1] == "end"
    steps = [e for e in events if e["kind"] == "step"]
    first = np.mean([e["loss"] for e in steps[:6]])
    last = np.mean([e["loss"] for e in steps[-6:]])
    assert last < first * 0.8, (first, last)
    for key in ("lr", "images_per_s", "eta_s", "epoch", "memory_mb", "metrics"):
        assert steps[-1][key] is not None, key
    quality = [e for e in events if e["kind"] == "quality"]
    assert quality and quality[-1]["effective_rank"] >= 1.0
    assert 0 <= quality[-1]["knn_accuracy"] <= 1  # labels given for 3 classes
    previews = [e for e in events if e["kind"] == "preview"]
    assert [e["step"] for e in previews] == [12, 24, 36]
    for item in previews[0]["images"]:
        assert (Path(config.out) / item["path"]).is_file() and item["title"]
    run = Path(config.out)
    assert json.loads((run / "config.json").read_text())["task"] == "rotation"
    assert (run / "backbone.safetensors").is_file() and (run / "backbone.json").is_file()
    assert load_checkpoint(run / "checkpoints" / "last.pt")[0]["step"] == 36


@needs_layers
def test_cpu_mixed_precision_follows_the_hardware_and_float32_turns_it_off(tmp_path, toy_folder):
    """auto trains in bf16 exactly where the CPU has it natively; both precisions learn."""
    from sslstudio.train.device import native_cpu_bf16

    root, _ = toy_folder
    for precision, expected in (("auto", "bfloat16" if native_cpu_bf16() else None),
                                ("float32", None)):
        config = config_for(tmp_path, root, precision, epochs=None, steps=24, batch_size=8,
                            lr=2e-3, precision=precision)
        run_pretraining(config)
        events = read_events(config.out)
        start = next(e for e in events if e["kind"] == "start")
        assert start["amp"] == expected, precision
        losses = [e["loss"] for e in events if e["kind"] == "step"]
        assert np.mean(losses[-6:]) < np.mean(losses[:6]), (precision, losses)


@needs_layers
def test_pretraining_flushes_denormals_in_the_thread_that_trains(tmp_path, toy_folder):
    root, _ = toy_folder
    seen = {}

    def pretrain_in_a_fresh_thread():
        torch.set_flush_denormal(False)  # threads inherit the setting: start from the default
        seen["before"] = denormals_flushed()
        run_pretraining(config_for(tmp_path, root, epochs=None, steps=2),
                        listeners=[lambda event: seen.setdefault("during", denormals_flushed())])

    worker = threading.Thread(target=pretrain_in_a_fresh_thread)
    worker.start()
    worker.join()
    assert seen == {"before": False, "during": True}


@needs_layers
def test_short_run_still_ends_with_a_preview(tmp_path, toy_folder):
    root, _ = toy_folder
    config = config_for(tmp_path, root, epochs=None, steps=3, preview_every=100)
    run_pretraining(config)
    previews = [e for e in read_events(config.out) if e["kind"] == "preview"]
    assert [e["step"] for e in previews] == [3]
    assert all((Path(config.out) / item["path"]).is_file() for item in previews[0]["images"])


@needs_layers
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, toy_folder):
    root, _ = toy_folder
    whole = config_for(tmp_path, root, "whole", epochs=2)  # 24 images / batch 4 → 12 steps
    run_pretraining(whole)
    split = config_for(tmp_path, root, "split", epochs=2)
    control = RunControl()

    def stop_mid_epoch(event):
        if event["kind"] == "step" and event["step"] == 4:
            control.stop()

    first = run_pretraining(split, listeners=[stop_mid_epoch], control=control)
    assert first["status"] == "stopped" and first["steps"] == 4
    split.resume = True
    second = run_pretraining(split)
    assert second["status"] == "completed" and second["steps"] == 12
    a = load_checkpoint(Path(whole.out) / "checkpoints" / "last.pt")[0]
    b = load_checkpoint(Path(split.out) / "checkpoints" / "last.pt")[0]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=1e-6), key
    resumed = [e for e in read_events(split.out) if e["kind"] == "start"]
    assert [e["resumed_from"] for e in resumed] == [None, 4]


@needs_layers
def test_pause_then_stop_from_another_thread(tmp_path, toy_folder):
    root, _ = toy_folder
    control = RunControl()
    paused_at: list[int] = []

    def listener(event):
        if event["kind"] == "step" and event["step"] == 2:
            control.pause()
            paused_at.append(event["step"])
            threading.Timer(0.3, control.stop).start()  # stop wakes a paused run

    summary = run_pretraining(config_for(tmp_path, root, epochs=50), [listener], control)
    assert paused_at == [2]
    assert summary["status"] == "stopped" and summary["steps"] == 2
    end = read_events(summary["run_dir"])[-1]
    assert end["kind"] == "end" and end["status"] == "stopped"
    assert load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "last.pt")[0]["step"] == 2


@needs_layers
def test_a_stopped_run_saves_its_checkpoint_before_the_final_quality(tmp_path, toy_folder):
    """Whoever stops a run (a closing app) waits for the checkpoint, not for the extras."""
    from sslstudio.models.io import load_backbone

    root, _ = toy_folder
    control = RunControl()
    summary = run_pretraining(config_for(tmp_path, root, epochs=50),
                              [lambda e: e["kind"] == "step" and e["step"] == 3 and control.stop()],
                              control)
    assert summary["status"] == "stopped"
    kinds = [e["kind"] for e in read_events(summary["run_dir"])]
    assert kinds.index("checkpoint") < kinds.index("quality") < kinds.index("end")
    _, info = load_backbone(Path(summary["run_dir"]) / "backbone")
    assert info["quality"] and info["pretrain_steps"] == 3  # re-saved with the final quality


@needs_layers
def test_nan_loss_stops_with_advice(tmp_path, toy_folder, monkeypatch):
    root, _ = toy_folder
    from sslstudio.pretext import TASKS

    task_cls = TASKS["rotation"]
    real_loss = task_cls.loss
    calls = [0]

    def poisoned(self, outputs, targets):
        loss, metrics = real_loss(self, outputs, targets)
        calls[0] += 1
        return (loss * float("nan") if calls[0] == 3 else loss), metrics

    monkeypatch.setattr(task_cls, "loss", poisoned)
    config = config_for(tmp_path, root)
    with pytest.raises(PretrainError, match="NaN .* at step 3; try a lower learning rate"):
        run_pretraining(config)
    events = read_events(config.out)
    assert events[-2]["kind"] == "error" and "lower learning rate" in events[-2]["message"]
    assert events[-1]["kind"] == "end" and events[-1]["status"] == "failed"


@needs_layers
def test_bad_image_is_skipped_and_reported(tmp_path, toy_folder):
    root, _ = toy_folder
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    config = config_for(tmp_path, root, epochs=1)
    summary = run_pretraining(config)
    assert summary["status"] == "completed" and summary["skipped"] == 1
    events = read_events(config.out)
    start = next(e for e in events if e["kind"] == "start")
    assert start["dataset_size"] == 24 and start["bad_files"][0]["relpath"] == "red/broken.png"
    warning = next(e for e in events if e["kind"] == "warning")
    assert "red/broken.png" in warning["message"]


@needs_layers
def test_minutes_budget_plans_steps_from_measured_speed(tmp_path, toy_folder):
    root, _ = toy_folder
    summary = run_pretraining(config_for(tmp_path, root, epochs=None, minutes=0.04))
    assert summary["status"] == "completed"
    # a real plan (not the provisional 10**7), kept by the run; how many steps fit in
    # 2.4 s depends on how busy the machine is
    assert 1 <= summary["steps"] <= summary["total_steps"] < 10**6
    assert summary["seconds"] < 0.04 * 60 + 4  # + the step in flight, quality and checkpoint
    saved = load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "last.pt")[0]
    assert saved["scheduler"]["total_steps"] == summary["total_steps"]
    anchor = saved["scheduler"]["anchor"]        # set where a re-plan took over, if one did
    assert anchor is None or (0 < anchor[0] <= summary["steps"] and 0 <= anchor[1] < 1)
    # the logged rate rises through warmup, then only decays, re-plans or not
    rates = [e["lr"] for e in read_events(summary["run_dir"]) if e["kind"] == "step"]
    peak = rates.index(max(rates))
    assert all(b <= a + 1e-12 for a, b in zip(rates[peak:], rates[peak + 1:])), rates


@needs_layers
def test_no_budget_means_epochs_capped_by_minutes(tmp_path, toy_folder, monkeypatch):
    from sslstudio.train import pretrain

    root, _ = toy_folder
    monkeypatch.setattr(pretrain, "DEFAULT_EPOCHS", 2)  # 24 images / batch 4: 12 steps
    summary = run_pretraining(config_for(tmp_path, root, "fast", epochs=None))
    assert summary["status"] == "completed" and summary["steps"] == summary["total_steps"] == 12
    monkeypatch.setattr(pretrain, "DEFAULT_EPOCHS", 1000)
    monkeypatch.setattr(pretrain, "DEFAULT_MINUTES", 0.03)
    summary = run_pretraining(config_for(tmp_path, root, "slow", epochs=None))
    # The cap, not the 1000 epochs (6000 steps), decides: either the plan made from the
    # measured speed ends first or the deadline does (which one depends on the machine).
    assert summary["status"] == "completed"
    assert summary["message"] in ("", "time budget of 0.03 min reached")
    assert summary["steps"] <= summary["total_steps"] < 6000


def test_minutes_planner_plans_early_when_steps_are_slow(monkeypatch):
    """Calibration steps run at lr ~0: slow steps must not eat the budget before the plan."""
    from types import SimpleNamespace

    from sslstudio.train import pretrain

    clock = [0.0]
    monkeypatch.setattr(pretrain.time, "monotonic", lambda: clock[0])

    def plan(per_step, deadline):
        return int(deadline / per_step), int(deadline / per_step) // 4

    def planned_at(seconds_per_step: float) -> tuple[int, int]:
        run = SimpleNamespace(step=0, deadline=60.0, total_steps=pretrain.PROVISIONAL_TOTAL,
                              dist=SimpleNamespace(enabled=False), plan_minutes=plan)
        planner = pretrain._MinutesPlanner(run)
        for step in range(1, 50):
            clock[0] += seconds_per_step
            run.step = step
            planner.after_step()
            if run.total_steps != pretrain.PROVISIONAL_TOTAL:
                return step, run.total_steps
        raise AssertionError("never planned")

    assert planned_at(0.01) == (pretrain.CALIBRATION_STEPS, 6000)  # fast: the usual 5 steps
    # 1 s steps in a 60 s budget: planned once two timed steps passed 3% of it (1.8 s)
    assert planned_at(1.0) == (3, 60)
    assert planned_at(5.0) == (2, 12)


def test_a_plan_that_has_run_out_is_not_extended_at_the_final_learning_rate(monkeypatch):
    """On a busy box the first plan came out short (8 steps); its recheck fell on the last
    step and added steps at the end of the cosine, where the learning rate is zero."""
    from types import SimpleNamespace

    from sslstudio.train import pretrain

    clock = [0.0]
    monkeypatch.setattr(pretrain.time, "monotonic", lambda: clock[0])
    plans = []

    def plan(per_step, deadline):
        plans.append(run.step)
        return (8, 8) if len(plans) == 1 else (run.step + 100, run.step + 25)

    run = SimpleNamespace(step=0, deadline=60.0, total_steps=pretrain.PROVISIONAL_TOTAL,
                          dist=SimpleNamespace(enabled=False), plan_minutes=plan)
    planner = pretrain._MinutesPlanner(run)
    finished = False
    while run.step < run.total_steps:
        clock[0] += 1.0
        run.step += 1
        finished = planner.after_step() or finished
    assert plans == [3] and run.total_steps == 8 and finished


def test_minutes_planner_replans_from_the_settled_speed(monkeypatch):
    """Slow first steps (warm-up) must not shorten the plan: the recheck uses later steps."""
    from types import SimpleNamespace

    from sslstudio.train import pretrain

    clock = [0.0]
    monkeypatch.setattr(pretrain.time, "monotonic", lambda: clock[0])
    plans = []

    def plan(per_step, deadline):
        plans.append(per_step)
        total = run.step + int((deadline - clock[0]) / per_step)
        return total, run.step + (total - run.step) // 4

    run = SimpleNamespace(step=0, deadline=100.0, total_steps=pretrain.PROVISIONAL_TOTAL,
                          dist=SimpleNamespace(enabled=False), plan_minutes=plan)
    planner = pretrain._MinutesPlanner(run)
    done = False
    while not done:
        clock[0] += 0.2 if run.step < 20 else 0.1   # warm-up: the first 20 steps are slower
        run.step += 1
        done = planner.after_step()
    assert plans[0] == pytest.approx(0.2)
    assert plans[-1] == pytest.approx(0.1)          # not the average with the warm-up
    # the final plan fills the budget at the settled speed
    assert run.total_steps == pytest.approx(run.step + (100.0 - clock[0]) / 0.1, abs=1)


def test_a_replanned_schedule_carries_on_without_a_jump():
    from sslstudio.train.schedule import lr_at, schedule_anchor

    base, warmup = 1e-3, 0.05
    # planned 1,000 steps; at step 300 the speed says 1,400 fit
    anchor = schedule_anchor(300, 1000, warmup)
    before = lr_at(299, 1000, base, warmup)
    after = lr_at(300, 1400, base, warmup, anchor=anchor)
    assert after == pytest.approx(lr_at(300, 1000, base, warmup))       # same point of the curve
    assert abs(after - before) < base / 500                              # no jump
    assert lr_at(300, 1400, base, warmup) > after + base / 20            # (un-anchored: a jump up)
    rates = [lr_at(step, 1400, base, warmup, anchor=anchor) for step in range(300, 1400)]
    assert all(b <= a for a, b in zip(rates, rates[1:]))                 # still only decays
    assert rates[-1] < base / 1000                                       # and ends at the new total
    # a second re-plan chains from the first anchor (fewer steps fit after all)
    second = schedule_anchor(800, 1400, warmup, anchor)
    assert lr_at(800, 1100, base, warmup, anchor=second) == pytest.approx(rates[500])
    assert schedule_anchor(20, 1000, warmup) is None                     # warmup follows the plan


@needs_layers
def test_input_errors_are_readable(tmp_path, toy_folder):
    root, _ = toy_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainError, match="no images found"):
        run_pretraining(config_for(tmp_path, empty, "a"))
    with pytest.raises(PretrainError, match="unknown task 'sudoku'"):
        run_pretraining(config_for(tmp_path, root, "b", task="sudoku"))
    with pytest.raises(PretrainError, match="cannot resume"):
        run_pretraining(config_for(tmp_path, root, "c", resume=True))
    done = config_for(tmp_path, root, "d", epochs=1)
    run_pretraining(done)
    with pytest.raises(PretrainError, match="already holds a run"):
        run_pretraining(done)


@needs_layers
def test_colorization_refuses_grayscale_images(tmp_path):
    from PIL import Image

    from sslstudio.pretext import TASKS

    if "colorization" not in TASKS:
        pytest.skip("the colorization task is not written yet")
    root = tmp_path / "gray"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8), "L").convert("RGB") \
            .save(root / f"g{i}.png")
    with pytest.raises(PretrainError, match="(?i)colou?r"):
        run_pretraining(config_for(tmp_path, root, task="colorization"))


@needs_layers
def test_contrastive_refuses_a_single_image_which_other_tasks_accept(tmp_path):
    """One image has nothing to be told apart from: the contrastive loss was a constant 0
    and the run 'completed' with accuracy 1.000, a backbone that had learnt nothing."""
    from PIL import Image

    root = tmp_path / "one"
    root.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)) \
        .save(root / "only.png")
    with pytest.raises(PretrainError, match="needs at least 2 readable images; .* has 1 image:"):
        run_pretraining(config_for(tmp_path, root, "c", task="contrastive", steps=2, epochs=None))
    assert not (tmp_path / "runs" / "c" / "backbone.safetensors").exists()
    summary = run_pretraining(config_for(tmp_path, root, "r", steps=2, epochs=None))
    assert summary["status"] == "completed"


@pytest.mark.parametrize("case", ["run inside", "cache inside", "run is a file"])
def test_nothing_is_written_into_the_image_folder(tmp_path, toy_folder, case):
    """A run inside the image folder put its preview PNGs among the images: the next scan
    read them as training images. Such settings are refused before anything is written."""
    root, _ = toy_folder
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    (tmp_path / "a-file").write_text("")
    overrides = {"run inside": dict(out=str(root / "run")),
                 "cache inside": dict(cache_dir=str(root / "sub" / "cache")),
                 "run is a file": dict(out=str(tmp_path / "a-file"))}[case]
    expected = {"run inside": "run folder .* is inside the image folder",
                "cache inside": "cache folder .* is inside the image folder",
                "run is a file": "is a file"}[case]
    with pytest.raises(PretrainError, match=expected):
        run_pretraining(config_for(tmp_path, root, preview_every=1, steps=1, epochs=None,
                                   **overrides))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------- CLI
@needs_layers
def test_cli_pretrains_and_resumes(tmp_path, toy_folder, capsys):
    root, _ = toy_folder
    out = tmp_path / "cli-run"
    common = [str(root), "--task", "rotation", "--out", str(out), "--image-size", "16",
              "--batch-size", "4", "--device", "cpu", "--quiet"]
    assert main(["pretrain", *common, "--steps", "4"]) == 0
    assert (out / "backbone.safetensors").is_file()
    assert main(["pretrain", *common, "--steps", "4", "--resume"]) == 0  # already complete
    assert load_checkpoint(out / "checkpoints" / "last.pt")[0]["step"] == 4


@needs_layers
def test_cli_pretrains_with_the_apps_recommended_task_when_none_is_named(tmp_path, toy_folder,
                                                                         capsys):
    from sslstudio.commands.pretrain import DEFAULT_TASK

    root, _ = toy_folder
    out = tmp_path / "run"
    assert main(["pretrain", str(root), "--out", str(out), "--image-size", "16",
                 "--batch-size", "4", "--device", "cpu", "--quiet", "--steps", "2"]) == 0
    info = json.loads((out / "backbone.json").read_text(encoding="utf-8"))
    assert info["pretext_task"] == DEFAULT_TASK


@needs_layers
@pytest.mark.parametrize("case", ["missing", "empty", "unknown-task", "resume-nothing"])
def test_cli_input_errors_exit_2(tmp_path, toy_folder, capsys, case):
    root, _ = toy_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = {"missing": tmp_path / "nope", "empty": empty}.get(case, root)
    args = ["pretrain", str(folder), "--task", "sudoku" if case == "unknown-task" else "rotation",
            "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet", "--steps", "2"]
    if case == "resume-nothing":
        args.append("--resume")
    assert main(args) == 2
    err = capsys.readouterr().err
    expected = {"missing": "not found", "empty": "no images", "unknown-task": "unknown task",
                "resume-nothing": "nothing to resume"}[case]
    assert expected in err and "Traceback" not in err


@needs_layers
def test_cli_refuses_a_bad_task_option_before_decoding_anything(tmp_path, toy_folder, capsys):
    root, _ = toy_folder
    args = ["pretrain", str(root), "--task", "contrastive", "--task-option", "temperature=warm",
            "--out", str(tmp_path / "run"), "--device", "cpu", "--steps", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bad options for task contrastive" in err and "temperature" in err
    assert "decoding" not in err and "at step" not in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_file_control_reads_run_pause_stop_and_notices_a_vanished_parent(tmp_path):
    import os

    from sslstudio.train.control import FileRunControl, write_control_state

    path = tmp_path / "control"
    control = FileRunControl(path, parent_pid=os.getppid(), poll_s=0)
    assert not control.is_stopped() and not control.paused  # no file yet: run
    write_control_state(path, "pause")
    assert control.paused and not control.wait_while_paused(timeout=0.05)
    write_control_state(path, "run")
    assert not control.paused and control.wait_while_paused(timeout=0.05)
    write_control_state(path, "stop")
    assert control.is_stopped()
    with pytest.raises(ValueError):
        write_control_state(path, "faster")
    orphan = FileRunControl(tmp_path / "other", parent_pid=os.getppid() + 100_000, poll_s=0)
    assert orphan.is_stopped()  # the app that started it is gone


@needs_layers
def test_the_app_worker_command_stops_through_its_control_file(tmp_path, toy_folder):
    """`sslstudio pretrain-worker` (the app's training process) obeys RUN_DIR/control."""
    import subprocess
    import sys
    import time

    root, _ = toy_folder
    config = config_for(tmp_path, root, epochs=500)
    Path(config.out).mkdir(parents=True)
    settings, control = Path(config.out) / "app-config.json", Path(config.out) / "control"
    settings.write_text(config.to_json())
    process = subprocess.Popen([sys.executable, "-m", "sslstudio", "pretrain-worker",
                                "--config", str(settings), "--control", str(control)],
                               stderr=subprocess.PIPE, text=True)
    log = Path(config.out) / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and '"kind": "step"' in log.read_text()):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    control.write_text("stop")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped after" in err  # said before the worker skips the interpreter's teardown
    ends = [e for e in read_events(config.out) if e["kind"] == "end"]
    assert ends[-1]["status"] == "stopped" and ends[-1]["step"] < 500 * 6
    assert (Path(config.out) / "checkpoints" / "last.pt").is_file()
