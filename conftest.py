"""pytest hooks for every suite in this repository (tests/integration,
tests/kubesim).

Under CI (CI=true or CI=1, as GitHub Actions and GitLab set it, and as
.ci/run does) a skipped test is a failure: the Kubernetes runtime tests
skip when not run as root or without kubectl, and CI must not go green
without them.  Outside CI a skip stays a skip (and `-ra` lists it)."""

import os

import pytest


def _ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(longrepr):
    # a skip's longrepr is (file, line, "Skipped: reason")
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail(rep):
    rep.outcome = "failed"
    rep.longrepr = ("skipped with CI=%s, where a skip is a failure (run as root with kubectl, "
                    "iproute2 and socat installed): %s" % (os.environ.get("CI"),
                                                          _reason(rep.longrepr)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if _ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        _fail(rep)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if _ci() and rep.skipped:
        _fail(rep)
