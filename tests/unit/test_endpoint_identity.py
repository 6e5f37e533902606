"""`same_endpoint`: when two endpoint URLs reach one S3 server (the guard against backing up into the primary)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from dr_tasks import endpoints
from dr_tasks.endpoints import endpoint_address, same_endpoint

Resolver = Callable[..., list[tuple[Any, ...]]]


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    """A getaddrinfo that answers from `table` and fails like the real one for any other name."""

    def getaddrinfo(host: str, port: int, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port)) for addr in table[host]]

    return getaddrinfo


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Resolve nothing, and record which names were asked for."""
    calls: list[str] = []
    monkeypatch.setattr(endpoints.socket, "getaddrinfo", resolver({}, calls))
    return calls


# ---------------------------------------------------------------------- AWS (no URL)
def test_aws_is_the_same_as_aws_only(no_dns: list[str]) -> None:
    assert same_endpoint(None, None)
    assert same_endpoint("", None)
    assert not same_endpoint(None, "http://127.0.0.1:9000")
    assert not same_endpoint("https://s3.amazonaws.com", None)


# ---------------------------------------------------------------------- spelling
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000//", "http://127.0.0.1:9000"),
        ("HTTP://MinIO.Example.COM:9000", "http://minio.example.com:9000"),
        ("http://minio.example.com.:9000", "http://minio.example.com:9000"),
        ("http://minio.example.com:80", "http://minio.example.com"),
        ("https://tor1.digitaloceanspaces.com:443/", "https://tor1.digitaloceanspaces.com"),
        ("http://127.0.0.1:9000/some/path", "http://127.0.0.1:9000"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        # one port serves one protocol: the scheme only picks the default port
        ("http://127.0.0.1:9000", "https://127.0.0.1:9000"),
    ],
)
def test_spellings_of_one_endpoint_are_the_same_without_a_lookup(a: str, b: str, no_dns: list[str]) -> None:
    assert same_endpoint(a, b) and same_endpoint(b, a)
    assert no_dns == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9001"),
        ("http://minio.example.com", "https://minio.example.com"),  # :80 and :443
        ("https://tor1.digitaloceanspaces.com", "https://nyc3.digitaloceanspaces.com"),
    ],
)
def test_other_ports_or_unresolvable_other_hosts_are_different(a: str, b: str, no_dns: list[str]) -> None:
    assert not same_endpoint(a, b) and not same_endpoint(b, a)


def test_another_port_is_different_without_a_lookup(no_dns: list[str]) -> None:
    assert not same_endpoint("http://localhost:9000", "http://127.0.0.1:9001")
    assert no_dns == []


def test_endpoint_address_normalises_host_and_port() -> None:
    assert endpoint_address("HTTPS://Spaces.Example.COM./x/") == ("spaces.example.com", 443)
    assert endpoint_address("http://127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert endpoint_address(None) is None
    assert endpoint_address("http://h:99999") is None  # out of range


# ---------------------------------------------------------------------- resolution
def test_hosts_sharing_an_address_on_the_same_port_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"localhost": ["127.0.0.1", "::1"], "127.0.0.1": ["127.0.0.1"], "minio.lan": ["10.0.0.5"]}
    monkeypatch.setattr(endpoints.socket, "getaddrinfo", resolver(table))
    assert same_endpoint("http://localhost:9000", "http://127.0.0.1:9000/")
    assert same_endpoint("http://127.0.0.1:9000", "http://LOCALHOST:9000")
    assert not same_endpoint("http://minio.lan:9000", "http://127.0.0.1:9000")


def test_localhost_and_loopback_are_the_same_with_the_real_resolver() -> None:
    try:
        socket.getaddrinfo("localhost", 9000, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip("this machine does not resolve localhost")
    assert same_endpoint("http://localhost:9000", "http://127.0.0.1:9000") or same_endpoint(
        "http://localhost:9000", "http://[::1]:9000"
    )


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        UnicodeError("label too long"),
        OSError("resolver broke"),
        RuntimeError("anything at all"),
    ],
)
def test_a_failed_lookup_means_different(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def getaddrinfo(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise error

    monkeypatch.setattr(endpoints.socket, "getaddrinfo", getaddrinfo)
    assert not same_endpoint("http://a.example:9000", "http://b.example:9000")
    # Spellings of one host still need no lookup.
    assert same_endpoint("http://a.example:9000/", "http://A.example:9000")


# ---------------------------------------------------------------------- URLs that do not parse
def test_an_unparseable_url_is_compared_as_text(no_dns: list[str]) -> None:
    assert same_endpoint("http://h:99999/", "HTTP://h:99999")
    assert not same_endpoint("http://h:99999", "http://h:9000")
