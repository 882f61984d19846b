"""The component and dependency graph of a plan, as Mermaid (``.mmd``) or Graphviz DOT (``.dot``).

Two levels of detail:

- ``components`` (the default, readable as a picture): one node per component the program declares
  at the top level (``Network``, ``Cluster``, ``GpuNodePool`` ...), labelled with its type and
  resource count; an edge ``A --> B`` when something in ``B`` depends on something in ``A`` (``A`` is
  created first, and deleted last).
- ``resources``: every component is a subgraph (nested as the components are), every resource a node
  in it, and every dependency the engine received an edge from the dependency to the dependent.

Providers are left out: every resource uses one, so they add edges and no information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:  # the engine imports the Pulumi SDK; the CLI's options only need GraphDetail
    from gpufleet.infra.offline.engine import Recording, RegisteredResource


class GraphDetail(str, Enum):
    components = "components"
    resources = "resources"


class GraphFormatError(ValueError):
    """The graph file's extension names no format gpufleet writes."""


FORMATS = {".mmd": "mermaid", ".dot": "dot"}


@dataclass
class _Node:
    id: str
    label: str


@dataclass
class _Cluster:
    id: str
    label: str
    nodes: list[_Node] = field(default_factory=list)
    clusters: list["_Cluster"] = field(default_factory=list)


