"""gpufleet's Pulumi program (``infra/__main__.py``), its stack configuration, and the offline
engine and CLI that run the very same program without a cloud."""
