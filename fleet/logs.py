"""Structured logs: one event per line, logfmt or JSON, with every secret scrubbed.

The model: a log record *is* an event. Its template reads ``event=NAME key=%s ...`` (the style
every module already uses) and its args are the values; :func:`event` is sugar that builds the
same template from keyword arguments (``logs.event(log, "synced", cluster=c, app=a)``), so code
moves to structured calls one line at a time and any formatter (pytest's caplog included) still
reads a sensible message. :class:`Formatter` parses the template back into ordered fields, takes
each value from its arg (never ``str(tuple)`` or a repr: a tuple renders ``a/b``, a dict
``created=3,configured=1``, an exception its message) and writes the line as logfmt (values with
spaces, quotes or ``=`` quoted and escaped) or as one JSON object (``--log-format json``). Keys
come in a stable order: ``ts level logger event cluster app commit ...others error msg``. Text of
the template that is not ``key=value`` goes to ``msg``; a record that names no event (third-party
libraries) is its formatted message in ``msg``.

Scrubbing happens on every string that leaves the formatter (values, messages, exception texts,
tracebacks), before quoting. Masked as ``***``: values registered at start-up with
:func:`register_secret` (the credentials file's tokens and passwords, webhook secrets) or
:func:`register_kubeconfig` (a kubeconfig's tokens and client keys), and known shapes: URL
userinfo (``scheme://user:pass@``; an ssh user name alone stays), ``Authorization: Bearer ...``,
PEM private keys and their base64, ``token=``/``password=``/``secret=`` values (an example's
placeholder such as ``TOKEN`` or ``<secret>`` stays), GitHub and GitLab token formats. A field
named like a secret (``token``, ``password``...) is masked whole. :func:`scrub` is the same filter
for any text that leaves fleet another way (a CLI error line, git's stderr, a stored error).

:func:`configure` installs the handler on the root logger; :func:`announce` writes an event
whatever the level (the hub's start, listening and stop lines).
"""

from __future__ import annotations

import base64
import datetime
import enum
import json
import logging
import re
import sys
import threading
import traceback
import types
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import IO, Any
from urllib.parse import quote

__all__ = [
    "LEVELS",
    "Format",
    "Formatter",
    "announce",
    "configure",
    "event",
    "parse_level",
    "register_kubeconfig",
    "register_secret",
    "scrub",
]

LEVELS = ("debug", "info", "warning", "error", "critical")
MASK = "***"
_MIN_SECRET = 4  # shorter values would mask ordinary words
_FIRST = ("ts", "level", "logger", "event", "cluster", "app", "commit")
_LAST = ("error", "msg", "traceback")


class Format(enum.StrEnum):
    LOGFMT = "logfmt"
    JSON = "json"


# -- secrets ----------------------------------------------------------------------------------


class _Registry:
    """Known secret values, longest first (so a secret holding another is masked whole)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        forms = {value, value.strip(), quote(value, safe="")}
        with self._lock:
            known = set(self.values) | {f for f in forms if len(f) >= _MIN_SECRET}
            self.values = tuple(sorted(known, key=len, reverse=True))


_SECRETS = _Registry()
_SENSITIVE_NAMES = r"(?:[a-z_-]*(?:token|password|passwd|secret|api[_-]?key|client-key-data))"
# an example's placeholder (TOKEN, <token>, ...) or a value already masked is no secret
_PLACEHOLDER = r"(?-i:[A-Z][A-Z_]*(?![\w-]))|<[^>\s]*>|\.\.\.|\*\*\*"
_Replacement = str | Callable[[re.Match[str]], str]
_PATTERNS: tuple[tuple[re.Pattern[str], _Replacement], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----"
            r"|[A-Za-z0-9+/=\s\\]*)",
            re.DOTALL,
        ),
        MASK,
    ),
    (re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]*"), MASK),  # base64 of "-----BEGIN"
    (
        re.compile(r"(?i)\b(authorization\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;]+"),
        lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_\w{16,}|glpat-[\w-]{16,})"), MASK),
    (
        re.compile(
            rf"(?i)\b({_SENSITIVE_NAMES})(\s*[=:]\s*)([\"']?)(?!{_PLACEHOLDER})[^\s\"',;&}}]+"
        ),
        r"\1\2\3" + MASK,
    ),
)
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^/\s@'\"]+)@")
_SECRET_FIELD = re.compile(rf"(?i)^{_SENSITIVE_NAMES}$|^authorization$")


def register_secret(value: str | bytes | None) -> None:
    """Mask `value` (and its URL-quoted form) in every log line and :func:`scrub`bed text."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if value and len(value.strip()) >= _MIN_SECRET:
        _SECRETS.add(value)


