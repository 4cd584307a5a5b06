"""Tests for kubesim's port-forward (SPDY/3.1) and pod runtime.

    cd tests && /usr/bin/python3 -m pytest -q kubesim/test_portforward.py
    cd tests && /usr/bin/python3 -m unittest kubesim.test_portforward

Three layers:
  * SPDY framing/dictionary units (no privileges);
  * the SPDY session against a Python SPDY client over plain HTTP on
    loopback with an in-process echo server (no privileges);
  * end to end: the sim (`python3 -m kubesim --dir DIR --runtime`), the REAL kubectl
    (port-forward svc/echo), pods as processes in network namespaces and
    the ClusterIP proxy (root, iproute2, /usr/bin/kubectl; skipped otherwise).
"""

import hashlib
import http.server
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from kubesim import portforward as pf  # noqa: E402

KUBECTL = "/usr/bin/kubectl"
MIB = 1024 * 1024


# --------------------------------------------------------------------------
# A small SPDY/3 client (what kubectl does, in Python)

class SpdyClient:
    def __init__(self, sock):
        self.sock = sock
        self.comp = pf.new_compressor()
        self.decomp = pf.new_decompressor()
        self.wlock = threading.Lock()
        self.next_id = 1
        self.queues = {}         # sid -> Queue of (kind, payload, fin)
        self.control = queue.Queue()
        self.rfile = sock.makefile("rb")
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _read(self, n):
        b = self.rfile.read(n)
        if len(b) != n:
            raise EOFError
        return b

    def _reader(self):
        try:
            while True:
                w0, w1 = struct.unpack(">II", self._read(8))
                flags, length = w1 >> 24, w1 & 0xFFFFFF
                p = self._read(length) if length else b""
                if w0 & 0x80000000:
                    ftype = w0 & 0xFFFF
                    if ftype == pf.SYN_REPLY:
                        sid = struct.unpack(">I", p[:4])[0] & 0x7FFFFFFF
                        hdrs = pf.decode_header_block(self.decomp.decompress(p[4:]))
                        self.queues[sid].put(("reply", hdrs, bool(flags & 1)))
                    elif ftype == pf.RST_STREAM:
                        sid, status = struct.unpack(">II", p[:8])
                        self.queues[sid].put(("rst", status, True))
                    else:
                        self.control.put((ftype, flags, p))
                else:
                    self.queues[w0].put(("data", p, bool(flags & 1)))
        except (EOFError, OSError, ValueError):
            pass
        for q in list(self.queues.values()):
            q.put(("eof", None, True))
        self.control.put(("eof", 0, b""))

    def _send(self, frame):
        with self.wlock:
            self.sock.sendall(frame)

    def open(self, headers, fin=False):
        with self.wlock:
            sid = self.next_id
            self.next_id += 2
            self.queues[sid] = queue.Queue()
            block = self.comp.compress(pf.encode_header_block(headers))
            block += self.comp.flush(zlib.Z_SYNC_FLUSH)
            payload = struct.pack(">IIBB", sid, 0, 0, 0) + block
            self.sock.sendall(pf.control_frame(pf.SYN_STREAM, 1 if fin else 0, payload))
        kind, hdrs, _ = self.queues[sid].get(timeout=10)
        assert kind == "reply", (kind, hdrs)
        return sid

    def send(self, sid, data, fin=False):
        for i in range(0, len(data), 16384):
            self._send(pf.data_frame(sid, 0, data[i:i + 16384]))
        if fin:
            self._send(pf.data_frame(sid, pf.FLAG_FIN, b""))

    def read_to_fin(self, sid, timeout=20):
        out = []
        deadline = time.monotonic() + timeout
        while True:
            kind, p, fin = self.queues[sid].get(timeout=max(0.1, deadline - time.monotonic()))
            if kind == "data":
                out.append(p)
            elif kind != "reply":
                raise EOFError(kind)
            if fin:
                return b"".join(out)

    def forward(self, port, requestid):
        """kubectl's sequence for one local connection."""
        hdr = [("port", str(port)), ("requestid", str(requestid))]
        err = self.open([("streamtype", "error")] + hdr)
        self._send(pf.data_frame(err, pf.FLAG_FIN, b""))   # kubectl half-closes it
        data = self.open([("streamtype", "data")] + hdr)
        return err, data


