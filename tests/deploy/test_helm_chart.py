"""The Helm chart in deploy/helm/monolith, rendered offline and checked without a cluster.

helm-python-sdk (`import helm_python`) embeds Helm v4's Go SDK: it renders, lints and checks
values.schema.json with no helm binary. kubernetes-validate checks each rendered object against
Kubernetes 1.32's OpenAPI schemas (strict: unknown fields fail). KEDA's ScaledObject and Gateway
API's HTTPRoute are CRDs outside those schemas, so they are checked field by field here.
"""

from __future__ import annotations

import base64
import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

# helm-python-sdk has x86_64 wheels only; elsewhere the chart tests cannot run.
helm = pytest.importorskip("helm_python", reason="helm-python-sdk has no wheel for this machine")
import kubernetes_validate as kv  # noqa: E402
import yaml  # noqa: E402

# tests/deploy/test_helm_chart.py -> the repository root is two folders up.
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/monolith"
KUBE_VERSION = "1.32.0"
RELEASE, NAMESPACE = "voice", "monolith"
FULLNAME = "voice-monolith"
CRDS = {("keda.sh/v1alpha1", "ScaledObject"), ("gateway.networking.k8s.io/v1", "HTTPRoute")}

ALL_ON: dict[str, Any] = {
    "gpus": 8,
    "args": ["--log-level", "debug"],
    "drainTimeoutSeconds": 300,
    "preStopSleepSeconds": 10,
    "auth": {"enabled": True, "existingSecret": "monolith-auth"},
    "weights": {"source": "pvc", "existingClaim": "weights-rox", "subPath": "v1", "readOnly": True},
    "cache": {"type": "hostPath", "hostPath": "/var/lib/monolith/cache"},
    "data": {"type": "pvc", "existingClaim": "monolith-data"},
    "shm": {"sizeLimit": "32Gi"},
    "resources": {"requests": {"cpu": "32", "memory": "256Gi"}, "limits": {"memory": "512Gi"}},
    "runtimeClassName": "nvidia",
    "priorityClassName": "voice-critical",
    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "imagePullSecrets": [{"name": "registry"}],
    "extraEnv": [{"name": "MONOLITH_SERVER__LOG_LEVEL", "value": "debug"}],
    "podAnnotations": {"team": "voice"},
    "podLabels": {"tier": "gpu"},
    "service": {"enabled": True, "type": "ClusterIP", "port": 8000,
                "annotations": {"example.com/scrape": "true"}},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "hosts": [{"host": "voice.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"hosts": ["voice.example.com"], "secretName": "voice-tls"}],
    },
    "httpRoute": {
        "enabled": True,
        "parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}],
        "hostnames": ["voice.example.com"],
        "timeouts": {"request": "3600s", "backendRequest": "3600s"},
    },
    "autoscaling": {
        "mode": "keda", "minReplicas": 2, "maxReplicas": 6, "targetSessionsPerPod": 40,
        "keda": {"serverAddress": "http://prometheus.monitoring.svc:9090"},
    },
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base` with dotted keys (`autoscaling.mode`) set."""
    out = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "all-on-keda": ALL_ON,
    "all-on-hpa": with_(ALL_ON, **{"autoscaling.mode": "hpa"}),
    "image-weights-no-auth-cpu": {
        "gpus": 0, "weights": {"source": "image"}, "auth": {"enabled": False},
        "cache": {"type": "pvc", "existingClaim": "compile-cache"},
        "podDisruptionBudget": {"enabled": False}, "service": {"enabled": False},
        "onePodPerNode": False, "metrics": {"podAnnotations": False},
    },
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        for doc in yaml.safe_load_all(text):
            if doc:
                assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
                docs.append(doc)
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def env_of(ctr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in ctr["env"]}


# --- the chart as files -------------------------------------------------------------------


def test_values_and_chart_yaml_pass_yamllint():
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig("extends: default")
    for name in ("values.yaml", "Chart.yaml"):
        problems = list(linter.run((CHART / name).read_text(), conf, str(CHART / name)))
        assert not problems, [f"{name}:{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_is_clean(variant):
    report = helm.lint(CHART, VARIANTS[variant], strict=True, namespace=NAMESPACE,
                       kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == [], report
    # Severity 1 (info, e.g. "icon is recommended") is fine; warnings (2) and errors (3) are not.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_chart_metadata(chart):
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.name == "monolith"
    assert chart.schema is not None


# --- values.schema.json ------------------------------------------------------------------


# Each bad value, and the key (a JSON pointer) Helm's schema error must name.
BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "gpus as a word": ({"gpus": "eight"}, "/gpus"),
    "negative gpus": ({"gpus": -1}, "/gpus"),
    "fractional gpus": ({"gpus": 1.5}, "/gpus"),
    "unknown autoscaling mode": ({"autoscaling": {"mode": "bogus"}}, "/autoscaling/mode"),
    "zero drain": ({"drainTimeoutSeconds": 0}, "/drainTimeoutSeconds"),
    "drain as a string": ({"drainTimeoutSeconds": "120"}, "/drainTimeoutSeconds"),
    "pvc weights without a claim": ({"weights": {"source": "pvc", "existingClaim": ""}},
                                    "/weights/existingClaim"),
    "unknown weights source": ({"weights": {"source": "s3"}}, "/weights/source"),
    "shm size not a quantity": ({"shm": {"sizeLimit": "lots"}}, "/shm/sizeLimit"),
    "empty config": ({"config": ""}, "/config"),
    "httpRoute without parentRefs": ({"httpRoute": {"enabled": True, "parentRefs": []}},
                                     "/httpRoute/parentRefs"),
    "bad HTTPRoute timeout": ({"httpRoute": {"timeouts": {"request": "one hour"}}},
                              "/httpRoute/timeouts/request"),
    "probe path without slash": ({"readinessProbe": {"path": "ready"}}, "/readinessProbe/path"),
    "misspelt top-level key": ({"gpu": 8}, "'gpu' not allowed"),
    "keda address not a URL": ({"autoscaling": {"keda": {"serverAddress": "prometheus:9090"}}},
                               "/autoscaling/keda/serverAddress"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(chart, case):
    values, where = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert where in str(caught.value)
    # An install or `helm template` checks the schema before rendering: so does render().
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_schema_accepts_the_variants(chart, variant):
    chart.validate_schema(VARIANTS[variant])


@pytest.mark.parametrize("values, message", [
    ({"autoscaling": {"mode": "keda", "minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
    ({"autoscaling": {"mode": "hpa", "minReplicas": 0}}, "minReplicas >= 1"),
    ({"ingress": {"enabled": True}, "service": {"enabled": False}}, "service.enabled"),
])
def test_template_checks_fail_the_render(chart, values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


# --- every rendered object is valid Kubernetes 1.32 (or a well-formed CRD object) ----------


def check_scaled_object(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    assert obj["metadata"]["name"]
    assert spec["scaleTargetRef"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert isinstance(spec["minReplicaCount"], int) and isinstance(spec["maxReplicaCount"], int)
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["triggers"], "a ScaledObject needs at least one trigger"
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        # KEDA reads trigger metadata as a map of strings.
        assert all(isinstance(v, str) for v in meta.values()), meta
        assert {"serverAddress", "query", "threshold"} <= meta.keys()
        assert meta["serverAddress"].startswith(("http://", "https://"))
        float(meta["threshold"])
        assert trigger.get("metricType", "AverageValue") in {"AverageValue", "Value", "Utilization"}
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior:
        # The behavior block is the HPA's: validate it with the HPA's own schema.
        kv.validate({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                     "metadata": {"name": "x"},
                     "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                              "maxReplicas": 1, "behavior": behavior}},
                    KUBE_VERSION, strict=True)


def check_http_route(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    assert obj["metadata"]["name"]
    assert spec["parentRefs"] and all(ref["name"] for ref in spec["parentRefs"])
    assert set(spec) <= {"parentRefs", "hostnames", "rules"}
    for rule in spec["rules"]:
        assert set(rule) <= {"name", "matches", "filters", "backendRefs", "timeouts", "retry",
                             "sessionPersistence"}
        for match in rule["matches"]:
            assert match["path"]["type"] in {"Exact", "PathPrefix", "RegularExpression"}
            assert match["path"]["value"].startswith("/")
        for ref in rule["backendRefs"]:
            assert ref["name"] and isinstance(ref["port"], int)  # a Service backend needs its port
        for key, duration in rule.get("timeouts", {}).items():
            assert key in {"request", "backendRequest"}
            assert re.fullmatch(r"([0-9]{1,5}(h|m|s|ms)){1,4}", duration), duration


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_objects_validate(chart, variant):
    docs = render(chart, VARIANTS[variant])
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key == ("keda.sh/v1alpha1", "ScaledObject"):
            check_scaled_object(doc)
        elif key == ("gateway.networking.k8s.io/v1", "HTTPRoute"):
            check_http_route(doc)
        else:
            try:
                kv.validate(doc, KUBE_VERSION, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def test_kubernetes_validate_cli_on_the_rendered_manifest(chart, tmp_path):
    """The same check as a person runs it: `kubernetes-validate --strict -k 1.32.0 file`."""
    docs = [d for d in render(chart, ALL_ON) if (d["apiVersion"], d["kind"]) not in CRDS]
    manifest = tmp_path / "all.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    run = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, "--quiet",
         str(manifest)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# --- what the objects say ----------------------------------------------------------------


def test_defaults_render_the_expected_objects(chart):
    kinds = sorted(d["kind"] for d in render(chart))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"]


def test_probes(chart):
    ctr = container(render(chart))
    (port,) = ctr["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8000)
    for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"),
                        ("readinessProbe", "/ready")):
        assert ctr[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = ctr["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] == 20 * 60


def test_startup_budget_follows_values(chart):
    ctr = container(render(chart, {"startupProbe": {"path": "/health", "periodSeconds": 15,
                                                    "failureThreshold": 240, "timeoutSeconds": 3}}))
    assert ctr["startupProbe"]["periodSeconds"] * ctr["startupProbe"]["failureThreshold"] == 3600


@pytest.mark.parametrize("gpus", [1, 8])
def test_gpu_requests_and_limits(chart, gpus):
    resources = container(render(chart, {"gpus": gpus}))["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == gpus
    assert resources["limits"]["nvidia.com/gpu"] == gpus


def test_gpus_merge_with_other_resources(chart):
    resources = container(render(chart, ALL_ON))["resources"]
    assert resources["requests"] == {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": 8}
    assert resources["limits"] == {"memory": "512Gi", "nvidia.com/gpu": 8}


def test_no_gpu_resource_when_gpus_is_zero(chart):
    resources = container(render(chart, {"gpus": 0}))["resources"]
    assert "nvidia.com/gpu" not in str(resources)


@pytest.mark.parametrize("drain, sleep", [(120, 0), (1, 0), (600, 0), (300, 10)])
def test_grace_period_is_drain_plus_30(chart, drain, sleep):
    docs = render(chart, {"drainTimeoutSeconds": drain, "preStopSleepSeconds": sleep})
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == drain + 30 + sleep
    ctr = pod["containers"][0]
    assert env_of(ctr)["MONOLITH_SERVER__DRAIN_TIMEOUT_S"]["value"] == str(drain)
    if sleep:
        assert ctr["lifecycle"] == {"preStop": {"sleep": {"seconds": sleep}}}
    else:
        assert "lifecycle" not in ctr


def test_config_map_and_env(chart):
    docs = render(chart)
    objs = by_kind(docs)
    config = objs["ConfigMap"]["data"]["config.toml"]
    assert config == chart.values["config"]
    tomllib.loads(config)
    ctr = container(docs)
    env = env_of(ctr)
    assert env["MONOLITH_CONFIG"]["value"] == "/etc/monolith/config.toml"
    assert env["MONOLITH_SERVER__PORT"]["value"] == "8000"
    assert ctr["image"] == "monolith:cuda" and ctr["args"] == []
    mounts = {m["name"]: m for m in ctr["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/monolith"
    volumes = {v["name"]: v for v in objs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    sources = volumes["config"]["projected"]["sources"]
    assert sources[0]["configMap"] == {"name": FULLNAME,
                                       "items": [{"key": "config.toml", "path": "config.toml"}]}


def test_default_config_loads_in_monolith(chart, tmp_path):
    """The default config.toml is one monolith's own loader accepts (where monolith is installed)."""
    config_mod = pytest.importorskip("monolith.config")
    path = tmp_path / "config.toml"
    path.write_text(chart.values["config"])
    settings = config_mod.load_settings(path, environ={})
    assert settings.llm.model.startswith("/app/weights/")
    assert settings.rag.index_path.startswith("/app/data/")


def test_rendered_env_loads_in_monolith(chart, tmp_path):
    """The pod's MONOLITH_* variables are keys the server knows (once it has drain and API keys)."""
    config_mod = pytest.importorskip("monolith.config")
    known = config_mod.ServerConfig.model_fields
    if not {"drain_timeout_s", "api_keys_file"} <= known.keys():
        pytest.skip("this monolith has no server.drain_timeout_s / server.api_keys_file yet")
    docs = render(chart, {"auth": {"enabled": True, "apiKeys": ["k"], "adminToken": "s3cret"}})
    path = tmp_path / "config.toml"
    path.write_text(by_kind(docs)["ConfigMap"]["data"]["config.toml"])
    keys = tmp_path / "api_keys"
    keys.write_text("k\n")
    environ = {}
    for name, entry in env_of(container(docs)).items():
        environ[name] = entry.get("value", "s3cret")  # secretKeyRef: the token's text
    environ["MONOLITH_SERVER__API_KEYS_FILE"] = str(keys)
    environ.pop("MONOLITH_CONFIG")
    settings = config_mod.load_settings(path, environ=environ)
    assert settings.server.drain_timeout_s == 120
    assert settings.server.admin_token == "s3cret"


def test_created_secret_wiring(chart):
    docs = render(chart, {"auth": {"enabled": True, "apiKeys": ["k-one", "k-two"],
                                   "adminToken": "s3cret"}})
    objs = by_kind(docs)
    data = {k: base64.b64decode(v).decode() for k, v in objs["Secret"]["data"].items()}
    assert data == {"api_keys": "k-one\nk-two\n", "admin_token": "s3cret"}
    assert_secret_wiring(docs, FULLNAME)
    annotations = objs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" in annotations and "checksum/config" in annotations


def test_existing_secret_wiring(chart):
    docs = render(chart, {"auth": {"enabled": True, "existingSecret": "monolith-auth",
                                   "apiKeysKey": "keys", "adminTokenKey": "token"}})
    assert "Secret" not in by_kind(docs)
    assert_secret_wiring(docs, "monolith-auth", keys_key="keys", token_key="token")


def assert_secret_wiring(docs, secret, keys_key="api_keys", token_key="admin_token"):
    ctr = container(docs)
    env = env_of(ctr)
    assert env["MONOLITH_SERVER__API_KEYS_FILE"]["value"] == "/etc/monolith/secrets/api_keys"
    assert env["MONOLITH_SERVER__ADMIN_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": secret, "key": token_key}}
    assert "value" not in env["MONOLITH_SERVER__ADMIN_TOKEN"]
    volumes = {v["name"]: v for v in by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    (secret_source,) = [s["secret"] for s in volumes["config"]["projected"]["sources"] if "secret" in s]
    assert secret_source["name"] == secret
    (item,) = secret_source["items"]
    assert (item["key"], item["path"]) == (keys_key, "secrets/api_keys")
    # mounted at /etc/monolith, so the file is /etc/monolith/secrets/api_keys
    mount = {m["name"]: m for m in ctr["volumeMounts"]}["config"]
    assert mount["mountPath"] + "/" + item["path"] == env["MONOLITH_SERVER__API_KEYS_FILE"]["value"]


def test_auth_disabled_sets_no_secret(chart):
    docs = render(chart, {"auth": {"enabled": False}})
    assert "Secret" not in by_kind(docs)
    env = env_of(container(docs))
    assert "MONOLITH_SERVER__API_KEYS_FILE" not in env and "MONOLITH_SERVER__ADMIN_TOKEN" not in env


def test_volumes_defaults(chart):
    docs = render(chart)
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["weights"]["persistentVolumeClaim"] == {"claimName": "monolith-weights",
                                                           "readOnly": True}
    assert "emptyDir" in volumes["cache"] and "emptyDir" in volumes["data"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"config": "/etc/monolith", "shm": "/dev/shm", "cache": "/app/cache",
                      "data": "/app/data", "weights": "/app/weights"}
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_weights_baked_into_the_image(chart):
    docs = render(chart, {"weights": {"source": "image"},
                          "image": {"repository": "registry.example/monolith-weights",
                                    "tag": "cuda-2026", "pullPolicy": "IfNotPresent"}})
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert "weights" not in {v["name"] for v in pod["volumes"]}
    assert "/app/weights" not in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert pod["containers"][0]["image"] == "registry.example/monolith-weights:cuda-2026"


def test_cache_and_data_claims(chart):
    docs = render(chart, ALL_ON)
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["cache"]["hostPath"] == {"path": "/var/lib/monolith/cache", "type": "DirectoryOrCreate"}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "monolith-data"}
    assert volumes["weights"]["persistentVolumeClaim"]["claimName"] == "weights-rox"
    weights_mount = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}["weights"]
    assert weights_mount["subPath"] == "v1" and weights_mount["readOnly"] is True
    assert volumes["shm"]["emptyDir"]["sizeLimit"] == "32Gi"


def test_one_pod_per_node(chart):
    pod = by_kind(render(chart))["Deployment"]["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "monolith",
                                                    "app.kubernetes.io/instance": RELEASE}
    strategy = by_kind(render(chart))["Deployment"]["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_service_and_pdb(chart):
    objs = by_kind(render(chart))
    (port,) = objs["Service"]["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 8000, "http")
    pdb = objs["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"] == objs["Service"]["spec"]["selector"]


def test_ingress_websocket_and_affinity_annotations(chart):
    ingress = by_kind(render(chart, ALL_ON))["Ingress"]
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert notes["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert notes["nginx.ingress.kubernetes.io/session-cookie-name"] == "monolith-affinity"
    assert notes["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}


def test_ingress_user_annotations_win(chart):
    values = with_(ALL_ON, **{"ingress.annotations": {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"}})
    notes = by_kind(render(chart, values))["Ingress"]["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"


def test_http_route(chart):
    route = by_kind(render(chart, ALL_ON))["HTTPRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == ALL_ON["httpRoute"]["parentRefs"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": FULLNAME, "port": 8000}]
    assert rule["timeouts"] == {"request": "3600s", "backendRequest": "3600s"}


def test_keda_scaled_object(chart):
    objs = by_kind(render(chart, ALL_ON))
    assert "HorizontalPodAutoscaler" not in objs
    assert "replicas" not in objs["Deployment"]["spec"]  # the autoscaler owns the count
    so = objs["ScaledObject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": FULLNAME}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 6)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus.monitoring.svc:9090"
    assert meta["query"] == (f'sum(monolith_voice_sessions_active{{namespace="{NAMESPACE}", '
                             f'pod=~"{FULLNAME}-.*"}})')
    assert meta["threshold"] == "40"


def test_keda_custom_query(chart):
    values = with_(ALL_ON, **{"autoscaling.keda.query": "sum(monolith_voice_sessions_active)"})
    meta = by_kind(render(chart, values))["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    assert meta["query"] == "sum(monolith_voice_sessions_active)"


def test_hpa_fallback(chart):
    objs = by_kind(render(chart, VARIANTS["all-on-hpa"]))
    assert "ScaledObject" not in objs
    assert "replicas" not in objs["Deployment"]["spec"]
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == FULLNAME
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "monolith_voice_sessions_active"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "40"}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_no_autoscaler_by_default(chart):
    objs = by_kind(render(chart))
    assert not {"ScaledObject", "HorizontalPodAutoscaler"} & objs.keys()
    assert objs["Deployment"]["spec"]["replicas"] == 1


def test_config_change_rolls_the_pods(chart):
    def checksum(values):
        docs = render(chart, values)
        return by_kind(docs)["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"config": "[server]\nlog_level = \"debug\"\n"})
