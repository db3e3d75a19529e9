"""deploy/kubernetes: rendered by kustomize, every object validated strictly, the rules held.

No cluster can run here, so these tests check the manifests themselves, with the tools a
cluster's own checks use: `kubectl kustomize` (the real renderer), kubernetes-validate's
strict OpenAPI schemas and checkov. `make test` installs kubectl and checkov into .tools/
and names them in $KUBECTL and $CHECKOV.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from compose_env import interpolate
from helpers import INIT_SECRETS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
# The oldest and the newest minor version we claim; kubectl is v1.34.
KUBERNETES_VERSIONS = ("1.30", "1.34")
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
# Every image the stack runs, and its tag unless kustomization.yaml's `images:` says otherwise.
IMAGES = {
    "flask-stack-web": "latest",
    "flask-stack-nginx": "latest",
    "flask-stack-pgbouncer": "latest",
    "postgres": "17",
    "redis": "8",
}
Obj = dict[str, Any]


def tool(name: str) -> str:
    """Return the path of a tool `make test` installed, or fail saying how to get it."""
    path = os.environ.get(name.upper(), "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"${name.upper()} does not name {name}: run the tests with `make test`")
    return path


def render(folder: Path) -> list[Obj]:
    """Return the objects `kubectl kustomize folder` prints."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def copy_with_secrets(destination: Path) -> Path:
    """Copy deploy/kubernetes (without any local secrets) and generate throwaway ones."""
    shutil.copytree(K8S, destination, ignore=shutil.ignore_patterns("secrets"))
    env = {
        "PATH": os.environ["PATH"],
        "SECRETS_ROOT": str(destination / "secrets"),
        "APP_UID": "0",
        "PGDATA_SEEN": str(destination / "no-pgdata"),
    }
    subprocess.run([sys.executable, str(INIT_SECRETS)], env=env, check=True, capture_output=True)
    return destination


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_with_secrets(tmp_path_factory.mktemp("k8s") / "kubernetes")


@pytest.fixture(scope="module")
def objects(base: Path) -> list[Obj]:
    return render(base)


@pytest.fixture(scope="module")
def ingress_objects(base: Path) -> list[Obj]:
    """The documented alternative: an overlay using the ingress component."""
    overlay = base.parent / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../kubernetes]\ncomponents: [../kubernetes/components/ingress]\n"
    )
    return render(overlay)


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def generated(objects: list[Obj], kind: str, name: str) -> Obj:
    """Return a generated ConfigMap or Secret by its name before kustomize's hash suffix."""
    matches = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(f"{name}-")
    ]
    assert len(matches) == 1, f"{kind}/{name}-<hash>: {len(matches)} found"
    return matches[0]


def workloads(objects: list[Obj]) -> Iterator[Obj]:
    return (o for o in objects if o["kind"] in WORKLOADS)


