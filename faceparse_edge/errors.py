"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class FaceparseError(Exception):
    """A problem with the user's input (files, data, settings) that the user can fix."""


class NotFoundError(FaceparseError, FileNotFoundError):
    """A file or folder the user named is missing (`except FileNotFoundError` catches it too)."""


class InvalidValueError(FaceparseError, ValueError):
    """An argument, setting or input the library cannot use (`except ValueError` catches it too)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, or its type's name when it has none
    (libraries raise multi-line and empty messages alike; our errors are one line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
