"""Validation of anything that becomes one segment of a URL path (≙ IsValidPathSegmentName)."""

from __future__ import annotations


def path_segment_problems(segment: str) -> list[str]:
    """What makes ``segment`` unusable as one URL path segment; empty when it is fine.

    As client-go's ``IsValidPathSegmentName``: not ``.`` or ``..`` (an HTTP stack removes
    those, so the request would reach the parent collection), no ``/`` and no ``%``.
    """
    if segment in (".", ".."):
        return [f"may not be {segment!r}"]
    return [f"may not contain {c!r}" for c in ("/", "%") if c in segment]


def check_path_segment(what: str, segment: str) -> str:
    """Return ``segment`` if it is a non-empty, valid path segment.

    Raises:
        ValueError: it is empty, ``.``/``..``, or contains ``/`` or ``%``; the message
            names ``what`` (e.g. "name") and the offending value.
    """
    if not isinstance(segment, str):
        raise ValueError(f"{what} must be a string, got {type(segment).__name__}")
    if not segment:
        raise ValueError(f"{what} must not be empty")
    problems = path_segment_problems(segment)
    if problems:
        raise ValueError(f"invalid {what} {segment!r}: {'; '.join(problems)}")
    return segment


def check_request_path(path: str) -> str:
    """Return ``path`` if it is absolute and has no dot segments before its query.

    A path that does not start with ``/`` would be glued onto the host (``host@evil``);
    ``.`` and ``..`` segments are removed by the HTTP layer and so reach another resource.

    Raises:
        ValueError: either of those.
    """
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"request path must start with a single '/': {path[:100]!r}")
    bare = path.split("?", 1)[0].split("#", 1)[0]
    for segment in bare.split("/"):
        if segment in (".", "..") or segment.lower() in ("%2e", "%2e%2e", ".%2e", "%2e."):
            raise ValueError(f"request path has a dot segment: {bare[:100]!r}")
    return path