def spdy_upgrade(addr, path="/api/v1/namespaces/default/pods/p/portforward"):
    s = socket.create_connection(addr, timeout=10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
               "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
               "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n" % path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            raise EOFError(head)
        head += c
    s.settimeout(None)
    return s, head.decode()


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _serve(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


class FakeStore:
    def __init__(self):
        self.pods = {}

    def find(self, res, ns, name):
        return self.pods.get((ns, name))


def exchange(sock_send, sock_recv_all, payload):
    """Send payload while reading the echo; returns what came back."""
    got = []
    t = threading.Thread(target=lambda: got.append(sock_recv_all()))
    t.start()
    sock_send(payload)
    t.join(60)
    assert not t.is_alive(), "echo did not finish"
    return got[0]


def socket_roundtrip(addr, payload, timeout=60):
    """Connect, send payload, half-close, read until EOF (concurrently)."""
    s = socket.create_connection(addr, timeout=timeout)
    out = []

    def rd():
        while True:
            d = s.recv(65536)
            if not d:
                break
            out.append(d)
    t = threading.Thread(target=rd, daemon=True)
    t.start()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    assert not t.is_alive(), "no EOF from %s" % (addr,)
    return b"".join(out)


# --------------------------------------------------------------------------

class TestFraming(unittest.TestCase):
    def test_dictionary(self):
        self.assertEqual(len(pf.SPDY_DICTIONARY), 1423)
        self.assertEqual(zlib.adler32(pf.SPDY_DICTIONARY), 0xE3C6A7C2)

    def test_header_blocks_share_one_zlib_stream(self):
        c, d = pf.new_compressor(), pf.new_decompressor()
        for i in range(5):
            h = [("streamtype", "data"), ("port", str(8000 + i)), ("requestid", str(i))]
            raw = c.compress(pf.encode_header_block(h)) + c.flush(zlib.Z_SYNC_FLUSH)
            self.assertEqual(pf.decode_header_block(d.decompress(raw)), dict(h))

    def test_first_block_names_the_dictionary(self):
        c = pf.new_compressor()
        raw = c.compress(pf.encode_header_block([])) + c.flush(zlib.Z_SYNC_FLUSH)
        self.assertTrue(raw[1] & 0x20)   # FDICT
        self.assertEqual(struct.unpack(">I", raw[2:6])[0], 0xE3C6A7C2)

    def test_malformed_block(self):
        with self.assertRaises(ValueError):
            pf.decode_header_block(b"\0\0\0\1\0\0\0\x09ab")

    def test_frames(self):
        self.assertEqual(pf.control_frame(pf.PING, 0, b"\0\0\0\1"),
                         b"\x80\x03\x00\x06\x00\x00\x00\x04\0\0\0\1")
        self.assertEqual(pf.data_frame(3, pf.FLAG_FIN, b"ab"),
                         b"\0\0\0\3\x01\0\0\x02ab")


class TestSession(unittest.TestCase):
    """SPDY session over plain HTTP against a Python client."""

    def setUp(self):
        self.echo = EchoServer()
        store = self.store = FakeStore()
        store.pods[("default", "p")] = {"metadata": {"name": "p", "namespace": "default"},
                                        "status": {"phase": "Running", "podIP": "127.0.0.1"}}

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _pf(self):
                ns, name = self.path.split("/")[4], self.path.split("/")[6]
                pf.handle_portforward(self, store, ns, name)
            do_GET = do_POST = _pf

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.addr = self.httpd.server_address

    def tearDown(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.echo.close()

    def client(self):
        s, head = spdy_upgrade(self.addr)
        self.assertIn("101", head.split("\r\n")[0])
        self.assertIn("upgrade: spdy/3.1", head.lower())
        self.assertIn("x-stream-protocol-version: portforward.k8s.io", head.lower())
        self.addCleanup(s.close)
        return SpdyClient(s)

    def test_websocket_refused(self):
        s = socket.create_connection(self.addr, timeout=10)
        s.sendall(b"GET /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n")
        head = s.recv(4096).decode()
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 400"), head)

    def test_missing_pod_404(self):
        s, head = spdy_upgrade(self.addr, "/api/v1/namespaces/default/pods/nope/portforward")
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 404"), head)

    def test_echo_1mib_and_ping(self):
        c = self.client()
        c._send(pf.control_frame(pf.PING, 0, struct.pack(">I", 7)))
        ftype, _, p = c.control.get(timeout=10)
        self.assertEqual((ftype, p), (pf.PING, struct.pack(">I", 7)))
        c._send(pf.control_frame(pf.SETTINGS, 0, struct.pack(">I", 0)))
        err, data = c.forward(self.echo.port, 0)
        payload = os.urandom(MIB)
        back = exchange(lambda b: c.send(data, b, fin=True), lambda: c.read_to_fin(data), payload)
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(payload).hexdigest())
        self.assertEqual(c.read_to_fin(err), b"")

    def test_concurrent_streams(self):
        c = self.client()
        results = {}

        def one(i):
            err, data = c.forward(self.echo.port, i)
            payload = os.urandom(256 * 1024)
            c.send(data, payload, fin=True)
            results[i] = (c.read_to_fin(data) == payload, c.read_to_fin(err))
        ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(results, {i: (True, b"") for i in range(8)})

    def test_data_before_target_ready_is_buffered(self):
        c = self.client()
        hdr = [("port", str(self.echo.port)), ("requestid", "9")]
        err = c.open([("streamtype", "error")] + hdr)
        # SYN_STREAM data with the data frames right behind it, no wait.
        with c.wlock:
            sid = c.next_id
            c.next_id += 2
            c.queues[sid] = queue.Queue()
            block = c.comp.compress(pf.encode_header_block([("streamtype", "data")] + hdr))
            block += c.comp.flush(zlib.Z_SYNC_FLUSH)
            c.sock.sendall(pf.control_frame(pf.SYN_STREAM, 0, struct.pack(">IIBB", sid, 0, 0, 0) + block)
                           + pf.data_frame(sid, 0, b"early ") + pf.data_frame(sid, pf.FLAG_FIN, b"bird"))
        self.assertEqual(c.read_to_fin(sid), b"early bird")
        self.assertEqual(c.read_to_fin(err), b"")

    def test_connect_error_on_error_stream(self):
        c = self.client()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
        s.close()
        err, data = c.forward(closed_port, 1)
        msg = c.read_to_fin(err).decode()
        self.assertIn("error forwarding port %d" % closed_port, msg)
        self.assertIn("refused", msg.lower())

    def test_pod_gone_after_upgrade(self):
        c = self.client()
        del self.store.pods[("default", "p")]
        err, data = c.forward(self.echo.port, 1)
        self.assertIn("not found", c.read_to_fin(err).decode())


# --------------------------------------------------------------------------
# End to end: sim + real kubectl + netns pods

def _e2e_skip_reason():
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2"
    if not os.path.exists(KUBECTL):
        return "needs %s" % KUBECTL
    if not os.path.exists(os.path.join(HERE, "__main__.py")):
        return "kubesim core (__main__.py) missing"
    return None


def wait_for(pred, timeout, what):
    """Poll a condition with a deadline (the condition is the sync, not the sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


@unittest.skipIf(_e2e_skip_reason(), _e2e_skip_reason() or "")
class TestKubectlEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kubesim-pf-")
        cls.dir = os.path.join(cls.tmp, "sim")
        os.makedirs(cls.dir)
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        cls.sim_log = open(os.path.join(cls.tmp, "sim.log"), "wb")
        cls.sim = subprocess.Popen([sys.executable, "-m", "kubesim", "--dir", cls.dir, "--runtime"],
                                   cwd=TESTS, stdin=subprocess.DEVNULL,
                                   stdout=cls.sim_log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: os.path.exists(os.path.join(cls.dir, "ready"))
                     or cls.sim.poll() is not None, 30, "sim ready")
            if cls.sim.poll() is not None:
                raise AssertionError("sim exited: " + cls.log())
            cls.env = dict(os.environ, HOME=cls.home, KUBECACHEDIR=os.path.join(cls.home, "cache"),
                           KUBECONFIG=os.path.join(cls.dir, "kubeconfig"))
            cls.kubectl_ok("apply", "-f", "-", "--validate=false", input=json.dumps({
                "apiVersion": "v1", "kind": "List", "items": [
                    {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "echo", "labels": {"app": "echo"}},
                     "spec": {"containers": [{"name": "echo", "image": "kubesim/echo",
                                              "ports": [{"containerPort": 8080}]}]}},
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
                     "spec": {"selector": {"app": "echo"},
                              "ports": [{"port": 80, "targetPort": 8080}]}}]}))
            cls.kubectl_ok("wait", "--for=condition=Ready", "pod/echo", "--timeout=30s")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.sim.poll() is None:
            cls.sim.send_signal(signal.SIGTERM)
            try:
                cls.sim.wait(30)
            except subprocess.TimeoutExpired:
                cls.sim.kill()
                cls.sim.wait()
        cls.sim_log.close()
        # Every namespace the sim made is gone.
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        leftover = [l.split()[0] for l in left.splitlines() if l.startswith("ks-")]
        state = "/run/kubesim"
        mine = set()
        if os.path.isdir(state):
            for n in os.listdir(state):
                if n.endswith(".json"):
                    try:
                        with open(os.path.join(state, n)) as f:
                            if json.load(f).get("owner") == cls.sim.pid:
                                mine.add(n[:-5])
                    except (OSError, ValueError):
                        pass
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert not mine, "sim left state for %s" % mine
        cls.leftover_netns = leftover

    @classmethod
    def log(cls):
        with open(os.path.join(cls.tmp, "sim.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    @classmethod
    def kubectl(cls, *args, input=None, timeout=60):
        return subprocess.run([KUBECTL] + list(args), env=cls.env, input=input,
                              capture_output=True, text=True, timeout=timeout)

    @classmethod
    def kubectl_ok(cls, *args, **kw):
        r = cls.kubectl(*args, **kw)
        if r.returncode != 0:
            raise AssertionError("kubectl %s: %s%s\n--- sim log:\n%s"
                                 % (" ".join(args), r.stdout, r.stderr, cls.log()))
        return r.stdout

    def port_forward(self, target, remote):
        """Start `kubectl port-forward TARGET 0:REMOTE`; returns (proc, local port, lines)."""
        p = subprocess.Popen([KUBECTL, "port-forward", target, "0:%d" % remote],
                             env=self.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._end, p)
        lines = queue.Queue()

        def pump(f):
            for line in f:
                lines.put(line)
        for f in (p.stdout, p.stderr):
            threading.Thread(target=pump, args=(f,), daemon=True).start()
        deadline = time.monotonic() + 30
        seen = []
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no Forwarding line: %s\n%s" % (seen, self.log()))
            seen.append(line)
            if line.startswith("Forwarding from 127.0.0.1:"):
                port = int(line.split("127.0.0.1:")[1].split()[0])
                return p, port, lines
            if p.poll() is not None and lines.empty():
                raise AssertionError("port-forward exited: %s" % seen)

    @staticmethod
    def _end(p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pod_ip(self, name):
        return self.kubectl_ok("get", "pod", name, "-o", "jsonpath={.status.podIP}").strip()

    def test_1_forward_1mib_both_ways(self):
        p, port, _ = self.port_forward("svc/echo", 80)
        payload = os.urandom(MIB)
        back = socket_roundtrip(("127.0.0.1", port), payload)
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(payload).hexdigest())
        # concurrent connections through the same kubectl
        results = [None] * 6

        def one(i):
            data = os.urandom(200 * 1024 + i)
            results[i] = socket_roundtrip(("127.0.0.1", port), data) == data
        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(results))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        self.assertEqual(results, [True] * len(results))
        self.assertIsNone(p.poll())

    def test_2_clusterip_from_another_pod(self):
        cip = self.kubectl_ok("get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}").strip()
        # From the host (the ClusterIP lives on the bridge) ...
        wait_for(lambda: self._try_roundtrip((cip, 80)), 10, "ClusterIP proxy")
        # ... and from inside a client pod's namespace.
        self.kubectl_ok("run", "client", "--image=kubesim/pause", "--restart=Never")
        self.addCleanup(self.kubectl, "delete", "pod", "client", "--wait=false")
        self.kubectl_ok("wait", "--for=condition=Ready", "pod/client", "--timeout=30s")
        netns = self._netns_of(self.pod_ip("client"))
        code = ("import socket,sys;s=socket.create_connection((sys.argv[1],80),5);"
                "s.sendall(b'hello from a pod');s.shutdown(1);"
                "print(s.recv(100).decode())")
        r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, cip],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "hello from a pod"), r.stderr)
        # and pod-to-pod directly
        code2 = code.replace("80),5", "8080),5")
        r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code2,
                            self.pod_ip("echo")], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "hello from a pod", r.stderr)

    def test_3_delete_pod_breaks_new_connections(self):
        p, port, lines = self.port_forward("pod/echo", 8080)
        self.assertEqual(socket_roundtrip(("127.0.0.1", port), b"before"), b"before")
        netns = self._netns_of(self.pod_ip("echo"))
        self.kubectl_ok("delete", "pod", "echo", "--timeout=30s")
        # the runtime removed the namespace
        wait_for(lambda: netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                     text=True).stdout, 15, "netns removed")
        try:
            back = socket_roundtrip(("127.0.0.1", port), b"after", timeout=20)
        except OSError:
            back = b""
        self.assertEqual(back, b"")
        err = []

        def saw_error():
            while not lines.empty():
                err.append(lines.get())
            return any("error" in l.lower() for l in err)
        wait_for(saw_error, 20, "kubectl error line")
        self.assertTrue(any("not found" in l or "lost connection" in l for l in err), err)

    def test_4_exited_process_sets_phase(self):
        self.kubectl_ok("run", "done0", "--image=kubesim/exit", "--restart=Never", "--", "0")
        self.kubectl_ok("run", "done3", "--image=kubesim/exit", "--restart=Never", "--", "3")
        self.addCleanup(self.kubectl, "delete", "pod", "done0", "done3", "--wait=false")
        self.kubectl_ok("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/done0",
                        "--timeout=30s")
        self.kubectl_ok("wait", "--for=jsonpath={.status.phase}=Failed", "pod/done3",
                        "--timeout=30s")
        code = self.kubectl_ok("get", "pod", "done3", "-o", "jsonpath={.status.containerStatuses"
                               "[0].state.terminated.exitCode}")
        self.assertEqual(code.strip(), "3")

    def test_5_running_before_ready_and_readiness_probe(self):
        """A pod is Running (with its IP) before it is Ready; an exec
        readinessProbe is run for the pod's whole life: Ready, not Ready,
        Ready again, and the Endpoints follow (addresses vs
        notReadyAddresses)."""
        flag = os.path.join(self.tmp, "ready-flag")
        self.kubectl_ok("apply", "-f", "-", "--validate=false", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "gated", "labels": {"app": "gated"}},
                 "spec": {"containers": [{
                     "name": "echo", "image": "kubesim/echo", "ports": [{"containerPort": 8080}],
                     "readinessProbe": {"exec": {"command": ["test", "-f", flag]},
                                        "periodSeconds": 1, "failureThreshold": 1}}]}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gated"},
                 "spec": {"selector": {"app": "gated"},
                          "ports": [{"port": 80, "targetPort": 8080}]}}]}))
        self.addCleanup(self.kubectl, "delete", "pod,service", "gated", "--wait=false")

        def pod():
            return json.loads(self.kubectl_ok("get", "pod", "gated", "-o", "json"))

        def ready(p):
            return [c["status"] for c in p["status"].get("conditions", []) if c["type"] == "Ready"]

        def endpoints():
            ep = json.loads(self.kubectl_ok("get", "endpoints", "gated", "-o", "json"))
            sub = (ep.get("subsets") or [{}])[0]
            return ([a["targetRef"]["name"] for a in sub.get("addresses") or []],
                    [a["targetRef"]["name"] for a in sub.get("notReadyAddresses") or []])
        p = wait_for(lambda: (lambda q: q if q["status"].get("phase") == "Running" else None)(pod()),
                     30, "gated Running")
        self.assertTrue(p["status"].get("podIP"))
        self.assertEqual(ready(p), ["False"])
        self.assertEqual(endpoints(), ([], ["gated"]))
        open(flag, "w").close()
        wait_for(lambda: ready(pod()) == ["True"], 15, "gated Ready once the probe passes")
        self.assertEqual(endpoints(), (["gated"], []))
        os.unlink(flag)
        wait_for(lambda: ready(pod()) == ["False"], 15, "gated not Ready once the probe fails")
        self.assertEqual(endpoints(), ([], ["gated"]))
        self.assertEqual(pod()["status"]["phase"], "Running")

    def test_6_greet_image_and_listen_delay(self):
        """kubesim/greet names its pod on each connection; with
        KUBESIM_LISTEN_DELAY the pod is Running (not Ready) until it
        listens."""
        self.kubectl_ok("apply", "-f", "-", "--validate=false", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greeter"},
            "spec": {"containers": [{"name": "g", "image": "kubesim/greet",
                                     "env": [{"name": "KUBESIM_LISTEN_DELAY", "value": "1.5"}],
                                     "ports": [{"containerPort": 8080}]}]}}))
        self.addCleanup(self.kubectl, "delete", "pod", "greeter", "--wait=false")
        self.kubectl_ok("wait", "--for=jsonpath={.status.phase}=Running", "pod/greeter",
                        "--timeout=30s")
        t0 = time.monotonic()
        cond = self.kubectl_ok("get", "pod", "greeter", "-o",
                               "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
        self.assertEqual(cond.strip(), "False")
        self.kubectl_ok("wait", "--for=condition=Ready", "pod/greeter", "--timeout=30s")
        self.assertGreater(time.monotonic() - t0, 0.5)
        p, port, _ = self.port_forward("pod/greeter", 8080)
        back = socket_roundtrip(("127.0.0.1", port), b"hi")
        self.assertEqual(back, b"greeter\nhi")

    def _try_roundtrip(self, addr):
        try:
            return socket_roundtrip(addr, b"ping", timeout=5) == b"ping"
        except OSError:
            return False

    @staticmethod
    def _netns_of(ip):
        for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                   text=True).stdout.splitlines():
            ns = line.split()[0]
            if not ns.startswith("ks-"):
                continue
            out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"],
                                 capture_output=True, text=True).stdout
            if " %s/" % ip in out:
                return ns
        raise AssertionError("no netns with %s" % ip)


if __name__ == "__main__":
    unittest.main()
