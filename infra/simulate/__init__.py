"""``gpufleet simulate``: what a stack will launch, cost and leave Pending, from its rendered objects.

- :mod:`.inputs` reads NodePools, NodeOverlays, the system node group, workloads' pods, PDBs and Kueue;
- :mod:`.cluster` holds pods, node types, nodes and the label/taint/affinity matching;
- :mod:`.kueue` admits queued workloads against ClusterQueue quotas with cohort borrowing;
- :mod:`.scheduler` places pods (kube-scheduler filters, Karpenter provisioning);
- :mod:`.run` ties them together per scale; :mod:`.report` and :mod:`.picture` show the outcome;
- :mod:`.prices` is the price table.
"""

from gpufleet.infra.simulate.prices import PriceError
from gpufleet.infra.simulate.run import ScaleResult, Simulation, simulate, simulate_plan

__all__ = ["PriceError", "ScaleResult", "Simulation", "simulate", "simulate_plan"]
