"""Video names: one canonical form for every file layout.

Ground-truth and submission files name videos ``VIDEO.mp4``; 2019 feature pickles
name them ``VIDEO`` (often as ``bytes``). vidid keeps the canonical form (str, no
``.mp4``) everywhere inside and adds ``.mp4`` only when writing official files.
"""

from __future__ import annotations

SUFFIX = ".mp4"


def canonical_name(name: str | bytes) -> str:
    """Return the canonical form of a video name: ``str`` without ``.mp4``.

    Examples
    --------
    >>> canonical_name(b"IQIYI_VID_TEST_0000001.mp4")
    'IQIYI_VID_TEST_0000001'
    >>> canonical_name("IQIYI_VID_TEST_0000001")
    'IQIYI_VID_TEST_0000001'
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8")
    if not isinstance(name, str):
        raise TypeError(f"video name must be str or bytes, got {type(name).__name__}: {name!r}")
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


def official_name(name: str) -> str:
    """Return the name as official files write it (with ``.mp4``).

    >>> official_name("IQIYI_VID_TEST_0000001")
    'IQIYI_VID_TEST_0000001.mp4'
    """
    name = canonical_name(name)
    return name + SUFFIX
