"""How much of the internet a list of CIDRs lets in: judged by address coverage, not by spelling.

``0.0.0.0/0`` is not the only way to open an endpoint to everyone: ``[0.0.0.0/1, 128.0.0.0/1]``
covers the same addresses, and ``0.0.0.0/0`` spelled with host bits (``1.2.3.4/0``) or in pieces is
no narrower. :func:`coverage` counts the addresses of the union of the networks (overlaps counted
once); :func:`too_open` compares it with a /8's share of the address space. Used by the
``eks-endpoint-private`` rule and by the stack configuration (``gpufleet:cluster.publicAccessCidrs``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

MAX_OPEN_PREFIX = 8
"""A public endpoint may be open to at most a /8's share of the address space (16.7 million IPv4
addresses): wider is "the internet" for any practical purpose."""


@dataclass(frozen=True)
class Coverage:
    """Addresses covered by a set of networks, per IP version, after merging overlaps."""

    ipv4: int
    ipv6: int

    def share(self) -> float:
        """The larger of the two fractions of their address space."""
        return max(self.ipv4 / 2**32, self.ipv6 / 2**128)

    def wider_than(self, prefix: int) -> bool:
        """More addresses than one ``/prefix`` network of either version."""
        return self.ipv4 > 2 ** (32 - prefix) or self.ipv6 > 2 ** (128 - prefix)

    def describe(self) -> str:
        """``"2147483648 IPv4 addresses (50% of the internet)"``."""
        parts = []
        if self.ipv4:
            parts.append(f"{self.ipv4} IPv4 addresses ({self.ipv4 / 2**32:.2%} of all)")
        if self.ipv6:
            parts.append(f"{self.ipv6 / 2**128:.2%} of all IPv6 addresses")
        return " and ".join(parts) or "no addresses"


def parse(cidr: str) -> Network:
    """A CIDR (host bits allowed, as AWS accepts them) or a single address; ValueError otherwise."""
    return ipaddress.ip_network(cidr.strip(), strict=False)


def coverage(cidrs: Iterable[str]) -> Coverage:
    """Addresses covered by the union of ``cidrs`` (raises ValueError for one that is not a CIDR)."""
    networks = [parse(c) for c in cidrs]
    v4 = list(ipaddress.collapse_addresses(n for n in networks if n.version == 4))
    v6 = list(ipaddress.collapse_addresses(n for n in networks if n.version == 6))
    return Coverage(ipv4=sum(n.num_addresses for n in v4), ipv6=sum(n.num_addresses for n in v6))


def too_open(cidrs: Iterable[str], prefix: int = MAX_OPEN_PREFIX) -> bool:
    """The union of ``cidrs`` covers more than a ``/prefix`` of address space."""
    return coverage(cidrs).wider_than(prefix)
