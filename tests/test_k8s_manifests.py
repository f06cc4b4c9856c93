"""deploy/k8s: valid Kubernetes objects that agree with the gateway's code and with compose.

No cluster runs here, so nothing is applied. The manifests are rendered as
`kubectl apply -k deploy/k8s` would render them (`kubectl kustomize`; without kubectl, by
loading the files the way this kustomization combines them, which a test compares with
kubectl's output when both are there), validated against Kubernetes' own schemas in strict
mode (an unknown or misspelt field is an error), and cross-checked with the code: probe
paths are gateway routes, ports and GATEWAY_* variables are real settings, the gateway's
config parses and names the headless TF Serving Service, the shutdown fits in the grace
period, and TF Serving's config parses with TF Serving's proto and lists the same models.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.settings import Settings, load_settings
from tests.conftest import REPO

K8S = REPO / "deploy" / "k8s"
# Schemas of one recent Kubernetes release, bundled by kubernetes-validate (>= 1.33).
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "models"
GATEWAY = "tfs-gateway"
TFSERVING = "tfserving"
# kustomize's content-hash suffix on generated ConfigMap names.
_HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}\b")

Manifest = dict[str, Any]


# --- Rendering ---------------------------------------------------------------------------


def _kubectl_kustomize() -> list[Manifest] | None:
    """`kubectl kustomize deploy/k8s`, or None when kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _load_directly() -> list[Manifest]:
    """The kustomization's output without kubectl: its resources, generated ConfigMaps
    (without the hash suffix), namespace and image tags; it uses no other kustomize feature."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    handled = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}
    assert set(kustomization) <= handled, "teach _load_directly the new kustomize fields"
    docs = [
        doc
        for resource in kustomization["resources"]
        for doc in yaml.safe_load_all((K8S / resource).read_text())
        if doc
    ]
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for entry in generator["files"]:
            key, _, path = entry.rpartition("=")
            data[key or Path(path).name] = (K8S / path).read_text()
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for doc in docs:
        if doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kustomization["namespace"]
        for container in _containers(doc):
            name, _, tag = container["image"].partition(":")
            if name in images:
                image = images[name]
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return docs


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    """Every object `kubectl apply -k deploy/k8s` would create."""
    return _kubectl_kustomize() or _load_directly()


def _without_hashes(docs: list[Manifest]) -> list[Manifest]:
    """The documents with kustomize's ConfigMap hash suffixes removed, in a stable order."""
    text = _HASH_SUFFIX.sub("", json.dumps(docs))
    result: list[Manifest] = json.loads(text)
    return sorted(result, key=lambda doc: (doc["kind"], doc["metadata"]["name"]))


def test_loading_the_files_directly_gives_what_kustomize_renders() -> None:
    from_kubectl = _kubectl_kustomize()
    if from_kubectl is None:
        pytest.skip("kubectl is not installed: cannot compare with `kubectl kustomize`")
    assert _without_hashes(_load_directly()) == _without_hashes(from_kubectl)


# --- Helpers -----------------------------------------------------------------------------


