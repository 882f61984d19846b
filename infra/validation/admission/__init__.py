"""What the pinned controllers' validating admission webhooks (and, for KubeRay, the operator's own
validation) reject when an object is created, one object (a plain-dict manifest) at a time.

The schema (:mod:`gpufleet.infra.validation.schema`) says whether the API server accepts the shape of an
object; these rules say whether the webhook the controller registers for its kind lets it through.
One module per upstream project, each rule ported from the upstream source and citing it:

* :mod:`.kserve`: KServe v0.20.0 InferenceService (``inference_service_validation.go``).
* :mod:`.kuberay`: KubeRay v1.7.0 RayCluster, RayJob, RayService (``utils/validation.go``).
* :mod:`.kueue`: Kueue v0.19.2 ClusterQueue, ResourceFlavor and the Kueue labels of job kinds
  (``pkg/webhooks``, ``jobframework/validation.go``).
* :mod:`.lws`: LeaderWorkerSet v0.10.0 (``pkg/webhooks/leaderworkerset_webhook.go``).
* :mod:`.resource`: the API server's own validation of DRA ResourceClaimTemplates and ResourceClaims
  (Kubernetes ``pkg/apis/resource/validation/validation.go``; built-in kinds, no webhook).

Gateway API v1.6.1 has no webhook: its rules are CEL in the CRDs, checked by the schema validator.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from gpufleet.infra.validation.admission import kserve, kuberay, kueue, lws, resource

__all__ = ["admission_problems", "rejection_message", "RULES"]

Rule = Callable[[Mapping[str, Any]], list[str]]

RULES: dict[tuple[str, str], tuple[Rule, ...]] = {
    ("serving.kserve.io", "InferenceService"): (kserve.validate,),
    ("ray.io", "RayCluster"): (kuberay.validate_ray_cluster,),
    ("ray.io", "RayJob"): (kuberay.validate_ray_job,),
    ("ray.io", "RayService"): (kuberay.validate_ray_service,),
    ("kueue.x-k8s.io", "ClusterQueue"): (kueue.validate_cluster_queue,),
    ("kueue.x-k8s.io", "ResourceFlavor"): (kueue.validate_resource_flavor,),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): (lws.validate,),
    ("resource.k8s.io", "ResourceClaimTemplate"): (resource.validate_resource_claim_template,),
    ("resource.k8s.io", "ResourceClaim"): (resource.validate_resource_claim,),
}
"""(API group, kind) -> the rules of the webhooks registered for it (every served version)."""


def _group(api_version: Any) -> str:
    api = str(api_version or "")
    return api.rsplit("/", 1)[0] if "/" in api else ""


def admission_problems(manifest: Mapping[str, Any]) -> list[str]:
    """[] when every webhook for ``manifest``'s kind admits it; else one reason per rejecting rule."""
    if not isinstance(manifest, Mapping):
        return []
    key = (_group(manifest.get("apiVersion")), str(manifest.get("kind", "")))
    rules: list[Rule] = list(RULES.get(key, ()))
    if kueue.is_job(manifest):
        rules.append(kueue.validate_job)
    problems: list[str] = []
    for rule in rules:
        problems += rule(manifest)
    return problems


def rejection_message(manifest: Mapping[str, Any], reason: str) -> str:
    """``the API server would reject <Kind>/<name>: <reason>``."""
    name = (manifest.get("metadata") or {}).get("name") if isinstance(manifest.get("metadata"), Mapping) else None
    return f"the API server would reject {manifest.get('kind')}/{name}: {reason}"