@dataclass
class Graph:
    """Nodes grouped in (nested) clusters, and edges between node or cluster ids."""

    nodes: list[_Node]
    clusters: list[_Cluster]
    edges: list[tuple[str, str]]

    def mermaid(self) -> str:
        lines = ["flowchart LR"]
        for node in self.nodes:
            lines.append(f"  {node.id}[\"{_mermaid_text(node.label)}\"]")
        for cluster in self.clusters:
            lines += _mermaid_cluster(cluster, "  ")
        lines += [f"  {a} --> {b}" for a, b in self.edges]
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        lines = [
            "digraph plan {",
            "  rankdir=LR;",
            "  compound=true;",
            '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=10];',
        ]
        for node in self.nodes:
            lines.append(f"  {node.id} [label={_dot_text(node.label)}];")
        anchors: dict[str, str] = {}
        for cluster in self.clusters:
            lines += _dot_cluster(cluster, "  ", anchors)
        for a, b in self.edges:
            attributes = []
            if a in anchors:
                attributes.append(f"ltail=cluster_{a}")
            if b in anchors:
                attributes.append(f"lhead=cluster_{b}")
            suffix = f" [{', '.join(attributes)}]" if attributes else ""
            lines.append(f"  {anchors.get(a, a)} -> {anchors.get(b, b)}{suffix};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, fmt: str) -> str:
        return self.mermaid() if fmt == "mermaid" else self.dot()


def graph_format(path: Path) -> str:
    """``mermaid`` or ``dot`` from the file extension (raises :class:`GraphFormatError`)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GraphFormatError(f"--graph {path}: name a .mmd (Mermaid) or .dot (Graphviz) file")
    return fmt


def plan_graph(recording: Recording, detail: GraphDetail = GraphDetail.components) -> Graph:
    # Registration order depends on thread scheduling; URN order does not (stable ids and output).
    resources = sorted((r for r in recording.resources if not _is_provider(r)), key=lambda r: r.urn)
    by_urn = {r.urn: r for r in resources}
    ids = {r.urn: f"n{index}" for index, r in enumerate(resources)}
    if detail is GraphDetail.components:
        return _component_graph(resources, by_urn, ids)
    return _resource_graph(resources, by_urn, ids)


def _component_graph(resources: list[RegisteredResource], by_urn: dict[str, RegisteredResource],
                     ids: dict[str, str]) -> Graph:
    top = [r for r in resources if r.parent not in by_urn]
    ids = {r.urn: f"n{index}" for index, r in enumerate(top)}
    top_of: dict[str, str] = {}
    for resource in resources:
        ancestor = resource
        while ancestor.parent in by_urn:
            ancestor = by_urn[ancestor.parent]
        top_of[resource.urn] = ancestor.urn
    counts: dict[str, int] = {}
    for resource in resources:
        if resource.custom or resource.remote:
            counts[top_of[resource.urn]] = counts.get(top_of[resource.urn], 0) + 1
    nodes = []
    for resource in top:
        label = f"{resource.name}\n{_short_type(resource.type)}"
        if not resource.custom:
            count = counts.get(resource.urn, 0)
            label += f" · {count} resource{'s' if count != 1 else ''}"
        nodes.append(_Node(ids[resource.urn], label))
    edges = _dedupe(
        (ids[top_of[dependency]], ids[top_of[resource.urn]])
        for resource in resources
        for dependency in resource.dependencies
        if dependency in top_of and top_of[dependency] != top_of[resource.urn]
    )
    return Graph(nodes, [], edges)


def _resource_graph(resources: list[RegisteredResource], by_urn: dict[str, RegisteredResource],
                    ids: dict[str, str]) -> Graph:
    clusters: dict[str, _Cluster] = {}
    for resource in resources:
        if not resource.custom and not resource.remote:
            clusters[resource.urn] = _Cluster(ids[resource.urn], f"{resource.name}: {_short_type(resource.type)}")
    roots: list[_Cluster] = []
    loose: list[_Node] = []
    for resource in resources:
        parent = clusters.get(resource.parent)
        if resource.urn in clusters:
            (parent.clusters if parent else roots).append(clusters[resource.urn])
        else:
            node = _Node(ids[resource.urn], f"{resource.name}\n{_short_type(resource.type)}")
            (parent.nodes if parent else loose).append(node)
    edges = _dedupe(
        (ids[dependency], ids[resource.urn]) for resource in resources for dependency in resource.dependencies
        if dependency in ids
    )
    return Graph(loose, roots, edges)


def _dedupe(edges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(set(edges), key=lambda edge: (int(edge[0][1:]), int(edge[1][1:])))


def _is_provider(resource: RegisteredResource) -> bool:
    return resource.type.startswith("pulumi:providers:")


def _short_type(type_token: str) -> str:
    """``gpufleet:network:Network`` → ``Network``; ``kubernetes:karpenter.sh/v1:NodePool`` →
    ``karpenter.sh/v1 NodePool``; ``aws:ec2/subnet:Subnet`` → ``aws ec2 Subnet``."""
    package, _, rest = type_token.partition(":")
    module, _, kind = rest.rpartition(":")
    if package == "gpufleet":
        return kind
    module = module.split("/")[0] if package == "aws" else module
    return " ".join(part for part in (package if package != "kubernetes" else "", module, kind) if part and part != "index")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def _mermaid_cluster(cluster: _Cluster, indent: str) -> list[str]:
    lines = [f"{indent}subgraph {cluster.id}[\"{_mermaid_text(cluster.label)}\"]"]
    for node in cluster.nodes:
        lines.append(f"{indent}  {node.id}[\"{_mermaid_text(node.label)}\"]")
    for child in cluster.clusters:
        lines += _mermaid_cluster(child, indent + "  ")
    lines.append(f"{indent}end")
    return lines


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_cluster(cluster: _Cluster, indent: str, anchors: dict[str, str]) -> list[str]:
    """A ``subgraph cluster_<id>``; ``anchors`` maps the cluster id to a node inside it, for edges
    that start or end at the component itself (drawn to the cluster border)."""
    lines = [f"{indent}subgraph cluster_{cluster.id} {{", f"{indent}  label={_dot_text(cluster.label)};"]
    for node in cluster.nodes:
        lines.append(f"{indent}  {node.id} [label={_dot_text(node.label)}];")
    for child in cluster.clusters:
        lines += _dot_cluster(child, indent + "  ", anchors)
    anchor = _first_node(cluster)
    if anchor is None:
        # An empty component still needs a node for edges to land on.
        anchor = f"{cluster.id}_empty"
        lines.append(f'{indent}  {anchor} [label="", shape=point, style=invis];')
    anchors[cluster.id] = anchor
    lines.append(f"{indent}}}")
    return lines


def _first_node(cluster: _Cluster) -> Optional[str]:
    if cluster.nodes:
        return cluster.nodes[0].id
    for child in cluster.clusters:
        found = _first_node(child)
        if found:
            return found
    return None


def write_graph(recording: Recording, path: Path, detail: GraphDetail = GraphDetail.components) -> None:
    path.write_text(plan_graph(recording, detail).render(graph_format(path)))


