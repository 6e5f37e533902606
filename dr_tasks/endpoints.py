"""When two endpoint URLs reach the same S3 server: the guard against backing up into the primary."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

# The port an http(s) URL without one talks to.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_address(url: str | None) -> tuple[str, int] | None:
    """(host, port) of an endpoint URL, normalised; None for AWS (no URL) or a URL that does not parse.

    The host is lowercased without a trailing dot (DNS ignores both), the
    port is made explicit (`:80` for http, `:443` for https), and the path,
    trailing slashes included, is dropped: S3 addresses a bucket by name on
    the server, so the path names no other store.
    """
    if not url:
        return None
    try:
        parts = urlparse(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port out of range or not a number
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host or port is None:
        return None
    return host, port


def _addresses(host: str, port: int) -> set[str]:
    """The IP addresses `host` resolves to; empty when it does not resolve (whatever the reason)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except Exception:
        # gaierror, UnicodeError (a label too long for IDNA), a resolver's own
        # failure: none of them shows the hosts are one, so "not known to be".
        return set()


def same_endpoint(a: str | None, b: str | None, *, resolve: bool = True) -> bool:
    """Whether two endpoint URLs reach the same S3 server, so one bucket name there is one bucket.

    None (AWS) is the same as None only. Otherwise the URLs compare by host and
    port after `endpoint_address` (so `http://127.0.0.1:9000/`,
    `HTTP://127.0.0.1:9000` and `http://127.0.0.1:9000/x` are one endpoint, as
    are `https://h` and `https://h:443`); the scheme only decides the default
    port, since one port serves one protocol. Hosts that still differ are
    resolved, and a shared address with the same port is the same server
    (`localhost` and `127.0.0.1`). A name that does not resolve is taken as
    different: this answers "is it provably the same?", for guards that refuse
    to write into the primary. `resolve=False` skips the lookup, for checks
    that must not touch the network (`dr.freshness`).
    """
    if not a or not b:
        return not a and not b
    left, right = endpoint_address(a), endpoint_address(b)
    if left is None or right is None:
        # Unparseable (config validation normally stops these first): the literal text is all there is.
        return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()
    if left[1] != right[1]:
        return False
    if left[0] == right[0]:
        return True
    return resolve and bool(_addresses(*left) & _addresses(*right))
