"""cluster.yaml is a config that `ray up` accepts, with autoscaling 4-GPU workers and no secrets.

Checked offline, the way the launcher checks it before touching AWS: ray's `prepare_config`
merges the AWS defaults, then ray's `validate_config` runs the JSON schema that the installed
ray ships (`ray/autoscaler/ray-schema.json`) plus its cross-field checks.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


def load() -> dict[str, Any]:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(config, dict)
    return config


def launcher_validate(config: dict[str, Any]) -> None:
    """What `ray up` does to the file before any cloud call (resources are declared, so the
    AWS look-up of instance resources that comes in between changes nothing)."""
    validate_config(prepare_config(copy.deepcopy(config)))


def test_valid_for_the_ray_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(load(), schema)


def test_valid_for_the_ray_launcher() -> None:
    launcher_validate(load())


def test_aws_cluster_with_cpu_head() -> None:
    config = load()
    assert config["cluster_name"] == "plasticity-sweeps"
    assert config["provider"]["type"] == "aws"
    assert config["provider"]["region"] == "us-west-2"
    assert config["idle_timeout_minutes"] > 0
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["CPU"] > 0
    assert head["resources"].get("GPU", 0) == 0


def test_autoscaling_gpu_workers_with_4_gpus() -> None:
    config = load()
    gpu_types = [
        node
        for name, node in config["available_node_types"].items()
        if name != config["head_node_type"] and node["resources"].get("GPU") == 4
    ]
    assert len(gpu_types) == 1
    (gpu,) = gpu_types
    assert gpu.get("min_workers", 0) == 0
    assert gpu["max_workers"] > 0
    assert config["max_workers"] >= gpu["max_workers"]


def test_every_node_type_sets_an_image() -> None:
    # Without ImageId, Ray falls back to an Ubuntu 18.04 AMI whose Python (< 3.11) cannot
    # install the project.
    for node in load()["available_node_types"].values():
        assert node["node_config"].get("ImageId", "").lower() not in ("", "latest_dlami")


CREDENTIAL_PATTERNS = [
    r"aws_access_key_id",
    r"aws_secret_access_key",
    r"aws_session_token",
    r"aws_credentials",
    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",  # access key ids
    r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",  # secret-key shaped
    r"(?<!\d)\d{12}(?!\d)",  # account ids
    r"BEGIN [A-Z ]*PRIVATE KEY",
]


@pytest.mark.parametrize("pattern", CREDENTIAL_PATTERNS)
def test_no_credentials(pattern: str) -> None:
    # The raw text, comments included.
    assert not re.search(pattern, CLUSTER_YAML.read_text(), re.IGNORECASE), pattern


def test_ssh_key_left_to_the_launcher() -> None:
    config = load()
    assert "ssh_private_key" not in config.get("auth", {})
    for node in config["available_node_types"].values():
        assert "KeyName" not in node["node_config"]


def test_setup_installs_cuda_torch_then_this_project() -> None:
    config = load()
    (remote,) = (r for r, local in config["file_mounts"].items() if local == ".")
    commands: list[str] = config["setup_commands"]
    torch_at = next(
        i
        for i, c in enumerate(commands)
        if "pip install" in c and "torch" in c and "download.pytorch.org/whl/cu" in c
    )
    project_at = next(
        i for i, c in enumerate(commands) if re.search(rf"pip install -e {re.escape(remote)}\b", c)
    )
    assert torch_at < project_at


def test_ray_started_from_the_venv_with_a_local_dashboard() -> None:
    config = load()
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "~/venv/bin/ray start --head" in head
    assert "--dashboard-host=127.0.0.1" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "~/venv/bin/ray start --address=$RAY_HEAD_IP:6379" in worker


def _set_max_workers(config: dict[str, Any]) -> None:
    config["max_workers"] = "many"


def _add_unknown_key(config: dict[str, Any]) -> None:
    config["gpus_per_worker"] = 4


def _gpus_as_text(config: dict[str, Any]) -> None:
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "four"


def _missing_head(config: dict[str, Any]) -> None:
    config["head_node_type"] = "no_such_type"


@pytest.mark.parametrize(
    "breakage", [_set_max_workers, _add_unknown_key, _gpus_as_text, _missing_head]
)
def test_a_broken_copy_fails_validation(breakage: Callable[[dict[str, Any]], None]) -> None:
    config = load()
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        launcher_validate(config)
