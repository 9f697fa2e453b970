"""cluster/*.yaml are what `ray up` and KubeRay will accept, and say what matters:
a head that does no work, CPU workers for the corpus stages, GPU workers for training, scale to
zero, and the Ray image of the Ray version this project pins."""
import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
CRDS = CLUSTER / "kuberay" / "crds"
CLOUD_CONFIGS = ["aws.yaml", "gcp.yaml"]
IMAGE = f"rayproject/ray:{ray.__version__}-py311-gpu"


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def pinned_ray_version() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return re.search(r'"ray\[[^\]]*\]==([^"]+)"', text).group(1)


def test_installed_ray_is_the_pinned_one():
    # Every tag check below compares with ray.__version__; that must be the pyproject pin.
    assert ray.__version__ == pinned_ray_version()


# --- ray up (AWS, GCP) -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLOUD_CONFIGS)
def test_cloud_config_validates_against_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = load(name)
    jsonschema.validate(config, schema)
    # What `ray up` itself does next: merge the provider's defaults, then Ray's own checks
    # (head type exists, min <= max, ...). Needs no cloud credentials.
    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("name", CLOUD_CONFIGS)
def test_cloud_config_shape(name):
    config = load(name)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}

    assert config["docker"]["image"] == IMAGE
    assert head["resources"].get("CPU") == 0
    assert all("--num-cpus=0" in c for c in config["head_start_ray_commands"] if "--head" in c)
    assert any("--head" in c for c in config["head_start_ray_commands"])

    gpu = [v for v in workers.values() if v["resources"].get("GPU", 0) > 0]
    cpu = [v for v in workers.values() if v["resources"].get("GPU", 0) == 0]
    assert len(gpu) == 1 and gpu[0]["resources"]["GPU"] == 8          # one 8x H100 type
    assert len(cpu) == 1 and cpu[0]["resources"]["CPU"] >= 8          # one CPU type for data
    assert all(v["min_workers"] == 0 for v in workers.values())       # scale to zero
    assert all(v["max_workers"] >= 1 for v in workers.values())
    assert config["max_workers"] >= max(v["max_workers"] for v in workers.values())
    assert 0 < config["idle_timeout_minutes"] <= 60

    # The project is on every node and installed from there.
    [(remote, local)] = [(r, src) for r, src in config["file_mounts"].items() if src == "."]
    assert (REPO / local).resolve() == REPO
    assert any("pip install" in c and remote in c for c in config["setup_commands"])


def test_cloud_instance_types_are_the_documented_ones():
    aws, gcp = (load(n)["available_node_types"] for n in CLOUD_CONFIGS)
    assert aws["gpu"]["node_config"]["InstanceType"] == "p5.48xlarge"
    assert gcp["gpu"]["node_config"]["machineType"] == "a3-highgpu-8g"
    assert aws["cpu"]["node_config"]["InstanceType"] == "m7i.8xlarge"
    assert gcp["cpu"]["node_config"]["machineType"] == "n2-standard-32"


def test_dockerfile_builds_on_the_pinned_image():
    assert (CLUSTER / "Dockerfile").read_text().count(f"FROM {IMAGE}\n") == 1


# --- KubeRay -----------------------------------------------------------------------------------

def crd_schema(name: str) -> dict:
    return yaml.safe_load((CRDS / name).read_text())


def closed(schema: dict) -> dict:
    """The schema with unknown keys rejected wherever it lists its properties. The API server
    prunes unknown fields without a word, so a misspelt `minReplica` would be silently ignored."""
    schema = copy.deepcopy(schema)
    if "properties" in schema:
        schema.setdefault("additionalProperties", False)
        for sub in schema["properties"].values():
            if isinstance(sub, dict):
                sub.update(closed(sub))
    if isinstance(schema.get("items"), dict):
        schema["items"] = closed(schema["items"])
    return schema


RAYCLUSTER = closed(crd_schema("raycluster.v1.openapi-subset.yaml"))
RAYJOB = closed(crd_schema("rayjob.v1.openapi-subset.yaml"))


def groups(spec: dict):
    yield "head", spec["headGroupSpec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group


def containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def check_cluster_spec(spec: dict):
    jsonschema.validate(spec, RAYCLUSTER["properties"]["spec"])
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for name, group in groups(spec):
        assert [c["image"] for c in containers(group)] == [IMAGE], name

    workers = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(workers) == {"cpu", "gpu"}
    for group in workers.values():
        assert group["minReplicas"] == 0 and group["replicas"] == 0
        assert group["maxReplicas"] >= 1
    gpu_limits = [c["resources"]["limits"] for c in containers(workers["gpu"])]
    assert [lim.get("nvidia.com/gpu") for lim in gpu_limits] == ["8"]
    assert any(t["key"] == "nvidia.com/gpu" for t in workers["gpu"]["template"]["spec"]["tolerations"])
    for name, group in groups(spec):
        if name != "gpu":                         # data stages and the head never get a GPU
            for c in containers(group):
                assert "nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}), name
            assert "num-gpus" not in group["rayStartParams"], name


def test_raycluster_validates_and_has_the_cluster_shape():
    manifest = load("kuberay/raycluster.yaml")
    jsonschema.validate(manifest, RAYCLUSTER)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    check_cluster_spec(manifest["spec"])


def test_rayjob_validates_and_runs_a_wit_stage_on_the_same_cluster():
    manifest = load("kuberay/rayjob.yaml")
    jsonschema.validate(manifest, RAYJOB)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    spec = manifest["spec"]
    assert spec["entrypoint"].startswith("wit pipeline run ")
    assert spec["shutdownAfterJobFinishes"] is True
    check_cluster_spec(spec["rayClusterSpec"])
    # A copy of raycluster.yaml's spec, so the two cannot drift apart.
    assert spec["rayClusterSpec"] == load("kuberay/raycluster.yaml")["spec"]


def test_closed_schema_rejects_a_misspelt_field():
    # The check above would be worthless if the vendored subset accepted anything.
    spec = copy.deepcopy(load("kuberay/raycluster.yaml")["spec"])
    spec["workerGroupSpecs"][0]["minReplica"] = spec["workerGroupSpecs"][0].pop("minReplicas")
    with pytest.raises(jsonschema.ValidationError, match="minReplica"):
        jsonschema.validate(spec, RAYCLUSTER["properties"]["spec"])
    spec = copy.deepcopy(load("kuberay/raycluster.yaml")["spec"])
    spec["workerGroupSpecs"][0]["maxReplicas"] = "32"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, RAYCLUSTER["properties"]["spec"])
