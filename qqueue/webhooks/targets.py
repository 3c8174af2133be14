"""Where a webhook may be sent. A webhook is a request the server makes on a client's behalf, so a callback URL
must not reach what only the server can: loopback, private, link-local, multicast, unspecified and other
non-global addresses are refused unless the operator's allow-list (`QQUEUE_WEBHOOK_ALLOW`: addresses, CIDR
ranges, host names or `*.domain` patterns) names them.

Checked twice: at submission (nothing is queued for a refused URL) and at each send, after resolving the
name, on every address it resolves to; the send then connects to the address that was checked, so a name
that resolves elsewhere the second time (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from qqueue.errors import ConfigError, QQueueError

__all__ = ["MAX_URL_LENGTH", "AllowList", "Target", "TargetRefused", "TargetUnresolved", "allow_list", "checked",
           "checked_async", "is_literal", "parse", "refusal"]

#: Longest callback URL accepted (the database refuses longer ones too).
MAX_URL_LENGTH = 2048
#: How long resolving a callback's host may take at submission.
RESOLVE_TIMEOUT_S = 3.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(QQueueError):
    """The callback URL may not be used."""


class TargetUnresolved(TargetRefused):
    """The callback URL's host could not be resolved (which may pass)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A callback URL taken apart: what to connect to and what to send."""

    url: str
    scheme: str
    #: Lower-case host name or address, without IPv6 brackets.
    host: str
    port: int
    #: Path and query, as sent in the request line.
    path: str

    @property
    def host_header(self) -> str:
        """The Host header the URL implies (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned(self, address: Address) -> str:
        """The URL with its host replaced by `address`, which the sender connects to."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse(url: str) -> Target:
    """Check a callback URL's form; raises `TargetRefused` saying what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise TargetRefused("callback_url must be ASCII without spaces or control characters (IDNA-encode "
                            "host names, percent-encode paths)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"callback_url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("callback_url must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("callback_url must not carry credentials; webhooks are authenticated by their "
                            "signature")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetRefused("callback_url has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def is_literal(host: str) -> bool:
    """Whether the host is an address (no lookup needed)."""
    return _literal(host) is not None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def refusal(address: Address) -> str | None:
    """Why an address is not for webhooks by default ("loopback", "private", ...), or None for a global one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for reason, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                         ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                         ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return reason
    return None if address.is_global else "non-global"


@dataclass(frozen=True, slots=True)
class AllowList:
    """Addresses and hosts webhooks may reach although they are not global."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    #: Domain suffixes from `*.example.com` entries (".example.com").
    suffixes: tuple[str, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AllowList:
        """Parse `QQUEUE_WEBHOOK_ALLOW` entries; raises `ConfigError` for one that is neither."""
        networks: list[Network] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry[2:] if entry.startswith("*.") else entry
            if not name or not all(label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label)
                                   for label in name.split(".")):
                raise ConfigError(f"webhook allow-list entry {raw!r} is neither an address, a CIDR range, a host "
                                  "name nor *.domain")
            if entry.startswith("*."):
                suffixes.append("." + name)
            else:
                hosts.add(name)
        return cls(networks=tuple(networks), hosts=frozenset(hosts), suffixes=tuple(suffixes))

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is listed (then whatever it resolves to may be reached)."""
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def check(self, target: Target, address: Address) -> None:
        """Raise `TargetRefused` unless `address` (one of the target's) may be reached."""
        reason = refusal(address)
        if reason is None or self.allows_host(target.host):
            return
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if any(a in n for n in self.networks for a in (address, mapped) if a is not None and a.version == n.version):
            return
        shown = "" if _literal(target.host) is not None else f" ({target.host} resolves to {address})"
        raise TargetRefused(f"callback_url points to a {reason} address{shown}; such targets are refused "
                            "unless the server's webhook allow-list (QQUEUE_WEBHOOK_ALLOW) names them")


@cache
def allow_list(entries: tuple[str, ...]) -> AllowList:
    """`AllowList.from_entries`, parsed once per list of entries."""
    return AllowList.from_entries(entries)


def _addresses(infos: Sequence[tuple[object, ...]]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the address is what is checked.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _unresolved(target: Target, why: object) -> TargetUnresolved:
    return TargetUnresolved(f"callback_url's host {target.host!r} could not be resolved ({why})")


def checked(allow: AllowList, target: Target) -> list[Address]:
    """Resolve the target's host and check every address it has; the addresses, for the sender to connect to.
    Raises `TargetRefused`."""
    literal = _literal(target.host)
    if literal is not None:
        allow.check(target, literal)
        return [literal]
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _unresolved(target, exc) from None
    return _all_checked(allow, target, _addresses(infos))


async def checked_async(allow: AllowList, target: Target) -> list[Address]:
    """`checked` for the event loop: the lookup runs on the loop's resolver thread, bounded in time."""
    literal = _literal(target.host)
    if literal is not None:
        allow.check(target, literal)
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM),
                                       RESOLVE_TIMEOUT_S)
    except TimeoutError:
        raise _unresolved(target, f"no answer within {RESOLVE_TIMEOUT_S:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise _unresolved(target, exc) from None
    return _all_checked(allow, target, _addresses(infos))


def _all_checked(allow: AllowList, target: Target, addresses: list[Address]) -> list[Address]:
    if not addresses:
        raise _unresolved(target, "no address")
    for address in addresses:
        allow.check(target, address)
    return addresses
