"""Command-line entry point: ``mmdesk COMMAND ...`` (also ``python -m mmdesk``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from mmdesk import __version__
from mmdesk.commands import COMMANDS
from mmdesk.errors import MmdeskError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmdesk", description="Multimodal emotion and sarcasm analysis.")
    parser.add_argument("--version", action="version", version=f"mmdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"mmdesk.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        if not _has_display():
            parser.print_help()
            print("\nno display: `mmdesk` alone opens the desktop app (`mmdesk gui`) when there is one",
                  file=sys.stderr)
            return 0
        args = parser.parse_args(["gui"])  # a desktop launch: the app
    try:
        return int(args._module.run(args) or 0)
    except MmdeskError as exc:
        print(f"mmdesk: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mmdesk: interrupted", file=sys.stderr)
        return 130


def _has_display() -> bool:
    import os

    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"))


if __name__ == "__main__":
    raise SystemExit(main())
