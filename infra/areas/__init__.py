"""The platform, one area a module: each module holds its stack-config section (pydantic, the
config edge; ``serving`` keeps its models in ``serving_config``, ``triton`` reads
``serving.tritonServices`` from ``triton_config``) and ``compose(platform)``, which
declares that area's components from the section.

``AREAS`` is the composition order: later areas use what earlier ones put on :class:`Platform`.
"""

from gpufleet.infra.areas import gpu_operator, gpu_pools, model_cache, ray, serving, system_nodes, tenancy
from gpufleet.infra.areas import triton

AREAS = (gpu_pools, gpu_operator, tenancy, model_cache, serving, triton, ray, system_nodes)

__all__ = ["AREAS"]
