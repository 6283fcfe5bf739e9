"""The `sslstudio` command line: the GUI by default, headless subcommands otherwise.

Each subcommand lives in `sslstudio/commands/<name>.py` with `HELP`,
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when
their command runs so `sslstudio --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sslstudio import __version__

# name → one-line help; the module sslstudio.commands.<name> does the work.
COMMANDS = {
    "gui": "open the app (the default when no command is given)",
    "scan": "index an image folder and report unreadable files",
    "sample": "write the built-in sample dataset to a folder",
    "labels": "import or export a project's labels (CSV or ImageFolder)",
    "pretrain": "pretrain a backbone with a self-supervised pretext task",
    "classify": "build a classifier from a pretrained run and a few labels",
    "evaluate": "evaluate a classifier on a labelled test folder",
    "export": "export a classifier to TorchScript, ONNX or safetensors",
    "predict": "predict a folder of images with an exported model",
    "install-desktop": "add SSL Studio to the desktop's application menu (Linux)",
}
# Started by the app, not typed by people: parsed like the others, not listed in --help.
HIDDEN_COMMANDS = ("pretrain-worker", "classifier-worker")


def _command_module(name: str):
    return importlib.import_module(f"sslstudio.commands.{name.replace('-', '_')}")


def build_parser(load_commands: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslstudio",
        description="SSL Studio: image classifiers from very few labels.",
    )
    parser.add_argument("--version", action="version", version=f"sslstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if load_commands is None or name in load_commands:
            _command_module(name).add_arguments(p)
    for name in HIDDEN_COMMANDS:
        p = sub.add_parser(name)
        if load_commands is None or name in load_commands:
            _command_module(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    if not argv or (wanted is None and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
        wanted = "gui"
    # Only the chosen command's module is imported (fast --help, fast startup).
    parser = build_parser([wanted] if wanted in COMMANDS or wanted in HIDDEN_COMMANDS else [])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_command_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sslstudio scan … | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
