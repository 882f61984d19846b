"""Deterministic, plausible stand-ins for what AWS, EKS and Kubernetes would return.

Every value is derived from the resource's type and name, so two runs of the same program produce
byte-identical plans. Account ids and IP addresses come from documentation ranges.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Optional

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

FAKE_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-west-2"
_NAMESPACE = uuid.UUID("6f1b3a52-2d0e-4c61-9d7e-2b7f0c0de5a1")

# EC2-style id prefixes per resource type.
_EC2_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
}


def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


class FakeCloud(Mocks):
    """Pulumi mocks answering like a fresh AWS account in ``region``."""

    def __init__(self, region: str = DEFAULT_REGION, account_id: str = FAKE_ACCOUNT_ID):
        self.region = region
        self.account_id = account_id

    # -- resources -------------------------------------------------------------------------------
    def new_resource(self, args: MockResourceArgs) -> tuple[Optional[str], dict]:
        typ, name = args.typ, args.name
        state: dict[str, Any] = dict(args.inputs)
        if typ.startswith("pulumi:providers:"):
            return str(uuid.uuid5(_NAMESPACE, f"{typ}/{name}")), state
        if typ == "eks:index:Cluster":
            return name, {**state, **self._eks_cluster(args)}
        if typ.startswith("kubernetes:"):
            return self._kubernetes_id(args), state
        if typ.startswith("aws:"):
            return self._aws(typ, name, state)
        return f"{name}-{_digest(typ, name, length=8)}", state

    def _aws(self, typ: str, name: str, state: dict[str, Any]) -> tuple[str, dict]:
        region, account = self.region, self.account_id
        physical = state.get("name") or f"{name}-{_digest(typ, name, length=7)}"
        if typ in _EC2_ID_PREFIX:
            rid = f"{_EC2_ID_PREFIX[typ]}-{_digest(typ, name)}"
            state.setdefault("arn", f"arn:aws:ec2:{region}:{account}:{_EC2_ID_PREFIX[typ]}/{rid}")
            if typ == "aws:ec2/vpc:Vpc":
                state.setdefault("defaultSecurityGroupId", f"sg-{_digest('default-sg', name)}")
                state.setdefault("mainRouteTableId", f"rtb-{_digest('main-rtb', name)}")
            if typ == "aws:ec2/eip:Eip":
                state.setdefault("publicIp", f"203.0.113.{int(_digest(name, length=2), 16) % 254 + 1}")
            if typ == "aws:ec2/launchTemplate:LaunchTemplate":
                state.setdefault("latestVersion", 1)
                state.setdefault("defaultVersion", 1)
            return rid, state
        if typ == "aws:kms/key:Key":
            key_id = str(uuid.uuid5(_NAMESPACE, f"{typ}/{name}"))
            state.update(keyId=key_id, arn=f"arn:aws:kms:{region}:{account}:key/{key_id}")
            return key_id, state
        if typ == "aws:kms/alias:Alias":
            state.setdefault("arn", f"arn:aws:kms:{region}:{account}:{state.get('name', name)}")
            return str(state.get("name", name)), state
        if typ == "aws:iam/role:Role":
            state.update(name=physical, arn=f"arn:aws:iam::{account}:role/{physical}",
                         uniqueId=f"AROA{_digest(typ, name).upper()}")
            return physical, state
        if typ == "aws:iam/policy:Policy":
            state.update(name=physical, arn=f"arn:aws:iam::{account}:policy/{physical}")
            return state["arn"], state
        if typ == "aws:iam/instanceProfile:InstanceProfile":
            state.update(name=physical, arn=f"arn:aws:iam::{account}:instance-profile/{physical}")
            return physical, state
        if typ == "aws:sqs/queue:Queue":
            state.update(name=physical, arn=f"arn:aws:sqs:{region}:{account}:{physical}",
                         url=f"https://sqs.{region}.amazonaws.com/{account}/{physical}")
            return state["url"], state
        if typ == "aws:cloudwatch/eventRule:EventRule":
            state.update(name=physical, arn=f"arn:aws:events:{region}:{account}:rule/{physical}")
            return physical, state
        if typ == "aws:eks/nodeGroup:NodeGroup":
            cluster = state.get("clusterName", "cluster")
            node_group = state.get("nodeGroupName") or physical
            state.update(nodeGroupName=node_group, status="ACTIVE",
                         arn=f"arn:aws:eks:{region}:{account}:nodegroup/{cluster}/{node_group}/{_digest(name, length=8)}")
            return f"{cluster}:{node_group}", state
        if typ == "aws:efs/fileSystem:FileSystem":
            fs_id = f"fs-{_digest(typ, name)}"
            state.update(arn=f"arn:aws:elasticfilesystem:{region}:{account}:file-system/{fs_id}",
                         dnsName=f"{fs_id}.efs.{region}.amazonaws.com")
            return fs_id, state
        if typ == "aws:fsx/lustreFileSystem:LustreFileSystem":
            fs_id = f"fs-{_digest(typ, name)}"
            state.update(arn=f"arn:aws:fsx:{region}:{account}:file-system/{fs_id}",
                         dnsName=f"{fs_id}.fsx.{region}.amazonaws.com", mountName=_digest("mount", name, length=8))
            return fs_id, state
        if typ == "aws:s3/bucket:Bucket":
            # Bucket names are global: a prefix gets a suffix; S3 ARNs carry no region or account.
            bucket = state.get("bucket") or f"{state.get('bucketPrefix') or name + '-'}{_digest(typ, name, length=12)}"
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}", region=region,
                         bucketDomainName=f"{bucket}.s3.amazonaws.com")
            return bucket, state
        service = typ.split(":")[1].split("/")[0]
        state.setdefault("arn", f"arn:aws:{service}:{region}:{account}:{physical}")
        return f"{physical}", state

    def _eks_cluster(self, args: MockResourceArgs) -> dict[str, Any]:
        cluster_name = args.inputs.get("name") or f"{args.name}-eksCluster-{_digest(args.name, length=7)}"
        oidc_id = _digest("oidc", cluster_name, length=32).upper()
        issuer = f"oidc.eks.{self.region}.amazonaws.com/id/{oidc_id}"
        endpoint = f"https://{oidc_id}.gr7.{self.region}.eks.amazonaws.com"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {
                "server": endpoint,
                "certificate-authority-data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
            }}],
            "contexts": [{"name": "aws", "context": {"cluster": cluster_name, "user": "aws"}}],
            "current-context": "aws",
            "users": [{"name": "aws", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["--region", self.region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"],
            }}}],
        }
        return {
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig),
            "oidcIssuer": issuer,
            "oidcProviderUrl": issuer,
            "oidcProviderArn": f"arn:aws:iam::{self.account_id}:oidc-provider/{issuer}",
            "clusterSecurityGroupId": f"sg-{_digest('cluster-sg', cluster_name)}",
            "nodeSecurityGroupId": f"sg-{_digest('node-sg', cluster_name)}",
        }

    @staticmethod
    def _kubernetes_id(args: MockResourceArgs) -> str:
        metadata = args.inputs.get("metadata") or {}
        name = metadata.get("name") or args.inputs.get("name") or args.name
        namespace = metadata.get("namespace") or args.inputs.get("namespace")
        return f"{namespace}/{name}" if namespace else str(name)

    # -- function calls (invokes) ----------------------------------------------------------------
    def call(self, args: MockCallArgs) -> dict:
        token, region, account = args.token, self.region, self.account_id
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            letters = "abcdef"
            return {
                "id": region,
                "names": [f"{region}{c}" for c in letters],
                "zoneIds": [f"{region[:2]}{region.split('-')[1][:1]}{region[-1]}-az{i + 1}" for i in range(len(letters))],
                "groupNames": [region] * len(letters),
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": account, "arn": f"arn:aws:iam::{account}:user/gpufleet", "userId": "AIDAGPUFLEET", "id": account}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"}
        if token == "aws:eks/getCluster:getCluster":
            name = args.args.get("name") or "cluster"
            return {
                "id": name,
                "name": name,
                "arn": f"arn:aws:eks:{region}:{account}:cluster/{name}",
                "status": "ACTIVE",
                "vpcConfig": {"clusterSecurityGroupId": f"sg-{_digest('cluster-sg', name)}"},
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": region, "region": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"}
        return {}
