"""One style of progress bar for all long work (torch-free)."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

NOT_A_TERMINAL_WIDTH = 10_000  # a log or CI: lines and tables are never wrapped (file names stay whole)


def make_console(stderr: bool = False) -> Console:
    """Rich output on stdout or stderr; where that is not a terminal, nothing wraps at 80 columns."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=NOT_A_TERMINAL_WIDTH, soft_wrap=True)
    return console


console = make_console(stderr=True)


def progress_bar(transient: bool = False, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("<"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        disable=disable,
    )
