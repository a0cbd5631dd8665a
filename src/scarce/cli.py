"""The `scarce` command line: a thin layer that parses arguments and calls library functions.

Each command group lives beside the code it drives (for example `scarce.data.cli`) and exposes
`add_parser(subparsers)`, which adds its subcommand and sets `func` to a handler taking the parsed
arguments. User errors (`UserError`, bad options) become one line `error: ...` on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scarce import __version__
from scarce.errors import UserError

# Modules that each add one subcommand (or a group of them), in the order `scarce --help` lists them.
COMMAND_MODULES = [
    "scarce.quickstart",
    "scarce.data.cli",
    "scarce.train.cli",
    "scarce.runs.cli",
    "scarce.scaling.cli",
    "scarce.ensemble_cli",
    "scarce.recipes.cli",
    "scarce.bench_cli",
]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <message>` and exit status 2, no usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="scarce",
        description="Language-model pretraining when data is scarce and compute is not.",
    )
    parser.add_argument("--version", action="version", version=f"scarce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # a command group not built yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        result = args.func(args)
        return int(result or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
