"""``KubeflowTrainer``: Kubeflow Trainer v2 (Helm chart ``kubeflow-trainer`` 2.3.0) and gpufleet's
torch-distributed ``ClusterTrainingRuntime``.

The trainer controller turns a ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``) into a JobSet
(``jobset.x-k8s.io/v1alpha2``) built from the runtime the job names; the chart installs the JobSet
controller as its ``jobset`` 0.12.0 dependency (``jobset.install``), the Trainer CRDs
(``crds.enabled``) and none of the built-in runtimes (``runtimes.defaultEnabled: false``): gpufleet
renders its own.

The controller runs on the system nodes in a ``restricted`` namespace (the chart's container security
context satisfies it), requests = limits. The JobSet subchart's values are not part of the trainer
chart's values.yaml, so its controller keeps the subchart defaults: it has no node selector, and
lands on the system nodes because every GPU node is tainted (the system-node fit check counts it).

The runtime (:func:`torch_runtime_spec`, ``gpufleet-torch-distributed``): one replicated job ``node``
(the trainer's ancestor step) whose container ``node`` runs ``torchrun`` (Trainer's torch plugin
injects the ``PET_*`` rendezvous environment and ``numProcPerNode``), non-root with the ``restricted``
security context, the ``gpufleet-training`` PriorityClass. Restarts resume from checkpoints: a Job
fails on its first pod failure (``backoffLimit: 0``, ``restartPolicy: Never``) and the JobSet then
recreates every node (``failurePolicy.restartStrategy: Recreate``) up to ``max_restarts`` times, so
all ranks restart together and the training script loads the last checkpoint from
``$CHECKPOINT_DIR`` (the :class:`~gpufleet.components.training_job.TrainingJob` mounts it).
Per-job pod settings (pool tolerations and selector, ``/dev/shm``, the checkpoint volume) are the
TrainJob's ``runtimePatches``; GPUs, CPU, memory and EFA its ``resourcesPerNode``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_pod
from gpufleet.components._k8s import MANAGED_BY, controller_chart, deep_merge, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:training:KubeflowTrainer"

API_VERSION = "trainer.kubeflow.org/v1alpha1"
CHART = "oci://ghcr.io/kubeflow/charts/kubeflow-trainer"
CHART_VERSION = "2.3.0"
"""Kubeflow Trainer release whose CRDs gpufleet's TrainJob and runtime are validated against."""
DEFAULT_NAMESPACE = "kubeflow-system"
RUNTIME_NAME = "gpufleet-torch-distributed"
"""Name of gpufleet's ClusterTrainingRuntime, which TrainingJobs reference by default."""
NODE_STEP = "node"
"""The trainer's replicated job and container name (Trainer's ``node`` ancestor step)."""
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
DEFAULT_RUNTIME_IMAGE = "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime"
"""The image of Kubeflow Trainer's own torch-distributed runtime (``manifests/base/runtimes/
torch_distributed.yaml`` at v2.3.0); TrainJobs usually set their own (``trainer.image``)."""
MANAGER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
"""Request = limit of the trainer controller (the chart sets none)."""
JOBSET_CONTROLLER_REQUESTS = {"cpu": "500m", "memory": "128Mi"}
"""Requests of the JobSet controller the chart installs (jobset chart 0.12.0 ``charts/jobset/
values.yaml`` ``controller.resources.requests``; not among the vendored upstream values, and not
settable through the trainer chart's values)."""


class KubeflowTrainerArgs(TypedDict):
    """Inputs of :class:`KubeflowTrainer`."""

    namespace: NotRequired[str]
    """Namespace created for the controller (and the JobSet controller). Default ``kubeflow-system``."""
    replicas: NotRequired[int]
    """Controller replicas (leader election: one active). Default 2."""
    runtime_image: NotRequired[str]
    """Default image of the runtime's ``node`` container (a TrainJob's ``image`` replaces it).
    Default :data:`DEFAULT_RUNTIME_IMAGE`."""
    max_restarts: NotRequired[int]
    """Times the runtime's JobSet recreates all nodes after a failure (each restart resumes from the
    last checkpoint), 0-100. Default 3."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Extra chart values merged over gpufleet's (each key must exist in the chart's values.yaml).
    Default none."""


