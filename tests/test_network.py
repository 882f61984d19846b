"""``Network``: exact children, subnet layout and tags, parentage, argument errors."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from gpufleet.components import Network
from gpufleet.components.network import subnet_layout

COMPONENT = "gpufleet:network:Network"


def network(args):
    return lambda: Network("net", args)


def test_per_az_nat_children(run):
    recording = run(network({"cluster_name": "c1", "az_count": 3}))
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {
        "aws:ec2/vpc:Vpc": 1,
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": 1,
        "aws:ec2/internetGateway:InternetGateway": 1,
        "aws:ec2/subnet:Subnet": 6,
        "aws:ec2/routeTable:RouteTable": 4,
        "aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
        "aws:ec2/eip:Eip": 3,
        "aws:ec2/natGateway:NatGateway": 3,
    }
    assert all(c.name.startswith("net-") for c in children)
    assert len(recording.resources) == 1 + len(children)


def test_single_nat_routes_every_private_subnet_through_it(run):
    recording = run(network({"cluster_name": "c1", "az_count": 3, "nat_gateways": "single"}))
    assert len(recording.of_type("aws:ec2/natGateway:NatGateway")) == 1
    nat_urn = recording.one("aws:ec2/natGateway:NatGateway").urn
    private_tables = [r for r in recording.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]
    assert len(private_tables) == 3
    assert all(nat_urn in t.dependencies for t in private_tables)


def test_private_subnets_carry_discovery_and_internal_elb_tags(run):
    recording = run(network({"cluster_name": "gpu-prod", "az_count": 2}))
    subnets = recording.of_type("aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "-private-" in s.name]
    public = [s for s in subnets if "-public-" in s.name]
    assert len(private) == len(public) == 2
    for subnet in private:
        assert subnet.inputs["tags"]["karpenter.sh/discovery"] == "gpu-prod"
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in subnet.inputs["tags"]
    for subnet in public:
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert "karpenter.sh/discovery" not in subnet.inputs["tags"]
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_subnets_spread_over_distinct_azs(run):
    recording = run(network({"cluster_name": "c1", "az_count": 3}))
    private = sorted((s for s in recording.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name), key=lambda s: s.name)
    assert [(s.name, s.inputs["availabilityZone"]) for s in private] == [
        ("net-private-a", "us-west-2a"), ("net-private-b", "us-west-2b"), ("net-private-c", "us-west-2c"),
    ]


def test_explicit_availability_zones_are_used(run):
    recording = run(network({"cluster_name": "c1", "az_count": 2, "availability_zones": ["us-west-2c", "us-west-2d"]}))
    zones = {s.inputs["availabilityZone"] for s in recording.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {"us-west-2c", "us-west-2d"}


def test_default_security_group_allows_nothing(run):
    recording = run(network({"cluster_name": "c1"}))
    default_sg = recording.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs.get("ingress", []) == [] and default_sg.inputs.get("egress", []) == []


@pytest.mark.parametrize("az_count", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.16.0.0/18", "192.168.0.0/20"])
def test_subnet_layout_is_disjoint_and_inside_the_vpc(cidr, az_count):
    private, public = subnet_layout(cidr, az_count)
    vpc = ipaddress.IPv4Network(cidr)
    nets = [ipaddress.IPv4Network(n) for n in private + public]
    assert len(private) == len(public) == az_count
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert all(ipaddress.IPv4Network(p).prefixlen < ipaddress.IPv4Network(q).prefixlen for p, q in zip(private, public))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "cluster_name is required"),
        ({"cluster_name": "c", "az_count": 1}, "az_count must be an integer from 2 to 6"),
        ({"cluster_name": "c", "az_count": True}, "az_count must be an integer from 2 to 6"),
        ({"cluster_name": "c", "cidr_block": "10.0.0.0/8"}, "cidr_block must be a /16 to /20"),
        ({"cluster_name": "c", "cidr_block": "banana"}, "cidr_block 'banana' is not an IPv4 CIDR"),
        ({"cluster_name": "c", "nat_gateways": "none"}, "nat_gateways must be one of"),
        ({"cluster_name": "c", "az_count": 3, "availability_zones": ["a", "b"]}, "availability_zones names 2 zones but az_count is 3"),
    ],
)
def test_argument_errors_name_the_field(args, message):
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        Network("net", args)
    assert str(caught.value).startswith(f"{COMPONENT}: ")
