"""Command-line parsing shared by the tools: ``HfArgumentParser`` dataclasses, underscore flags.

Every tool declares its options as dataclasses whose ``__post_init__`` checks them, so a bad value is
refused before any data is loaded; here a check's ``ValueError`` becomes a one-line usage error
(exit status 2) instead of a traceback. A single ``ARGS.json`` argument reads every option from a
JSON file, as in transformers' example scripts.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence

from transformers import HfArgumentParser

from processing.files import storage_error
from processing.workers import WorkersLost


def parse_arguments(dataclass_types: tuple, argv: Sequence[str] | None = None, *, prog: str, description: str,
                    positional: str | tuple[str, ...] | None = None, exit_on_error: bool = True) -> tuple:
    """Parse ``argv`` (default ``sys.argv[1:]``) into one instance of each dataclass.

    Args:
        dataclass_types: the option dataclasses, in the order they are returned.
        argv: the arguments; a single ``*.json`` path reads them from that file.
        prog: the program name shown in ``--help`` (the console script).
        description: the ``--help`` text above the options.
        positional: a field that may also be given as the first, unnamed argument (``mtcae-push-to-hub RUN``), or
            fields given so in order (``mtcae-export MODEL OUTPUT``); the last one takes every value up to a flag.
        exit_on_error: a check's ``ValueError`` becomes a usage error (exit status 2); ``False`` raises it, for a
            tool that reports it in its own words.
    """
    parser = HfArgumentParser(dataclass_types, prog=prog, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            return tuple(parser.parse_json_file(os.path.abspath(argv[0])))
        argv = _named(argv, (positional,) if isinstance(positional, str) else tuple(positional or ()))
        return tuple(parser.parse_args_into_dataclasses(args=argv))
    except ValueError as error:
        if not exit_on_error:
            raise
        parser.error(str(error))


def reports_errors(prog: str):
    """Decorate a tool's ``main(argv)``: a lost worker process or a write refused for lack of space or permission ends
    the tool with one line, ``prog: error: ...`` (exit status 1), instead of a traceback."""
    def decorate(main):
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None):
            try:
                return main(argv)
            except (WorkersLost, OSError) as error:
                said = error if isinstance(error, WorkersLost) else storage_error(error, None)
                if said is None:
                    raise
                print(f"{prog}: error: {said}", file=sys.stderr)
                raise SystemExit(1) from None
        return run
    return decorate


def _named(argv: list[str], fields: tuple[str, ...]) -> list[str]:
    """``argv`` with its leading unnamed values named: the first value ``--FIELD1``, the next ``--FIELD2``, ..."""
    named = []
    for i, name in enumerate(fields):
        if not argv or argv[0].startswith("-"):
            break
        named += [f"--{name}", *(argv[:1] if i < len(fields) - 1 else [])]
        argv = argv[1:] if i < len(fields) - 1 else argv
    return named + argv


def configure_logging() -> None:
    """INFO-level logs with the time and the logger's name, as the long-running tools print them."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raise a ``ValueError`` naming the option when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"--{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_positive(**values: int | float | None) -> None:
    """Raise a ``ValueError`` naming the first option (given as a keyword) that is set but not > 0."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"--{name} must be > 0; got {value!r}")


__all__ = ["check_choice", "check_positive", "configure_logging", "parse_arguments", "reports_errors"]
