"""Kueue's flavor assignment for the tests: the model lives in :mod:`gpufleet.infra.simulate.kueue`,
where ``gpufleet simulate`` admits workloads with it."""

from gpufleet.infra.simulate.kueue import assign_flavor, injected, pod_set_requests

__all__ = ["assign_flavor", "injected", "pod_set_requests"]
