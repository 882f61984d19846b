"""``gpu-shm-volume``: multi-GPU and multi-process GPU containers get a memory-backed /dev/shm.

The rule applies where evidence says shared memory is used: more than one GPU in a pod, pods of a
distributed workload (PyTorchJob, MPIJob, JobSet, LeaderWorkerSet, TrainJob, ... with more than one
pod), or PyTorch distributed / NCCL / multi-process commands, images or environment (torchrun,
deepspeed, mpirun, ``--tensor-parallel-size`` > 1, ``NCCL_*``). A smoke test, ``nvidia-smi`` or a
single-GPU server is not told to add one."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, as_str, contains_unknown
from gpufleet.policies.pod_templates import gpu_resource_names, pod_templates

SHM_PATH = "/dev/shm"


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    for template in pod_templates(subject):
        if not template.uses_gpu or template.manages_shm or contains_unknown(template.spec.get("volumes")):
            continue
        if not template.multi_process():
            continue  # one process on one GPU: the runtime's 64 MiB /dev/shm is enough
        memory_volumes = {
            as_str(v.get("name")) for v in template.volumes
            if as_str(as_mapping(v.get("emptyDir")).get("medium")) == "Memory"
            or as_str(as_mapping(v.get("hostPath")).get("path")) == SHM_PATH  # the node's own tmpfs
        }
        for container in template.all_containers():
            if not gpu_resource_names(container) or contains_unknown(container.get("volumeMounts")):
                continue
            mounts = [as_mapping(m) for m in as_list(container.get("volumeMounts"))]
            shm = [m for m in mounts if as_str(m.get("mountPath")) == SHM_PATH]
            name = as_str(container.get("name")) or "?"
            if not shm:
                yield (f"{template.where} container {name}: no {SHM_PATH} mount; PyTorch/NCCL workers need more shared "
                       f"memory than the runtime's 64 MiB (mount an emptyDir with medium: Memory at {SHM_PATH})")
            elif not any(as_str(m.get("name")) in memory_volumes for m in shm):
                yield (f"{template.where} container {name}: {SHM_PATH} is not an emptyDir with medium: Memory (nor the "
                       f"node's {SHM_PATH} by hostPath)")


RULE = Rule(
    name="gpu-shm-volume",
    description=(
        "GPU containers of multi-GPU pods, distributed workloads (more than one pod of a PyTorchJob, MPIJob, "
        "JobSet, LeaderWorkerSet, TrainJob...) or PyTorch/NCCL/multi-process commands mount an emptyDir with "
        "medium: Memory at /dev/shm. The container runtime's default 64 MiB /dev/shm makes PyTorch DataLoader "
        "workers and NCCL fail or crawl. KubeRay and the NIM Operator add this volume themselves, so their pods "
        "are not checked."
    ),
    check_resource=check,
    summary="GPU containers mount a memory-backed /dev/shm",
    why=(
        "Production checklist (Memory): /dev/shm emptyDir mount, a PyTorch shared memory requirement. The "
        "container runtime's 64 MiB default makes DataLoader workers die with bus errors and NCCL fail or crawl."
    ),
    fix=(
        "Add a volume {name: shm, emptyDir: {medium: Memory, sizeLimit: <GiB>}} and mount it at /dev/shm in every"
        " container that uses a GPU."
    ),
    example="""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 1
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
          volumeMounts:
            - {name: shm, mountPath: /dev/shm}
      volumes:
        - name: shm
          emptyDir: {medium: Memory, sizeLimit: 16Gi}
""",
)
