"""Where alert channels may deliver: an allow-list, with internal addresses refused by default.

A channel URL is configuration, but an alert channel that can point at ``http://127.0.0.1:8600/``,
``http://169.254.169.254/`` (cloud metadata) or a private network turns the cloud into a request
forwarder into its own network, and its delivery errors into a way to read the answers. So:

- ``[cloud.coldchain] allowed_destinations`` lists host names and IP addresses / CIDR networks;
- when the list is not empty, every channel's host must match it;
- loopback, private, link-local, multicast, reserved and unspecified addresses (and ``localhost``)
  are refused unless the list names them explicitly (the demo and the tests allow 127.0.0.1).

Host names are judged by name at configuration time; :func:`check_resolved` judges the addresses a
name resolves to, right before an HTTP delivery connects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.notify.base import ChannelConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class DestinationRefused(ChannelConfigError):
    """A channel points at a destination the allow-list does not permit."""


@dataclass(frozen=True, slots=True)
class Destinations:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Destinations:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    @property
    def restricted(self) -> bool:
        return bool(self.hosts or self.networks)

    def _listed(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def check_host(self, host: str) -> None:
        """Refuse ``host`` (a name or an address literal) unless the allow-list permits it; with
        a non-empty list, only what it names ("not allowed": not in allowed_destinations)."""
        name = host.strip().lower().rstrip(".").strip("[]")
        if name in self.hosts:
            return
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if name in _LOCAL_NAMES or name.endswith(".localhost"):
                raise DestinationRefused(f"alert destination {host!r} is this machine") from None
            if self.restricted:
                raise DestinationRefused(
                    f"alert destination {host!r} is not in allowed_destinations"
                ) from None
            return
        self.check_address(host, address)

    def check_address(self, host: str, address: Address) -> None:
        if self._listed(address):
            return
        if _internal(address):
            raise DestinationRefused(
                f"alert destination {host!r} is an internal address ({address}); "
                "list it in [cloud.coldchain] allowed_destinations to allow it"
            )
        if self.restricted:
            raise DestinationRefused(f"alert destination {host!r} is not allowed")

    async def check_resolved(self, host: str, port: int) -> None:
        """:meth:`check_host`, then refuse a host NAME resolving to a refused address (checked
        right before each delivery: the name may point elsewhere since the configuration was read)."""
        self.check_host(host)
        name = host.strip().lower().rstrip(".")
        if name in self.hosts:
            return
        try:
            ipaddress.ip_address(name.strip("[]"))
            return  # a literal: judged by check_host
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable: the delivery itself fails and says so
        for info in infos:
            self.check_address(host, ipaddress.ip_address(info[4][0]))


def _internal(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


ANY_PUBLIC = Destinations(frozenset(), ())

__all__ = ["ANY_PUBLIC", "DestinationRefused", "Destinations"]
