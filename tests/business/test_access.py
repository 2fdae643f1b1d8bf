"""The client's address and the allow-list decision, without HTTP."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from diboas.business.access import client_address, is_allowed, loopback_allowed
from diboas.settings import Settings


def _request(peer: str, forwarded: list[str] | None = None) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded or []]
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


PROXIED = Settings(
    env="production",
    secret_key="s" * 40,
    encryption_key="e" * 40,
    business_trusted_proxies=["10.0.0.0/8", "fd00::/8"],
)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["192.0.2.1, 198.51.100.7"], "198.51.100.7"),  # right-most untrusted
        ("10.0.0.2", ["198.51.100.7, 10.0.0.3"], "198.51.100.7"),  # a chain of our proxies
        ("10.0.0.2", ["198.51.100.7", "10.0.0.3"], "198.51.100.7"),  # header sent twice
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["not-an-address"], None),
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:203.0.113.9", [], "203.0.113.9"),  # IPv4-mapped is the IPv4 address
    ],
)
def test_client_address(peer: str, forwarded: list[str], expected: str | None) -> None:
    found = client_address(_request(peer, forwarded), PROXIED)
    assert (None if found is None else str(found)) == expected


def test_loopback_defaults_by_environment() -> None:
    assert loopback_allowed(Settings(env="development"))
    assert loopback_allowed(Settings(env="test"))
    assert not loopback_allowed(PROXIED)
    assert not loopback_allowed(Settings(env="test", business_allow_loopback=False))


def test_is_allowed() -> None:
    office = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8::/32"))
    assert is_allowed(ipaddress.ip_address("198.51.100.200"), office, PROXIED)
    assert is_allowed(ipaddress.ip_address("2001:db8::1"), office, PROXIED)
    assert not is_allowed(ipaddress.ip_address("198.51.101.1"), office, PROXIED)
    assert not is_allowed(ipaddress.ip_address("127.0.0.1"), office, PROXIED)
    assert is_allowed(ipaddress.ip_address("::1"), (), Settings(env="development"))
    assert not is_allowed(None, office, Settings(env="development"))
    assert not is_allowed(ipaddress.ip_address("198.51.100.1"), (), PROXIED)  # empty: no one
    # Loopback is the setting's to decide, not the list's (a local proxy is not a client).
    listed = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("0.0.0.0/0"))
    assert not is_allowed(ipaddress.ip_address("127.0.0.1"), listed, PROXIED)
    assert is_allowed(ipaddress.ip_address("192.0.2.1"), listed, PROXIED)


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(business_trusted_proxies=["nginx.internal"])
