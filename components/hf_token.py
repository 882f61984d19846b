"""``HuggingFaceToken``: a Hugging Face access token as a Kubernetes Secret in each namespace that
downloads or serves gated models, from a Pulumi secret (never a plain value in code or stack files)."""

from __future__ import annotations

from typing import Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._validate import check_arg_keys
from gpufleet.components._k8s import DNS_LABEL, MANAGED_BY

TYPE = "gpufleet:serving:HuggingFaceToken"

SECRET_NAME = "hf-token"
SECRET_KEY = "token"


class HuggingFaceTokenArgs(TypedDict):
    """Inputs of :class:`HuggingFaceToken`."""

    token: pulumi.Input[str]
    """The access token. Pass a Pulumi secret (``config.require_secret``); it is made one anyway. Required."""
    namespaces: Sequence[str]
    """Namespaces that get the Secret (they must exist or be created first). Required, at least one."""
    secret_name: NotRequired[str]
    """Name of each Secret. Default ``hf-token``."""
    key: NotRequired[str]
    """Key of the token in each Secret. Default ``token``."""


class HuggingFaceToken(pulumi.ComponentResource):
    """One Opaque Secret per namespace holding the token under ``key``; the value stays a Pulumi
    secret end to end (encrypted in state, masked in previews). Workloads reference it with
    ``{"name": secret_name, "key": key}`` (``secret_ref``)."""

    secret_ref: dict[str, str]

    def __init__(self, name: str, args: HuggingFaceTokenArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, HuggingFaceTokenArgs, name=TYPE)
        if args.get("token") is None:
            raise ValueError(f"{TYPE}: token is required")
        namespaces = list(args.get("namespaces") or [])
        if not namespaces:
            raise ValueError(f"{TYPE}: namespaces must name at least one namespace")
        for index, namespace in enumerate(namespaces):
            if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
                raise ValueError(f"{TYPE}: namespaces[{index}] is not a namespace name: {namespace!r}")
        if len(set(namespaces)) != len(namespaces):
            raise ValueError(f"{TYPE}: namespaces names a namespace twice")
        secret_name = args.get("secret_name", SECRET_NAME)
        key = args.get("key", SECRET_KEY)
        for field, value in (("secret_name", secret_name), ("key", key)):
            if not isinstance(value, str) or not DNS_LABEL.match(value):
                raise ValueError(f"{TYPE}: {field} must be a DNS label, got {value!r}")

        super().__init__(TYPE, name, {}, opts)
        token = pulumi.Output.secret(args["token"])
        for namespace in namespaces:
            k8s.core.v1.Secret(
                f"{name}-{namespace}",
                metadata={"name": secret_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
                type="Opaque",
                string_data={key: token},
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.secret_ref = {"name": secret_name, "key": key}
        self.register_outputs({})
