"""Small builders of JSON Schema fragments, and the patterns of the config with their sentences.

Each builder returns one property's schema with its ``description`` (every field of the config is
documented: ``docs/config.md`` is generated from them). A mapping is always closed
(``additionalProperties: false``). :func:`refused` marks a field fleet knows and does not support;
:data:`PATTERN_MESSAGES` holds what an operator reads when a ``pattern`` fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APP_NAME_PATTERN",
    "ARGO_API_PATTERN",
    "COUNT_PATTERN",
    "PATTERN_MESSAGES",
    "POINTER_PATTERN",
    "Schema",
    "flag",
    "labels",
    "list_of",
    "mapping",
    "name_field",
    "ref",
    "refused",
    "text",
    "texts",
]

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
APP_NAME_PATTERN = f"^{_LABEL}(\\.{_LABEL})*$"  # a DNS subdomain, as Kubernetes names are
ARGO_API_PATTERN = "^argoproj\\.io/"
POINTER_PATTERN = "^/"
COUNT_PATTERN = "^[0-9]+$"

PATTERN_MESSAGES = {  # {value} is the value refused, as written
    APP_NAME_PATTERN: (
        "{value} is not a valid name (lowercase letters, digits, '-' and '.', starting and "
        "ending with a letter or digit, <= 53 chars as Helm releases are)"
    ),
    ARGO_API_PATTERN: "needs apiVersion argoproj.io/v1alpha1, got {value}",
    POINTER_PATTERN: "{value} must start with '/' (a JSON pointer, e.g. /spec/replicas)",
    COUNT_PATTERN: "expected a non-negative integer, got {value}",
}

Schema = dict[str, Any]


def text(description: str, **more: Any) -> Schema:
    return {"type": "string", "description": description, **more}


def flag(description: str, *, default: bool = False) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


def texts(description: str) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def labels(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }


def mapping(description: str, properties: Mapping[str, Schema], *required: str) -> Schema:
    schema: Schema = {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": dict(properties),
    }
    if required:
        schema["required"] = list(required)
    return schema


def list_of(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}


def ref(name: str, description: str) -> Schema:
    return {"$ref": f"#/$defs/{name}", "description": description}


def refused(why: str) -> Schema:
    """A field fleet knows and does not support: present, it is an error saying `why`."""
    return {"not": {}, "description": why}


def name_field(description: str) -> Schema:
    return text(description, pattern=APP_NAME_PATTERN, maxLength=53)
