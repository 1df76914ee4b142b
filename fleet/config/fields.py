"""Typed reads of one mapping of a config document, each error naming where it is.

The schema (:mod:`fleet.config.validation`) has checked every key and type before these run;
what is left to them is turning the document into the model: defaults, text of numbers, and the
checks the schema cannot make (``{{ cluster.* }}`` placeholders, a name's form where the schema
is not run). Every error names the field as ``<file>: <path>.<key>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fleet.config import templates
from fleet.errors import ConfigError

__all__ = ["Fields", "check_name", "entries", "scalar", "template"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_APP_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")  # a DNS subdomain, as Kubernetes names are


class Fields:
    """Typed access to one mapping of the config, raising errors that say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = (
                kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            )
            raise ConfigError(f"{self.where}.{key}: expected {expected}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, (str, int, float), default)
        if value is None:
            raise ConfigError(f"{self.where}.{key}: required")
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, bool, default)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, (int, float), default)
        return float(value)

    def sub(self, key: str, *, required: bool = False) -> Fields:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(f"{self.where}.{key}: required")
            return Fields({}, f"{self.where}.{key}")
        return Fields(self.data[key], f"{self.where}.{key}")

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, [])
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{self.where}.{key}: expected a list of strings")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self._get(key, dict, {})
        if not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()
        ):
            raise ConfigError(f"{self.where}.{key}: expected a mapping of strings")
        return {k: str(v) for k, v in value.items()}

    def mapping(self, key: str) -> dict[str, Any]:
        value: dict[str, Any] = self._get(key, dict, {})
        return value


def entries(fields: Fields, key: str) -> list[Fields]:
    """The mappings of the list `key`, each named by its index."""
    value = fields.data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{fields.where}.{key}: expected a list, got {value!r}")
    return [Fields(item, f"{fields.where}.{key}[{i}]") for i, item in enumerate(value)]


def template(fields: Fields, key: str, default: str | None = "") -> str:
    """A string field that may hold ``{{ cluster.* }}`` placeholders, checked."""
    value = fields.text(key, default)
    templates.validate(value, where=f"{fields.where}.{key}")
    return value


def scalar(fields: Fields, key: str) -> str:
    """A Helm parameter value: a string, or a YAML number or boolean written as Helm reads it."""
    value = fields.data.get(key)
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{fields.where}.{key}: required, a string, got {value!r}")
    text = str(value)
    templates.validate(text, where=f"{fields.where}.{key}")
    return text


def check_name(name: str, where: str) -> None:
    if len(name) > 53 or not _APP_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}.name: {name!r} is not a valid name (lowercase letters, digits, '-' and "
            "'.', starting and ending with a letter or digit, <= 53 chars as Helm releases are)"
        )
