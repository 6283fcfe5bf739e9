"""`sslstudio install-desktop [--prefix P] [--exec PATH] [--uninstall]`: the Linux menu entry."""

from __future__ import annotations

import argparse

HELP = "add SSL Studio to the desktop's application menu (Linux)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", help="install under PREFIX/share (default: ~/.local/share)")
    parser.add_argument("--exec", dest="exec_path",
                        help="program the menu entry starts (default: this installation's "
                             "own sslstudio, by absolute path)")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove what install-desktop wrote")


def run(args: argparse.Namespace) -> int:
    from sslstudio.resources import main

    argv = ["install-desktop"]
    if args.prefix:
        argv += ["--prefix", args.prefix]
    if args.exec_path:
        argv += ["--exec", args.exec_path]
    if args.uninstall:
        argv.append("--uninstall")
    return main(argv)
