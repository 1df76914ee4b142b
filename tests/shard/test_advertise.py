"""The API URL a replica publishes on its membership lease, from how its server listens."""

from __future__ import annotations

import socket

import pytest

from fleet.hub.server import ServerSettings, advertised_url


def test_a_given_address_is_used_as_it_is() -> None:
    settings = ServerSettings(host="127.0.0.1")
    assert advertised_url(settings, 41234, tls=False) == "http://127.0.0.1:41234"
    assert (
        advertised_url(ServerSettings(host="fd00::7"), 8443, tls=True) == "https://[fd00::7]:8443"
    )


def test_every_address_means_the_pods_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    assert advertised_url(ServerSettings(host="0.0.0.0"), 8080, tls=False) == "http://10.1.2.3:8080"
    monkeypatch.delenv("POD_IP")
    address = socket.gethostbyname(socket.gethostname())  # outside a Pod: the host's own
    assert advertised_url(ServerSettings(host="::"), 8080, tls=False) == f"http://{address}:8080"
