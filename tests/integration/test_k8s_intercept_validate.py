"""`devbridge intercept SVC --steal|--mirror`, step 1 of docs/intercept.md
against kubesim with the real kubectl: the checks (72, 70, 69, 68, 63) and
`--dry-run` (the agent's objects, Pod Security "restricted", the selector
swap, named targetPorts resolved), each time asserting that nothing was
created in the namespace and that the Service is unchanged."""

import json
import os
import subprocess

import pytest

from helpers import devbridge_bin
from k8s_helpers import echo_pod, kb, rsim, service  # noqa: F401

NS = "icpt"
RBAC_KINDS = "jobs,serviceaccounts,roles,rolebindings,secrets"


def named_pod(name, labels, port_name="web", port=8080):
    pod = echo_pod(name, NS, labels, port)
    pod["spec"]["containers"][0]["ports"] = [{"name": port_name, "containerPort": port}]
    return pod


@pytest.fixture(scope="module", autouse=True)
def cluster(rsim):  # noqa: F811
    """Namespace icpt: pod web-1 (app=web, container port "web" = 8080);
    svc web 80 -> targetPort "web"; svc ext (ExternalName); svc manual (no
    selector); svc mixed (80/TCP, 53/UDP); svc udponly (53/UDP); svc taken
    (annotated as intercepted); svc two (80, 81)."""
    s = rsim
    if not s.is_sim:
        pytest.skip("needs kubesim's user dev")
    s.kubectl_ok("create", "namespace", NS)
    web = service("web", NS, {"app": "web"}, [(80, 8080)])
    web["spec"]["ports"][0].update({"name": "http", "targetPort": "web"})
    ext = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": NS},
           "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    mixed = service("mixed", NS, {"app": "web"}, [(80, 8080), (53, 53)])
    mixed["spec"]["ports"][1].update({"name": "dns", "protocol": "UDP"})
    udponly = service("udponly", NS, {"app": "web"}, [(53, 53)])
    udponly["spec"]["ports"][0]["protocol"] = "UDP"
    taken = service("taken", NS, {"app": "web"}, [(80, 8080)])
    taken["metadata"]["annotations"] = {"devbridge.dev/session": "0123456789"}
    s.apply(named_pod("web-1", {"app": "web"}), web, ext,
            service("manual", NS, None, [(80, 8080)]), mixed, udponly, taken,
            service("two", NS, {"app": "web"}, [(80, 8080), (81, 8081)]))
    s.wait_pods_ready(NS, "web-1")
    return s


# --------------------------------------------------------------------------
# helpers


def ours(cluster):
    """Objects in the namespace labelled managed-by devbridge, but for the
    grant `devbridge rbac` makes (Role/RoleBinding "devbridge")."""
    out = json.loads(cluster.kubectl_ok("get", RBAC_KINDS, "-n", NS, "-l",
                                        "app.kubernetes.io/managed-by=devbridge", "-o", "json"))
    return ["%s/%s" % (o["kind"], o["metadata"]["name"]) for o in out["items"]
            if o["metadata"]["name"] != "devbridge"]


def every_object(cluster):
    """Every object of those kinds, labelled or not (but the grant)."""
    out = json.loads(cluster.kubectl_ok("get", RBAC_KINDS, "-n", NS, "-o", "json"))
    return sorted("%s/%s" % (o["kind"], o["metadata"]["name"]) for o in out["items"]
                  if o["metadata"]["name"] != "devbridge")


def svc_json(cluster, name):
    s = json.loads(cluster.kubectl_ok("get", "service", name, "-n", NS, "-o", "json"))
    return {"rv": s["metadata"]["resourceVersion"], "spec": s["spec"],
            "annotations": s["metadata"].get("annotations", {})}


