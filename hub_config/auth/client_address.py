"""Which network address a login comes from, as far as the hub can *know* it.

The per-address login throttle is only as good as this address. JupyterHub runs tornado with
``xheaders=True``, so ``request.remote_ip`` is the client's own ``X-Real-Ip`` header if there is one,
else the last entry of ``X-Forwarded-For``. configurable-http-proxy (http-proxy with ``xfwd``) does
not touch ``X-Real-Ip`` and only *appends* the address of the socket it accepted to
``X-Forwarded-For``: everything else in those headers is whatever the client wrote. So
``remote_ip`` is client-chosen, and a client could rotate it (escaping the throttle) or name
someone else's address (throttling them instead).

:func:`client_address` therefore ignores ``X-Real-Ip`` and ``remote_ip`` altogether and reads the
chain of hops from the right, where the entries were written by proxies we trust:

1. The TCP peer of the hub's own socket. If it is not this machine (loopback, or the very address
   the connection arrived on) and not in ``trusted_proxies``, it is the client: a request made
   straight to the hub's port, whose headers prove nothing.
2. Otherwise the peer is the proxy, and the rightmost ``X-Forwarded-For`` entry is the address the
   proxy saw. If that is in ``trusted_proxies`` (a load balancer in front of the proxy), the entry
   left of it is what *that* proxy saw, and so on; the first address that is not a trusted proxy is
   the client. An entry that is not an IP address ends the walk at the hop that wrote it.

An IPv6 client is counted by its /64 network: one host usually holds a whole /64, and counting
single IPv6 addresses would let it rotate through 2**64 of them.

Limits (by design): clients on this machine itself (students' code on a login node) connect from
loopback like the proxy does, so they can reach the hub port directly and name any address; they
can also reach the LDAP server directly, which no hub-side throttle can stop. The per-username
throttle does not depend on addresses at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["IPNetwork", "client_address", "parse_networks", "request_client_address", "throttle_key"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str | None) -> IPAddress | None:
    """An IP address from a header entry or socket (IPv4-mapped IPv6 as IPv4); None if it is none."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):  # [2001:db8::1] as some proxies write it
        text = text[1:-1]
    text = text.split("%", 1)[0]  # fe80::1%eth0: the zone says nothing about the sender
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # Node's dual-stack sockets report IPv4 clients as ::ffff:192.0.2.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(values: Iterable[str]) -> list[IPNetwork]:
    """CIDR strings (a bare address is a /32 or /128) as networks; ValueError naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=True))
        except ValueError as err:
            raise ValueError(f"{value!r} is not an address or network in CIDR notation ({err})") from None
    return networks


def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _is_this_machine(peer: IPAddress, local: IPAddress | None) -> bool:
    # A connection whose source is loopback or the very address it arrived on comes from this host
    # (the kernel routes it over lo); nobody outside can complete a TCP handshake with such a source.
    return peer.is_loopback or (local is not None and peer == local)


def client_address(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Iterable[IPNetwork] = (),
    local: str | None = None,
    unix_socket: bool = False,
) -> IPAddress | None:
    """The client of a request that reached the hub from ``peer`` (the socket's remote address).

    :param forwarded_for: the request's ``X-Forwarded-For`` (comma-separated; repeated headers joined).
    :param trusted_proxies: proxies in front of configurable-http-proxy whose entries are believed.
    :param local: the hub socket's own address (a peer with that address is this machine).
    :param unix_socket: the request came over a unix socket (no peer address; always this machine).
    :returns: the client's address, or None when it cannot be known (an unknown peer, or a unix
        socket without X-Forwarded-For).
    """
    trusted = list(trusted_proxies)
    hop = parse_address(peer)
    if unix_socket:
        hop = None
    elif hop is None:
        return None
    elif not (_is_this_machine(hop, parse_address(local)) or _in(hop, trusted)):
        return hop
    entries = [entry for entry in (forwarded_for or "").split(",") if entry.strip()]
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            return hop  # garbage where a trusted hop should have written an address: stop at that hop
        hop = address
        if not _in(address, trusted):
            return address
    return hop  # every hop was a trusted proxy (or no header at all): the last one is the client


def throttle_key(address: IPAddress | None) -> str:
    """The per-address throttle's key: the IPv4 address, or the IPv6 address's /64 network."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def request_client_address(request, trusted_proxies: Iterable[IPNetwork] = ()) -> IPAddress | None:
    """:func:`client_address` of a tornado ``HTTPServerRequest`` (as JupyterHub's handlers have it).

    The peer is the socket's address as tornado recorded it *before* applying X-headers
    (``connection.context.address``); ``remote_ip`` is never used, as it may come from X-Real-Ip.
    """
    connection = getattr(request, "connection", None)
    context = getattr(connection, "context", None)
    address = getattr(context, "address", None)
    peer = address[0] if isinstance(address, tuple) and address else None
    # tornado keeps a unix socket's path (str or bytes) as the address: the peer is on this machine.
    unix_socket = isinstance(address, (str, bytes))
    local = None
    stream = getattr(connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is not None:
        try:
            local = sock.getsockname()[0]
        except (OSError, IndexError, TypeError):
            local = None
    headers = getattr(request, "headers", None)
    forwarded_for = headers.get("X-Forwarded-For") if headers is not None else None
    return client_address(peer, forwarded_for, trusted_proxies, local, unix_socket)
