"""Argo CD's glob patterns for ``directory.include`` / ``exclude``, compiled to regular expressions.

Argo CD matches these with a glob library and no path separator declared, so ``*`` (and ``**``)
match any run of characters, ``/`` included; ``?`` is one character; ``[abc]``, ``[a-z]`` and
``[!abc]`` (or ``[^abc]``) are classes; ``{a,b,c}`` is one of the alternatives, which may nest and
hold wildcards; ``\\`` makes the next character literal. The whole path must match. A malformed
pattern (an unclosed ``[`` or ``{``) is an error naming the field, not a pattern that matches
nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from fleet.errors import StalledError

__all__ = ["compile_glob", "matches"]


def matches(pattern: str, path: str, *, field: str) -> bool:
    """True when `path` matches the whole of `pattern` (given in `field`, for errors)."""
    return compile_glob(pattern, field=field).fullmatch(path) is not None


@lru_cache(maxsize=256)
def compile_glob(pattern: str, *, field: str) -> re.Pattern[str]:
    """`pattern` as a regular expression (see the module docstring)."""
    regex, _ = _compile(pattern, 0, field=field, depth=0)  # ',' and '}' outside braces: literal
    return re.compile(regex, re.DOTALL)


def _compile(pattern: str, i: int, *, field: str, depth: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(pattern):
        char = pattern[i]
        if depth and char in ",}":
            return "".join(out), i
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif char == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append(".*")
        elif char == "?":
            out.append(".")
            i += 1
        elif char == "[":
            regex, i = _class(pattern, i, field=field)
            out.append(regex)
        elif char == "{":
            regex, i = _braces(pattern, i, field=field, depth=depth)
            out.append(regex)
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out), i


def _class(pattern: str, start: int, *, field: str) -> tuple[str, int]:
    end = pattern.find("]", start + 2)
    if end < 0:
        raise StalledError(f"{field}: glob {pattern!r} has an unclosed '['")
    body = pattern[start + 1 : end]
    negate = body[:1] in ("!", "^")
    body = body[1:] if negate else body
    parts = [
        re.escape(a) + "-" + re.escape(b) if b else re.escape(a)
        for a, b in re.findall(r"(.)(?:-(.))?", body, re.DOTALL)
    ]
    return f"[{'^' if negate else ''}{''.join(parts)}]", end + 1


def _braces(pattern: str, start: int, *, field: str, depth: int) -> tuple[str, int]:
    alternatives: list[str] = []
    i = start + 1
    while True:
        regex, i = _compile(pattern, i, field=field, depth=depth + 1)
        alternatives.append(regex)
        if i >= len(pattern):
            raise StalledError(f"{field}: glob {pattern!r} has an unclosed '{{'")
        if pattern[i] == "}":
            return "(?:" + "|".join(alternatives) + ")", i + 1
        i += 1  # a ','
