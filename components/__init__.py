"""gpufleet's Pulumi components: import them into any Pulumi Python program.

    from gpufleet.components import Cluster, Network
"""

from gpufleet.components.cluster import AccessEntry, Cluster, ClusterArgs, SystemNodeGroup
from gpufleet.components.network import Network, NetworkArgs

__all__ = [
    "AccessEntry",
    "Cluster",
    "ClusterArgs",
    "Network",
    "NetworkArgs",
    "SystemNodeGroup",
]