def _objects(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [doc for doc in _objects(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _pod_spec(doc: Manifest) -> Manifest:
    spec: Manifest = doc["spec"]["template"]["spec"]
    return spec


def _containers(doc: Manifest, *, init: bool = True) -> Iterator[Manifest]:
    """The containers (and init containers) of a Deployment; none for other kinds."""
    if doc["kind"] != "Deployment":
        return
    spec = _pod_spec(doc)
    yield from spec["containers"]
    if init:
        yield from spec.get("initContainers", [])


def _container(doc: Manifest, name: str) -> Manifest:
    found = [c for c in _pod_spec(doc)["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name} in {doc['metadata']['name']}"
    return found[0]


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector (the only kind used here) selects these labels."""
    assert set(selector) == {"matchLabels"}, selector
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def _config_map_data(docs: list[Manifest], volume_name: str, pod: Manifest) -> dict[str, str]:
    """The data of the ConfigMap that `pod`'s volume `volume_name` mounts."""
    volume = next(v for v in _pod_spec(pod)["volumes"] if v["name"] == volume_name)
    data: dict[str, str] = _one(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    return data


def _mount_path(container: Manifest, volume_name: str) -> str:
    mounts = [m for m in container["volumeMounts"] if m["name"] == volume_name]
    assert len(mounts) == 1, f"{container['name']} does not mount {volume_name} once"
    path: str = mounts[0]["mountPath"]
    return path


def _pre_stop_sleep(container: Manifest) -> float:
    """Seconds the container's preStop hook sleeps (an exec `sleep N` or a sleep action)."""
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def _flags(container: Manifest) -> dict[str, str]:
    """`--name=value` arguments of a container, by name."""
    flags = {}
    for argument in [*container.get("command", []), *container.get("args", [])]:
        if argument.startswith("--"):
            name, _, value = argument[2:].partition("=")
            flags[name] = value
    return flags


def _setting_default(name: str) -> float:
    """A Settings field's default."""
    return float(Settings.model_fields[name].default)


def _gateway_settings(
    docs: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a gateway pod starts with: its ConfigMap under its literal env vars."""
    deployment = _one(docs, "Deployment", GATEWAY)
    gateway = _container(deployment, "gateway")
    config_dir = tmp_path / "etc-gateway"
    config_dir.mkdir()
    for key, text in _config_map_data(docs, "config", deployment).items():
        (config_dir / key).write_text(text)
    env = {e["name"]: e["value"] for e in gateway["env"] if "value" in e}
    mount = _mount_path(gateway, "config")
    config_file = env.pop("GATEWAY_CONFIG")
    assert config_file.startswith(mount + "/"), "GATEWAY_CONFIG must be in the config mount"
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(config_dir / Path(config_file).relative_to(mount))


# --- Schemas -----------------------------------------------------------------------------


def test_every_object_is_valid_for_kubernetes(rendered: list[Manifest]) -> None:
    errors = []
    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']} {doc['metadata']['name']}: {error}")
    assert not errors, "\n".join(errors)
    kinds = {doc["kind"] for doc in rendered}
    assert kinds >= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }


def test_strict_validation_refuses_an_unknown_field(rendered: list[Manifest]) -> None:
    """The schema check above can fail: a misspelt probe field is an error."""
    broken = copy.deepcopy(_one(rendered, "Deployment", GATEWAY))
    _container(broken, "gateway")["readinessprobe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_everything_is_in_the_models_namespace(rendered: list[Manifest]) -> None:
    namespace = _one(rendered, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


# --- The gateway against its code --------------------------------------------------------


def test_gateway_probes_are_gateway_routes_on_its_port(rendered: list[Manifest]) -> None:
    from gateway.app import create_app

    paths = create_app(Settings(models=[])).openapi()["paths"]
    gateway = _container(_one(rendered, "Deployment", GATEWAY), "gateway")
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    assert ports == {"http": Settings().port}
    for probe, path in (
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ):
        check = gateway[probe]["httpGet"]
        assert check["path"] == path and "get" in paths[path], probe
        assert check["port"] in ("http", ports["http"]), probe
        assert gateway[probe]["timeoutSeconds"] <= 2, "/readyz and /healthz answer at once"


def test_gateway_env_vars_name_real_settings(rendered: list[Manifest]) -> None:
    gateway = _container(_one(rendered, "Deployment", GATEWAY), "gateway")
    names = [e["name"] for e in gateway["env"] if e["name"].startswith("GATEWAY_")]
    assert "GATEWAY_CONFIG" in names  # read by `gateway serve`, not a setting
    unknown = [
        name
        for name in names
        if name != "GATEWAY_CONFIG" and name[len("GATEWAY_") :].lower() not in Settings.model_fields
    ]
    assert not unknown, f"not gateway settings: {unknown}"


def test_no_service_link_variable_can_look_like_a_gateway_setting(
    rendered: list[Manifest],
) -> None:
    """A Service named `gateway` would inject GATEWAY_PORT=tcp://..., the port setting."""
    for deployment in _objects(rendered, "Deployment"):
        assert _pod_spec(deployment)["enableServiceLinks"] is False
    for service in _objects(rendered, "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_") + "_"
        assert not prefix.startswith("GATEWAY_"), service["metadata"]["name"]


def test_gateway_config_parses_and_names_the_headless_tf_serving_service(
    rendered: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _gateway_settings(rendered, tmp_path, monkeypatch)
    assert settings.host == "0.0.0.0"
    match = re.fullmatch(
        r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
        settings.tf_serving_target or "",
    )
    assert match, f"not a cluster DNS name: {settings.tf_serving_target}"
    service_name, namespace, port = match.group(1), match.group(2), int(match.group(3))
    assert namespace == NAMESPACE
    service = _one(rendered, "Service", service_name)
    assert service["spec"]["clusterIP"] == "None", "dns:/// needs a headless Service"
    service_port = next(p for p in service["spec"]["ports"] if p["port"] == port)
    tfserving = _one(rendered, "Deployment", TFSERVING)
    assert _selects(
        {"matchLabels": service["spec"]["selector"]},
        tfserving["spec"]["template"]["metadata"]["labels"],
    )
    container = _container(tfserving, "tfserving")
    grpc = next(p for p in container["ports"] if p["name"] == service_port["targetPort"])
    assert grpc["containerPort"] == int(_flags(container)["port"])


def test_gateway_models_are_the_examples_on_the_models_volume(
    rendered: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _gateway_settings(rendered, tmp_path, monkeypatch)
    deployment = _one(rendered, "Deployment", GATEWAY)
    models_dir = _mount_path(_container(deployment, "gateway"), "models")
    examples = load_settings(REPO / "examples" / "config.yaml")

    def summary(s: Settings) -> list[tuple[str, str, str, dict[str, int]]]:
        return [(m.name, m.platform, Path(m.base_path).name, m.version_labels) for m in s.models]

    assert summary(settings) == summary(examples)
    assert [m.steps for m in settings.models] == [m.steps for m in examples.models]
    for model in settings.models:
        if model.platform != "pipeline":  # a pipeline's steps are the models on the volume
            assert Path(model.base_path).parent == Path(models_dir), model.name
    _assert_builds_examples_into(deployment, models_dir)


def _assert_builds_examples_into(deployment: Manifest, models_dir: str) -> None:
    """An init container of the gateway image builds the example models into the volume."""
    gateway_image = _one_gateway_image(deployment)
    (init,) = _pod_spec(deployment)["initContainers"]
    assert init["image"] == gateway_image
    assert init["command"] == ["gateway", "build-examples", "--out", models_dir]
    assert _mount_path(init, "models") == models_dir
    volume = next(v for v in _pod_spec(deployment)["volumes"] if v["name"] == "models")
    assert "emptyDir" in volume


def _one_gateway_image(deployment: Manifest) -> str:
    images = {
        c["image"] for c in _containers(deployment) if c["image"].split(":")[0].endswith(GATEWAY)
    }
    assert len(images) == 1, images
    return images.pop()


def test_the_shutdown_drain_fits_in_the_grace_period(
    rendered: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _gateway_settings(rendered, tmp_path, monkeypatch)
    deployment = _one(rendered, "Deployment", GATEWAY)
    pre_stop = _pre_stop_sleep(_container(deployment, "gateway"))
    needed = pre_stop + settings.shutdown_drain_seconds + settings.request_timeout_seconds + 5
    assert pre_stop > 0 and settings.shutdown_drain_seconds > 0
    assert needed <= _pod_spec(deployment)["terminationGracePeriodSeconds"]


def test_tf_serving_keeps_serving_until_every_gateway_stopped_resolving_it(
    rendered: list[Manifest],
) -> None:
    """A stopping replica leaves DNS at once; gateways notice at their next re-resolution."""
    tfserving = _one(rendered, "Deployment", TFSERVING)
    pre_stop = _pre_stop_sleep(_container(tfserving, "tfserving"))
    dns_cache_seconds = 5  # CoreDNS's default TTL for cluster names
    assert pre_stop >= _setting_default("tf_dns_refresh_seconds") + dns_cache_seconds
    assert pre_stop + 10 <= _pod_spec(tfserving)["terminationGracePeriodSeconds"]


# --- TF Serving --------------------------------------------------------------------------


def test_tf_serving_runs_the_compose_image_with_the_needed_flags(
    rendered: list[Manifest],
) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    container = _container(_one(rendered, "Deployment", TFSERVING), "tfserving")
    assert container["image"] == compose["services"]["tfserving"]["image"]
    flags = _flags(container)
    assert flags["allow_version_labels_for_unavailable_models"] == "true"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": int(flags["port"]), "rest": int(flags["rest_api_port"])}
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "rest"
        assert container[probe]["httpGet"]["path"].startswith("/v1/models/")
    assert container["livenessProbe"]["tcpSocket"]["port"] == "grpc"


def test_tf_serving_config_parses_and_serves_the_gateways_tf_models(
    rendered: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    tfserving = _one(rendered, "Deployment", TFSERVING)
    container = _container(tfserving, "tfserving")
    config_file = Path(_flags(container)["model_config_file"])
    assert str(config_file.parent) == _mount_path(container, "config")
    text = _config_map_data(rendered, "config", tfserving)[config_file.name]
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    served = {
        c.name: (c.base_path, c.model_platform, dict(c.version_labels))
        for c in config.model_config_list.config
    }
    settings = _gateway_settings(rendered, tmp_path, monkeypatch)
    expected = {
        m.name: (m.base_path, "tensorflow", m.version_labels)
        for m in settings.models
        if m.platform == "tensorflow"
    }
    assert served == expected
    assert "/v1/models/half_plus_two" in {
        container[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe")
    }
    assert "half_plus_two" in served
    models_dir = _mount_path(container, "models")
    assert all(Path(base_path).parent == Path(models_dir) for base_path, _, _ in served.values())
    _assert_builds_examples_into(tfserving, models_dir)


# --- Security, resources, availability ---------------------------------------------------


def test_every_pod_meets_the_restricted_pod_security_standard(rendered: list[Manifest]) -> None:
    for deployment in _objects(rendered, "Deployment"):
        pod = _pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in _containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["readOnlyRootFilesystem"] is True, where
            assert "add" not in context["capabilities"], where
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) >= {"cpu", "memory"}, where
            name, _, tag = container["image"].rpartition(":")
            assert name and tag and tag != "latest" and tag[0].isdigit(), where


def test_the_gateway_runs_as_the_dockerfile_user(rendered: list[Manifest]) -> None:
    user = re.search(r"^USER (\d+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "the Dockerfile's USER must be numeric for runAsNonRoot"
    pod = _pod_spec(_one(rendered, "Deployment", GATEWAY))
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    gateway = _container(_one(rendered, "Deployment", GATEWAY), "gateway")
    assert _mount_path(gateway, "tmp") == "/tmp"
    command = re.findall(r"^CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert gateway["command"] == json.loads(command[-1])


def test_the_gateway_service_sends_port_8000_to_the_gateway_pods(rendered: list[Manifest]) -> None:
    service = _one(rendered, "Service", GATEWAY)
    deployment = _one(rendered, "Deployment", GATEWAY)
    assert _selects(
        {"matchLabels": service["spec"]["selector"]},
        deployment["spec"]["template"]["metadata"]["labels"],
    )
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8000 and port["targetPort"] == "http"


def test_the_autoscaler_owns_the_gateway_replica_count(rendered: list[Manifest]) -> None:
    hpa = _one(rendered, "HorizontalPodAutoscaler", GATEWAY)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": GATEWAY,
    }
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 50 <= metric["resource"]["target"]["averageUtilization"] <= 75
    assert "replicas" not in _one(rendered, "Deployment", GATEWAY)["spec"]
    assert _one(rendered, "Deployment", TFSERVING)["spec"]["replicas"] >= 3


def test_disruption_budgets_select_their_pods_only(rendered: list[Manifest]) -> None:
    deployments = _objects(rendered, "Deployment")
    budgets = {pdb["metadata"]["name"]: pdb for pdb in _objects(rendered, "PodDisruptionBudget")}
    assert set(budgets) == {GATEWAY, TFSERVING}
    for name, pdb in budgets.items():
        selected = [
            d["metadata"]["name"]
            for d in deployments
            if _selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert selected == [name]
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 2


def test_replicas_spread_over_nodes(rendered: list[Manifest]) -> None:
    for deployment in _objects(rendered, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"], labels)
        spreads = _pod_spec(deployment)["topologySpreadConstraints"]
        by_node = [s for s in spreads if s["topologyKey"] == "kubernetes.io/hostname"]
        assert by_node and all(_selects(s["labelSelector"], labels) for s in spreads)


def test_only_the_gateway_may_call_tf_serving(rendered: list[Manifest]) -> None:
    policy = _one(rendered, "NetworkPolicy", TFSERVING)
    tfserving = _one(rendered, "Deployment", TFSERVING)
    gateway = _one(rendered, "Deployment", GATEWAY)
    assert _selects(
        policy["spec"]["podSelector"], tfserving["spec"]["template"]["metadata"]["labels"]
    )
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert _selects(source["podSelector"], gateway["spec"]["template"]["metadata"]["labels"])
    assert [p["port"] for p in rule["ports"]] == ["grpc"]
