"""`config check` as a user sees it (issue 8, Config): the Kubernetes plan,
warnings about a valid config, what the loader refuses (deep nesting,
merge keys, over-long values), and the one number parser of the CLI."""

import os
import shutil
import time

import pytest

from helpers import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "tests", "configs")


def _write(db, text):
    with open(db.config, "w") as f:
        f.write(text)


def test_devx_config_prints_the_kubernetes_plan(db_nosshd):
    db = db_nosshd
    with open(os.path.join(CONFIGS, "seed000_services.yaml")) as f:
        seed = f.read()
    head, services = seed.split("services:", 1)
    _write(db, head.rstrip() + "\n  targets:\n    - {service: redis, namespace: cache, port: 6379, "
           "local_port: 16379}\nprofiles:\n  debug:\n    bridge: {namespace: critical, targets: "
           "[{service: api, port: 8080}]}\nservices:" + services)
    r = db.run("config", "check")
    assert r.returncode == 0, r
    out = r.stdout
    assert (": valid (0 tunnels, 0 actors; 1 Kubernetes target, 0 intercepts, 3 services, "
            "1 profile)") in out, r
    for want in ("context: gke_my-org_us-central1_staging", "namespace: staging",
                 "target cache/redis: service port 6379 -> 127.0.0.1:16379",
                 "profile debug (--profile debug, laid over bridge:)",
                 "target critical/api: service port 8080 -> 127.0.0.1:8080",
                 "  remote-payments (bridge)\n    target staging/payments-api: service port 8080 "
                 "-> 127.0.0.1:8080",
                 "intercept staging/user-service: port 3000 -> local 3000, steal",
                 "after local-user-svc (service_healthy): not in services:",
                 "  local-api (host)\n    command: go run ./cmd/api\n    port: 9090\n"
                 "    after remote-payments (service_healthy)\n"):
        assert want in out, "%r not in:\n%s" % (want, out)

    doc = db.run("--json", "config", "check").json()
    assert doc["valid"] is True
    assert doc["bridge"]["context"] == "gke_my-org_us-central1_staging", doc
    assert doc["bridge"]["targets"] == [{"service": "redis", "namespace": "cache", "port": 6379,
                                         "local_port": 16379}], doc
    assert [p["name"] for p in doc["profiles"]] == ["debug"], doc
    assert doc["profiles"][0]["bridge"]["namespace"] == "critical", doc
    svcs = {s["name"]: s for s in doc["services"]}
    assert list(svcs) == ["remote-payments", "user-svc-intercept", "local-api"], doc
    assert svcs["local-api"]["command"] == ["go", "run", "./cmd/api"], doc
    assert svcs["local-api"]["depends_on"] == [{"name": "remote-payments",
                                                "condition": "service_healthy",
                                                "defined": True}], doc
    assert svcs["user-svc-intercept"]["depends_on"][0]["defined"] is False, doc
    assert svcs["user-svc-intercept"]["bridge_intercept"]["mode"] == "steal", doc
    assert svcs["remote-payments"]["bridge_target"]["local_port"] == 8080, doc


def test_reverse_health_check_at_the_remote_port_warns(db, sshd, tunnel):
    t = tunnel(sshd, 18000, 8000, health={"url": "http://127.0.0.1:18000/health"})
    text = db.write_config({"hub": t})
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "url:" in ln)
    r = db.run("config", "check")
    assert r.returncode == 0, r
    assert ("%s:%d:12: warning: tunnels.hub.health_check.url: port 18000 is the tunnel's "
            "remote_port, which listens on 127.0.0.1; health checks run on this machine, where "
            "the service is local_port 8000: did you mean http://127.0.0.1:8000/health?"
            % (db.config, line)) in r.stderr, r
    w = db.run("--json", "config", "check").json()["warnings"]
    assert len(w) == 1 and w[0]["line"] == line and "local_port 8000" in w[0]["message"], w
    # the same check at the local port: no warning
    db.write_config({"hub": tunnel(sshd, 18000, 8000, health={"url": "http://127.0.0.1:8000/h"})})
    r = db.run("config", "check")
    assert r.returncode == 0 and "warning" not in r.stderr, r


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_100k_levels_deep_refused_while_parsing(db_nosshd, opening):
    db = db_nosshd
    n = 100000
    close = "]" if opening == "[" else "}"
    _write(db, "actors: " + opening * n + "x" + close * n + "\n")
    t0 = time.monotonic()
    r = db.run("config", "check")
    took = time.monotonic() - t0
    assert r.returncode == 3, r
    col = 9 + 63 if opening == "[" else 9 + 62 * 4 + 1
    assert "%s:1:%d: nested more than 64 levels deep" % (db.config, col) in r.stderr, r
    print("100,000 levels of %r refused in %.3f s" % (opening, took))


