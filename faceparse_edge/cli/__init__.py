"""The `faceparse-edge` command line: options, tables and one-line errors around the library's functions.

Torch is imported only inside the commands that need it. The commands live in training.py, exporting.py and
parsing.py; what they share, in common.py.
"""

import os
import signal
import sys
import time

import typer

from ..errors import FaceparseError
from ..progress import console
from . import training, exporting, parsing  # noqa: F401, I001  (they register the commands, in this order in --help)
from .common import app

# click's base of usage errors: typer exports only BadParameter (and vendors click from 0.2x on).
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
OLD_SPELLINGS = {("--tta", "flip"): ["--tta"], ("--tta", "none"): ["--no-tta"]}  # evaluate's before --tta/--no-tta

__all__ = ["app", "main"]


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: videos finalised, checkpoints whole


def _new_spellings(args: list[str]) -> list[str]:
    """The command line with old option spellings (OLD_SPELLINGS) replaced by today's."""
    result, i = [], 0
    while i < len(args):
        pair = tuple(args[i : i + 2]) if "=" not in args[i] else tuple(args[i].split("=", 1))
        new = OLD_SPELLINGS.get(pair)
        result += new if new else [args[i]]
        i += 2 if new and "=" not in args[i] else 1
    return result


def main():
    signal.signal(signal.SIGTERM, _stop)
    try:
        code = app(args=_new_spellings(sys.argv[1:]), standalone_mode=False)  # usage errors come here: one line
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Abort:
        console.print("interrupted")
        sys.exit(130)
    except ClickException as exc:
        message, context = " ".join(exc.format_message().split()), getattr(exc, "ctx", None)
        if message:  # (a bare command group has printed its help instead)
            hint = f" (see '{context.command_path} --help')" if context else ""
            print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except FaceparseError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike; rank 0 says why
            print(f"error: {exc}", file=sys.stderr)  # plain print: one line, never wrapped
        else:  # torchrun stops every rank once one exits: let rank 0 say why first (and be stopped quietly;
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun stops this rank as soon as rank 0 exits)
            time.sleep(10)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
