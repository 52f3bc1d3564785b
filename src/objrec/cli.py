"""One entry point: ``objrec <verb> ...``.

Each verb lives in :mod:`objrec.commands` (one module per verb, discovered here). An
error meant for the user is printed as one line on stderr with exit status 2; a
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from objrec import __version__
from objrec.errors import ObjrecError


def build_parser() -> argparse.ArgumentParser:
    import objrec.commands as commands

    parser = argparse.ArgumentParser(
        prog="objrec",
        description="Image classification: features + classifier, bag of visual words, eigenfaces and "
        "CNNs, trained and compared on the same data.",
    )
    parser.add_argument("--version", action="version", version=f"objrec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"objrec.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return status
    except BrokenPipeError:
        # The reader of stdout went away (e.g. ``objrec ... | head``): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("objrec: interrupted", file=sys.stderr)
        return 130
    except (ObjrecError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if args.debug:
            raise
        print(f"objrec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
