"""The private-address guard: where a download may connect, decided on the address it connects to.

A pool row is any URL someone wrote into a web page. Fetched from a cloud node, a row such as
http://169.254.169.254/latest/meta-data/... (the cloud's metadata service), http://10.0.0.5:8265/
(the cluster's own Ray dashboard) or a public name whose DNS answer is a private address would
reach inside the user's network. So every connection (the first request and each redirect hop) is
checked after DNS resolution, on the address itself, and the socket is opened to that checked
address: no second lookup, so a rebinding DNS answer cannot swap it after the check. Names and
spellings do not matter (localhost, 127.1, 2130706433, 0x7f000001, [::1], ::ffff:127.0.0.1 all
resolve to a loopback address and are refused the same way).

`refusal` is a pure function over addresses, so every range is tested without connecting to it.
`--allow-network CIDR` opens a range explicitly (the demo and the tests open 127.0.0.0/8).
"""

from __future__ import annotations

import http.client
import importlib
import ipaddress
import socket
from typing import Callable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses, in the order to try them

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # NAT64 addresses carry an IPv4 address in their low bits


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR strings -> networks; ValueError names the one that is not a network."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, NAT64): 127.0.0.1 must not hide in them."""
    if ip.version == 4:
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not a public unicast one: the range it belongs to, or None."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:  # 169.254/16 holds the cloud metadata service; fe80::/10
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:  # 240/4; checked before private, whose table also lists it
        return "reserved"
    if ip.is_private:  # RFC 1918, fc00::/7, and the documentation/benchmark ranges
        return "private"
    if not ip.is_global:  # e.g. 100.64/10 (carrier-grade NAT, some clouds' internal ranges)
        return "non_global"
    return None


def refusal(address: str, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """The reason `address` may not be connected to ("loopback", "link_local", ...), or None.

    An address inside an `allowed` network is accepted whatever its range; otherwise the address
    and every IPv4 address embedded in it must be public unicast.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
    candidates = [*_embedded_ipv4(ip), ip]  # the embedded IPv4 address names the range best
    if any(c in net for c in candidates for net in allowed if c.version == net.version):
        return None
    for candidate in candidates:
        kind = _kind(candidate)
        if kind is not None:
            return kind
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver (getaddrinfo: names, and the numeric spellings inet_aton accepts)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def load_resolver(spec: str | None) -> Resolver:
    """A resolver named "module:function" (for split-horizon setups and tests), or the system's."""
    if not spec:
        return system_resolver
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class BlockedAddress(Exception):
    def __init__(self, host: str, refusals: list[tuple[str, str]]):
        self.refusals = refusals
        where = ", ".join(f"{a} ({kind})" for a, kind in refusals) or "no address"
        super().__init__(f"{host} resolves to {where}; open a range with --allow-network CIDR")


def checked_address(host: str, port: int, resolver: Resolver, allowed: tuple[IPNetwork, ...]) -> str:
    """The first address of `host` the guard accepts; BlockedAddress when none is."""
    refused = []
    for address in resolver(host, port):
        kind = refusal(address, allowed)
        if kind is None:
            return address
        refused.append((address, kind))
    raise BlockedAddress(host, refused)


class GuardedHTTPConnection(http.client.HTTPConnection):
    """HTTP to `host` (Host header) over a socket to the already checked `address`."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `host` (SNI and certificate name) over a socket to the already checked `address`."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def connection(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    cls = GuardedHTTPSConnection if scheme == "https" else GuardedHTTPConnection
    return cls(host, port, address, timeout)
