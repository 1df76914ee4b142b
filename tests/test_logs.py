"""fleet.logs: records of both call styles as logfmt and JSON, quoting, no repr, secrets masked."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import logs


@contextlib.contextmanager
def configured(level: int, fmt: logs.Format = logs.Format.LOGFMT) -> Iterator[io.StringIO]:
    """fleet's handler on the root logger for one test; the process's logging restored after."""
    root, hooks = logging.getLogger(), (sys.excepthook, threading.excepthook)
    before = root.level
    stream = io.StringIO()
    handler = logs.configure(level=level, fmt=fmt, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        logging.captureWarnings(False)
        sys.excepthook, threading.excepthook = hooks


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    with configured(logging.DEBUG) as stream:
        yield stream


def _logfmt(line: str) -> dict[str, str]:
    """Parse one logfmt line (shlex reads the JSON-style quoting of values we write)."""
    pairs = [item.split("=", 1) for item in shlex.split(line, posix=True)]
    return {k: v for k, v in pairs}


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


log = logging.getLogger("fleet.hub.test")


def test_template_style_becomes_typed_fields_without_reprs(out: io.StringIO) -> None:
    log.info("event=hub_ready port=%d clusters=%d", 8080, 2)
    log.warning("event=work_failed key=%s error=%r", ("prod-1", "guestbook"), RuntimeError("x y"))
    log.info("event=reconciled cluster=%s changes=%s", "eu", {"created": 3, "configured": 1})
    log.info("event=cluster_%s cluster=%s", "joined", "eu")
    log.warning("event=config_invalid error=%s (the last good config stays in use)", "bad: a b")
    log.info("event=x path=%s took=%.3f none=%s yes=%s", Path("/a b/c"), 0.12345, None, True)
    lines = _lines(out)
    assert lines[0].split(" ", 1)[1] == "level=info logger=fleet.hub.test event=hub_ready " + (
        "port=8080 clusters=2"
    )
    assert lines[0].startswith("ts=20") and lines[0].split()[0].endswith("Z")
    assert "key=prod-1/guestbook" in lines[1] and 'error="x y"' in lines[1]
    assert 'changes="created=3,configured=1"' in lines[2]
    assert "event=cluster_joined cluster=eu" in lines[3]
    fields = _logfmt(lines[4])
    assert fields["error"] == "bad: a b"
    assert fields["msg"] == "(the last good config stays in use)"
    assert _logfmt(lines[5]) | {"ts": ""} == {
        "ts": "",
        "level": "info",
        "logger": "fleet.hub.test",
        "event": "x",
        "path": "/a b/c",
        "took": "0.123",
        "none": "",
        "yes": "true",
    }
    for line in lines:
        assert "(" not in line.replace("(the last", "") and "{" not in line, line


def test_quoting_escapes_quotes_backslashes_and_newlines(out: io.StringIO) -> None:
    log.info("event=x a=%s b=%s c=%s d=%s", 'say "hi"', "back\\slash", "two\nlines", "k=v")
    (line,) = _lines(out)
    assert 'a="say \\"hi\\""' in line and 'b="back\\\\slash"' in line
    assert 'c="two\\nlines"' in line and 'd="k=v"' in line


def test_structured_helper_orders_stable_keys_first(out: io.StringIO) -> None:
    logs.event(log, "synced", objects=3, commit="abc123", app="web", cluster="eu", error="e")
    (line,) = _lines(out)
    keys = [item.split("=", 1)[0] for item in line.split()]
    assert keys == [
        "ts",
        "level",
        "logger",
        "event",
        "cluster",
        "app",
        "commit",
        "objects",
        "error",
    ]
    logs.event(log, "quiet", level=logging.DEBUG - 1)
    assert len(_lines(out)) == 1


def test_json_format_keeps_types_and_one_object_per_line() -> None:
    with configured(logging.INFO, logs.Format.JSON) as stream:
        log.info("event=reconciled cluster=%s changes=%s took=%.2f n=%d", "eu", {"c": 3}, 1.234, 7)
        try:
            raise ExceptionGroup("g", [ValueError("one"), OSError("two")])
        except ExceptionGroup:
            log.exception("event=crash")
        logging.getLogger("aiohttp.server").info("third %s party", "x")
    first, crash, third = (json.loads(line) for line in _lines(stream))
    assert first["changes"] == {"c": 3} and first["took"] == 1.23 and first["n"] == 7
    assert crash["error"] == "one; two" and "ExceptionGroup" in crash["traceback"]
    assert third["msg"] == "third x party" and "event" not in third


def test_secrets_are_masked_everywhere(out: io.StringIO) -> None:
    logs.register_secret("registered-s3cret")
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    log.info("event=a url=%s", "https://bot:hunter2@git.example.com/r.git")
    log.info("event=b url=%s", "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r")
    log.info("event=c header=%s", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def")
    log.info("event=d key=%s", pem)
    log.info("event=e data=%s", "client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=")
    log.info("event=f text=%s", "token=tok-value-1 password: pw-value-2")
    log.info("event=g password=%s token=%s", "field-pw", "field-tok")
    log.info("event=h note=%s", "registered-s3cret and registered%2Ds3cret")
    try:
        raise ValueError("auth failed for https://u:exc-pass@h/x (registered-s3cret)")
    except ValueError:
        log.exception("event=i")
    logging.getLogger("asyncssh").info("plain %s", "registered-s3cret")
    text = out.getvalue()
    for secret in (
        "hunter2",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJIUzI1NiJ9",
        "MIIEowIBAAKCAQEA",
        "LS0tLS1CRUdJTi",
        "tok-value-1",
        "pw-value-2",
        "field-pw",
        "field-tok",
        "registered-s3cret",
        "exc-pass",
    ):
        assert secret not in text, secret
    assert "https://***@git.example.com/r.git" in text
    assert "Authorization: Bearer ***" in text
    assert text.count("***") >= 12


def test_placeholders_of_examples_are_not_masked() -> None:
    hint = "credentials: [{url: https://HOST/ORG/, username: USER, token: TOKEN}]"
    assert logs.scrub(hint) == hint
    assert logs.scrub("password: <secret>, token=...") == "password: <secret>, token=..."
    assert logs.scrub("token: Tok3n password=ABC1") == "token: *** password=***"


def test_ssh_user_names_are_kept() -> None:
    assert logs.scrub("ssh://git@github.com/o/r") == "ssh://git@github.com/o/r"
    assert logs.scrub("ssh://git:pw@github.com/o/r") == "ssh://***@github.com/o/r"
    logs.register_secret("ab")  # too short to mask without masking ordinary words
    assert logs.scrub("a tab b") == "a tab b"


def test_announce_ignores_the_level_and_parse_level_names_choices() -> None:
    with configured(logging.ERROR) as stream:
        log.info("event=hidden")
        logs.announce(log, "hub_start", version="1", listen="127.0.0.1:0")
    (line,) = _lines(stream)
    assert "event=hub_start version=1 listen=127.0.0.1:0" in line
    assert logs.parse_level("WARN") == logging.WARNING
    assert logs.parse_level("Debug") == logging.DEBUG
    with pytest.raises(ValueError, match="'verbose' is not one of debug, info, warning, error"):
        logs.parse_level("verbose")


def test_a_template_that_does_not_match_its_args_is_still_one_line() -> None:
    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("fleet.x", logging.INFO, __file__, 1, msg, args, None)

    formatter = logs.Formatter()
    first = formatter.format(record("event=x a=%s b=%s", "only-one"))
    second = formatter.format(record("event=y a=%(name)s", {"name": "n"}))
    assert "\n" not in first and "only-one" in first and "event=x" in first
    assert "event=y a=n" in second


def test_a_kubeconfig_registers_its_credentials() -> None:
    line = "MHcCAQEEIKubeKeyLineNumberOne0123"
    pem = f"-----BEGIN EC PRIVATE KEY-----\n{line}\n-----END EC PRIVATE KEY-----\n"
    key_b64 = base64.b64encode(pem.encode()).decode()
    logs.register_kubeconfig(
        {
            "users": [
                {"name": "a", "user": {"client-key-data": key_b64}},
                {"name": "b", "user": {"token": "kube-bearer-123456"}},
                {"name": "c", "user": {"username": "u", "password": "kube-pw-7890"}},
                {"name": "d", "user": {"auth-provider": {"config": {"id-token": "idtok-4567"}}}},
                {"name": "e"},
            ]
        }
    )
    text = f"{key_b64} {line} kube-bearer-123456 kube-pw-7890 idtok-4567"
    assert logs.scrub(text) == " ".join(["***"] * 5)


def test_uncaught_exceptions_are_events_too() -> None:
    script = (
        "import threading\n"
        "from fleet import logs\n"
        "logs.configure()\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker')\n"
        "t.start(); t.join()\n"
        "raise ValueError('bad token=uncaught-tok-1')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    thread, main = (_logfmt(line) for line in lines)
    assert thread["event"] == "uncaught" and thread["thread"] == "worker"
    assert thread["error"] == "division by zero" and "ZeroDivisionError" in thread["traceback"]
    assert main["event"] == "uncaught" and main["error"] == "bad token=***"
    assert "uncaught-tok-1" not in done.stderr
