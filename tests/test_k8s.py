"""k8s/rayjob.yaml, checked offline against KubeRay's RayJob fields (ray.io/v1, as KubeRay
v1.5+'s API reference lists them); it has not been run on a Kubernetes cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from sweep.spec import parse_spec_text

ROOT = Path(__file__).parents[1]
# The documented fields of each object (KubeRay API reference, ray.io/v1)
RAYJOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy",
    "entrypoint", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId",
    "managedBy", "metadata", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes",
    "submissionMode", "submitterConfig", "submitterPodTemplate", "suspend",
    "ttlSecondsAfterFinished",
}  # fmt: skip
CLUSTER_SPEC = {
    "authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
    "headGroupSpec", "headServiceAnnotations", "managedBy", "rayVersion", "suspend",
    "workerGroupSpecs",
}  # fmt: skip
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP = {
    "groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts",
    "rayStartParams", "replicas", "scaleStrategy", "suspend", "template",
}  # fmt: skip
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((ROOT / "k8s" / "rayjob.yaml").read_text()))
    return {d["kind"]: d for d in docs}


def test_rayjob_uses_only_documented_fields(manifest: dict[str, dict[str, Any]]) -> None:
    job = manifest["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    assert spec["submissionMode"] in SUBMISSION_MODES
    assert isinstance(spec["backoffLimit"], int) and spec["backoffLimit"] > 0
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= CLUSTER_SPEC, set(cluster) - CLUSTER_SPEC
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["rayVersion"] == ray.__version__  # the ray the project installs
    assert set(cluster["headGroupSpec"]) <= HEAD_GROUP
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    # rayStartParams values are strings (a map of string to string)
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert all(isinstance(v, str) for g in groups for v in g["rayStartParams"].values())


def test_cpu_head_gpu_workers_and_the_requeue_safe_entrypoint(
    manifest: dict[str, dict[str, Any]],
) -> None:
    cluster = manifest["RayJob"]["spec"]["rayClusterSpec"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    for group in cluster["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    entry = manifest["RayJob"]["spec"]["entrypoint"].split()
    assert entry[:2] == ["sweep", "run"] and "resume" not in entry
    # the spec it runs: the ConfigMap mounted where the entrypoint reads it, valid, in S3
    (mount,) = head["volumeMounts"]
    assert entry[2] == f"{mount['mountPath']}/spec.yaml"
    spec = parse_spec_text(manifest["ConfigMap"]["data"]["spec.yaml"], "k8s/rayjob.yaml")
    assert spec.storage.startswith("s3://") and spec.resources.gpu > 0


def test_the_image_installs_the_project_with_cuda_torch() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    torch = next(i for i, line in enumerate(lines) if "pip install" in line and "torch" in line)
    project = next(
        i for i, line in enumerate(lines) if line.strip() == "RUN pip install --no-cache-dir ."
    )
    assert "/whl/cu" in lines[torch] and torch < project  # CUDA torch first: the project keeps it
