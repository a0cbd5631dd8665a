"""The `scarce` command line: a thin layer that parses arguments and calls library functions.

One module per command (`scarce.cli.train` is `scarce train`), each exposing `add_parser(subparsers)`,
which adds its subcommand and sets `func` to a handler taking the parsed arguments; the options several
commands share are declared once in `scarce.cli.options`. The library never imports this package. User
errors (`UserError`, bad options) become one line `error: ...` on stderr and exit 2.
"""

from __future__ import annotations

import os
import signal
import sys

from scarce import __version__
from scarce.cli import (
    ablate,
    bench,
    ensemble,
    export,
    fit,
    prepare,
    quickstart,
    recipe,
    report,
    runs,
    sample,
    sweep,
    synth,
    train,
)
from scarce.cli import eval as eval_command  # not the builtin
from scarce.cli.options import ArgumentParser
from scarce.errors import UserError
from scarce.train.runtime import close_distributed

COMMANDS = [quickstart, prepare, train, runs, fit, ensemble, eval_command, sample, synth, export, sweep, recipe,
            ablate, bench, report]
"""In the order `scarce --help` lists them."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="scarce", description="Language-model pretraining when data is scarce and compute is not.")
    parser.add_argument("--version", action="version", version=f"scarce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM and SIGHUP take the Ctrl-C path (running work is stopped and recorded,
    queued work never starts, worker processes are stopped with their parent)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    done = False
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        status = int(args.func(args) or 0)
        done = True
        return status
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`scarce runs --json | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if "torch.distributed" in sys.modules:  # a torchrun rank: leave its process group before exiting
            close_distributed(barrier=done)  # every rank finished the command: wait for the others' last work


if __name__ == "__main__":
    sys.exit(main())
