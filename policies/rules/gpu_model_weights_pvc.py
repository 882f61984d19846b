"""``gpu-model-weights-pvc``: serving pods read weights from a persistent volume."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, as_str, contains_unknown, is_unknown
from gpufleet.policies.pod_templates import PodTemplate, gpu_resource_names, pod_templates

PERSISTENT_SOURCES = ("persistentVolumeClaim", "ephemeral", "csi", "nfs")
"""Volume sources that survive a pod restart (or are a shared cache): weights are not downloaded again."""


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    cache_names = set(context["modelCacheVolumes"])
    for template in pod_templates(subject):
        if not (template.serving and template.uses_gpu):
            continue
        verdict = _loads_from_volume(template, subject, cache_names)
        if verdict is False:
            yield (f"{template.where}: weights do not come from a PersistentVolumeClaim or model-cache volume: every "
                   f"restart or scale-up downloads them again (mount the model cache PVC, or use storageUri: pvc://...)")


def _loads_from_volume(template: PodTemplate, subject: Subject, cache_names: set[str]) -> bool | None:
    """True: a persistent source is used; False: none; None: unknown."""
    for container in template.containers:
        uris = [container.get("storageUri"), *as_list(container.get("storageUris"))]
        if any(isinstance(u, str) and u.startswith("pvc://") for u in uris):
            return True
        if any(is_unknown(u) for u in uris):
            return None
    volumes = template.spec.get("volumes")
    if contains_unknown(volumes):
        return None
    persistent = {as_str(v.get("name")) for v in template.volumes if _persistent(v, cache_names)}
    persistent |= _claim_templates(subject)
    for container in template.containers:
        if not gpu_resource_names(container):
            continue
        mounts = container.get("volumeMounts")
        if contains_unknown(mounts):
            return None
        if any(as_str(as_mapping(m).get("name")) in persistent for m in as_list(mounts)):
            return True
    return False


def _persistent(volume: Mapping[str, Any], cache_names: set[str]) -> bool:
    if any(source in volume for source in PERSISTENT_SOURCES):
        return True
    return as_str(volume.get("name")) in cache_names and "emptyDir" not in volume


def _claim_templates(subject: Subject) -> set[str]:
    """Names of a StatefulSet's volumeClaimTemplates (each pod mounts its own PVC by that name)."""
    if not subject.is_a("apps", "StatefulSet"):
        return set()
    return {
        as_str(as_mapping(as_mapping(t).get("metadata")).get("name"))
        for t in as_list(subject.spec.get("volumeClaimTemplates"))
    } - {None}


RULE = Rule(
    name="gpu-model-weights-pvc",
    description=(
        "Serving workloads on GPUs load model weights from a PersistentVolumeClaim (KServe: storageUri pvc://), "
        "a CSI/NFS volume or a named model-cache volume, not an emptyDir or a download at start: pulling tens of "
        "GiB on every restart or scale-up makes recovery slow and egress costly."
    ),
    enforcement="advisory",
    settings_schema={
        "modelCacheVolumes": {
            "type": "array", "items": {"type": "string"},
            "description": "Volume names accepted as a model cache whatever their source (except emptyDir).",
        },
    },
    defaults={"modelCacheVolumes": ["model-cache"]},
    check_resource=check,
    summary="GPU serving workloads load weights from a PVC or model cache",
    why=(
        "Production checklist (Storage): PVC for model weights, to avoid downloading on every restart. Pulling "
        "tens of GiB at each start makes recovery and scale-up take minutes and costs egress."
    ),
    fix=(
        "Mount the weights from a PersistentVolumeClaim (KServe: storageUri: pvc://<claim>/<path>), a CSI or NFS "
        "volume, or a volume named in the modelCacheVolumes setting, filled once by a loader Job."
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
          args: ["--model", "/models/llama-3-8b"]
          volumeMounts:
            - {name: model-cache, mountPath: /models, readOnly: true}
      volumes:
        - name: model-cache
          persistentVolumeClaim: {claimName: model-cache}
""",
)
