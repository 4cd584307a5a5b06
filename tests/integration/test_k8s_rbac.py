"""`devbridge rbac`: pure YAML that the real kubectl applies to kubesim, and
the rights it grants are exactly what `kubectl auth can-i` then reports."""

import subprocess

from helpers import devbridge_bin
from k8s_helpers import sim  # noqa: F401 - a fixture


def rbac(*args):
    return subprocess.run([devbridge_bin(), "rbac"] + list(args), capture_output=True, text=True,
                          timeout=30)


def can_i(kubectl, verb, resource, ns, who="dev"):
    # kubectl reads "pods/portforward" as TYPE/NAME: a subresource is a flag.
    res, _, sub = resource.partition("/")
    extra = ["--subresource", sub] if sub else []
    r = kubectl("auth", "can-i", verb, res, "-n", ns, "--as", who, *extra)
    return r.stdout.strip() == "yes"


INTERCEPT_RIGHTS = [(v, "jobs.batch") for v in ("create", "delete", "get", "list")] + \
    [(v, r) for r in ("serviceaccounts", "roles.rbac.authorization.k8s.io",
                      "rolebindings.rbac.authorization.k8s.io", "secrets")
     for v in ("create", "delete")] + \
    [(v, "services") for v in ("get", "update", "patch")] + \
    [("get", "pods"), ("list", "pods"), ("create", "pods/portforward")]


def test_rbac_namespaced_applies_and_grants_exactly(sim):
    assert sim("create", "namespace", "team").returncode == 0
    r = rbac("-n", "team", "--user", "dev")
    assert r.returncode == 0 and r.stderr == "", r
    # nothing but YAML: every non-comment line is a YAML construct
    assert r.stdout.lstrip().startswith(("#", "apiVersion"))
    a = sim("apply", "-f", "-", stdin=r.stdout)
    assert a.returncode == 0, a.stderr
    assert "role.rbac.authorization.k8s.io/devbridge created" in a.stdout
    assert "rolebinding.rbac.authorization.k8s.io/devbridge created" in a.stdout
    for verb, res in [("create", "pods/portforward"), ("update", "services"),
                      ("patch", "services"), ("create", "jobs.batch"), ("delete", "jobs.batch"),
                      ("create", "serviceaccounts"), ("create", "roles.rbac.authorization.k8s.io"),
                      ("list", "pods"), ("get", "endpoints"), ("watch", "endpoints")]:
        assert can_i(sim, verb, res, "team"), (verb, res)
    # every right `intercept` asks about (docs/intercept.md, "The CLI's order",
    # step 1), as its SelfSubjectAccessReviews do
    for verb, res in INTERCEPT_RIGHTS:
        assert can_i(sim, verb, res, "team"), (verb, res)
    # nothing more, and nowhere else
    assert not can_i(sim, "delete", "services", "team")
    assert not can_i(sim, "create", "pods", "team")
    assert not can_i(sim, "get", "secrets", "team")  # the agent's token: created, never read
    assert not can_i(sim, "list", "secrets", "team")
    assert not can_i(sim, "update", "secrets", "team")
    assert not can_i(sim, "create", "pods/portforward", "default")
    # applying again changes nothing
    a = sim("apply", "-f", "-", stdin=r.stdout)
    assert a.returncode == 0 and "unchanged" in a.stdout, a


def test_rbac_cluster_wide_without_subject(sim):
    r = rbac()
    assert r.returncode == 0, r
    assert "kind: ClusterRole" in r.stdout and "Binding" not in r.stdout.replace("rolebinding", "")
    a = sim("apply", "-f", "-", stdin=r.stdout)
    assert a.returncode == 0, a.stderr
    b = sim("create", "clusterrolebinding", "devbridge", "--clusterrole=devbridge", "--user=dev")
    assert b.returncode == 0, b.stderr
    assert can_i(sim, "create", "pods/portforward", "default")
    assert can_i(sim, "get", "namespaces", "default")
    for verb, res in INTERCEPT_RIGHTS:
        assert can_i(sim, verb, res, "default"), (verb, res)


def test_rbac_bad_input():
    r = rbac("-n", "Bad_NS")
    assert r.returncode == 2 and "not a valid name" in r.stderr, r
    r = rbac("--user", "a", "--group", "b")
    assert r.returncode == 2, r
    r = rbac("--serviceaccount", "nocolon")
    assert r.returncode == 2 and "NAMESPACE:NAME" in r.stderr, r
    r = rbac("--serviceaccount", "ns:agent", "-n", "ns")
    assert r.returncode == 0 and "kind: ServiceAccount" in r.stdout, r
