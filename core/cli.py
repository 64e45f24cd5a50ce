"""The ``vidid`` command.

Every subcommand lives in ``core/commands/<name>.py`` and exposes
``register(subparsers)``; heavy imports (torch, umap) happen inside the command's
run function so ``vidid --help`` stays instant.

User mistakes (missing file, wrong format, bad value) print one line to stderr and
exit 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

COMMANDS = ("demo", "pool", "evaluate", "cluster", "train", "predict", "errors", "issues")

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``vidid CMD: error: ...``) + exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_cap(message)} "
                              f"(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vidid",
        description=(
            "vidid: video person recognition on precomputed face features "
            "(iQIYI-VID formats). Run 'vidid COMMAND --help' for a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"core.commands.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("vidid: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, KeyError) as exc:
        print(f"vidid {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return int(result or 0)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return _cap(f"{exc.filename}: no such file or directory")
    if isinstance(exc, IsADirectoryError) and exc.filename:
        return _cap(f"{exc.filename}: is a directory, expected a file")
    if isinstance(exc, PermissionError) and exc.filename:
        return _cap(f"{exc.filename}: permission denied")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return _cap(f"{exc.filename or 'output'}: no space left on device; free some space "
                    f"and run the command again")
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return _cap(f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return _cap(f"missing entry {key!r} (a file lacks a field it must have)")
    return _cap(" ".join(str(exc).split()) or type(exc).__name__)


def _cap(text: str) -> str:
    from core.errors import short_message

    return short_message(text)


def _version() -> str:
    from core import __version__

    return f"vidid {__version__}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
