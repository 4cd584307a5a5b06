"""`devbridge doctor` reports Kubernetes readiness: kubectl, kubeconfig,
cluster reachable; required only when the config has a bridge: section."""

import json
import os
import subprocess

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
