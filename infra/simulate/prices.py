"""Hourly prices of the instance types ``gpufleet simulate`` may launch, per region.

Source: the AWS Price List (EC2 "On-Demand Pricing" pages, Linux, shared tenancy) for the GPU
families of :mod:`gpufleet.components.gpu_instances` and the system instance types of
:mod:`gpufleet.infra.areas.system_nodes`, as listed on 2026-11-15 (after the June 2025 P4/P5 price
reduction). These are list prices: savings plans, reserved instances and EDP discounts are not in
them. us-east-1, us-east-2 and us-west-2 list the same price for every type here.

Spot: there is no fixed spot price. :data:`SPOT_SHARE` is the assumed spot price as a share of the
on-demand price per instance family, from the long-run averages of the EC2 Spot Instance Advisor
("savings over on-demand") for these families: G-family spot typically saves 60 %, P-family spot
(scarce, often interrupted) about 40 %. Treat spot figures as estimates.

To simulate another region, add it to :data:`ON_DEMAND_USD` with a price for every type; the
simulator refuses a region or a type the table lacks rather than guess.
"""

from __future__ import annotations

from typing import Mapping

PRICES_AS_OF = "2026-11-15"
PRICES_SOURCE = "AWS EC2 On-Demand Pricing (Linux, shared tenancy), https://aws.amazon.com/ec2/pricing/on-demand/"

_SIZE_FACTOR = {"large": 1, "xlarge": 2, "2xlarge": 4, "4xlarge": 8, "8xlarge": 16}

# $/h of the ``large`` size; larger sizes of these families are priced linearly.
_SYSTEM_LARGE = {
    "m5": 0.096, "m6i": 0.096, "m6a": 0.0864, "m7i": 0.1008, "m7a": 0.11592, "m6g": 0.077, "m7g": 0.0816,
    "m8g": 0.08976, "c6i": 0.085, "c7i": 0.08925, "c7g": 0.0725, "r6i": 0.126, "r7i": 0.1323, "r7g": 0.1071,
}

_GPU = {
    "g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672,
    "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
    "g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.8xlarge": 2.0144, "g6.12xlarge": 4.6016,
    "g6.16xlarge": 3.3968, "g6.24xlarge": 6.6752, "g6.48xlarge": 13.3504,
    "g6e.xlarge": 1.861, "g6e.2xlarge": 2.24208, "g6e.4xlarge": 3.00424, "g6e.8xlarge": 4.52856,
    "g6e.12xlarge": 10.49264, "g6e.16xlarge": 7.57719, "g6e.24xlarge": 15.06559, "g6e.48xlarge": 30.13118,
    "p4d.24xlarge": 21.96, "p4de.24xlarge": 27.45,
    "p5.4xlarge": 6.88, "p5.48xlarge": 55.04, "p5e.48xlarge": 60.59, "p5en.48xlarge": 63.30,
}

_US = {
    **_GPU,
    **{f"{family}.{size}": round(price * factor, 5)
       for family, price in _SYSTEM_LARGE.items() for size, factor in _SIZE_FACTOR.items()},
}

ON_DEMAND_USD: Mapping[str, Mapping[str, float]] = {
    "us-east-1": _US,
    "us-east-2": _US,
    "us-west-2": _US,
}
"""Region → instance type → on-demand $/h."""

SPOT_SHARE: Mapping[str, float] = {
    **{family: 0.4 for family in ("g5", "g6", "g6e")},
    **{family: 0.6 for family in ("p4d", "p4de", "p5", "p5e", "p5en")},
}
"""Instance family → assumed spot price as a share of on-demand (:data:`DEFAULT_SPOT_SHARE` otherwise)."""
DEFAULT_SPOT_SHARE = 0.4


class PriceError(ValueError):
    """The price table lacks a region or an instance type."""


def hourly_usd(region: str, instance_type: str, capacity_type: str) -> float:
    """$/h of one node; ``capacity_type`` ``spot`` applies :data:`SPOT_SHARE`."""
    table = ON_DEMAND_USD.get(region)
    if table is None:
        raise PriceError(f"no prices for region {region!r} in gpufleet's price table "
                         f"(infra/simulate/prices.py ON_DEMAND_USD has {', '.join(sorted(ON_DEMAND_USD))})")
    if instance_type not in table:
        raise PriceError(f"no on-demand price for {instance_type} in {region} in gpufleet's price table "
                         f"(infra/simulate/prices.py ON_DEMAND_USD[{region!r}])")
    price = table[instance_type]
    if capacity_type == "spot":
        price *= SPOT_SHARE.get(instance_type.split(".", 1)[0], DEFAULT_SPOT_SHARE)
    return price