def register_kubeconfig(document: Mapping[str, Any]) -> None:
    """Mask the credentials of every user of a parsed kubeconfig `document`: tokens, passwords,
    client keys (base64 and decoded PEM, each body line too) and auth-provider/exec secrets."""
    for entry in document.get("users") or ():
        user = entry.get("user") if isinstance(entry, Mapping) else None
        if not isinstance(user, Mapping):
            continue
        for name in ("token", "password"):
            register_secret(_text(user.get(name) or ""))
        key = user.get("client-key-data")
        if isinstance(key, str) and key:
            register_secret(key)
            try:
                pem = base64.b64decode(key).decode(errors="replace")
            except ValueError:
                pem = ""
            register_secret(pem)
            for line in pem.splitlines():
                if len(line) >= 16 and not line.startswith("-----"):
                    register_secret(line)
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, Mapping) else None
        for name, value in (config or {}).items():
            if _SECRET_FIELD.match(str(name)) or "token" in str(name).lower():
                register_secret(_text(value))


def scrub(text: str) -> str:
    """`text` with every registered secret and every known secret shape replaced by ``***``."""
    for secret in _SECRETS.values:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(_mask_userinfo, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    if ":" in userinfo or scheme.lower() in {"http", "https"}:
        return f"{scheme}://{MASK}@"
    return match.group(0)  # ssh://git@host: a user name, no secret


# -- rendering values -------------------------------------------------------------------------


def _text(value: Any) -> str:
    """One value as text, never a Python repr."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: ""}[value]
    if isinstance(value, str | int | float | PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, enum.Enum):
        return _text(value.value)
    return _compound(value)


def _compound(value: Any) -> str:
    if isinstance(value, BaseException):
        if isinstance(value, BaseExceptionGroup):
            return "; ".join(_text(e) for e in value.exceptions)
        return str(value) or type(value).__name__
    if isinstance(value, Mapping):
        return ",".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    if isinstance(value, tuple | list | set | frozenset):  # a key (cluster, app) reads c/a
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ("/" if isinstance(value, tuple) else ",").join(_text(v) for v in items)
    text = str(value)
    if text.startswith("<") and " at 0x" in text:
        return type(value).__name__  # object.__repr__: nothing an operator can read
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {scrub(_text(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return scrub(_text(value))


# -- parsing records --------------------------------------------------------------------------

_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?([diouxXeEfFgGcrsa%])")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


def _format_one(spec: re.Match[str], arg: Any) -> Any:
    """The value of one placeholder: natural types kept, strings never a repr."""
    conversion = spec.group(1)
    if conversion in "sra":
        return arg
    try:
        formatted = spec.group(0) % (arg,)
    except (TypeError, ValueError):
        return _text(arg)
    if conversion in "di" and isinstance(arg, int | float):
        return int(arg)
    if conversion in "eEfFgG":
        try:
            return float(formatted)
        except ValueError:
            return formatted
    return formatted


def _fill(template: str, args: list[Any]) -> Any:
    """`template` with its placeholders filled from the front of `args` (consumed)."""
    specs = [m for m in _SPEC.finditer(template) if m.group(1) != "%"]
    if len(specs) == 1 and specs[0].group(0) == template:
        return _format_one(specs[0], args.pop(0))
    out, last = [], 0
    for match in _SPEC.finditer(template):
        out.append(template[last : match.start()])
        last = match.end()
        out.append("%" if match.group(1) == "%" else _text(_format_one(match, args.pop(0))))
    out.append(template[last:])
    return "".join(out)


def _parse(record: logging.LogRecord) -> tuple[dict[str, Any], str]:
    """The fields of an ``event=...`` record and its free text; else ({}, the message)."""
    template = record.msg if isinstance(record.msg, str) else _text(record.msg)
    raw = record.args
    # logging unwraps a lone dict argument into record.args: it is one value
    args: list[Any] = [raw] if isinstance(raw, Mapping) else list(raw or ())
    if not template.startswith("event=") or "%(" in template:
        return {}, _message(record)
    wanted = sum(1 for m in _SPEC.finditer(template) if m.group(1) != "%")
    if wanted != len(args):
        return {}, _message(record)
    fields: dict[str, Any] = {}
    free: list[str] = []
    for token in template.split():
        pair = _KEY.match(token)
        if pair is None:
            free.append(_text(_fill(token, args)))
        else:
            fields[pair.group(1)] = _fill(pair.group(2), args)
    return fields, " ".join(free)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return f"{record.msg} {_text(list(record.args or ()))}"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Every field of `record`, in the stable order."""
    when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    head: dict[str, Any] = {
        "ts": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    body, msg = _parse(record)
    if msg:
        body["msg"] = msg
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        body.setdefault("error", exc)
        body["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
    ordered = {**head}
    ordered.update((k, body[k]) for k in _FIRST if k in body and k not in head)
    ordered.update((k, v) for k, v in body.items() if k not in _FIRST and k not in _LAST)
    ordered.update((k, body[k]) for k in _LAST if k in body)
    masked = {k for k, v in ordered.items() if _SECRET_FIELD.match(k) and v not in ("", None)}
    return {k: MASK if k in masked else v for k, v in ordered.items()}


def _logfmt_value(value: Any) -> str:
    text = scrub(_text(value))
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


def _logfmt_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key) or "_"


class Formatter(logging.Formatter):
    """A record as one logfmt line or one JSON object, secrets scrubbed."""

    def __init__(self, fmt: Format = Format.LOGFMT) -> None:
        super().__init__()
        self.fmt = Format(fmt)

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if self.fmt is Format.JSON:
            return json.dumps({k: _json_value(v) for k, v in fields.items()}, ensure_ascii=False)
        return " ".join(f"{_logfmt_key(k)}={_logfmt_value(v)}" for k, v in fields.items())


# -- emitting ---------------------------------------------------------------------------------


def _template(name: str, fields: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    keys = [_logfmt_key(k) for k in fields]
    return " ".join(["event=%s", *(f"{k}=%s" for k in keys)]), (name, *fields.values())


def event(
    logger: logging.Logger,
    name: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: BaseException | None = None,
    **fields: Any,
) -> None:
    """Log event `name` with `fields` (``logs.event(log, "synced", cluster=c, app=a)``)."""
    if logger.isEnabledFor(level):
        template, args = _template(name, fields)
        logger.log(level, template, *args, exc_info=exc_info, stacklevel=2)


def announce(logger: logging.Logger, name: str, /, **fields: Any) -> None:
    """Log event `name` at info whatever the configured level (start, listening, stop lines)."""
    template, args = _template(name, fields)
    record = logger.makeRecord(logger.name, logging.INFO, "(fleet)", 0, template, args, None)
    logger.handle(record)


def parse_level(text: str) -> int:
    """The logging level `text` names (any case); a ValueError names the choices."""
    name = text.strip().lower()
    name = {"warn": "warning", "fatal": "critical"}.get(name, name)
    if name not in LEVELS:
        raise ValueError(f"log level {text!r} is not one of {', '.join(LEVELS)}")
    return int(logging.getLevelName(name.upper()))


_HANDLER_FLAG = "_fleet_handler"


def configure(
    *, level: int = logging.INFO, fmt: Format = Format.LOGFMT, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record of the process to `stream` (stderr) through :class:`Formatter`.

    Python's warnings and exceptions nobody caught (in the main thread or another) become
    records too, so everything the process writes to the log is one event per line, scrubbed.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(Formatter(fmt))
    setattr(handler, _HANDLER_FLAG, True)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    return handler


def _uncaught(
    kind: type[BaseException], value: BaseException, tb: types.TracebackType | None
) -> None:
    logging.getLogger("fleet").critical(
        "event=uncaught error=%s", value, exc_info=(kind, value, tb)
    )


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        logging.getLogger("fleet").critical(
            "event=uncaught thread=%s error=%s",
            args.thread.name if args.thread else "",
            args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )
