"""The ``notifications:`` block: the example of the docs parses; each mistake is named."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.notify import DEFAULT_EVENTS, EVENT_TYPES, SINK_TYPES, SinkSpec, parse_notifications
from fleet.notify.settings import notifications_schema

EXAMPLE = """
notifications:
  - name: ops-webhook
    type: webhook
    url: https://hooks.example.com/fleet
    secretEnv: FLEET_HOOK_SECRET
    on: [SyncFailed, RenderFailed, Degraded, Recovered, Synced]
    apps: [web]
  - name: team-slack
    type: slack
    urlEnv: FLEET_SLACK_URL
  - name: commits
    type: github-status
    apiURL: http://127.0.0.1:8080/
    tokenEnv: FLEET_GITHUB_TOKEN
    linkURL: "https://fleet.example/apps/{app}?cluster={cluster}"
  - name: gl
    type: gitlab-status
    tokenEnv: FLEET_GITLAB_API_TOKEN
    clusters: ["prod-*"]
"""


def test_the_documented_example_parses() -> None:
    specs = parse_notifications(yaml.safe_load(EXAMPLE), where="fleet.yaml")
    hook, slack, github, gitlab = specs
    assert hook == SinkSpec(
        name="ops-webhook",
        type="webhook",
        url="https://hooks.example.com/fleet",
        secret_env="FLEET_HOOK_SECRET",
        on=("SyncFailed", "RenderFailed", "Degraded", "Recovered", "Synced"),
        apps=("web",),
    )
    assert (slack.url_env, slack.on, slack.apps) == ("FLEET_SLACK_URL", DEFAULT_EVENTS, ("*",))
    assert (github.api_url, github.token_env, github.is_status) == (
        "http://127.0.0.1:8080",
        "FLEET_GITHUB_TOKEN",
        True,
    )
    assert github.link_url == "https://fleet.example/apps/{app}?cluster={cluster}"
    assert (gitlab.api_url, gitlab.clusters) == ("https://gitlab.com", ("prod-*",))
    assert parse_notifications({"apps": []}) == ()


def _error(sinks: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_notifications({"notifications": sinks}, where="fleet.yaml")
    return str(caught.value)


HOOK = {"name": "h", "type": "webhook", "url": "https://x.example/h", "secretEnv": "S"}


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            {**HOOK, "secretEnvv": "S"},
            "[0]: unknown field 'secretEnvv' (did you mean 'secretEnv'?)",
        ),
        (
            {**HOOK, "on": ["SyncFailled"]},
            "[0].on: unknown event type 'SyncFailled' (did you mean 'SyncFailed'?)",
        ),
        (
            {**HOOK, "type": "webhok"},
            "[0].type: unknown sink type 'webhok' (did you mean 'webhook'?)",
        ),
        ({**HOOK, "tokenEnv": "T"}, "[0].tokenEnv: not a field of a webhook sink"),
        ({k: v for k, v in HOOK.items() if k != "secretEnv"}, "[0].secretEnv: required"),
        ({**HOOK, "urlEnv": "U"}, "needs exactly one of url or urlEnv"),
        ({**HOOK, "url": "ftp://x/h"}, "[0].url: expected an http(s) URL"),
        ({**HOOK, "url": "https://u:p@x/h"}, "credentials in the URL are refused"),
        ({**HOOK, "secretEnv": "hunter2 secret"}, "is not an environment variable name"),
        ({**HOOK, "name": "Ops Hook"}, "[0].name: 'Ops Hook' is not a valid sink name"),
        ({**HOOK, "apps": []}, "[0].apps: an empty list would match nothing"),
        ({**HOOK, "timeout": 0}, "[0].timeout: expected a positive number"),
        ({**HOOK, "queueSize": 2.5}, "[0].queueSize: expected a positive whole number"),
        ({"name": "g", "type": "github-status"}, "[0].tokenEnv: required"),
        (
            {**HOOK, "linkURL": "https://f.example/{application}"},
            "[0].linkURL: 'https://f.example/{application}' has a placeholder other than {app}",
        ),
        ({**HOOK, "linkURL": "fleet.example/{app}"}, "[0].linkURL: expected an http(s) URL"),
        (
            {"name": "g", "type": "github-status", "tokenEnv": "T", "on": ["Synced"]},
            "[0].on: not a field of a github-status sink",
        ),
        ({"type": "slack", "url": "https://x/y"}, "[0].name: required"),
        ("slack", "notifications[0]: expected a mapping"),
    ],
)
def test_each_mistake_is_named_with_its_field(sink: Any, expected: str) -> None:
    message = _error([sink])
    assert message.startswith("fleet.yaml: ")
    if expected.startswith("[0]"):
        expected = "fleet.yaml: notifications" + expected
    assert expected in message


def test_two_sinks_of_one_name_are_refused() -> None:
    assert "notifications[1].name: 'h' is used by another sink" in _error([HOOK, HOOK])
    assert "expected a list of sinks" in _error({"h": HOOK})


def test_the_schema_names_every_field_the_parser_takes() -> None:
    items = notifications_schema()["items"]
    assert items["additionalProperties"] is False
    example = yaml.safe_load(EXAMPLE.replace(" on:", ' "on":'))["notifications"]
    used = {key for sink in example for key in sink}
    assert used <= set(items["properties"])
    for key in items["properties"]:  # each field the schema offers is one the parser accepts
        with pytest.raises(ConfigError) as caught:
            parse_notifications({"notifications": [{**HOOK, key: object()}]})
        assert "unknown field" not in str(caught.value)
    assert items["properties"]["type"]["enum"] == list(SINK_TYPES)
    assert items["properties"]["on"]["items"]["enum"] == list(EVENT_TYPES)
