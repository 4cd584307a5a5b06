"""`devbridge intercept SVC --steal` without --foreground, against kubesim
--runtime with the real kubectl: the command returns once the tunnel is
up, a detached `__intercept` process holds it, `status` shows it, and
`disconnect` / `down NAME` stop it (the process restores the selector and
deletes the agent's objects).  When that process was SIGKILLed,
`disconnect` does the restore and the cleanup itself from the saved state;
what a dead session left in the cluster is removed by the next
`intercept`; a second intercept of an intercepted Service exits 69."""

import json
import os
import signal

import pytest

from helpers import proc_alive, wait_for
from intercept_helpers import TagServer, roundtrip
from k8s_helpers import echo_pod, kb, rsim, service  # noqa: F401

CLUSTER_IP = "10.96.215.10"
ORIGINAL = {"app": "web"}
NAME = "intercept-web"


@pytest.fixture(scope="module", autouse=True)
def cluster(rsim):  # noqa: F811
    if not rsim.is_sim:
        pytest.skip("needs the agent image on the cluster (deploy/agent/Dockerfile)")
    rsim.apply(echo_pod("web-1", "default", dict(ORIGINAL)),
               service("web", "default", ORIGINAL, [(80, 8080)], CLUSTER_IP))
    rsim.wait_pods_ready("default", "web-1")
    yield rsim


@pytest.fixture
def laptop():
    lt = TagServer()
    yield lt
    lt.close()


def call(data, timeout=10):
    return roundtrip(CLUSTER_IP, 80, data, timeout)


def reaches_laptop(data, timeout=20):
    """The cluster's clients get this machine's answers, once the Service's
    routing follows the swapped selector (kube-proxy lags the API)."""
    got = []

    def ok():
        try:
            got[:] = [call(data, timeout=3)]
        except OSError:
            return False
        return got[0] == b"LAPTOP " + data
    wait_for(ok, timeout, "a cluster call reaching the local server", interval=0.2)
    return True


def svc(rsim):  # noqa: F811
    return json.loads(rsim.kubectl_ok("get", "service", "web", "-o", "json"))


def assert_original(rsim):  # noqa: F811
    s = svc(rsim)
    assert s["spec"]["selector"] == ORIGINAL, s["spec"]
    ann = s["metadata"].get("annotations", {})
    assert not any(k.startswith("devbridge.dev/") for k in ann), ann


def labelled(rsim, sel="app.kubernetes.io/managed-by=devbridge"):  # noqa: F811
    return rsim.kubectl_ok("get", "jobs,secrets,roles,rolebindings,serviceaccounts", "-l",
                           sel, "-o", "name").split()


def intercept(kb, laptop, *extra):  # noqa: F811
    return kb.run("intercept", "web", "--steal", "-p", "80:%d" % laptop.port, *extra,
                  timeout=90)


def start(kb, laptop):  # noqa: F811
    """A detached intercept: its session id and holder pid."""
    r = kb.run("--json", "intercept", "web", "--steal", "-p", "80:%d" % laptop.port,
               timeout=90)
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["detached"] is True and doc["name"] == NAME, doc
    assert proc_alive(doc["pid"]), doc
    return doc["session"], doc["pid"]


def intercept_row(kb):  # noqa: F811
    rows = [b for b in kb.status()["bridges"] if b.get("kind") == "intercept"]
    return rows[0] if rows else None


@pytest.fixture(autouse=True)
def clean(rsim, kb):  # noqa: F811
    yield
    kb.run("disconnect", "-y", timeout=90)
    rsim.kubectl("delete", "jobs,secrets,roles,rolebindings,serviceaccounts", "-l",
                 "app.kubernetes.io/managed-by=devbridge", "--ignore-not-found")


def test_detached_status_and_disconnect(kb, rsim, laptop):  # noqa: F811
    sid, pid = start(kb, laptop)
    s = svc(rsim)
    assert s["spec"]["selector"] == {"devbridge.dev/intercept": sid}
    assert reaches_laptop(b"hello")
    row = intercept_row(kb)
    assert row and row["name"] == NAME and row["state"] == "connected", row
    assert row["pid"] == pid and row["session"] == sid and row["service"] == "web"
    assert row["ports"] == [{"port": 80, "local_port": laptop.port}], row
    assert row["original_selector"] == ORIGINAL and row["agent_pod"], row
    table = kb.run("status", timeout=30)
    assert NAME in table.stdout and "intercept" in table.stdout, table
    assert "127.0.0.1:%d" % laptop.port in table.stdout, table
    # by its name: that row alone
    one = kb.run("--json", "status", NAME, timeout=30)
    assert one.returncode == 0, one
    assert [r["name"] for r in json.loads(one.stdout)["bridges"]] == [NAME], one
    sess = kb.session()
    assert [i["session"] for i in sess["intercepts"]] == [sid], sess
    st = os.stat(kb.path("session.json"))
    assert st.st_mode & 0o777 == 0o600
    r = kb.run("disconnect", "-y", timeout=90)
    assert r.returncode == 0, r
    assert NAME in r.stdout, r
    assert not proc_alive(pid)
    assert_original(rsim)
    wait_for(lambda: labelled(rsim) == [], 30, "every labelled object gone")
    assert intercept_row(kb) is None
    assert call(b"x") == b"x"


def test_down_name_and_second_intercept_is_69(kb, rsim, laptop):  # noqa: F811
    sid, pid = start(kb, laptop)
    before = sorted(labelled(rsim))
    r = intercept(kb, laptop)
    assert r.returncode == 69, r
    assert sorted(labelled(rsim)) == before
    assert svc(rsim)["spec"]["selector"] == {"devbridge.dev/intercept": sid}
    r = kb.run("down", NAME, timeout=90)
    assert r.returncode == 0, r
    assert not proc_alive(pid)
    assert_original(rsim)
    wait_for(lambda: labelled(rsim) == [], 30, "every labelled object gone")


def test_sigkill_then_disconnect_restores(kb, rsim, laptop):  # noqa: F811
    sid, pid = start(kb, laptop)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not proc_alive(pid), 10, "the holder gone")
    row = intercept_row(kb)
    assert row and row["pid"] is None, row
    r = kb.run("disconnect", "-y", timeout=90)
    assert r.returncode == 0, r
    assert_original(rsim)
    wait_for(lambda: labelled(rsim) == [], 30, "every labelled object gone")
    assert intercept_row(kb) is None
    assert not os.path.exists(kb.path(NAME + ".state"))


def test_leftovers_removed_by_next_intercept(kb, rsim, laptop):  # noqa: F811
    sid, pid = start(kb, laptop)
    os.kill(pid, signal.SIGKILL)
    # this machine forgets it (another machine's, or a lost state dir): only
    # the cluster says it was here; its agent restores after its grace
    for ext in ("state", "pid"):
        os.unlink(kb.path("%s.%s" % (NAME, ext)))
    wait_for(lambda: svc(rsim)["spec"]["selector"] == ORIGINAL, 30, "the agent's restore")
    assert labelled(rsim, "devbridge.dev/session=%s" % sid)

    def job_done():
        j = json.loads(rsim.kubectl_ok("get", "job", "devbridge-agent-" + sid, "-o", "json"))
        return (j.get("status") or {}).get("succeeded", 0) > 0
    wait_for(job_done, 30, "the agent's Job finished")
    sid2, pid2 = start(kb, laptop)
    assert sid2 != sid
    assert labelled(rsim, "devbridge.dev/session=%s" % sid) == []
    assert reaches_laptop(b"again")
    r = kb.run("disconnect", "-y", timeout=90)
    assert r.returncode == 0, r
    assert_original(rsim)
