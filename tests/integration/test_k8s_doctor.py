"""`devbridge doctor` reports Kubernetes readiness: kubectl, kubeconfig,
cluster reachable; required only when the config has a bridge: section."""

import json
import os
import subprocess

import pytest

from helpers import devbridge_bin
from k8s_helpers import sim  # noqa: F401 - a fixture


def doctor(tmp_path, kubeconfig, with_bridge, config_text=None, *extra):
    cfg = tmp_path / "devbridge.yaml"
    cfg.write_text(config_text or ("bridge:\n  namespace: default\n" if with_bridge else "{}\n"))
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=kubeconfig,
               KUBECACHEDIR=str(tmp_path / "kcache"))
    env.pop("DEVBRIDGE_CONFIG", None)
    r = subprocess.run([devbridge_bin(), "--json", "--config", str(cfg), "--state-dir",
                        str(tmp_path / "state")] + list(extra) + ["doctor"], env=env, capture_output=True,
                       text=True, timeout=120)
    doc = json.loads(r.stdout)
    rows = {row["check"]: row for row in (doc.get("checks") or [])}
    return r.returncode, rows


def test_doctor_cluster_ready(sim, tmp_path):
    rc, rows = doctor(tmp_path, sim.kubeconfig, True)
    assert rc == 0, rows
    for check in ("kubectl", "kubeconfig", "cluster reachable"):
        assert rows[check]["ok"] and rows[check]["required"], rows[check]


def test_doctor_cluster_missing(tmp_path):
    missing = str(tmp_path / "nope" / "kubeconfig")
    rc, rows = doctor(tmp_path, missing, True)
    assert rc == 1
    assert not rows["kubeconfig"]["ok"] and "not found" in rows["kubeconfig"]["detail"]
    # without a bridge: section the same problem does not make the machine unready
    rc, rows = doctor(tmp_path, missing, False)
    assert rc == 0, rows
    assert not rows["kubeconfig"]["ok"] and not rows["kubeconfig"]["required"]


def test_doctor_uses_the_configs_kubeconfig_and_profile(sim, tmp_path):
    """The cluster `connect` would use: bridge.kubeconfig/context (and a
    --profile's), not $KUBECONFIG."""
    missing = str(tmp_path / "nope" / "kubeconfig")
    text = ("bridge:\n  kubeconfig: %s\n  context: kubesim\n"
            "profiles:\n  broken:\n    bridge:\n      context: nosuch\n" % sim.kubeconfig)
    rc, rows = doctor(tmp_path, missing, True, text)
    assert rc == 0, rows
    assert rows["kubeconfig"]["ok"] and rows["kubeconfig"]["detail"] == sim.kubeconfig, rows
    assert rows["cluster reachable"]["ok"] and "kubesim" in rows["cluster reachable"]["detail"]
    rc, rows = doctor(tmp_path, missing, True, text, "--profile", "broken")
    assert rc == 1, rows
    assert not rows["cluster reachable"]["ok"], rows
    assert "nosuch" in rows["cluster reachable"]["detail"], rows


# --------------------------------------------------------------------------
# intercept readiness: the rights intercept's pre-checks ask for (the same
# SelfSubjectAccessReviews) and the namespace's Pod Security level


def kubectl_ok(sim, *args, stdin=None):  # noqa: F811
    r = sim(*args, stdin=stdin)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_doctor_intercept_ready_admin(sim, tmp_path):  # noqa: F811
    """Every right, for the current context even without a bridge: section
    (then the rows do not count), any Service; an unlabelled namespace."""
    rc, rows = doctor(tmp_path, sim.kubeconfig, False)
    assert rc == 0, rows
    r = rows["intercept rights"]
    assert r["ok"] and not r["required"], r
    assert r["detail"].startswith("all 18 rights in namespace default (context kubesim, any service"), r
    p = rows["pod security"]
    assert p["ok"] and not p["required"], p
    assert "namespace default: no pod-security.kubernetes.io/enforce label" in p["detail"], p
    assert "meets restricted, so any level admits it" in p["detail"], p


