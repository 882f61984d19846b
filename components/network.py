"""``Network``: the VPC an EKS cluster and its Karpenter nodes live in."""

from __future__ import annotations

import ipaddress
import math
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired

from gpufleet.components._validate import check_arg_keys, require, require_int_range, require_one_of

TYPE = "gpufleet:network:Network"


class NetworkArgs(TypedDict):
    """Inputs of :class:`Network`."""

    cluster_name: str
    """EKS cluster name, used in the ``karpenter.sh/discovery`` tag of the private subnets. Required."""
    cidr_block: NotRequired[str]
    """IPv4 CIDR of the VPC, /16 to /20. Default ``10.0.0.0/16``."""
    az_count: NotRequired[int]
    """Availability zones to use, 2 to 6. Default 3."""
    availability_zones: NotRequired[Sequence[str]]
    """Explicit AZ names; default: the first ``az_count`` AZs of the region that need no opt-in."""
    nat_gateways: NotRequired[Literal["perAz", "single"]]
    """One NAT gateway per AZ (``perAz``) or one in total (``single``). Default ``perAz``."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every resource. Default none."""


def subnet_layout(cidr_block: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split a VPC CIDR into ``az_count`` large private subnets and ``az_count`` small public ones.

    The VPC is cut into ``2**k`` equal blocks (``k`` the fewest bits that give ``az_count + 1``
    blocks); each AZ gets one block as its private subnet (where pods and nodes take IPs), and the
    next block is cut again into the public subnets (load balancers and NAT gateways only).
    """
    vpc = ipaddress.IPv4Network(cidr_block)
    bits = math.ceil(math.log2(az_count + 1))
    blocks = list(vpc.subnets(prefixlen_diff=bits))
    private = [str(b) for b in blocks[:az_count]]
    public = [str(b) for b in list(blocks[az_count].subnets(prefixlen_diff=math.ceil(math.log2(az_count))))[:az_count]]
    return private, public


class Network(pulumi.ComponentResource):
    """A VPC across N AZs: private subnets for nodes (tagged for internal load balancers and for
    Karpenter discovery), public subnets for internet-facing load balancers and NAT, NAT egress per
    AZ or shared, and a default security group stripped of all rules."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, NetworkArgs, name=TYPE)
        cluster_name = require(args, "cluster_name", str, name=TYPE)
        cidr_block = args.get("cidr_block", "10.0.0.0/16")
        az_count = args.get("az_count", 3)
        nat_mode = require_one_of(args.get("nat_gateways", "perAz"), "nat_gateways", ("perAz", "single"), name=TYPE)
        explicit_azs = list(args.get("availability_zones", []))
        _check_layout(cidr_block, az_count, explicit_azs)
        tags = dict(args.get("tags", {}))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        if explicit_azs:
            az_names: pulumi.Output[list[str]] = pulumi.Output.from_input(explicit_azs)
        else:
            az_names = aws.get_availability_zones_output(
                state="available",
                filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).names

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cidr_block,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{cluster_name}-vpc"},
            opts=child,
        )
        # CIS AWS 5.4: the default security group allows nothing.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={**tags, "Name": f"{cluster_name}-default-deny"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{cluster_name}-igw"}, opts=child)

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**tags, "Name": f"{cluster_name}-public"},
            opts=child,
        )

        private_cidrs, public_cidrs = subnet_layout(cidr_block, az_count)
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []

        def subnet(tier: str, index: int, cidr: str, route_table: aws.ec2.RouteTable, role_tags: dict) -> aws.ec2.Subnet:
            suffix = chr(ord("a") + index)
            created = aws.ec2.Subnet(
                f"{name}-{tier}-{suffix}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=az_names.apply(lambda names: _pick_az(names, index)),
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{cluster_name}-{tier}-{suffix}", **role_tags},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{tier}-{suffix}-rta", subnet_id=created.id, route_table_id=route_table.id, opts=child
            )
            return created

        for index in range(az_count):
            suffix = chr(ord("a") + index)
            public = subnet("public", index, public_cidrs[index], public_rt, {"kubernetes.io/role/elb": "1"})
            public_subnets.append(public)
            if nat_mode == "perAz" or index == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{suffix}-eip", domain="vpc", tags={**tags, "Name": f"{cluster_name}-nat-{suffix}"}, opts=child)
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{suffix}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags={**tags, "Name": f"{cluster_name}-nat-{suffix}"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )

        for index in range(az_count):
            suffix = chr(ord("a") + index)
            nat = nat_gateways[index] if nat_mode == "perAz" else nat_gateways[0]
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{suffix}-rt",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={**tags, "Name": f"{cluster_name}-private-{suffix}"},
                opts=child,
            )
            private = subnet("private", index, private_cidrs[index], route_table, {
                "kubernetes.io/role/internal-elb": "1",
                "karpenter.sh/discovery": cluster_name,
            })
            private_subnets.append(private)

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )


def _pick_az(names: Sequence[str], index: int) -> str:
    if index >= len(names):
        raise ValueError(
            f"{TYPE}: az_count asks for {index + 1} availability zones but the region offers {len(names)} ({', '.join(names)})"
        )
    return names[index]


def _check_layout(cidr_block: str, az_count: object, explicit_azs: list[str]) -> None:
    require_int_range(az_count, "az_count", 2, 6, name=TYPE)
    try:
        vpc = ipaddress.IPv4Network(cidr_block, strict=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TYPE}: cidr_block {cidr_block!r} is not an IPv4 CIDR ({exc})") from None
    if not 16 <= vpc.prefixlen <= 20:
        raise ValueError(f"{TYPE}: cidr_block must be a /16 to /20 network, got /{vpc.prefixlen}")
    if explicit_azs and len(explicit_azs) != az_count:
        raise ValueError(f"{TYPE}: availability_zones names {len(explicit_azs)} zones but az_count is {az_count}")
