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