class Untouched:
    """Asserts on exit that nothing was created and the Service did not
    change."""

    def __init__(self, cluster, svc):
        self.cluster, self.svc = cluster, svc

    def __enter__(self):
        self.before = svc_json(self.cluster, self.svc)
        self.objects = every_object(self.cluster)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert ours(self.cluster) == [], "intercept created objects"
            assert every_object(self.cluster) == self.objects
            assert svc_json(self.cluster, self.svc) == self.before, "the Service changed"
        return False


def intercept(kb, *args):  # noqa: F811
    return kb.run("intercept", "-n", NS, "--kubeconfig", kb.kubeconfig, *args)


def grant_dev(cluster, drop_secret_delete=False):
    r = subprocess.run([devbridge_bin(), "rbac", "-n", NS, "--user", "dev"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r
    yaml = r.stdout
    if drop_secret_delete:
        assert "resources: [secrets]\n  verbs: [create, delete]" in yaml, yaml
        yaml = yaml.replace("resources: [secrets]\n  verbs: [create, delete]",
                            "resources: [secrets]\n  verbs: [create]")
    cluster.kubectl_ok("apply", "-f", "-", stdin=yaml)


# --------------------------------------------------------------------------
# the checks


@pytest.mark.parametrize("svc,why", [("ext", "ExternalName (db.example.com)"),
                                     ("manual", "no pod selector")])
def test_not_interceptable_is_72(kb, cluster, svc, why):  # noqa: F811
    with Untouched(cluster, svc):
        r = intercept(kb, svc, "--steal")
        assert r.returncode == 72, r
        assert "cannot be intercepted" in r.stderr and why in r.stderr, r
        r = intercept(kb, "--json", svc, "--steal", "--dry-run")
        assert r.returncode == 72, r
        assert r.json()["error"]["name"] == "service_not_interceptable", r


def test_udp_port_is_70(kb, cluster):  # noqa: F811
    with Untouched(cluster, "mixed"):
        r = intercept(kb, "mixed", "--steal", "-p", "dns")
        assert r.returncode == 70, r
        assert "port 53 is UDP" in r.stderr, r
        r = intercept(kb, "mixed", "--steal", "-p", "53", "--dry-run")
        assert r.returncode == 70, r
    with Untouched(cluster, "udponly"):
        r = intercept(kb, "--json", "udponly", "--mirror")
        assert r.returncode == 70, r
        assert r.json()["error"]["name"] == "unsupported_protocol", r
    # by default the TCP ports only, and a warning about the UDP one
    with Untouched(cluster, "mixed"):
        r = intercept(kb, "mixed", "--steal", "--dry-run")
        assert r.returncode == 0, r
        assert "warning: port 53/UDP (dns) is not intercepted" in r.stderr, r


def test_annotated_service_is_69(kb, cluster):  # noqa: F811
    with Untouched(cluster, "taken"):
        r = intercept(kb, "taken", "--steal")
        assert r.returncode == 69, r
        assert "already intercepted" in r.stderr and "0123456789" in r.stderr, r
        r = intercept(kb, "--json", "taken", "--steal", "--dry-run")
        assert r.returncode == 69 and r.json()["error"]["name"] == "intercept_active", r


def test_missing_service_is_63_as_for_connect(kb, cluster):  # noqa: F811
    with Untouched(cluster, "web"):
        r = intercept(kb, "nosuch", "--steal")
        assert r.returncode == 63, r
        assert "service 'nosuch' not found in namespace 'icpt'" in r.stderr, r
        c = kb.run("connect", "--kubeconfig", kb.kubeconfig, "-t", "%s/nosuch:80" % NS)
        assert c.returncode == r.returncode, c
        r = intercept(kb, "web", "--steal", "-p", "8443")
        assert r.returncode == 63 and "no port 8443" in r.stderr, r


def test_usage_errors(kb, cluster):  # noqa: F811
    for args, want in [(("web",), "give --steal"),
                       (("web", "--steal", "--mirror"), "not both"),
                       (("web", "--steal", "-p", "80", "-p", "http"), "asked for twice"),
                       (("two", "--steal", "--local-port", "9000"), "needs a single port"),
                       (("two", "--steal", "-p", "80:7000", "-p", "81:7000"), "local port 7000"),
                       (("Web", "--steal"), "not a valid service name"),
                       (("web", "--steal", "-p", "x:y"), "local port 'y'")]:
        r = intercept(kb, *args)
        assert r.returncode == 2 and want in r.stderr, (args, r)
    assert ours(cluster) == []


def test_rbac_one_right_missing_is_68_then_passes(kb, cluster):  # noqa: F811
    with Untouched(cluster, "web"):
        # dev holds nothing yet: every right is named
        r = intercept(kb, "web", "--steal", "--context", "kubesim-dev")
        assert r.returncode == 68, r
        assert "18 rights" in r.stderr and "create pods/portforward" in r.stderr, r
        # all but delete secrets
        grant_dev(cluster, drop_secret_delete=True)
        r = intercept(kb, "web", "--steal", "--context", "kubesim-dev")
        assert r.returncode == 68, r
        assert "needs 1 right you lack in namespace icpt" in r.stderr, r
        assert ": delete secrets (" in r.stderr, r
        assert "devbridge rbac -n icpt" in r.stderr, r
        j = intercept(kb, "--json", "web", "--steal", "--context", "kubesim-dev", "--dry-run")
        assert j.returncode == 68 and j.json()["error"]["name"] == "rbac_insufficient", j
        assert "delete secrets" in j.json()["error"]["message"], j
    # the manifest as `devbridge rbac` prints it: enough
    grant_dev(cluster)
    with Untouched(cluster, "web"):
        r = intercept(kb, "web", "--steal", "--context", "kubesim-dev", "--dry-run")
        assert r.returncode == 0, r
        r = intercept(kb, "web", "--mirror", "--context", "kubesim-dev", "--dry-run")
        assert r.returncode == 0, r


# --------------------------------------------------------------------------
# --dry-run


def test_dry_run_job_is_restricted_and_swaps_the_selector(kb, cluster):  # noqa: F811
    with Untouched(cluster, "web"):
        r = intercept(kb, "--json", "web", "--steal", "--dry-run", "--agent-image", "reg/agent:t")
        assert r.returncode == 0, r
        doc = r.json()
    sid = doc["session"]
    assert len(sid) == 10 and all(c in "0123456789abcdef" for c in sid), doc
    assert doc["dry_run"] is True and doc["namespace"] == NS and doc["mode"] == "steal", doc
    # named targetPort "web" resolved to the pod's number
    assert doc["ports"] == [{"port": 80, "name": "http", "target_port": 8080,
                             "target_port_name": "web", "local_port": 80}], doc
    assert doc["resolved_from"] == "web-1", doc
    name = "devbridge-agent-" + sid
    kinds = [o["kind"] for o in doc["objects"]]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Secret", "Job"], kinds
    for o in doc["objects"]:
        assert o["metadata"]["name"] == name and o["metadata"]["namespace"] == NS, o
        assert o["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "devbridge",
                                           "devbridge.dev/session": sid}, o
    objs = {o["kind"]: o for o in doc["objects"]}
    assert objs["Secret"]["data"] == {"token": "REDACTED"}, objs["Secret"]
    assert objs["Role"]["rules"] == [{"apiGroups": [""], "resources": ["services"],
                                      "resourceNames": ["web"],
                                      "verbs": ["get", "update", "patch"]}], objs["Role"]
    job = objs["Job"]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 14400, spec
    assert spec["ttlSecondsAfterFinished"] == 60, spec
    tpl = spec["template"]
    assert tpl["metadata"]["labels"]["devbridge.dev/intercept"] == sid, tpl
    pod = tpl["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == name, pod
    # Pod Security "restricted"
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532, psc
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, psc
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False, sc
    assert sc["capabilities"] == {"drop": ["ALL"]}, sc
    assert sc["readOnlyRootFilesystem"] is True, sc
    assert c["image"] == "reg/agent:t", c
    assert c["command"] == ["devbridge", "agent", "--namespace", NS, "--service", "web",
                            "--session", sid, "--port", "80:8080", "--mode", "steal"], c
    ports = {p["containerPort"]: p.get("name") for p in c["ports"]}
    assert ports == {8080: "web", 4200: "control", 4201: "health"}, c["ports"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 4201}, c
    assert c["env"] == [{"name": "DEVBRIDGE_AGENT_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": name, "key": "token"}}}], c
    # the Service after the swap
    after = doc["service_after"]
    assert after["spec"]["selector"] == {"devbridge.dev/intercept": sid}, after
    ann = after["metadata"]["annotations"]
    assert ann["devbridge.dev/session"] == sid and ann["devbridge.dev/mode"] == "steal", ann
    assert json.loads(ann["devbridge.dev/original-selector"]) == {"app": "web"}, ann
    assert after["metadata"]["resourceVersion"] == svc_json(cluster, "web")["rv"], after


def test_dry_run_for_a_person(kb, cluster):  # noqa: F811
    with Untouched(cluster, "web"):
        r = intercept(kb, "web", "--mirror", "--dry-run", "-p", "http:18080")
        assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("# devbridge intercept --dry-run: nothing was created"), out
    assert "port 80 (http) -> agent :8080 (targetPort web) -> 127.0.0.1:18080" in out, out
    for want in ("kind: ServiceAccount", "kind: Role\n", "kind: RoleBinding", "kind: Secret",
                 "kind: Job", "token: REDACTED", "runAsNonRoot: true", "- ALL",
                 "type: RuntimeDefault", "devbridge.dev/intercept: ", "- pods",
                 "devbridge.dev/mode: mirror"):
        assert want in out, "%r not in:\n%s" % (want, out)
    # the objects read back as YAML: kubectl takes them (client side only)
    docs = out.split("\n---\n")
    assert len(docs) == 7, out


def test_config_intercept_entry(kb, cluster, tmp_path):  # noqa: F811
    cfg = tmp_path / "devbridge.yaml"
    cfg.write_text("bridge:\n  namespace: %s\n  agent_image: my-reg/agent:v1\n  intercepts:\n"
                   "    - service: web\n      port: 80\n      local_port: 18081\n"
                   "      mode: mirror\n" % NS)
    with Untouched(cluster, "web"):
        r = kb.run("--config", str(cfg), "--json", "intercept", "--kubeconfig", kb.kubeconfig,
                   "--dry-run")
        assert r.returncode == 0, r
    doc = r.json()
    assert doc["service"] == "web" and doc["mode"] == "mirror", doc
    assert doc["image"] == "my-reg/agent:v1", doc
    assert doc["ports"][0]["local_port"] == 18081, doc
    role = next(o for o in doc["objects"] if o["kind"] == "Role")
    assert role["rules"][1] == {"apiGroups": [""], "resources": ["pods"],
                                "verbs": ["get", "list"]}, role
    # the flags win over the entry
    r = kb.run("--config", str(cfg), "--json", "intercept", "web", "--steal", "--local-port",
               "18082", "--kubeconfig", kb.kubeconfig, "--dry-run")
    assert r.returncode == 0, r
    assert r.json()["mode"] == "steal" and r.json()["ports"][0]["local_port"] == 18082, r
    # a bad entry: file:line:col
    cfg.write_text("bridge:\n  intercepts:\n    - service: web\n      mode: sideways\n")
    r = kb.run("--config", str(cfg), "intercept", "--kubeconfig", kb.kubeconfig, "--dry-run")
    assert r.returncode == 3, r
    assert "%s:4:13:" % cfg in r.stderr and "sideways" in r.stderr, r
    assert os.path.exists(kb.kubeconfig)
