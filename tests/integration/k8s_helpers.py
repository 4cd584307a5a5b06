"""kubesim for devbridge's Kubernetes tests: a fixture that starts the
simulator (tests/kubesim) and runs the real kubectl against it."""

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import wait_for

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture
def sim(tmp_path):
    d = tmp_path / "sim"
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "--dir", str(d), "--port", "0"],
                            cwd=TESTS_DIR, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "sim.err", "w"))

    def ready():
        assert proc.poll() is None, "kubesim exited: %s" % (tmp_path / "sim.err").read_text()
        try:
            return json.loads((d / "ready").read_text())
        except (OSError, ValueError):
            return None
    wait_for(ready, 30, "kubesim ready")
    env = dict(os.environ, HOME=str(home), KUBECONFIG=str(d / "kubeconfig"),
               KUBECACHEDIR=str(home / "cache"))

    def kubectl(*args, stdin=None):
        return subprocess.run([KUBECTL] + list(args), input=stdin, env=env,
                              capture_output=True, text=True, timeout=60)
    kubectl.env = env
    kubectl.kubeconfig = str(d / "kubeconfig")
    yield kubectl
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(15)