def template(workload: Obj) -> Obj:
    spec = workload["spec"]
    return (spec["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else spec)["template"]


def pod(workload: Obj) -> Obj:
    return template(workload)["spec"]


def container(workload: Obj) -> Obj:
    containers = pod(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def env(workload: Obj, objects: list[Obj]) -> dict[str, Any]:
    """Return the container's environment as the kubelet builds it: the ConfigMaps of
    `envFrom` in order, then `env` (plain values as strings, references as dicts)."""
    variables: dict[str, Any] = {}
    for source in container(workload).get("envFrom", []):
        variables.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for e in container(workload).get("env", []):
        variables[e["name"]] = e.get("value", e.get("valueFrom"))
    return variables


def expanded(variables: dict[str, Any], objects: list[Obj]) -> dict[str, str]:
    """Return `env`'s variables as the container sees them: ConfigMap keys looked up and
    `$(NAME)` references to earlier variables replaced, as the kubelet does."""
    values: dict[str, str] = {}
    for key, value in variables.items():
        if isinstance(value, dict) and "configMapKeyRef" in value:
            ref = value["configMapKeyRef"]
            value = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        if isinstance(value, str):
            value = re.sub(r"\$\((\w+)\)", lambda m: values.get(m[1], m[0]), value)
        values[key] = value
    return values


def compose() -> Obj:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_strictly(objects, ingress_objects, version):
    # A missing schema raises SchemaNotFoundError: a failure here, never a warning.
    for obj in [*objects, *ingress_objects]:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field(objects):
    web = copy.deepcopy(find(objects, "Deployment", "web"))
    web["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_stack_has_every_part(objects):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for part in [
        ("Deployment", "nginx"),
        ("Deployment", "web"),
        ("Deployment", "pgbouncer"),
        ("Deployment", "worker"),
        ("StatefulSet", "db"),
        ("StatefulSet", "redis"),
        ("Job", "migrate"),
        ("PodDisruptionBudget", "web"),
        ("HorizontalPodAutoscaler", "web"),
        ("NetworkPolicy", "default-deny-ingress"),
    ]:
        assert part in kinds
    for name in ("web", "nginx", "pgbouncer", "db", "redis"):
        assert ("Service", name) in kinds
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] != "Namespace"} == {
        "flask-stack"
    }


def test_postgres_and_redis_keep_their_data_on_volume_claims(objects):
    for name, path in (("db", "/var/lib/postgresql/data"), ("redis", "/data")):
        statefulset = find(objects, "StatefulSet", name)
        assert statefulset["spec"]["replicas"] == 1
        claims = [c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]]
        mounts = {m["mountPath"]: m["name"] for m in container(statefulset)["volumeMounts"]}
        assert mounts[path] in claims


def test_web_probes_readiness_on_readyz_and_liveness_on_healthz(objects):
    web = container(find(objects, "Deployment", "web"))
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": 8000, "metrics": 9100}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = web[probe]["httpGet"]
        assert get["port"] == "http"
        # Without it the kubelet sends the pod's IP as Host and the app answers 400.
        assert {"name": "Host", "value": "localhost"} in get["httpHeaders"]


