"""``gpufleet simulate``'s text output (rich tables that never split a word) and ``gpufleet plan``'s
one-line summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from gpufleet.infra.cli_tables import print_table
from gpufleet.infra.simulate.run import Simulation


def print_simulation(console: Console, simulation: Simulation) -> None:
    console.print(f"gpufleet simulate [bold]{escape(simulation.stack)}[/bold] ({simulation.region}): the cluster in "
                  "steady state, from the rendered objects.", highlight=False)
    for scale, result in simulation.results.items():
        rows = [[escape(r["pool"]), escape(r["instanceType"]), r["capacityType"], str(r["count"]), f"{r['hourlyUsd']:.2f}"]
                for r in result.node_rows()]
        rows.append(["[bold]total[/bold]", "", "", str(sum(r["count"] for r in result.node_rows())),
                     f"[bold]{result.hourly_usd:.2f}[/bold]"])
        print_table(console, title=f"Nodes at {scale} scale", headers=["pool", "instance type", "capacity", "nodes", "$/h"],
                    rows=rows)
        gpus = result.gpus()
        gpu_rows = [[escape(p["pool"]), escape(p["resource"]), str(p["requested"]), str(p["provisioned"]), str(p["gpus"])]
                    for p in gpus["pools"]]
        if gpu_rows:
            print_table(console, title=f"GPU allocation at {scale} scale (requested vs provisioned)",
                        headers=["pool", "resource", "requested", "provisioned", "physical GPUs"], rows=gpu_rows)
        if result.pending:
            rows = [[escape(what.replace(" ", "\n", 1) + (f" ×{count}" if count > 1 else "")), escape(reason)]
                    for what, count, reason in result.pending_groups()]
            print_table(console, title=f"Pending at {scale} scale", headers=["pods", "reason"], rows=rows, ratios=[None, 1])
        else:
            console.print(f"Nothing Pending at {scale} scale.", highlight=False)
        if result.blocked_drains:
            rows = [[escape(b["pool"]), escape(b["pdb"]), escape(b["reason"])] for b in result.blocked_drains]
            print_table(console, title=f"Blocked drains at {scale} scale", headers=["pool", "PDB", "reason"], rows=rows,
                        ratios=[None, None, 1])
        for note in result.notes:
            console.print(f"[dim]note: {escape(note)}[/dim]", highlight=False)
    console.print("[dim]Prices: on-demand list prices and a spot estimate (infra/simulate/prices.py); "
                  "no AWS account was contacted.[/dim]", highlight=False)


def summary_line(simulation: Simulation) -> str:
    """``Simulated: min 8 nodes $36.13/h · max 15 nodes $92.56/h · 0 Pending at min (gpufleet simulate prod)``."""
    parts = [f"{scale} {len(result.placement.nodes)} nodes ${result.hourly_usd:.2f}/h"
             for scale, result in simulation.results.items()]
    minimum = simulation.results.get("min")
    pending = len(minimum.pending) if minimum else 0
    blocked = len(minimum.blocked_drains) if minimum else 0
    parts.append(f"{pending} Pending at min" + (f", {blocked} blocked drain(s)" if blocked else ""))
    return f"Simulated: {' · '.join(parts)} (gpufleet simulate {simulation.stack})"
