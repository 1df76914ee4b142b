"""``fleet schema``: the JSON Schema of fleet.yaml for editors, or its reference in Markdown.

The schema is :func:`fleet.config.schema.document_schema` with the notifier's own
``notifications_schema()`` spliced in, so an editor checks notification sinks field by field too
(the loader's schema leaves them to the notifier, a layer above the config). Point the YAML
language server at the output::

    fleet schema > fleet.schema.json
    # yaml-language-server: $schema=./fleet.schema.json      (first line of fleet.yaml)

``--format markdown`` prints the field reference that ``docs/config.md`` holds, generated from the
same schema (a test keeps the two equal).
"""

from __future__ import annotations

import argparse
import json
import sys

from fleet.config import reference, schema
from fleet.notify import notifications_schema

__all__ = ["add_arguments", "run"]


def full_schema() -> dict[str, object]:
    """The schema of one config document, notification sinks included."""
    return schema.document_schema(notifications=notifications_schema())


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema (draft 2020-12) of fleet.yaml, for editors",
        description="Print the JSON Schema of a fleet.yaml document (apps, projects, "
        "notifications) and of the Argo CD Application and AppProject documents fleet reads.",
    )
    parser.add_argument(
        "--format",
        choices=("json", "markdown"),
        default="json",
        help="json: the JSON Schema; markdown: the field reference of docs/config.md "
        "(default: json)",
    )


def run(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        sys.stdout.write(reference.markdown(full_schema()))
    else:
        sys.stdout.write(json.dumps(full_schema(), indent=2) + "\n")
    return 0
