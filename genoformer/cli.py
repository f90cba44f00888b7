"""The ``genoformer`` command line: one entry point, one subcommand per pipeline stage.

Only this module decides exit codes and how errors print: a :class:`~genoformer.errors.GenoformerError`
(a user mistake) becomes one line on stderr and exit code 2; so does an operating-system error on a named file
(an output path that is a folder, a folder that cannot be written, a full disk: the machine's state, not a bug;
``-v`` adds the traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Before torch is imported anywhere: let the CUDA caching allocator grow segments instead of reserving new
# ones, so what a long sequence reserves stays close to what it uses (a million-token training step:
# 72.5 GiB allocated but 82.7 GiB reserved without it, on an H200). A user's own setting wins.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

from genoformer import __version__
from genoformer.errors import GenoformerError

# Each module in genoformer/commands/ defines ``register(subparsers)``, which adds its parser and sets
# ``func`` (called with the parsed args). Order here is the order in ``genoformer --help``.
COMMANDS = (
    "tokenize",
    "pretrain",
    "evaluate",
    "score-variants",
    "classify-variants",
    "classify-regions",
    "coding-variants",
    "region-labels",
    "merge-vcf",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="genoformer",
        description="Long-context DNA language models: tokenize genomes, pretrain a Reformer, score variants, "
        "classify regions, report.",
    )
    parser.add_argument("--version", action="version", version=f"genoformer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"genoformer.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        args.func(args)
    except GenoformerError as err:
        message = " ".join(str(err).split())  # always one line
        print(f"genoformer {args.command}: error: {message}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        if err.filename is None:
            raise
        logging.getLogger("genoformer").debug("traceback of the error below", exc_info=True)
        path = err.filename2 or err.filename  # a rename names its destination second: the user's path
        print(f"genoformer {args.command}: error: {path}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genoformer {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
