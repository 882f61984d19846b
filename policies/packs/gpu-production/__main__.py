"""The gpufleet GPU production policy pack: ``pulumi preview --policy-pack <this directory>``.

The policies are built in :mod:`gpufleet.policies.pack` (importable, testable); this file only serves
them. ``PolicyPack(...)`` starts the analyzer's gRPC server and blocks until the engine stops it, so
nothing may import this module.
"""

from pulumi_policy import PolicyPack

from gpufleet.policies.pack import (
    PACK_NAME, assume_from_environ, build_policies, default_enforcement, production_from_environ,
)

production = production_from_environ()

PolicyPack(
    PACK_NAME,
    policies=build_policies(production=production, assume=assume_from_environ()),
    enforcement_level=default_enforcement(production),
)
