"""Every config document checked against the schema, every error of a file reported at once.

:func:`check` validates each YAML document of one file (or text read from git) with
``jsonschema``'s draft 2020-12 validator against :func:`fleet.config.schema.document_schema`, and
turns each of jsonschema's errors into one line an operator can act on: the file, the path of
the field (``apps[2].source.targetRevison``) and what is wrong with it (``unknown field (did you
mean targetRevision?)``, ``expected true/false, got 'yes'``). The lines are sorted by document
and path and raised together as one :class:`~fleet.errors.ConfigError`, so a file with three
mistakes takes one edit, not three reloads.

A key whose value is null counts as absent (Kubernetes reads YAML the same way): ``syncPolicy:``
with every line under it commented out is no error. What the schema cannot say (placeholders in
paths, a path that leaves the repository, a project no one declared) the loader checks after.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import jsonschema

from fleet.config import schema
from fleet.errors import ConfigError

__all__ = ["check", "errors", "suggestion"]

_KINDS = {
    "boolean": "true/false",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    document = schema.document_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def _absent_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _absent_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_absent_nulls(item) for item in value]
    return value


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value: Any) -> str:
    """`value` as the YAML reader wrote it (never a Python repr of a container)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return "'" + text.replace("'", "''") + "'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def suggestion(word: str, choices: Iterable[str], listed: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the choice closest to `word`, else the `listed` ones."""
    names = sorted(choices)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    close = close or [n for n in names if n.lower() == word.lower()]
    if close:
        return f" (did you mean {close[0]}?)"
    shown = sorted(listed)
    return f" (fields here: {', '.join(shown)})" if shown else ""


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _name_of(document: Mapping[str, Any]) -> str:
    """`` (Application web)`` for an Argo CD document, which has no index to name it by."""
    metadata = document.get("metadata")
    kind = document.get("kind")
    if kind in ("Application", "AppProject") and isinstance(metadata, Mapping):
        name = metadata.get("name")
        if isinstance(name, str) and name:
            return f" ({kind} {name})"
    return ""


def _resolved(node: Mapping[str, Any]) -> Mapping[str, Any]:
    defs = cast(Mapping[str, Any], _validator().schema)["$defs"]
    while "$ref" in node:
        node = defs[str(node["$ref"]).rsplit("/", 1)[-1]]
    return node


def _one_level_down(word: str, properties: Mapping[str, Any]) -> str:
    """`` (did you mean syncPolicy.prune?)`` when `word` is a field of a mapping one level down."""
    for parent, sub in properties.items():
        children = _resolved(sub).get("properties", {})
        close = difflib.get_close_matches(word, sorted(children), n=1, cutoff=0.85)
        close = close or [c for c in children if c.lower() == word.lower()]
        if close:
            return f" (did you mean {parent}.{close[0]}?)"
    return ""


def _fields(value: Any, limit: Any, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``additionalProperties``: each unknown key, with the closest known name (at this level,
    else one level down: ``prune`` directly under an app is ``syncPolicy.prune``)."""
    properties = rule.get("properties", {})
    supported = [k for k, v in properties.items() if "not" not in v]
    lines = []
    for key in value:
        if key not in properties:
            hint = suggestion(str(key), properties, ())
            hint = hint or _one_level_down(str(key), properties)
            hint = hint or suggestion(str(key), (), supported)
            lines.append((str(key), f"unknown field{hint}"))
    return lines


def _required(value: Any, limit: Any, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(key), "required") for key in limit if key not in value]


def _type(value: Any, limit: Any, rule: Mapping[str, Any]) -> str:
    names = [limit] if isinstance(limit, str) else list(limit)
    hint = " (quote it)" if "string" in names and isinstance(value, int | float) else ""
    return f"expected {_either([_KINDS.get(n, n) for n in names])}, got {_shown(value)}{hint}"


def _pattern(value: Any, limit: Any, rule: Mapping[str, Any]) -> str:
    text = schema.PATTERN_MESSAGES.get(str(rule.get("pattern")))
    if text is None:
        return f"longer than {limit} characters" if "maxLength" in rule else "invalid"
    return text.format(value=_shown(value))


_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
_AT_FIELD = {"additionalProperties": _fields, "required": _required}  # lines under the path
_Sentence = Callable[[Any, Any, Mapping[str, Any]], str]


def _bound(sign: str) -> _Sentence:
    return lambda value, limit, rule: f"expected {sign} {limit}, got {_shown(value)}"


_SENTENCES: dict[str, _Sentence] = {
    "type": _type,
    "pattern": _pattern,
    "maxLength": _pattern,
    "enum": lambda value, limit, rule: (
        f"expected one of {', '.join(str(c) for c in limit)}, got {_shown(value)}"
    ),
    "not": lambda value, limit, rule: str(rule.get("description", "not supported; remove it")),
    "minProperties": lambda value, limit, rule: (
        "expected `apps:`, `projects:` or an Argo CD Application"
    ),
    **{key: _bound(sign) for key, sign in _BOUNDS.items()},
}
_SILENT = frozenset({"if", "then", "else", "$ref", "allOf", "const"})


def _messages(error: jsonschema.ValidationError) -> list[tuple[list[str | int], str]]:
    """The (path, sentence) lines of one jsonschema error."""
    where: list[str | int] = list(error.absolute_path)
    kind, value, limit = str(error.validator), error.instance, cast(Any, error.validator_value)
    rule: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if kind in _AT_FIELD and isinstance(value, Mapping):
        return [([*where, key], text) for key, text in _AT_FIELD[kind](value, limit, rule)]
    if kind in _SENTENCES:
        return [(where, _SENTENCES[kind](value, limit, rule))]
    if kind in _SILENT:
        return []
    return [(where, f"invalid ({kind} {_shown(limit)})")]


def _order(path: Sequence[str | int]) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def errors(documents: Sequence[Any], *, origin: str) -> list[str]:
    """Every schema error of the YAML `documents` of `origin`, one sorted line each."""
    found: list[tuple[int, list[str | int], str]] = []
    names: dict[int, str] = {}
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, Mapping):
            found.append((index, [], f"expected a mapping at the top, got {_shown(document)}"))
            continue
        names[index] = _name_of(document)
        for error in _validator().iter_errors(_absent_nulls(document)):
            found += [(index, path, text) for path, text in _messages(error)]
    found.sort(key=lambda item: (item[0], _order(item[1]), item[2]))
    lines: list[str] = []
    for index, path, text in found:
        where = origin if len(documents) == 1 else f"{origin} (document {index + 1})"
        name = names.get(index, "")
        where += name if name not in origin else ""  # the origin may name the document already
        line = f"{where}: {_path(path)}: {text}" if path else f"{where}: {text}"
        if line not in lines:
            lines.append(line)
    return lines


def check(documents: Sequence[Any], *, origin: str) -> None:
    """Raise one :class:`ConfigError` holding every schema error of `documents`, if any."""
    lines = errors(documents, origin=origin)
    if len(lines) == 1:
        raise ConfigError(lines[0])
    if lines:
        raise ConfigError(f"{len(lines)} errors in {origin}:\n" + "\n".join(lines))
