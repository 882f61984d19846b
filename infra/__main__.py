"""The gpufleet Pulumi program: ``pulumi up`` runs this file, and so does ``gpufleet plan``."""

from gpufleet.infra.program import main

main()
