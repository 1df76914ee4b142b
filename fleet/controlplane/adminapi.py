"""A tiny synchronous HTTPS client for the kit's own calls to a cluster it started.

The kit only probes ``/readyz``, creates its fake Node and reads a few objects, before any fleet
code runs; the standard library is enough, and the kit then needs no event loop of its own.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AdminApi", "ApiCallError"]


class ApiCallError(Exception):
    """A call answered with an unexpected status, or did not connect."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


@dataclass(frozen=True)
class AdminApi:
    """Calls to one apiserver with the kit's admin client certificate."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        """The status and body of one request; connection errors are an :class:`ApiCallError`."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self._context(), timeout=timeout
        )
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiCallError(0, f"{method} {path}: {exc}") from exc
        finally:
            conn.close()

    def ready(self) -> bool:
        """True when ``/readyz`` answers 200."""
        try:
            status, _ = self.request("GET", "/readyz", timeout=2.0)
        except ApiCallError:
            return False
        return status == 200

    def get_json(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        status, data = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise ApiCallError(status, data.decode(errors="replace")[:200])
        result: dict[str, Any] = json.loads(data)
        return result

    def create(self, path: str, body: dict[str, Any]) -> None:
        """POST `body` to `path`; an existing object is fine."""
        status, data = self.request("POST", path, body)
        if status not in (200, 201, 202, 409):
            raise ApiCallError(status, data.decode(errors="replace")[:200])
