"""The library's own error type for bad user input."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a file, a line or a video that is not what the format says.

    The message names the file (and line or video where there is one) and what is
    wrong, on one line, so the CLI can print it as is and exit 2.
    """


#: Longest error line shown; longer ones keep their start (the file and the item).
MAX_MESSAGE = 400
#: Longest single word kept whole (a 5-million-character name is cut in the middle).
MAX_WORD = 160


def short_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line of at most ``limit`` characters.

    Over-long words are cut in the middle (start and end kept), then the line is
    cut at its end, so the file and the item named first survive.

    Examples
    --------
    >>> short_message("f.txt: line 2:   bad " + "x" * 1000)[:40]
    'f.txt: line 2: bad xxxxxxxxxxxxxxxxxxxxx'
    >>> len(short_message("f.txt: " + "x " * 1000)) <= 400
    True
    """
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    words = [w if len(w) <= MAX_WORD else f"{w[:100]}...({len(w)} chars)...{w[-30:]}"
             for w in text.split(" ")]
    text = " ".join(words)
    if len(text) > limit:
        text = text[:limit - 30] + f" ... ({len(text)} chars in all)"
    return text