def trainer_values(args: Mapping[str, Any]) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests walk it against the chart's values.yaml)."""
    replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 5, name=TYPE)
    values: dict[str, Any] = {
        "manager": {
            "replicas": replicas,
            "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
            "resources": {"requests": dict(MANAGER_RESOURCES), "limits": dict(MANAGER_RESOURCES)},
            "config": {"leaderElection": {"leaderElect": True}},
        },
        # The JobSet controller TrainJobs run on (jobset 0.12.0).
        "jobset": {"install": True},
        "crds": {"enabled": True},
        # No built-in runtimes: gpufleet renders its own (pinned image, restricted pods, restarts).
        "runtimes": {"defaultEnabled": False},
    }
    extra = args.get("extra_values", {})
    if not isinstance(extra, Mapping):
        raise TypeError(f"{TYPE}: extra_values must be a mapping")
    return deep_merge(values, extra)


def torch_runtime_spec(image: str = DEFAULT_RUNTIME_IMAGE, max_restarts: int = 3, *, name: str = TYPE) -> dict[str, Any]:
    """``spec`` of the torch-distributed ClusterTrainingRuntime (see the module docstring)."""
    if not isinstance(image, str) or not image or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        raise ValueError(f"{name}: runtime_image must be pinned by tag or digest, got {image!r}")
    max_restarts = require_int_range(max_restarts, "max_restarts", 0, 100, name=name)
    pod_spec = {
        "restartPolicy": "Never",
        "priorityClassName": gpu_pod.priority_class_name("training"),
        "securityContext": gpu_pod.pod_security_context(),
        "containers": [{
            "name": NODE_STEP,
            "image": image,
            "securityContext": gpu_pod.container_security_context(),
        }],
    }
    return {
        # Processes per node come from each TrainJob (``trainer.numProcPerNode`` = its GPUs per node).
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {
            "spec": {
                # Any failed node fails the JobSet attempt; it then recreates every node, which resume
                # from the last checkpoint together.
                "failurePolicy": {"maxRestarts": max_restarts, "restartStrategy": "Recreate"},
                "replicatedJobs": [{
                    "name": NODE_STEP,
                    "template": {
                        "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                        "spec": {
                            "backoffLimit": 0,
                            "template": {"spec": pod_spec},
                        },
                    },
                }],
            },
        },
    }


class KubeflowTrainer(pulumi.ComponentResource):
    """The Kubeflow Trainer chart, pinned to :data:`CHART_VERSION`, on the system nodes, and the
    ``gpufleet-torch-distributed`` ClusterTrainingRuntime after it: children ``{name}-namespace``,
    ``{name}-release`` and ``{name}-torch-runtime``. TrainingJobs depend on this component."""

    namespace: pulumi.Output[str]
    runtime_name: pulumi.Output[str]

    def __init__(self, name: str, args: Optional[KubeflowTrainerArgs] = None, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KubeflowTrainerArgs, name=TYPE)
        args = args or {}
        namespace_name = args.get("namespace", DEFAULT_NAMESPACE)
        require_dns_label(namespace_name, "namespace", name=TYPE)
        values = trainer_values(args)
        runtime_spec = torch_runtime_spec(args.get("runtime_image", DEFAULT_RUNTIME_IMAGE), args.get("max_restarts", 3))

        super().__init__(TYPE, name, {}, opts)
        release = controller_chart(
            name,
            namespace=namespace_name,
            release_name="kubeflow-trainer",
            chart=CHART,
            version=CHART_VERSION,
            values=values,
            parent=self,
        )
        runtime = k8s.apiextensions.CustomResource(
            f"{name}-torch-runtime",
            api_version=API_VERSION,
            kind="ClusterTrainingRuntime",
            metadata={"name": RUNTIME_NAME, "labels": {**MANAGED_BY, "trainer.kubeflow.org/framework": "torch"}},
            spec=runtime_spec,
            # The chart installs the CRD and the webhook that validates runtimes.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
        )
        self.namespace = release.status.apply(lambda _: namespace_name)
        self.runtime_name = runtime.metadata.apply(lambda _: RUNTIME_NAME)
        self.register_outputs({"namespace": self.namespace, "runtime_name": self.runtime_name})
