"""Client-side checks of label and field selectors, as the apiserver parses them.

A selector becomes a query parameter of every LIST and WATCH; a malformed one is refused
by the server with 400 on each attempt, so an informer would never sync. Checking it
where it is declared turns that into one clear error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_TERM = re.compile(r"\s*(!?)\s*([^\s!=(),<>]+)\s*"
                   r"(?:(notin|in)\s*\(([^()]*)\)|(==|=|!=|<|>)\s*([^\s,]*))?\s*")
_FIELD_TERM = re.compile(r"\s*([^\s=!,]+)\s*(==|=|!=)(.*)", re.DOTALL)


def _qualified(text: str) -> bool:
    prefix, sep, name = text.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_NAME.fullmatch(name))


def _label_value(text: str) -> bool:
    return text == "" or (len(text) <= 63 and bool(_NAME.fullmatch(text)))


_Requirement = tuple[str, str, frozenset[str]]  # key, operator, values


def _parse_label_selector(text: str) -> list[_Requirement]:
    """The requirements of a label selector; ValueError when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"a label selector is a string, not {type(text).__name__}")
    requirements: list[_Requirement] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TERM.match(text, pos)
        ok = m is not None and m.end() > pos
        if m is not None and ok:
            neg, key, setop, values, op, value = m.groups()
            ok = _qualified(key) and not (neg and (setop or op))
            if setop:
                members = [v.strip() for v in values.split(",")]
                ok = ok and bool(values.strip()) and all(_label_value(v) for v in members)
                requirements.append((key, setop, frozenset(members)))
            elif op in ("<", ">"):
                # a label value and an integer: no sign (the apiserver refuses "gen>-3")
                ok = ok and _label_value(value) and bool(re.fullmatch(r"[0-9]+", value))
                requirements.append((key, op, frozenset((value,))))
            elif op:
                ok = ok and _label_value(value)
                requirements.append((key, "!=" if op == "!=" else "=", frozenset((value,))))
            else:
                requirements.append((key, "!" if neg else "exists", frozenset()))
            pos = m.end()
        if not ok or (pos < n and text[pos] != ","):
            raise ValueError(f"{text!r} is not a label selector "
                             "(e.g. app=web,tier!=db,env in (a,b),!legacy)")
        pos += 1
        if pos == n:
            raise ValueError(f"{text!r} ends with ','")
    return requirements


def check_label_selector(text: str) -> str:
    """Return ``text`` if it is a label selector (``app=web,tier!=db,env in (a,b),!old``).

    Raises:
        ValueError: it is not one (as the apiserver's ``labels.Parse`` would refuse it).
    """
    _parse_label_selector(text)
    return text


def _matches(requirement: _Requirement, labels: Mapping[str, str]) -> bool:
    key, op, values = requirement
    value = labels.get(key)
    if op == "exists":
        return value is not None
    if op == "!":
        return value is None
    if op in ("=", "in"):
        return value is not None and value in values
    if op in ("!=", "notin"):
        return value is None or value not in values
    # "<" / ">": integer comparison; a missing or non-integer label never matches
    if value is None or re.fullmatch(r"-?[0-9]+", value) is None:
        return False
    bound = int(next(iter(values)))
    return int(value) < bound if op == "<" else int(value) > bound


def label_selector_matcher(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A function telling whether a label mapping matches ``text`` (as the apiserver).

    Raises:
        ValueError: ``text`` is not a label selector.
    """
    requirements = _parse_label_selector(text)
    return lambda labels: all(_matches(r, labels) for r in requirements)


def _split_unescaped(text: str) -> list[str]:
    terms, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ",":
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return terms


def check_field_selector(text: str) -> str:
    """Return ``text`` if it is a field selector (``metadata.name=a,status.phase!=Failed``).

    Terms are separated by unescaped commas; each is ``key=value``, ``key==value`` or
    ``key!=value`` (the apiserver's ``fields.ParseSelector``; which keys a resource
    supports only the server knows).

    Raises:
        ValueError: it is not one.
    """
    if not isinstance(text, str):
        raise ValueError(f"a field selector is a string, not {type(text).__name__}")
    if not text:
        return text
    for term in _split_unescaped(text):
        if term and _FIELD_TERM.fullmatch(term) is None:  # empty terms: skipped, as there
            raise ValueError(f"{text!r} is not a field selector: {term!r} is not key=value, "
                             "key==value or key!=value")
    return text


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def field_selector_terms(text: str) -> list[tuple[str, str, str]]:
    """``(key, "=" or "!=", value)`` for each term of a field selector (values unescaped).

    Raises:
        ValueError: ``text`` is not a field selector.
    """
    check_field_selector(text)
    terms = []
    for term in _split_unescaped(text):
        m = _FIELD_TERM.fullmatch(term) if term else None
        if m is not None:
            key, op, value = m.groups()
            terms.append((key, "!=" if op == "!=" else "=", _unescape(value)))
    return terms
