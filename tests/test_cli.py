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
