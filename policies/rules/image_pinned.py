"""``image-pinned``: every container image of a GPU workload names a version: a tag other than
``latest``, or a digest. (CPU workloads are not judged, like every workload rule of gpufleet.)"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from gpufleet.policies.core import Rule, RuleContext, Subject, as_str, is_unknown
from gpufleet.policies.pod_templates import pod_templates

_DIGEST = re.compile(r"@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")


def image_tag(image: str) -> tuple[Optional[str], bool]:
    """(tag, has a digest) of an image reference, as the container runtime reads it: the tag follows
    the last ``:`` of the last path component (``registry:5000/app`` has none), the digest ``@``."""
    reference, digest = image, False
    if "@" in image:
        reference, digest = image.split("@", 1)[0], bool(_DIGEST.search(image))
    last = reference.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return tag, digest


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    require_digest = context["requireDigest"]
    for template in pod_templates(subject):
        if not template.uses_gpu:
            continue
        for container in template.all_containers():
            raw = container.get("image")
            if is_unknown(raw) or raw is None:
                continue  # computed at deploy time, or set by an operator (a KServe runtime's image)
            image = as_str(raw)
            name = as_str(container.get("name")) or "?"
            where = f"{template.where} container {name}"
            if not image or not image.strip():
                yield f"{where}: image is empty"
                continue
            if "${" in image or "{{" in image:
                continue  # an unrendered template placeholder (envsubst, Helm): judged once rendered
            tag, digest = image_tag(image.strip())
            if digest:
                continue
            if tag is None:
                yield (f"{where}: image {image!r} has no tag, so it runs whatever 'latest' is when a node pulls "
                       "it: pin a version (repository:1.2.3), preferably by digest (@sha256:...)")
            elif tag == "latest":
                yield (f"{where}: image {image!r} floats on the 'latest' tag: replicas pulled on different days run "
                       "different code; pin a version, preferably by digest (@sha256:...)")
            elif require_digest:
                yield (f"{where}: image {image!r} is pinned by tag only: a tag can be moved; pin the digest "
                       f"({image}@sha256:...)")


RULE = Rule(
    name="image-pinned",
    description=(
        "Every container image of a GPU workload names a version: a tag other than 'latest', or a digest. An "
        "untagged or ':latest' "
        "image runs whatever was pushed last when a node pulls it, so two replicas of a model server can run "
        "different code and a rollback restores nothing. Advisory on development stacks, mandatory on "
        "production; with requireDigest, tag-only references are flagged too (a digest cannot be moved)."
    ),
    enforcement="advisory",
    production_enforcement="mandatory",
    settings_schema={
        "requireDigest": {
            "type": "boolean",
            "description": "Also flag images pinned by tag without a digest (@sha256:...).",
        },
    },
    defaults={"requireDigest": False},
    check_resource=check,
    summary="GPU workloads' images name a version: a tag other than latest, or a digest",
    why=(
        "An untagged or ':latest' image runs whatever was pushed last when a node pulls it: replicas started on "
        "different days run different model-server code, and rolling back the manifest restores nothing."
    ),
    fix=(
        "Pin every image to a release tag (vllm/vllm-openai:v0.11.0), preferably with its digest "
        "(vllm/vllm-openai:v0.11.0@sha256:...); with requireDigest, a digest is required."
    ),
    example="""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 2
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          resources:
            limits: {nvidia.com/gpu: 1}
""",
)