def test_web_rollout_never_lowers_capacity(objects):
    web = find(objects, "Deployment", "web")
    rolling = web["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    assert rolling["maxSurge"] >= 1
    assert "replicas" not in web["spec"]  # the HPA owns the count; an apply must not reset it


def test_web_is_stopped_only_after_prestop_drain_and_graceful_timeout(objects):
    web = find(objects, "Deployment", "web")
    command = container(web)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    prestop = int(command[1])
    assert prestop >= 6  # CoreDNS caches up to 5 s, nginx re-resolves every second
    drain = int(env(web, objects)["DRAIN_SECONDS"])
    gunicorn = runpy.run_path(str(ROOT / "web" / "gunicorn.conf.py"))
    needed = prestop + drain + gunicorn["graceful_timeout"]
    assert pod(web)["terminationGracePeriodSeconds"] >= needed
    # gunicorn creates DRAIN_FILE on SIGTERM: it must be on a writable volume.
    mounts = [m["mountPath"] for m in container(web)["volumeMounts"] if not m.get("readOnly")]
    assert any(env(web, objects)["DRAIN_FILE"].startswith(f"{m}/") for m in mounts)


def test_replicated_pods_spread_over_nodes_and_wait_before_stopping(objects):
    for name in ("web", "nginx", "pgbouncer"):
        deployment = find(objects, "Deployment", name)
        [spread] = pod(deployment)["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
        # Endpoints are removed while the pod is already stopping: keep serving meanwhile.
        sleep = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        assert int(sleep[1]) < pod(deployment)["terminationGracePeriodSeconds"]


def test_every_pod_drops_every_privilege_it_does_not_need(objects):
    nginx_caps = set(compose()["services"]["nginx"]["cap_add"])
    for workload in workloads(objects):
        spec, name = pod(workload), workload["metadata"]["name"]
        c = container(workload)
        security = c["securityContext"]
        assert spec["automountServiceAccountToken"] is False, name
        # Service links would add variables such as REDIS_PORT=tcp://... (settings' names).
        assert spec["enableServiceLinks"] is False, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), name
        assert "memory" in c["resources"]["limits"], name
        if name == "nginx":
            # Its master binds 80/443 and switches to the nginx user: what compose grants.
            assert set(security["capabilities"]["add"]) <= nginx_caps
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert "add" not in security["capabilities"], name


def test_web_and_migrate_run_as_the_images_app_user(objects):
    uid = int(re.search(r"ARG APP_UID=(\d+)", (ROOT / "web" / "Dockerfile").read_text())[1])
    for kind, name in (("Deployment", "web"), ("Job", "migrate"), ("CronJob", "auth-events-prune")):
        assert pod(find(objects, kind, name))["securityContext"]["runAsUser"] == uid


def test_every_mount_and_reference_resolves(objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for workload in workloads(objects):
        spec, c = pod(workload), container(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for mount in c["volumeMounts"]:
            assert mount["name"] in volumes.keys() | claims, mount
        for volume in volumes.values():
            if "secret" in volume:
                secret = find(objects, "Secret", volume["secret"]["secretName"])
                for item in volume["secret"].get("items", []):
                    assert item["key"] in secret["data"]
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
        for source in c.get("envFrom", []):
            assert ("ConfigMap", source["configMapRef"]["name"]) in names
        for value in env(workload, objects).values():
            if isinstance(value, dict) and "configMapKeyRef" in value:
                ref = value["configMapKeyRef"]
                assert ref["key"] in find(objects, "ConfigMap", ref["name"])["data"]


def test_a_disruption_budget_and_a_cpu_autoscaler_cover_web(objects):
    labels = find(objects, "Deployment", "web")["spec"]["template"]["metadata"]["labels"]
    pdb = find(objects, "PodDisruptionBudget", "web")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    hpa = find(objects, "HorizontalPodAutoscaler", "web")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert hpa["minReplicas"] >= 2  # one pod can be evicted while another serves
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_migrate_job_runs_composes_migrate_command_bootstrap_then_owner_on_postgres(objects):
    services = compose()["services"]
    job = find(objects, "Job", "migrate")
    assert container(job)["command"] == services["migrate"]["command"]
    assert container(job)["command"] == [
        "sh", "-ec", "flask access bootstrap && flask db upgrade && flask access grant"
    ]  # fmt: skip
    assert job["spec"]["parallelism"] == 1  # Alembic takes no lock
    assert pod(job)["restartPolicy"] == "Never"
    migrate = env(job, objects)
    web = env(find(objects, "Deployment", "web"), objects)
    db = env(find(objects, "StatefulSet", "db"), objects)
    assert migrate["POSTGRES_HOST"] == "db"  # straight to PostgreSQL, not through PgBouncer
    assert migrate["POSTGRES_SUPERUSER"] == db["POSTGRES_USER"]  # bootstraps the roles only
    assert migrate["POSTGRES_USER"] not in (db["POSTGRES_USER"], web["POSTGRES_USER"])
    assert migrate["POSTGRES_APP_USER"] == web["POSTGRES_USER"]
    secret = find(objects, "Secret", pod(job)["volumes"][0]["secret"]["secretName"])
    mount = container(job)["volumeMounts"][0]["mountPath"]
    files = (
        "POSTGRES_PASSWORD_FILE",
        "POSTGRES_SUPERUSER_PASSWORD_FILE",
        "POSTGRES_APP_PASSWORD_FILE",
    )
    for variable in files:
        assert migrate[variable].removeprefix(f"{mount}/") in secret["data"]


def test_the_retention_cronjob_prunes_as_the_schema_owner_on_postgres(objects):
    cron = find(objects, "CronJob", "auth-events-prune")
    job, migrate = env(cron, objects), env(find(objects, "Job", "migrate"), objects)
    assert container(cron)["command"] == ["flask", "auth-events", "prune"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert (job["POSTGRES_HOST"], job["POSTGRES_USER"]) == ("db", migrate["POSTGRES_USER"])
    secret = find(objects, "Secret", pod(cron)["volumes"][0]["secret"]["secretName"])
    assert sorted(secret["data"]) == ["postgres_owner_password", "redis_password", "secret_key"]
    # compose's value (empty: the app's default, 90 days), from the generated housekeeping.env.
    assert job["AUTH_EVENTS_RETENTION_DAYS"] == ""
    db_policy = find(objects, "NetworkPolicy", "db")
    allowed = [f["podSelector"]["matchLabels"] for f in db_policy["spec"]["ingress"][0]["from"]]
    assert template(cron)["metadata"]["labels"] in allowed


def test_web_reaches_postgres_through_pgbouncer_in_transaction_mode(objects):
    web = env(find(objects, "Deployment", "web"), objects)
    bouncer_deployment = find(objects, "Deployment", "pgbouncer")
    bouncer = expanded(env(bouncer_deployment, objects), objects)
    service = find(objects, "Service", "pgbouncer")
    assert web["POSTGRES_HOST"] == service["metadata"]["name"]
    assert int(web["POSTGRES_PORT"]) == service["spec"]["ports"][0]["port"] == 6432
    assert bouncer["PGBOUNCER_DB_HOST"] == "db"
    assert bouncer["PGBOUNCER_POOL_MODE"] == "transaction"
    user, path = bouncer["PGBOUNCER_USERS"].split("=")
    assert user == web["POSTGRES_USER"]
    assert path == web["POSTGRES_PASSWORD_FILE"]  # the same Secret key as web's
    mount = container(bouncer_deployment)["volumeMounts"][0]["mountPath"]
    assert Path(path).parent == Path(mount)


def test_the_connection_budget_holds(objects):
    web = env(find(objects, "Deployment", "web"), objects)
    hpa = find(objects, "HorizontalPodAutoscaler", "web")["spec"]
    bouncer_deployment = find(objects, "Deployment", "pgbouncer")
    bouncer = env(bouncer_deployment, objects)
    args = container(find(objects, "StatefulSet", "db"))["args"]
    max_connections = int(args[args.index("-c") + 1].removeprefix("max_connections="))

    per_worker = int(web["DB_POOL_SIZE"]) + int(web["DB_MAX_OVERFLOW"])
    assert int(web["DB_POOL_SIZE"]) >= int(web["GUNICORN_THREADS"])  # no thread waits
    clients = hpa["maxReplicas"] * int(web["WEB_CONCURRENCY"]) * per_worker
    # Worst case: every web pod's connections land on one PgBouncer pod.
    assert clients <= int(bouncer["PGBOUNCER_MAX_CLIENT_CONN"])
    per_bouncer = int(bouncer["PGBOUNCER_MAX_DB_CONNECTIONS"])
    assert int(bouncer["PGBOUNCER_DEFAULT_POOL_SIZE"]) <= per_bouncer
    servers = bouncer_deployment["spec"]["replicas"] * per_bouncer
    # Room left for superusers (3 reserved), the migrate Job and an operator's psql.
    assert servers + 10 <= max_connections


def test_nginx_reaches_the_pods_of_a_headless_web_service_through_cluster_dns(objects):
    assert find(objects, "Service", "web")["spec"]["clusterIP"] == "None"
    nginx = find(objects, "Deployment", "nginx")
    variables = env(nginx, objects)
    assert variables["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # nginx's resolver applies no search domains: the name must be complete.
    assert variables["WEB_UPSTREAM_HOST"] == "web.$(POD_NAMESPACE).svc.cluster.local"
    assert variables["NGINX_RESOLVER"] == "kube-dns.kube-system.svc.cluster.local"
    [mount] = [m for m in container(nginx)["volumeMounts"] if m["name"] == "upstream"]
    # A template the image's envsubst step renders over conf.d/upstream.conf.
    assert mount["mountPath"] == "/etc/nginx/templates/upstream.conf.template"
    template = generated(objects, "ConfigMap", "nginx-upstream")["data"][mount["subPath"]]
    assert set(re.findall(r"\$\{(\w+)\}", template)) <= variables.keys()


def test_web_trusts_forwarded_headers_from_the_nginx_pods_only(objects, ingress_objects):
    settings = generated(objects, "ConfigMap", "app-env")["data"]
    assert settings["PROXY_FIX_HOPS"] == "1"
    peers = find(objects, "Service", settings["PROXY_FIX_TRUSTED"])
    nginx = find(objects, "Deployment", "nginx")
    assert peers["spec"]["clusterIP"] == "None"  # DNS answers the pods' own addresses
    assert peers["spec"]["publishNotReadyAddresses"] is True
    assert peers["spec"]["selector"] == nginx["spec"]["selector"]["matchLabels"]
    # With the Ingress component, the controller's pods are the proxy; nginx-peers is gone.
    kinds = {(o["kind"], o["metadata"]["name"]) for o in ingress_objects}
    assert ("Service", "nginx-peers") not in kinds
    trusted = generated(ingress_objects, "ConfigMap", "app-env")["data"]["PROXY_FIX_TRUSTED"]
    assert trusted and "nginx-peers" not in trusted


def directives(text: str) -> list[str]:
    """Return the nginx directives of a config, one per line, comments and blanks dropped."""
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_nginx_upstream_for_kubernetes_differs_from_composes_only_in_resolver_and_name():
    compose_conf = directives((ROOT / "nginx" / "upstream.conf").read_text())
    k8s_conf = directives((K8S / "nginx" / "upstream.conf.template").read_text())
    swap = {
        "resolver 127.0.0.11 valid=1s ipv6=off;": "resolver ${NGINX_RESOLVER} valid=1s ipv6=off;",
        "server web:8000 resolve max_fails=1 fail_timeout=10s;": (
            "server ${WEB_UPSTREAM_HOST}:8000 resolve max_fails=1 fail_timeout=10s;"
        ),
    }
    assert swap.keys() <= set(compose_conf)
    assert k8s_conf == [swap.get(line, line) for line in compose_conf]


def test_every_image_is_set_in_the_kustomization_images_list(base, objects, tmp_path):
    def images(objs: list[Obj]) -> set[str]:
        return {container(w)["image"] for w in workloads(objs)}

    assert images(objects) == {f"{name}:{tag}" for name, tag in IMAGES.items()}
    moved = tmp_path / "kubernetes"
    shutil.copytree(base, moved)
    kustomization = yaml.safe_load((moved / "kustomization.yaml").read_text())
    for image in kustomization["images"]:
        image["newName"] = f"registry.example.com/team/{image['name']}"
        image["newTag"] = "v2"
    (moved / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    assert images(render(moved)) == {f"registry.example.com/team/{name}:v2" for name in IMAGES}


def test_secrets_come_from_git_ignored_generated_files(base, objects):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for generator in kustomization["secretGenerator"]:
        assert generator.keys() == {"name", "files"}  # no literals, no env files
        for entry in generator["files"]:
            assert entry.split("=", 1)[1].startswith("secrets/")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(K8S / "secrets" / "web" / "secret_key")], cwd=ROOT
    )
    assert ignored.returncode == 0
    tracked = subprocess.run(
        ["git", "ls-files", str(K8S)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked and not [f for f in tracked if "/secrets/" in f]

    def data(name: str) -> dict[str, str]:
        secret = generated(objects, "Secret", name)
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    web = data("web-secrets")
    assert web["secret_key"] == (base / "secrets" / "canonical" / "secret_key").read_text()
    assert "postgres_password" not in web  # only migrate holds the schema owner's password
    redis = data("redis-secrets")
    app_hash = hashlib.sha256(web["redis_password"].encode()).hexdigest()
    assert f"user app on #{app_hash} " in redis["redis.conf"]
    assert web["redis_password"] not in redis["redis.conf"]


def test_make_k8s_secrets_generates_once_then_keeps_the_values(tmp_path):
    folder = tmp_path / "kubernetes"
    command = ["make", "--no-print-directory", "-C", str(ROOT), "k8s-secrets", f"K8S_DIR={folder}"]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    values = {p: p.read_text() for p in folder.joinpath("secrets").rglob("*") if p.is_file()}
    subprocess.run(command, capture_output=True, text=True, check=True)
    assert values == {p: p.read_text() for p in values}
    # Every file the kustomization reads exists.
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for generator in kustomization["secretGenerator"]:
        for entry in generator["files"]:
            assert (folder / entry.split("=", 1)[1]).is_file()
    for value in values.values():
        assert not value or value not in first.stdout + first.stderr


def test_the_ingress_alternative_replaces_nginx_with_a_cert_manager_ingress(ingress_objects):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in ingress_objects}
    assert ("Deployment", "nginx") not in kinds
    assert ("Service", "nginx") not in kinds
    ingress = find(ingress_objects, "Ingress", "web")
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    [tls] = ingress["spec"]["tls"]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in tls["hosts"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "web"
    assert ("NetworkPolicy", "web-from-ingress-controller") in kinds


# Checks skipped for the whole stack, each a decision the doc explains: the tag and digest
# are set in kustomization.yaml's `images:` by whoever deploys (`latest` is what the compose
# stack builds), and IfNotPresent is right for immutable tags and for images loaded into a
# node by hand. Resource-specific skips sit on the resources (checkov.io/skip annotations).
CHECKOV_SKIPS = ("CKV_K8S_14", "CKV_K8S_15", "CKV_K8S_43")


@pytest.mark.parametrize("variant", ["base", "ingress"])
def test_checkov_finds_nothing(objects, ingress_objects, variant, tmp_path):
    rendered = tmp_path / "stack.yaml"
    rendered.write_text(yaml.safe_dump_all(objects if variant == "base" else ingress_objects))
    result = subprocess.run(
        [
            tool("checkov"),
            "--file",
            str(rendered),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100  # it really checked the stack
    assert result.returncode == 0


def resolved(values: dict[str, Any]) -> dict[str, str]:
    """Return compose environment values with their defaults (no .env, empty environment)."""
    return {key: interpolate(str(value), {}.get) for key, value in values.items()}


# Settings Kubernetes sets its own way on purpose, each said in deploy/targets.yml or in the
# manifest: where web finds PostgreSQL (PgBouncer), whose X-Forwarded-* it trusts, no MailDev.
K8S_OWN = {"POSTGRES_HOST", "POSTGRES_PORT", "PROXY_FIX_TRUSTED"}


@pytest.mark.parametrize(
    ("kind", "name", "service"),
    [
        ("Deployment", "web", "web"),
        ("Deployment", "worker", "worker"),
        ("Job", "migrate", "migrate"),
        ("CronJob", "auth-events-prune", "housekeeping"),
        ("Deployment", "nginx", "nginx"),
    ],
)
def test_every_setting_compose_gives_a_service_reaches_kubernetes_by_value(
    objects, kind, name, service
):
    targets = yaml.safe_load((ROOT / "deploy" / "targets.yml").read_text())["kubernetes"]
    overrides = {**targets["environment"], **targets["files"].get(f"{service}-env", {})}
    expected = resolved(compose()["services"][service].get("environment", {}))
    site = generated(objects, "ConfigMap", "site")["data"]
    got = env(find(objects, kind, name), objects)
    for key, value in expected.items():
        if key in K8S_OWN:
            continue
        if key in overrides:
            if overrides[key] is None:  # a secret, or read from `site` below
                assert key not in got or "configMapKeyRef" in got[key], key
                continue
            value = interpolate(str(overrides[key]), {}.get)
        actual = got[key]
        if isinstance(actual, dict):  # TRUSTED_HOSTS: the same value, from `site`
            actual = site[actual["configMapKeyRef"]["key"]]
        assert actual == value, f"{name}: {key}={actual!r}, compose says {value!r}"


def test_kubernetes_runs_the_images_and_probes_compose_names(objects):
    services = compose()["services"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    tags = {image["name"]: image["newTag"] for image in kustomization["images"]}
    name, tag = services["redis"]["image"].split(":")
    assert tags[name] == tag, "redis"
    # Compose's db image adds pgBackRest to the official one (backup/Dockerfile); Kubernetes
    # runs that base (no WAL archiving there yet: docs/deploying.md).
    [base] = re.findall(r"^FROM (\S+) AS db$", (ROOT / "backup" / "Dockerfile").read_text(), re.M)
    name, tag = base.split(":")
    assert tags[name] == tag, "db"
    web = container(find(objects, "Deployment", "web"))
    [path] = re.findall(r"127\.0\.0\.1:8000(/\w+)", services["web"]["healthcheck"]["test"][-1])
    assert web["livenessProbe"]["httpGet"]["path"] == path
    worker = container(find(objects, "Deployment", "worker"))
    assert (
        worker["livenessProbe"]["exec"]["command"] == services["worker"]["healthcheck"]["test"][1:]
    )


def test_a_setting_from_env_reaches_the_rendered_manifests(tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text(
        "RATELIMIT_LOGIN=7/minute\nSERVER_NAME=app.example.com\nDB_POOL_SIZE=6\n"
        # Not the defaults (app, app_web): every pod that names them must follow.
        "POSTGRES_DB=shop\nPOSTGRES_USER=admin\nPOSTGRES_APP_USER=shop_web\n"
    )
    build = tmp_path / "build"
    command = ["make", "--no-print-directory", "-C", str(ROOT), "k8s-settings"]
    command += [f"K8S_BUILD={build}", f"K8S_DIR={copy_with_secrets(tmp_path / 'kubernetes')}"]
    given = {line.split("=")[0] for line in env_file.read_text().splitlines()}
    environ = {k: v for k, v in os.environ.items() if k not in given}
    subprocess.run(
        command, env={**environ, "ENV_FILE": str(env_file)}, check=True, capture_output=True
    )
    objects = render(build)
    web_deployment = find(objects, "Deployment", "web")
    web = env(web_deployment, objects)
    assert web["RATELIMIT_LOGIN"] == "7/minute"
    assert web["DB_POOL_SIZE"] == "6"
    assert generated(objects, "ConfigMap", "site")["data"]["SERVER_NAME"] == "app.example.com"
    database = {"POSTGRES_DB": "shop", "POSTGRES_USER": "admin"}
    db = expanded(env(find(objects, "StatefulSet", "db"), objects), objects)
    assert {key: db[key] for key in database} == database
    migrate = expanded(env(find(objects, "Job", "migrate"), objects), objects)
    assert migrate["POSTGRES_DB"] == "shop"
    assert migrate["POSTGRES_SUPERUSER"] == "admin"
    assert migrate["POSTGRES_APP_USER"] == "shop_web"
    assert expanded(web, objects)["POSTGRES_USER"] == "shop_web"
    pgbouncer = expanded(env(find(objects, "Deployment", "pgbouncer"), objects), objects)
    assert pgbouncer["PGBOUNCER_DB_NAME"] == "shop"
    assert pgbouncer["PGBOUNCER_USERS"] == "shop_web=/run/secrets/app/postgres_app_password"


def test_web_exposes_its_metrics_to_the_clusters_prometheus_only(objects, tmp_path):
    web = find(objects, "Deployment", "web")
    metrics_port = int(env(web, objects)["METRICS_PORT"])  # compose's, via web.env
    ports = {p["name"]: p["containerPort"] for p in container(web)["ports"]}
    assert ports["metrics"] == metrics_port
    annotations = template(web)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"
    # The web NetworkPolicy: http from nginx; metrics from Prometheus' pods, nothing else.
    rules = find(objects, "NetworkPolicy", "web")["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in rules}
    assert by_port["http"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nginx"}}}
    ]
    [peer] = by_port["metrics"]
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    # The scrape job for a cluster's Prometheus keeps exactly those annotations and port name.
    scrape = K8S / "prometheus-scrape.yml"
    text = scrape.read_text()
    assert "__meta_kubernetes_pod_annotation_prometheus_io_scrape" in text
    assert "regex: metrics" in text
    # (Debian's promtool is built without Kubernetes discovery: it cannot check this job.)
    [job] = yaml.safe_load(text)["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["flask-stack"]
    address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
    joined = f"10.1.2.3:8000;{metrics_port}"
    rewritten = re.sub(
        f"^(?:{address['regex']})$", address["replacement"].replace("$", "\\"), joined
    )
    assert rewritten == f"10.1.2.3:{metrics_port}"
