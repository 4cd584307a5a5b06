"""Under CI=true a skipped test fails the run (issue 8, "Tests themselves"):
the repository's conftest.py, exercised by a real pytest on a suite whose
tests skip the way the Kubernetes runtime tests do."""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUITE = '''
import pytest

def test_runs():
    pass

def test_needs_root():
    pytest.skip("needs root on Linux (kubesim --runtime uses network namespaces)")

@pytest.fixture(scope="module")
def rsim():
    pytest.skip("needs /usr/bin/kubectl")

def test_uses_fixture(rsim):
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


def _pytest(tmp_path, ci):
    shutil.copyfile(os.path.join(REPO, "conftest.py"), str(tmp_path / "conftest.py"))
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rA", str(tmp_path)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)


def test_skips_fail_under_ci(tmp_path):
    for ci in ("true", "1"):
        r = _pytest(tmp_path, ci)
        assert r.returncode == 1, r.stdout + r.stderr
        # a skip in a fixture fails its set-up: an error, as it should be
        assert "1 failed, 1 passed, 1 xfailed, 1 error" in r.stdout, r.stdout
        assert ("skipped with CI=%s, where a skip is a failure" % ci) in r.stdout, r.stdout
        assert "needs /usr/bin/kubectl" in r.stdout, r.stdout


def test_skips_stay_skips_outside_ci(tmp_path):
    for ci in (None, "", "false"):
        r = _pytest(tmp_path, ci)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 passed, 2 skipped, 1 xfailed" in r.stdout, r.stdout
