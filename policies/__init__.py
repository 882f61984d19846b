"""gpufleet's CrossGuard policies (rules and packs)."""
