import subprocess
import sys

from sslstudio import __version__
from sslstudio.cli import COMMANDS, main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sslstudio", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_install_desktop_writes_the_menu_entry_and_uninstall_removes_it(tmp_path):
    prefix = tmp_path / "prefix"
    assert main(["install-desktop", "--prefix", str(prefix), "--exec", "/opt/ssl/sslstudio"]) == 0
    [entry] = (prefix / "share" / "applications").glob("*.desktop")
    assert "Exec=/opt/ssl/sslstudio " in entry.read_text()
    assert list((prefix / "share" / "icons").rglob("sslstudio.png"))
    assert main(["install-desktop", "--prefix", str(prefix), "--uninstall"]) == 0
    assert not entry.exists()


def test_gui_reset_settings_clears_the_settings_file(tmp_path, capsys):
    from sslstudio.gui.settings import AppSettings

    settings = AppSettings()
    settings.add_recent_project(tmp_path / "some-project")
    assert settings.recent_projects(existing_only=False)
    assert main(["gui", "--reset-settings"]) == 0
    assert "settings reset" in capsys.readouterr().out
    assert AppSettings().recent_projects(existing_only=False) == []


def test_a_closed_pipe_ends_quietly(tmp_path):
    from conftest import write_toy_folder

    root = tmp_path / "images"
    write_toy_folder(root, per_class=2)
    for i in range(200):  # enough output lines to outlast a reader that leaves at once
        (root / f"junk{i}.png").write_bytes(b"not an image")
    proc = subprocess.Popen([sys.executable, "-m", "sslstudio", "scan", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141)
    assert "Traceback" not in stderr


def test_pretrain_help_names_every_registered_task():
    """The CLI lists the tasks without importing torch; the list must match the registry."""
    from sslstudio.commands.pretrain import TASK_NAMES
    from sslstudio.pretext import TASKS

    assert TASK_NAMES == tuple(TASKS)


def test_zero_or_negative_counts_are_refused_with_the_option_name(tmp_path, capsys):
    """`classify --epochs 0` used to save a chance-level model without a word."""
    import pytest

    folder = str(tmp_path)
    cases = [
        (["classify", folder, "--run", folder, "--labels", "l.csv", "--out", "m", "--epochs", "0"],
         "--epochs: must be at least 1 (got 0)"),
        (["classify", folder, "--run", folder, "--labels", "l.csv", "--out", "m", "--stages", "-1"],
         "--stages: must be at least 1"),
        (["pretrain", folder, "--task", "rotation", "--out", "r", "--steps", "two"],
         "--steps: expected a whole number, got 'two'"),
        (["pretrain", folder, "--task", "rotation", "--out", "r", "--minutes", "nan"],
         "--minutes: must be a number above 0"),
        (["predict", "model", folder, "--batch-size", "0"], "--batch-size: must be at least 1"),
        (["evaluate", "model", folder, "--batch-size", "-8"], "--batch-size: must be at least 1"),
        (["sample", folder, "--size", "8"], "--size: must be at least 16 (got 8)"),
        (["sample", folder, "--per-class", "0"], "--per-class: must be at least 1 (got 0)"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2, args
        assert message in capsys.readouterr().err, args
    assert not any(tmp_path.iterdir())  # nothing was started


def test_classifier_worker_refuses_a_missing_or_odd_job(tmp_path, capsys):
    """The app's classifier process says why it cannot start, instead of a traceback."""
    assert main(["classifier-worker", "--job", str(tmp_path / "nowhere")]) == 2
    assert "cannot read the classifier job" in capsys.readouterr().err
    (tmp_path / "job.json").write_text('{"project_dir": "p", "colour": 1}')
    assert main(["classifier-worker", "--job", str(tmp_path)]) == 2
    assert "unknown classifier job fields: colour" in capsys.readouterr().err
    (tmp_path / "job.json").write_text('{"project_dir": "p"}')
    assert main(["classifier-worker", "--job", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "outcome.json").exists()


def test_pretrain_labels_are_matched_to_the_folder_like_classify_and_a_mismatch_is_refused(
        tmp_path, capsys):
    """`pretrain --labels` used its own reader: './', file names alone or a label;file header
    gave keys that matched no image, and the kNN accuracy was silently missing."""
    from PIL import Image

    from sslstudio.cli import build_parser
    from sslstudio.commands.pretrain import build_config

    images = tmp_path / "images"
    for rel in ("cats/a.png", "dogs/b.png", "c.png"):
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(images / rel)
    labels = tmp_path / "labels.csv"
    labels.write_text("label;file\ncat;./cats/a.png\ndog;b.png\nbird;gone.png\n")
    args = build_parser(["pretrain"]).parse_args(
        ["pretrain", str(images), "--out", str(tmp_path / "run"), "--labels", str(labels)])
    assert build_config(args).labels == {"cats/a.png": "cat", "dogs/b.png": "dog"}
    assert "1 labelled file not found in" in capsys.readouterr().err

    labels.write_text("filename,label\nx.png,cat\ny.png,dog\n")
    assert main(["pretrain", str(images), "--out", str(tmp_path / "run"), "--labels",
                 str(labels), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "labels none of the 3 images" in err and "'x.png'" in err
    assert not (tmp_path / "run").exists()
