"""The one exception type the CLI turns into a one-line error and a non-zero exit."""

import re


class FaceparseError(Exception):
    """A problem with the user's input (files, data, settings) that the user can fix."""


class NotFoundError(FaceparseError, FileNotFoundError):
    """A file or folder the user named is missing (`except FileNotFoundError` catches it too)."""


class InvalidValueError(FaceparseError, ValueError):
    """An argument, setting or input the library cannot use (`except ValueError` catches it too)."""


# Lines that name only where a library raised (OpenVINO: "Exception from src/inference/src/cpp/core.cpp:84:",
# "Check 'm_weights_provider' failed at src/core/...:887:"): the cause is on a later line.
SOURCE_LOCATION = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message that says what went wrong (not just where), or its type's name
    when it has none (libraries raise multi-line and empty messages alike; our errors are one line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if not SOURCE_LOCATION.match(line)]
    return ((telling or lines)[0] if lines else type(exc).__name__)[:limit]