@pytest.mark.parametrize("level", ["privileged", "baseline", "restricted"])
def test_doctor_pod_security_level(sim, tmp_path, level):  # noqa: F811
    kubectl_ok(sim, "create", "namespace", "shop")
    kubectl_ok(sim, "label", "namespace", "shop", "pod-security.kubernetes.io/enforce=" + level)
    rc, rows = doctor(tmp_path, sim.kubeconfig, True, "bridge:\n  namespace: shop\n")
    assert rc == 0, rows
    p = rows["pod security"]
    assert p["ok"], p
    assert p["detail"] == ("namespace shop: enforce=%s; the agent's pod meets restricted, so any "
                           "level admits it" % level), p
    assert rows["intercept rights"]["ok"], rows["intercept rights"]


def test_doctor_intercept_rights_missing_then_granted(sim, tmp_path):  # noqa: F811
    """User dev (context kubesim-dev) with no grant: every right is missing,
    named for the Service of bridge.intercepts; that makes the machine not
    ready only when the config lists intercepts.  After `devbridge rbac`'s
    manifest is applied: all there."""
    kubectl_ok(sim, "create", "namespace", "shop")
    with_icpt = ("bridge:\n  context: kubesim-dev\n  namespace: shop\n"
                 "  intercepts:\n    - service: web\n      mode: steal\n")
    rc, rows = doctor(tmp_path, sim.kubeconfig, True, with_icpt)
    r = rows["intercept rights"]
    assert rc == 1 and not r["ok"] and r["required"], rows
    assert r["detail"].startswith("18 of 18 rights missing in namespace shop (context "
                                  "kubesim-dev): create jobs.batch, "), r
    assert "update services/web" in r["detail"] and "create pods/portforward" in r["detail"], r
    assert "devbridge rbac -n shop --user YOU" in r["detail"], r
    # a dev who may not read namespaces: said, and not counted
    p = rows["pod security"]
    assert not p["ok"] and not p["required"] and "cannot read its labels" in p["detail"], p
    # connect only (no intercepts): the same answer, not counted
    rc, rows = doctor(tmp_path, sim.kubeconfig, True,
                      "bridge:\n  context: kubesim-dev\n  namespace: shop\n")
    assert rc == 0 and not rows["intercept rights"]["ok"], rows
    assert not rows["intercept rights"]["required"], rows
    assert "update services," in rows["intercept rights"]["detail"], rows  # any Service
    grant = subprocess.run([devbridge_bin(), "rbac", "-n", "shop", "--user", "dev"],
                           capture_output=True, text=True, timeout=30)
    assert grant.returncode == 0, grant
    kubectl_ok(sim, "apply", "-f", "-", stdin=grant.stdout)
    rc, rows = doctor(tmp_path, sim.kubeconfig, True, with_icpt)
    assert rc == 0, rows
    r = rows["intercept rights"]
    assert r["ok"] and r["required"], r
    assert r["detail"] == "all 18 rights in namespace shop (context kubesim-dev, service web)", r


def test_doctor_human_output_shows_intercept_rows(sim, tmp_path):  # noqa: F811
    cfg = tmp_path / "devbridge.yaml"
    cfg.write_text("bridge:\n  namespace: default\n")
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=sim.kubeconfig,
               KUBECACHEDIR=str(tmp_path / "kcache"))
    env.pop("DEVBRIDGE_CONFIG", None)
    r = subprocess.run([devbridge_bin(), "--config", str(cfg), "--state-dir",
                        str(tmp_path / "state"), "doctor"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r
    assert "  ok    intercept rights       all 18 rights in namespace default" in r.stdout, r.stdout
    assert "  ok    pod security           namespace default:" in r.stdout, r.stdout
