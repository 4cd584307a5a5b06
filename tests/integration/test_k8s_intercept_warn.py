"""`devbridge intercept SVC --steal --dry-run` warns, and goes on, when the
Service is in a service mesh: its pods have an istio-proxy or linkerd-proxy
container, or they or their namespace ask for injection (istio-injection=
enabled, istio.io/rev, sidecar.istio.io/inject, linkerd.io/inject).  The
warning says what goes wrong (a sidecar injected into the agent's pod too,
mTLS traffic reaching this machine encrypted); it is on stderr and in the
plan's warnings with --json.  kubesim without --runtime: the pods are only
objects, which is all the check reads."""

import json
import subprocess

import pytest

from helpers import devbridge_bin
from k8s_helpers import sim  # noqa: F401 - a fixture


def namespace(name, labels=None, annotations=None):
    md = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md}


def pod(name, ns, containers=("app",), init=(), labels=None, annotations=None):
    md = {"name": name, "namespace": ns, "labels": dict({"app": "web"}, **(labels or {}))}
    if annotations:
        md["annotations"] = annotations
    spec = {"containers": [{"name": c, "image": "kubesim/echo"} for c in containers]}
    if init:
        spec["initContainers"] = [{"name": c, "image": "kubesim/echo"} for c in init]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def svc(ns):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def apply(sim, *objs):  # noqa: F811
    r = sim("apply", "--validate=false", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))
    assert r.returncode == 0, r.stderr


def dry_run(sim, tmp_path, ns):  # noqa: F811
    """The plan with --json: (exit code, the mesh warnings, stderr)."""
    env = {k: v for k, v in sim.env.items() if not k.startswith(("DEVBRIDGE_", "BRIDGE_"))}
    r = subprocess.run([devbridge_bin(), "--json", "--state-dir", str(tmp_path / "state"),
                        "intercept", "web", "-n", ns, "--steal", "--dry-run"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["dry_run"] is True
    mesh = [w for w in doc["warnings"] if w.startswith("service mesh")]
    return mesh, r.stderr


def unchanged(sim, ns):  # noqa: F811
    """Nothing created, the selector as it was."""
    s = json.loads(sim("get", "service", "web", "-n", ns, "-o", "json").stdout)
    assert s["spec"]["selector"] == {"app": "web"}, s["spec"]
    r = sim("get", "jobs,secrets,serviceaccounts", "-n", ns, "-l",
            "app.kubernetes.io/managed-by=devbridge", "-o", "name")
    assert r.stdout.strip() == "", r.stdout


def assert_says_what_breaks(w, mesh, proxy):
    assert w.startswith("service mesh %s (" % mesh), w
    assert "goes on anyway" in w, w
    assert "inject a %s sidecar into the agent's pod" % proxy in w, w
    assert "mTLS" in w and "encrypted" in w, w


def test_no_mesh_no_warning(sim, tmp_path):  # noqa: F811
    apply(sim, namespace("plain"), pod("web-1", "plain"), svc("plain"))
    mesh, err = dry_run(sim, tmp_path, "plain")
    assert mesh == [] and "service mesh" not in err, (mesh, err)
    # injection turned off explicitly is no mesh either
    apply(sim, namespace("off", labels={"istio-injection": "disabled"}),
          pod("web-1", "off", annotations={"sidecar.istio.io/inject": "false",
                                           "linkerd.io/inject": "disabled"}), svc("off"))
    mesh, err = dry_run(sim, tmp_path, "off")
    assert mesh == [], mesh
    unchanged(sim, "off")


def test_istio_namespace_label_and_sidecar(sim, tmp_path):  # noqa: F811
    apply(sim, namespace("shop", labels={"istio-injection": "enabled"}),
          pod("web-1", "shop", containers=("app", "istio-proxy")), svc("shop"))
    mesh, err = dry_run(sim, tmp_path, "shop")
    assert len(mesh) == 1, mesh
    w = mesh[0]
    assert_says_what_breaks(w, "Istio", "istio-proxy")
    assert "namespace shop has label istio-injection=enabled" in w, w
    assert "pod web-1 has container istio-proxy" in w, w
    assert "devbridge: warning: service mesh Istio" in err, err
    unchanged(sim, "shop")


def test_istio_revision_and_native_sidecar(sim, tmp_path):  # noqa: F811
    """istio.io/rev on the namespace; istio-proxy as a native sidecar (an
    init container)."""
    apply(sim, namespace("rev", labels={"istio.io/rev": "canary"}),
          pod("web-1", "rev", init=("istio-proxy",)), svc("rev"))
    mesh, _ = dry_run(sim, tmp_path, "rev")
    assert len(mesh) == 1, mesh
    assert "namespace rev has label istio.io/rev=canary" in mesh[0], mesh
    assert "pod web-1 has container istio-proxy" in mesh[0], mesh


def test_istio_pod_annotation(sim, tmp_path):  # noqa: F811
    apply(sim, namespace("ann"),
          pod("web-1", "ann", annotations={"sidecar.istio.io/inject": "true"}), svc("ann"))
    mesh, _ = dry_run(sim, tmp_path, "ann")
    assert len(mesh) == 1 and "pod web-1 has annotation sidecar.istio.io/inject=true" in mesh[0], mesh


def test_linkerd_namespace_annotation_and_proxy(sim, tmp_path):  # noqa: F811
    apply(sim, namespace("ld", annotations={"linkerd.io/inject": "enabled"}),
          pod("web-1", "ld", containers=("app", "linkerd-proxy")),
          pod("web-2", "ld", containers=("app", "linkerd-proxy")), svc("ld"))
    mesh, err = dry_run(sim, tmp_path, "ld")
    assert len(mesh) == 1, mesh
    w = mesh[0]
    assert_says_what_breaks(w, "Linkerd", "linkerd-proxy")
    assert "namespace ld has annotation linkerd.io/inject=enabled" in w, w
    assert "pod web-1 has container linkerd-proxy" in w, w
    assert "devbridge: warning: service mesh Linkerd" in err, err
    unchanged(sim, "ld")


def test_both_meshes_two_warnings(sim, tmp_path):  # noqa: F811
    apply(sim, namespace("both", labels={"istio-injection": "enabled"}),
          pod("web-1", "both", containers=("app", "linkerd-proxy")), svc("both"))
    mesh, _ = dry_run(sim, tmp_path, "both")
    assert [w.split(" (")[0] for w in mesh] == ["service mesh Istio", "service mesh Linkerd"], mesh


@pytest.mark.parametrize("json_flag", [False, True])
def test_warning_without_json_on_stderr(sim, tmp_path, json_flag):  # noqa: F811
    """A person's --dry-run shows it on stderr too, and still prints the plan."""
    apply(sim, namespace("human", labels={"istio-injection": "enabled"}),
          pod("web-1", "human"), svc("human"))
    env = {k: v for k, v in sim.env.items() if not k.startswith(("DEVBRIDGE_", "BRIDGE_"))}
    args = [devbridge_bin()] + (["--json"] if json_flag else []) + [
        "--state-dir", str(tmp_path / "state"), "intercept", "web", "-n", "human", "--steal",
        "--dry-run"]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r
    assert "devbridge: warning: service mesh Istio (namespace human has label " \
           "istio-injection=enabled)" in r.stderr, r.stderr
    if not json_flag:
        assert r.stdout.startswith("# devbridge intercept --dry-run"), r.stdout[:200]
