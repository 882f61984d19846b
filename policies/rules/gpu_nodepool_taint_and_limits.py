"""``gpu-nodepool-taint-and-limits``: NodePools that can launch GPU instances are tainted and bounded.

A NodePool can launch a GPU instance unless its requirements exclude every GPU instance type: one that
asks for ``kubernetes.io/arch In [amd64]`` or ``instance-category NotIn [t]`` only lets Karpenter pick
a g5 or p5 for a CPU pod when it is the cheapest fit, or a GPU pod's request makes it the only fit.
An EKS Auto Mode pool (``nodeClassRef`` group ``eks.amazonaws.com``) is read with Auto Mode's
``eks.amazonaws.com/instance-*`` labels where a Karpenter pool has ``karpenter.k8s.aws/instance-*`` (an
Auto Mode pool of ``eks.amazonaws.com/instance-category In [c, m, r]`` cannot launch GPUs); Neuron and CPU
pools pass. A pool is bounded by
``limits["nvidia.com/gpu"]`` or ``limits.nodes``.
"""

from __future__ import annotations

from typing import Iterator

from gpufleet.components.gpu_scheduling import GPU_RESOURCE, GPU_TAINT_KEY
from gpufleet.policies.core import Rule, RuleContext, Subject, as_mapping, as_str
from gpufleet.policies.rules._karpenter import CATEGORY_KEY, GPU_COUNT_KEY, NodePool, node_pool

NODES_LIMIT = "nodes"
"""Karpenter's node-count limit: a pool bounded by it cannot grow past that many GPU nodes either."""
EXCLUDE_GPUS = f"{GPU_COUNT_KEY} DoesNotExist, or {CATEGORY_KEY} In [c, m, r]"
"""Requirements that keep GPU instance types out of a CPU pool."""


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    pool = node_pool(subject)
    if pool is None or not pool.can_launch_gpus:
        return
    key = context["taintKey"]
    offers = _offers(pool)
    remedy = "" if pool.names_gpus else f", or a requirement that excludes GPU instances ({EXCLUDE_GPUS})"
    if not any(as_str(t.get("key")) == key and as_str(t.get("effect")) in ("NoSchedule", "NoExecute")
               for t in pool.taints):
        yield (f"{offers} but spec.template.spec.taints has no {key} NoSchedule taint: any pod could land on (and "
               f"keep alive) a GPU node; add the taint{remedy}")
    limits = as_mapping(subject.spec.get("limits"))
    if GPU_RESOURCE not in limits and NODES_LIMIT not in limits:
        yield (f"{offers} but spec.limits has no {GPU_RESOURCE} (nor {NODES_LIMIT}): the pool's GPU count, and the "
               f"bill, is unbounded; add limits[\"{GPU_RESOURCE}\"]{remedy}")


def _offers(pool: NodePool) -> str:
    if pool.names_gpus:
        return "offers GPU instances"
    names = [t.name for t in pool.instance_types]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"its requirements do not exclude GPU instance types ({shown})"


RULE = Rule(
    name="gpu-nodepool-taint-and-limits",
    description=(
        "Karpenter NodePools that can launch GPU instances (their requirements name GPUs, or do not exclude "
        "every GPU instance type of gpufleet's table, e.g. only kubernetes.io/arch In [amd64]) taint their nodes "
        "with nvidia.com/gpu:NoSchedule and set limits[\"nvidia.com/gpu\"]: untainted GPU nodes fill up with CPU "
        "pods, and an unbounded pool is an unbounded bill. A CPU pool passes by excluding GPU instances, e.g. "
        "karpenter.k8s.aws/instance-gpu-count DoesNotExist or karpenter.k8s.aws/instance-category In [c, m, r]."
    ),
    settings_schema={"taintKey": {"type": "string", "description": "Key of the GPU node taint."}},
    defaults={"taintKey": GPU_TAINT_KEY},
    check_resource=check,
    summary="GPU NodePools taint their nodes and cap their GPUs",
    why=(
        "Production checklist (Scheduling): node taints, to keep non-GPU pods off GPU nodes; and cost: a pool "
        "without a GPU limit is an unbounded bill when a workload scales out or a job loops."
    ),
    fix=(
        'Set spec.template.spec.taints [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}] and '
        'spec.limits["nvidia.com/gpu"]. A CPU pool passes by excluding GPU instances (e.g. '
        "karpenter.k8s.aws/instance-category In [c, m, r])."
    ),
    example="""\
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: serving
spec:
  template:
    metadata:
      labels: {gpufleet.io/gpu-pool: serving}
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}
      requirements:
        - {key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}
      taints:
        - {key: nvidia.com/gpu, value: "true", effect: NoSchedule}
  limits:
    nvidia.com/gpu: 16
""",
)
