"""gRPC target URIs, as gRPC spells them, and the replica addresses behind them.

The balanced channel hands the target to gRPC unchanged (gRPC resolves it and balances
calls over every address). The replica monitor needs the same addresses itself, to ask
each replica for its model versions and to notice when a DNS name gains or loses
addresses, so this module resolves a target the way gRPC's resolvers do:

- `ipv4:10.0.0.1:8500,10.0.0.2:8500` and `ipv6:[::1]:8500,...`: the listed addresses;
- `unix:/path`, `unix:///path`, `unix-abstract:name`: one replica, the target itself;
- `dns:[//nameserver[:port]/]host[:port]` and a bare `host[:port]`: A and AAAA records of
  `host` (from the named nameserver, else the system resolver);

with gRPC's default port 443 where none is given. Each address comes back as a target of
its own (`ipv4:10.0.0.1:8500`), usable for a channel to that one replica.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

DEFAULT_PORT = 443  # gRPC's default for dns:, ipv4: and ipv6: targets without a port
MAX_REPLICAS = 64  # addresses kept per target: bounds the monitor's work and metric labels
_STATIC_SCHEMES = ("unix:", "unix-abstract:", "vsock:")


class TargetError(ValueError):
    """A target URI that gRPC would not accept, or a name that does not resolve."""


@dataclass(frozen=True)
class ParsedTarget:
    """A target split into what its resolution needs."""

    scheme: str  # "ipv4", "ipv6", "dns" or "static" (unix and the like: one replica)
    host: str = ""
    port: int = DEFAULT_PORT
    nameserver: tuple[str, int] | None = None
    addresses: tuple[str, ...] = ()  # ipv4/ipv6/static: the replica targets, already known


def parse_target(target: str) -> ParsedTarget:
    """Split a gRPC target URI; raise `TargetError` when it is malformed."""
    target = target.strip()
    if not target:
        raise TargetError("the TF Serving target is empty")
    if target.startswith(_STATIC_SCHEMES):
        return ParsedTarget("static", addresses=(target,))
    if target.startswith("ipv4:"):
        return ParsedTarget("ipv4", addresses=_ip_list(target[5:], ipaddress.IPv4Address))
    if target.startswith("ipv6:"):
        return ParsedTarget("ipv6", addresses=_ip_list(target[5:], ipaddress.IPv6Address))
    nameserver = None
    name = target
    if target.startswith("dns:"):
        name = target[4:]
        if name.startswith("//"):
            authority, slash, name = name[2:].partition("/")
            if not slash:
                raise TargetError(f"target {target!r}: expected dns://[nameserver]/host:port")
            nameserver = _nameserver(authority, target) if authority else None
        elif name.startswith("/"):
            name = name[1:]
    host, port = _host_port(name, target)
    return ParsedTarget("dns", host=host, port=port, nameserver=nameserver)


async def resolve_replicas(target: str, lookup_seconds: float = 2.0) -> tuple[str, ...]:
    """The replica targets behind `target`, sorted; raise `TargetError` when none resolve."""
    parsed = parse_target(target)
    if parsed.scheme != "dns":
        return parsed.addresses[:MAX_REPLICAS]
    literal = _ip_literal(parsed.host)
    if literal is not None:
        return (_address_target(literal, parsed.port),)
    if parsed.nameserver is not None:
        ips = await _query_nameserver(parsed.host, parsed.nameserver, lookup_seconds)
    else:
        ips = await _system_lookup(parsed.host, parsed.port, lookup_seconds)
    if not ips:
        raise TargetError(f"{parsed.host} has no addresses")
    return tuple(sorted({_address_target(ip, parsed.port) for ip in ips}))[:MAX_REPLICAS]


def _ip_list(
    text: str, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
) -> tuple[str, ...]:
    family = "ipv4" if kind is ipaddress.IPv4Address else "ipv6"
    addresses = []
    for item in text.split(","):
        host, port = _host_port(item.strip(), text)
        try:
            kind(host)
        except ValueError:
            raise TargetError(f"{item!r} is not an {family} address") from None
        addresses.append(_address_target(host, port))
    return tuple(addresses)


def _host_port(text: str, target: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    if text.startswith("["):  # [v6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise TargetError(f"target {target!r}: malformed [address]:port")
        port_text = rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 address, no port
        host, port_text = text, ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise TargetError(f"target {target!r} names no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TargetError(f"target {target!r}: port {port_text!r} is not 1-65535")
    return host, int(port_text)


def _nameserver(authority: str, target: str) -> tuple[str, int]:
    host, port = _host_port(authority, target, default_port=53)
    if _ip_literal(host) is None:
        raise TargetError(f"target {target!r}: the DNS server must be an IP address")
    return host, port


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _address_target(ip: str, port: int) -> str:
    if ":" in ip:
        return f"ipv6:[{ip}]:{port}"
    return f"ipv4:{ip}:{port}"


async def _query_nameserver(
    host: str, nameserver: tuple[str, int], lookup_seconds: float
) -> list[str]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    resolver.lifetime = lookup_seconds
    ips: list[str] = []
    for record_type in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, record_type, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as error:
            raise TargetError(f"DNS lookup of {host} failed: {error}") from None
        ips += [record.to_text() for record in answer]
    return ips


async def _system_lookup(host: str, port: int, lookup_seconds: float) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), lookup_seconds
        )
    except (OSError, TimeoutError) as error:
        raise TargetError(f"DNS lookup of {host} failed: {error}") from None
    return [str(info[4][0]) for info in infos]