def test_merge_keys_are_refused_with_their_position(db_nosshd):
    db = db_nosshd
    _write(db, "base: &b {class: human}\nactors:\n  a:\n    <<: *b\n")
    r = db.run("config", "check")
    assert r.returncode == 3, r
    assert ("%s:4:5: merge keys ('<<') are not supported: write the keys out" % db.config
            in r.stderr), r
    j = db.run("--json", "config", "check")
    assert j.returncode == 3 and j.json()["error"]["diagnostics"][0]["line"] == 4, j


def test_over_long_context_refused_in_config_and_flag(db_nosshd):
    db = db_nosshd
    _write(db, "bridge:\n  context: %s\n" % ("c" * 300))
    r = db.run("config", "check")
    assert r.returncode == 3, r
    assert ("%s:2:12: bridge.context: expected at most 255 bytes, got 300 (longer values are "
            "refused, not cut)" % db.config) in r.stderr, r
    r = db.run("connect", "--context", "c" * 256, "-t", "web:80")
    assert r.returncode == 2, r
    assert "--context: 256 bytes, at most 255 (longer values are refused, not cut)" in r.stderr, r


# --------------------------------------------------------------------------
# one number parser for the CLI (core/num.h)


@pytest.mark.parametrize("args,msg", [
    (("up", "--timeout", " 5"), "--timeout: expected 1-86400, got ' 5'"),
    (("up", "--timeout", "+5"), "--timeout: expected 1-86400, got '+5'"),
    (("up", "--timeout", "5s"), "--timeout: expected 1-86400, got '5s'"),
    (("logs", "web", "-n", "5abc"), "--lines: expected 0-2147483647, got '5abc'"),
    (("logs", "web", "-n", "-1"), "--lines: expected 0-2147483647, got '-1'"),
    (("forward", "8080abc"), "PORT: expected a port 1-65535, got '8080abc'"),
    (("host-daemon", "--control-port", ""), "--control-port: expected a port 1-65535, got ''"),
])
def test_cli_numbers_are_strict(db_nosshd, args, msg):
    _write(db_nosshd, "actors: {}\n")
    r = db_nosshd.run(*args)
    assert r.returncode == 2, r
    assert msg in r.stderr, r


def test_cli_numbers_take_leading_zeros_as_decimal(db_nosshd):
    db = db_nosshd
    _write(db, "actors: {}\n")
    r = db.run("logs", "nothing", "-n", "010")
    assert r.returncode == 48, r  # parsed; then: no such bridge


def test_env_port_garbage_is_not_taken_for_a_port(db_nosshd):
    db = db_nosshd
    # a closed port: nothing is opened anywhere
    r = db.run("open", "http://example.test/", "--host-addr", "127.0.0.1", "--control-port",
               free_port(), env={"DEVBRIDGE_HOST_PORT": "8080abc"})
    assert r.returncode == 50, r
    assert "ignoring DEVBRIDGE_HOST_PORT='8080abc': expected a port 1-65535; using 19285" \
        in r.stderr, r


