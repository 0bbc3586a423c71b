"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class FaceparseError(Exception):
    """A problem with the user's input (files, data, settings) that the user can fix."""
