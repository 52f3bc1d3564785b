"""One entry point: ``objrec <verb> ...``.

Each verb lives in :mod:`objrec.commands` (one module per verb, discovered here). An
error meant for the user is printed as one line on stderr with exit status 2; a
traceback only with ``--debug``. A wrong argument is refused by the parser, before
anything is loaded or written, also as one line (ranges of numbers: :mod:`objrec.cli_types`).
Warnings are printed once each, one line, in objrec's words where objrec knows them
(:func:`objrec.methods.base.describe_warning`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from objrec import __version__
from objrec.errors import ObjrecError


class Parser(argparse.ArgumentParser):
    """argparse's parser reporting a bad argument as one line on stderr (exit status 2)
    instead of the usage block followed by the error."""

    def error(self, message: str):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import objrec.commands as commands

    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a refused argument (status 2), or --help / --version (0)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    import warnings

    if args.command != "serve":  # a server's memory should shrink back between requests
        from objrec.cpu import keep_freed_memory

        keep_freed_memory()
    try:
        from objrec.progress import silenced

        # --quiet: no progress of any kind, also from saved models' own settings
        with warnings.catch_warnings(), silenced(getattr(args, "quiet", False) is True):
            if _warnings_printed():
                warnings.showwarning = _show_warning_once()
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
        print(f"objrec: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _warnings_printed() -> bool:
    """Whether warnings are printed (not recorded, as ``catch_warnings(record=True)`` and
    pytest's ``warns`` do: those keep receiving them)."""
    import warnings

    impl = getattr(warnings, "_showwarnmsg_impl", None)
    return getattr(impl, "__module__", None) == "warnings"


def _show_warning_once():
    """A ``warnings.showwarning`` printing each distinct warning once, on one line."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from objrec.methods.base import describe_warning

        text = describe_warning(message, category)
        if text in seen:
            return
        seen.add(text)
        print(f"objrec: warning: {text}", file=file or sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
