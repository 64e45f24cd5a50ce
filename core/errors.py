"""The library's own error type for bad user input."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a file, a line or a video that is not what the format says.

    The message names the file (and line or video where there is one) and what is
    wrong, on one line, so the CLI can print it as is and exit 2.
    """