def test_ssh_config_that_ssh_refuses_is_a_config_error(db, sshd, tunnel):
    cfg = os.path.join(db.tmp, "bad_ssh_config")
    with open(cfg, "w") as f:
        f.write("Host *\n  NoSuchOption yes\n")
    text = db.write_config({"web": tunnel(sshd, free_port(), free_port(), ssh_config=cfg)})
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "ssh_config:" in ln)
    r = db.run("config", "check")
    assert r.returncode == 3, r
    assert ("%s:%d:17: tunnels.web: ssh refuses this tunnel's configuration: %s: line 2: Bad "
            "configuration option: nosuchoption" % (db.config, line, cfg)) in r.stderr, r


# --------------------------------------------------------------------------
# one namespace of bridge names (issue 9): tunnels, services and connect's
# Kubernetes bridges keep their files in one state directory


_TUNNEL = ("  {name}:\n    host: h\n    remote_port: 1\n    local_port: 2\n    ssh_user: u\n"
           "    ssh_key: /k\n    actor: a\n")


def test_tunnel_named_like_a_kubernetes_bridge_is_refused(db_nosshd):
    db = db_nosshd
    _write(db, "tunnels:\n" + _TUNNEL.format(name="web.default.80") +
           "actors:\n  a: {class: human}\n")
    r = db.run("config", "check")
    assert r.returncode == 3, r
    assert ("%s:2:3: tunnel name 'web.default.80' has the form connect gives its Kubernetes "
            "bridges (SERVICE.NAMESPACE.PORT" % db.config) in r.stderr, r
    # `up` refuses to start anything on such a config
    r = db.run("up")
    assert r.returncode == 3 and "web.default.80" in r.stderr, r
    assert not db.our_processes()


def test_tunnel_beside_a_service_of_its_name_is_refused(db_nosshd):
    db = db_nosshd
    _write(db, "tunnels:\n" + _TUNNEL.format(name="api") +
           "actors:\n  a: {class: human}\nservices:\n  - name: api\n    runtime: host\n")
    r = db.run("--json", "config", "check")
    assert r.returncode == 3, r
    err = r.json()["error"]
    assert err["name"] == "invalid_config", err
    d = err["diagnostics"]
    assert len(d) == 1 and (d[0]["line"], d[0]["column"]) == (12, 11), d
    assert "service name 'api' is taken by the tunnel at line 2" in d[0]["message"], d


def test_bridge_intercepts_errors_carry_their_position(db_nosshd):
    db = db_nosshd
    _write(db, "bridge:\n  agent_image: reg/agent:v1\n  intercepts:\n    - port: 80\n"
           "    - service: web\n      mode: sideways\n      local_port: 70000\n")
    for args in (("config", "check"), ("intercept", "web", "--steal", "--dry-run")):
        r = db.run(*args)
        assert r.returncode == 3, r
        for want in ("%s:4:7: bridge.intercepts[0]: missing required field 'service'",
                     "%s:6:13: bridge.intercepts[1].mode: expected 'steal' or 'mirror', got "
                     "\"sideways\"",
                     "%s:7:19: bridge.intercepts[1].local_port: expected an integer 1-65535"):
            assert want % db.config in r.stderr, (args, r)
    # a valid entry: the plan says what intercept takes from it
    _write(db, "bridge:\n  namespace: team\n  agent_image: reg/agent:v1\n  intercepts:\n"
           "    - service: web\n      port: 80\n      local_port: 18080\n      mode: mirror\n")
    r = db.run("config", "check")
    assert r.returncode == 0, r
    assert ("intercept team/web: port 80 -> local 18080, mirror (`devbridge intercept`: "
            "validation and --dry-run so far)") in r.stdout, r
    doc = db.run("--json", "config", "check").json()
    assert doc["bridge"]["intercepts"] == [{"service": "web", "namespace": None, "port": 80,
                                            "local_port": 18080,
                                            "mode": "mirror"}], doc
    assert doc["bridge"]["agent_image"] == "reg/agent:v1", doc
