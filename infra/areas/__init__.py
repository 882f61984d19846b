"""The platform, one area a module: each module holds its stack-config section (pydantic, the
config edge; ``serving`` keeps its models in ``serving_config``, ``triton`` reads
``serving.tritonServices`` from ``triton_config``) and ``compose(platform)``, which
declares that area's components from the section.

``AREAS`` is the composition order: later areas use what earlier ones put on :class:`Platform`.
"""

from gpufleet.infra.areas import (
    auto_mode,
    gpu_operator,
    gpu_pools,
    model_cache,
    multi_node_serving,
    observability,
    ray,
    serving,
    system_nodes,
    tenancy,
    training,
    triton,
)

# observability follows gpu_pools: the areas after it depend on its release (Prometheus Operator CRDs).
AREAS = (auto_mode, gpu_pools, observability, gpu_operator, tenancy, model_cache, serving, triton, multi_node_serving, ray,
         training, system_nodes)

__all__ = ["AREAS"]
