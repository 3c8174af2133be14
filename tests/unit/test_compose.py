"""compose.yaml cannot be run here (no Docker daemon), so prove what can be proven without one: the file is
well-formed, the services the issue asks for exist, and every qqueue command in it parses with real options."""

from __future__ import annotations

from pathlib import Path

import typer.main
import yaml

from qqueue.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_database_migration_api_and_three_workers():
    services = load()["services"]
    assert set(services) == {"db", "migrate", "api", "worker"}
    assert services["db"]["image"].startswith("postgres:")
    assert "healthcheck" in services["db"] and services["db"]["volumes"]
    assert services["worker"]["deploy"]["replicas"] == 3
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # One image definition shared by every qqueue service.
    images = {services[name]["image"] for name in ("migrate", "api", "worker")}
    assert images == {"qqueue:local"}
    assert "dockerfile_inline" in services["migrate"]["build"]


def test_every_service_command_is_a_real_qqueue_command_with_real_options():
    root = typer.main.get_command(app)
    for name in ("migrate", "api", "worker"):
        argv = load()["services"][name]["command"]
        assert argv[0] == "qqueue"
        sub = root.commands[argv[1]]  # KeyError: not a qqueue command
        sub.make_context(argv[1], list(argv[2:]))  # raises on an unknown option or a bad value


def test_the_sample_prometheus_configuration_scrapes_the_api_service_at_metrics():
    config = yaml.safe_load((COMPOSE.parent / "qqueue" / "api" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in load()["services"] and f"{port}:{port}" in load()["services"][host]["ports"]
    assert "./qqueue/api/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in COMPOSE.read_text()
