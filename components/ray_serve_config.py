"""Ray Serve's ``serveConfigV2`` for a RayService: GPU actor options per deployment and autoscaling
that scales up promptly and down slowly, checked against the worker groups that must hold it."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence, TypedDict

import yaml
from typing_extensions import NotRequired

from gpufleet.components._validate import require_int_range

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ServeDeployment(TypedDict):
    """One Ray Serve deployment of an application."""

    name: str
    """Deployment name as in the application code. Required."""
    gpus: NotRequired[float]
    """GPUs per replica (``ray_actor_options.num_gpus``); must fit one worker. Default 1."""
    min_replicas: NotRequired[int]
    """Serve autoscaling floor. Default 1."""
    max_replicas: NotRequired[int]
    """Serve autoscaling ceiling. Default 1."""
    target_ongoing_requests: NotRequired[int]
    """Ongoing requests per replica Serve scales to. Default 2."""
    max_ongoing_requests: NotRequired[int]
    """Requests a replica accepts at once. Default 8."""


class ServeApplication(TypedDict):
    """One Ray Serve application (``serveConfigV2`` entry)."""

    name: str
    """Application name. Required."""
    import_path: str
    """``module:app`` of the bound application. Required."""
    route_prefix: NotRequired[str]
    """HTTP route. Default ``/``."""
    runtime_env: NotRequired[Mapping[str, Any]]
    """Ray runtime environment (e.g. ``working_dir``, ``pip``). Default none."""
    deployments: NotRequired[Sequence[ServeDeployment]]
    """Per-deployment GPU and autoscaling settings. Default none (the code's settings)."""


def serve_config(applications: Sequence[ServeApplication], workers: Sequence[tuple[int, int]], *, name: str) -> str:
    """``serveConfigV2``: Ray Serve's own config schema (snake_case keys inside a YAML string),
    with GPU actor options and autoscaling that waits before scaling down. ``workers`` holds
    ``(gpus per worker, max replicas)`` of each worker group: every replica must fit one worker, and
    all replicas at their maximum must fit the groups at theirs."""
    apps = list(applications or [])
    if not apps:
        raise ValueError(f"{name}: applications must define at least one Serve application")
    largest_worker = max((gpus for gpus, _ in workers), default=0)
    capacity = sum(gpus * replicas for gpus, replicas in workers)
    rendered, routes, demand = [], set(), 0.0
    for index, app in enumerate(apps):
        field = f"applications[{index}]"
        app_name = app.get("name")
        if not isinstance(app_name, str) or not _DNS_LABEL.match(app_name):
            raise ValueError(f"{name}: {field}.name must be a DNS label, got {app_name!r}")
        import_path = app.get("import_path")
        if not isinstance(import_path, str) or not re.fullmatch(r"[\w.]+:[\w.]+", import_path):
            raise ValueError(f"{name}: {field}.import_path must look like 'module:app', got {import_path!r}")
        route = app.get("route_prefix", "/")
        if not isinstance(route, str) or not route.startswith("/") or route in routes:
            raise ValueError(f"{name}: {field}.route_prefix must be a unique path starting with '/', got {route!r}")
        routes.add(route)
        entry: dict[str, Any] = {"name": app_name, "import_path": import_path, "route_prefix": route}
        if app.get("runtime_env"):
            entry["runtime_env"] = dict(app["runtime_env"])
        deployments = []
        for d_index, deployment in enumerate(app.get("deployments", [])):
            d_field = f"{field}.deployments[{d_index}]"
            gpus = deployment.get("gpus", 1)
            if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus <= 0:
                raise ValueError(f"{name}: {d_field}.gpus must be a positive number, got {gpus!r}")
            if gpus > largest_worker:
                raise ValueError(
                    f"{name}: {d_field}.gpus ({gpus}) exceeds the largest worker ({largest_worker} GPUs): "
                    f"a replica runs on one worker"
                )
            low = require_int_range(deployment.get("min_replicas", 1), f"{d_field}.min_replicas", 0, 1000, name=name)
            high = require_int_range(deployment.get("max_replicas", max(low, 1)), f"{d_field}.max_replicas", 1, 1000, name=name)
            if low > high:
                raise ValueError(f"{name}: {d_field}.min_replicas ({low}) is above {d_field}.max_replicas ({high})")
            demand += gpus * high
            target = require_int_range(deployment.get("target_ongoing_requests", 2), f"{d_field}.target_ongoing_requests", 1, 10000, name=name)
            ongoing = require_int_range(deployment.get("max_ongoing_requests", 8), f"{d_field}.max_ongoing_requests", 1, 10000, name=name)
            if ongoing < target:
                raise ValueError(f"{name}: {d_field}.max_ongoing_requests ({ongoing}) is below target_ongoing_requests ({target})")
            d_name = deployment.get("name")
            if not isinstance(d_name, str) or not d_name:
                raise ValueError(f"{name}: {d_field}.name is required")
            deployments.append({
                "name": d_name,
                "max_ongoing_requests": ongoing,
                "ray_actor_options": {"num_gpus": gpus},
                "autoscaling_config": {
                    "min_replicas": low,
                    "max_replicas": high,
                    "target_ongoing_requests": target,
                    # Model load takes minutes: scale up promptly, scale down only after 10 quiet minutes.
                    "upscale_delay_s": 30,
                    "downscale_delay_s": 600,
                },
            })
        if deployments:
            entry["deployments"] = deployments
        rendered.append(entry)
    if demand > capacity:
        raise ValueError(
            f"{name}: applications need up to {demand:g} GPUs at max_replicas but worker_groups offer "
            f"{capacity} (sum of gpus × max_replicas)"
        )
    return yaml.safe_dump({"applications": rendered}, sort_keys=False)
