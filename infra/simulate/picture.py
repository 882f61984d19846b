"""``gpufleet simulate --picture``: the nodes as boxes filled with their pods, one row per pool, as a
hand-written SVG (no dependencies).

Each node is a box titled with its instance type, capacity type and price; inside, each pod is a
bar whose length is its share of the node's scarcest resource (GPU units when it asks for any, else
CPU or memory, whichever share is larger). The grey remainder is what the node leaves free. Pending
pods are listed in red under the pools.
"""

from __future__ import annotations

import textwrap
from xml.sax.saxutils import escape

from gpufleet.infra.simulate.cluster import Node, Pod
from gpufleet.infra.simulate.run import ScaleResult

NODE_WIDTH = 260
BAR_HEIGHT = 16
GAP = 12
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f")


def _share(pod: Pod, node: Node) -> float:
    allocatable = node.chosen[0].allocatable
    gpu = [pod.requests[k] / allocatable[k] for k in pod.requests if k.startswith("nvidia.com/") and allocatable.get(k)]
    if gpu:
        return max(gpu)
    return max((pod.requests.get(k, 0) / allocatable[k] for k in ("cpu", "memory") if allocatable.get(k)), default=0.0)


def _usage(node: Node) -> str:
    """``cpu 6.2/7.9 · mem 48/59 GiB · nvidia.com/gpu 1/1``: requested of allocatable."""
    used, allocatable = node.used, node.chosen[0].allocatable
    parts = [f"cpu {used.get('cpu', 0) / 1000:.1f}/{allocatable.get('cpu', 0) / 1000:.1f}",
             f"mem {used.get('memory', 0) / 1024:.0f}/{allocatable.get('memory', 0) / 1024:.0f} GiB"]
    parts += [f"{name.removeprefix('nvidia.com/')} {used.get(name, 0)}/{amount}"
              for name, amount in sorted(allocatable.items()) if name not in ("cpu", "memory") and amount]
    return " · ".join(parts)


def _node_box(node: Node, x: int, y: int, colours: dict[str, str]) -> tuple[list[str], int]:
    node_type, capacity, price = node.chosen
    height = 48 + max(1, len(node.pods)) * (BAR_HEIGHT + 2) + 6
    parts = [f'<g><rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{height}" rx="6" fill="#f7f7f7" stroke="#555"/>',
             f'<text x="{x + 8}" y="{y + 15}" font-weight="bold">{escape(node.name)}</text>',
             f'<text x="{x + 8}" y="{y + 29}" font-size="11">{escape(node_type.instance_type)} · {capacity} · '
             f'${price:.2f}/h</text>',
             f'<text x="{x + 8}" y="{y + 43}" font-size="10" fill="#444">{escape(_usage(node))}</text>']
    row = y + 50
    inner = NODE_WIDTH - 16
    for pod in node.pods:
        share = min(1.0, _share(pod, node))
        colour = colours.setdefault(pod.name, COLOURS[len(colours) % len(COLOURS)])
        label = pod.id if len(pod.id) <= 38 else pod.id[:37] + "…"
        parts.append(f'<rect x="{x + 8}" y="{row}" width="{inner}" height="{BAR_HEIGHT}" fill="#e2e2e2"/>')
        parts.append(f'<rect x="{x + 8}" y="{row}" width="{max(2.0, inner * share):.1f}" height="{BAR_HEIGHT}" fill="{colour}"/>')
        parts.append(f'<text x="{x + 11}" y="{row + 12}" font-size="10">{escape(label)} ({share:.0%})</text>')
        row += BAR_HEIGHT + 2
    if not node.pods:
        parts.append(f'<text x="{x + 8}" y="{row + 12}" font-size="10" fill="#888">empty</text>')
    parts.append("</g>")
    return parts, height


def render_svg(stack: str, results: dict[str, ScaleResult]) -> str:
    """One section per scale; in each, one row of node boxes per pool."""
    body: list[str] = []
    colours: dict[str, str] = {}
    y = 30
    width = 900
    for scale, result in results.items():
        body.append(f'<text x="10" y="{y}" font-size="16" font-weight="bold">{escape(stack)} at {scale} scale: '
                    f'{len(result.placement.nodes)} nodes, ${result.hourly_usd:.2f}/h</text>')
        y += 14
        pools: dict[str, list[Node]] = {}
        for node in result.placement.nodes:
            pools.setdefault(node.pool, []).append(node)
        for pool, nodes in pools.items():
            y += 18
            body.append(f'<text x="10" y="{y}" font-size="13" font-weight="bold">pool {escape(pool)}</text>')
            y += 8
            x, row_height = 10, 0
            for node in nodes:
                if x + NODE_WIDTH > 10 + 4 * (NODE_WIDTH + GAP):
                    x, y, row_height = 10, y + row_height + GAP, 0
                parts, height = _node_box(node, x, y, colours)
                body += parts
                row_height = max(row_height, height)
                x += NODE_WIDTH + GAP
                width = max(width, x + 10)
            y += row_height + GAP
        for pending in result.pending:
            text = f"Pending {pending.pod.kind} {pending.pod.id}: {pending.reason}"
            for line in textwrap.wrap(text, 140, subsequent_indent="    "):
                y += 15
                body.append(f'<text x="10" y="{y}" font-size="11" fill="#c00">{escape(line)}</text>')
        y += 30
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" '
            f'font-family="Helvetica, Arial, sans-serif" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")
