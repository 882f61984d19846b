"""``gpufleet plan --graph``: the component and dependency graph as Mermaid or Graphviz DOT."""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.offline.engine import Recording
from gpufleet.infra.offline.graph import GraphDetail, _short_type as _short, plan_graph
from gpufleet.infra.offline.plan import Project, plan_stack
from tests.harness import REPO


@lru_cache(maxsize=None)
def recording(stack: str) -> Recording:
    return plan_stack(Project.find(REPO), stack).recording


def _top_components(rec: Recording) -> list:
    urns = {r.urn for r in rec.resources}
    return [r for r in rec.resources if r.parent not in urns and not r.type.startswith("pulumi:providers:")]


def _mermaid_nodes(text: str) -> dict[str, str]:
    return dict(re.findall(r'^\s*(n\d+)\["([^"]*)"\]$', text, flags=re.M))


def test_component_graph_has_one_node_per_component_and_the_build_order():
    rec = recording("dev")
    text = plan_graph(rec).mermaid()
    assert text.startswith("flowchart LR\n")
    nodes = _mermaid_nodes(text)
    assert len(nodes) == len(_top_components(rec))
    by_label = {label.split("<br/>")[0]: node for node, label in nodes.items()}
    network = sum(1 for r in rec.descendants(next(r.urn for r in rec.resources if r.name == "network")) if r.custom)
    assert nodes[by_label["network"]] == f"network<br/>Network · {network} resources"
    edges = set(re.findall(r"^\s*(n\d+) --> (n\d+)$", text, flags=re.M))
    assert {a for a, _ in edges} | {b for _, b in edges} <= set(nodes)
    assert (by_label["network"], by_label["cluster"]) in edges
    assert (by_label["cluster"], by_label["karpenter"]) in edges
    assert (by_label["karpenter"], by_label["gpu-dev"]) in edges  # pools are created after (deleted before) Karpenter
    assert "subgraph" not in text


def test_resource_graph_nests_resources_in_their_components_with_every_dependency():
    rec = recording("dev")
    graph = plan_graph(rec, GraphDetail.resources)
    text = graph.mermaid()
    assert text.count("subgraph ") == text.count("\n  end") + text.count("\n    end") + text.count("\n      end")
    components = [r for r in rec.resources if not r.custom and not r.remote]
    assert text.count("subgraph ") == len(components)
    resources = [r for r in rec.resources if (r.custom or r.remote) and not r.type.startswith("pulumi:providers:")]
    nodes = _mermaid_nodes(text)
    assert len(nodes) == len(resources)
    providers = {r.urn for r in rec.resources if r.type.startswith("pulumi:providers:")}
    dependencies = {(d, r.urn) for r in rec.resources if r.urn not in providers for d in r.dependencies if d not in providers}
    assert len(graph.edges) == len(dependencies)
    node_pool = rec.one("kubernetes:karpenter.sh/v1:NodePool")
    ids = {label: node for node, label in nodes.items()}
    by_urn = rec.by_urn()

    def node_of(urn: str) -> str:
        resource = by_urn[urn]
        return ids[f"{resource.name}<br/>{_short(resource.type)}"]

    wanted = {(node_of(d), node_of(node_pool.urn)) for d in node_pool.dependencies
              if d not in providers and (by_urn[d].custom or by_urn[d].remote)}
    assert wanted and wanted <= set(graph.edges)


def test_dot_output_has_clusters_and_edges():
    rec = recording("dev")
    dot = plan_graph(rec, GraphDetail.resources).dot()
    assert dot.startswith("digraph plan {") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    assert dot.count("subgraph cluster_") == sum(1 for r in rec.resources if not r.custom and not r.remote)
    assert " -> " in dot and "compound=true;" in dot
    components = plan_graph(rec).dot()
    assert "subgraph" not in components and components.count(" -> ") == len(plan_graph(rec).edges)


def test_graph_is_deterministic():
    rec = recording("dev")
    assert plan_graph(rec).mermaid() == plan_graph(rec).mermaid()
    shuffled = Recording(rec.project, rec.stack, list(reversed(rec.resources)), rec.stack_outputs)
    assert plan_graph(shuffled, GraphDetail.resources).dot() == plan_graph(rec, GraphDetail.resources).dot()


def test_readme_shows_the_prod_component_graph():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```mermaid\n(.+?)```", readme, flags=re.S)
    assert blocks == [plan_graph(recording("prod")).mermaid()], (
        "README.md's Mermaid picture is stale: regenerate it with "
        "`gpufleet plan prod --graph prod.mmd` and paste prod.mmd into the block"
    )


def test_cli_writes_the_graph_by_extension_and_prints_no_status_when_piped(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    target = tmp_path / "dev.dot"
    result = CliRunner().invoke(app, ["plan", "dev", "--graph", str(target), "--graph-detail", "resources"])
    assert result.exit_code == 0, result.output
    assert target.read_text() == plan_graph(recording("dev"), GraphDetail.resources).dot()
    assert "Planning" not in result.output and "Running the policy pack" not in result.output


@pytest.mark.parametrize("name", ["graph.png", "graph"])
def test_unknown_graph_extension_is_bad_input(tmp_path, name, monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, ["plan", "dev", "--graph", str(tmp_path / name)])
    assert result.exit_code == 2
    assert "name a .mmd (Mermaid) or .dot (Graphviz) file" in result.output
    assert not (tmp_path / name).exists()
