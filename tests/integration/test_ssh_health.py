"""Health checks move connected <-> degraded; `check` runs them now."""

import http.server
import threading

from helpers import EchoServer, free_port, wait_for


def _wait_health(db, state, health, timeout, what):
    def pred():
        b = db.bridge("web")
        return b if (b["state"], b["health"]) == (state, health) else None
    try:
        return wait_for(pred, timeout, what, interval=0.1)
    except AssertionError as exc:
        raise AssertionError("%s\naudit:\n%s" % (exc, db.audit_text("web")))


def test_tcp_health_check_degraded_and_recovered(db, sshd, tunnel):
    service = EchoServer()
    port = service.port
    try:
        db.write_config({"web": tunnel(sshd, free_port(), port,
                                       health={"tcp": port, "interval_seconds": 1, "timeout_seconds": 1})})
        r = db.run("up", "web")
        assert r.returncode == 0, r
        _wait_health(db, "connected", "ok", 5, "health ok while the service listens")
        r = db.run("check", "web")
        assert r.returncode == 0, r

        service.stop()
        b = _wait_health(db, "degraded", "failing", 10, "degraded after the service stopped")
        assert b["ssh_pid"] is not None, "the transport should stay up while degraded: %r" % b
        i = db.wait_event("web", "health_check_failed", 3)
        r = db.run("check", "web")
        assert r.returncode == 49, r
        r = db.run("--json", "check", "web")
        assert r.returncode == 49, r
        r.json()  # one JSON document

        service = EchoServer(port=port)
        _wait_health(db, "connected", "ok", 10, "connected again after the service is back")
        db.wait_event("web", "health_check_recovered", 3, after=i + 1)
        r = db.run("check", "web")
        assert r.returncode == 0, r
    finally:
        service.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        code = self.server.code
        body = b"ok\n" if code < 400 else b"broken\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_health_check_follows_status_code(db, sshd, tunnel):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.code = 200
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_address[1]
        db.write_config({"web": tunnel(sshd, free_port(), port,
                                       health={"url": "http://127.0.0.1:%d/health" % port,
                                               "interval_seconds": 1, "timeout_seconds": 1})})
        r = db.run("up", "web")
        assert r.returncode == 0, r
        _wait_health(db, "connected", "ok", 5, "health ok on HTTP 200")

        httpd.code = 503
        _wait_health(db, "degraded", "failing", 10, "degraded on HTTP 503")
        assert db.run("check", "web").returncode == 49

        httpd.code = 200
        _wait_health(db, "connected", "ok", 10, "connected again on HTTP 200")
        names = db.event_names("web")
        assert "health_check_failed" in names and "health_check_recovered" in names, names
        assert names.index("health_check_failed") < len(names) - 1 - names[::-1].index("health_check_recovered")
    finally:
        httpd.shutdown()
        httpd.server_close()
