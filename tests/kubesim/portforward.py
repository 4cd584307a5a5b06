"""kubesim: pods/NAME/portforward, the way the real kubectl speaks it.

kubectl >= 1.31 first tries a WebSocket upgrade (GET, subprotocol
SPDY/3.1+portforward.k8s.io).  kubesim refuses it with 400, which makes
kubectl fall back to SPDY/3.1 (POST + "Upgrade: SPDY/3.1"), implemented here
from the SPDY/3 draft: control and DATA frames, header blocks compressed with
one zlib stream per direction and the SPDY/3 dictionary.

Per local connection kubectl opens two streams sharing a "requestid": an
"error" stream (which it half-closes at once) and a "data" stream.  We reply
to each, connect the data stream to podIP:port (the pod's IP from the store,
looked up when the stream opens) and relay bytes both ways.  Target EOF ->
DATA+FIN on the data stream and FIN on the error stream; a failure -> its
text as DATA on the error stream, then FIN.

Threads: the HTTP handler's thread reads SPDY frames; one thread per target
socket connects and copies target -> SPDY; every SPDY write takes one lock
(the zlib compressor state is part of what it protects).  Writes to a target
are done by the reader thread: no flow control, as in kubectl itself.
"""

import json
import logging
import socket
import struct
import threading
import zlib

log = logging.getLogger("kubesim.portforward")

# --------------------------------------------------------------------------
# SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 section 2.6.10.1):
# 1423 bytes, adler32 0xe3c6a7c2.

_DICT_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control "
    "connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect "
    "expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te "
    "trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status").split() + [
    "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin"]

_DICT_TAIL = (
    b"100101201202205206300302303304305306307402405406407408409410411412413"
    b"414415416417502504505203 Non-Authoritative Information204 No Content"
    b"301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden"
    b"404 Not Found500 Internal Server Error501 Not Implemented"
    b"503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec"
    b" 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,"
    b"image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,"
    b"text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    b"charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")

SPDY_DICTIONARY = b"".join(
    struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL

# Frame types and flags.
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes.
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM = 1, 2, 3
RST_CANCEL, RST_INTERNAL_ERROR, RST_STREAM_IN_USE = 5, 6, 8

MAX_DATA = 32 * 1024           # payload per DATA frame we send
MAX_FRAME = 16 * 1024 * 1024   # largest frame we accept (u24)
MAX_STREAMS = 1024             # open streams per connection
CONNECT_TIMEOUT = 5.0


def encode_header_block(headers):
    """Uncompressed SPDY/3 name/value block from a list of (name, value)."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers:
        n, v = name.lower().encode(), value.encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(raw):
    """Dict name -> value (several values are joined with NUL in SPDY/3;
    we keep the first).  Raises ValueError on a malformed block."""
    def take(off, n):
        if off + n > len(raw):
            raise ValueError("truncated header block")
        return raw[off:off + n], off + n
    cnt_b, off = take(0, 4)
    (count,) = struct.unpack(">I", cnt_b)
    if count > 1024:
        raise ValueError("too many headers")
    headers = {}
    for _ in range(count):
        lb, off = take(off, 4)
        name, off = take(off, struct.unpack(">I", lb)[0])
        lb, off = take(off, 4)
        value, off = take(off, struct.unpack(">I", lb)[0])
        headers[name.decode("latin-1").lower()] = \
            value.split(b"\0")[0].decode("latin-1")
    return headers


def new_compressor():
    return zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                            SPDY_DICTIONARY)


def new_decompressor():
    return zlib.decompressobj(15, zdict=SPDY_DICTIONARY)


def control_frame(ftype, flags, payload):
    return struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload


def data_frame(sid, flags, payload):
    return struct.pack(">II", sid & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


# --------------------------------------------------------------------------
# Store access (tolerant of the core's exact method names).

def _get_pod(store, namespace, name):
    """The pod dict, or None.  kubesim.store: find(Resource, ns, name)."""
    from . import store as storemod
    return store.find(storemod.POD, namespace, name)


def _status_json(code, reason, message):
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message,
                       "reason": reason, "code": code}).encode()


def _send_status(handler, code, reason, message):
    body = _status_json(code, reason, message)
    phrase = {400: "Bad Request", 404: "Not Found"}.get(code, "Error")
    handler.wfile.write(
        ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
         "Content-Length: %d\r\nConnection: close\r\n\r\n"
         % (code, phrase, len(body))).encode() + body)
    handler.wfile.flush()
    handler.close_connection = True
    _log_request(handler, code)


def _log_request(handler, code):
    handler._status = code   # what kubesim.server writes to requests.log
    try:
        handler.log_request(code)
    except Exception:
        pass


# --------------------------------------------------------------------------

class _Stream:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = headers
        self.kind = headers.get("streamtype", "")
        self.requestid = headers.get("requestid", "")
        self.lock = threading.Lock()
        self.sock = None          # target socket, once connected
        self.pending = []         # DATA received before the target is ready
        self.peer_fin = False     # client sent FIN
        self.local_fin = False    # we sent FIN
        self.reset = False        # RST_STREAM either way
        self.error_stream = None  # data stream -> its error stream


class SpdySession:
    """One upgraded SPDY/3.1 connection.  `resolve(port)` returns the
    (host, port) to connect to, or raises OSError/LookupError whose text goes
    to kubectl on the error stream."""

    def __init__(self, rfile, sock, resolve, name="portforward"):
        self.rfile = rfile
        self.sock = sock
        self.resolve = resolve
        self.name = name
        self.wlock = threading.Lock()
        self.compressor = new_compressor()
        self.decompressor = new_decompressor()
        self.streams = {}
        self.slock = threading.Lock()
        self.closed = False
        self.threads = []

    # -- writing ----------------------------------------------------------
    def _write(self, frame):
        with self.wlock:
            if self.closed:
                return False
            try:
                self.sock.sendall(frame)
                return True
            except OSError:
                self.closed = True
                return False

    def send_reply(self, sid, headers=()):
        with self.wlock:
            if self.closed:
                return
            block = self.compressor.compress(encode_header_block(list(headers)))
            block += self.compressor.flush(zlib.Z_SYNC_FLUSH)
            try:
                self.sock.sendall(control_frame(SYN_REPLY, 0, struct.pack(">I", sid) + block))
            except OSError:
                self.closed = True

    def send_rst(self, sid, status):
        self._write(control_frame(RST_STREAM, 0, struct.pack(">II", sid, status)))

    def send_data(self, st, payload, fin=False):
        with st.lock:
            if st.local_fin or st.reset:
                return False
            if fin:
                st.local_fin = True
        while len(payload) > MAX_DATA:
            if not self._write(data_frame(st.sid, 0, payload[:MAX_DATA])):
                return False
            payload = payload[MAX_DATA:]
        ok = self._write(data_frame(st.sid, FLAG_FIN if fin else 0, payload))
        if fin:
            self._maybe_forget(st)
        return ok

    # -- reading ----------------------------------------------------------
    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.rfile.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def run(self):
        try:
            while not self.closed:
                hdr = self._read_exact(8)
                w0, w1 = struct.unpack(">II", hdr)
                flags, length = w1 >> 24, w1 & 0xFFFFFF
                if length > MAX_FRAME:
                    raise ValueError("frame too large")
                payload = self._read_exact(length) if length else b""
                if w0 & 0x80000000:
                    version, ftype = (w0 >> 16) & 0x7FFF, w0 & 0xFFFF
                    if version != 3:
                        raise ValueError("SPDY version %d" % version)
                    self._control(ftype, flags, payload)
                else:
                    self._data(w0 & 0x7FFFFFFF, flags, payload)
        except (EOFError, OSError):
            pass
        except (ValueError, zlib.error, struct.error) as e:
            log.warning("%s: protocol error: %s", self.name, e)
            self._write(control_frame(GOAWAY, 0, struct.pack(">II", 0, 1)))
        finally:
            self.shutdown()

    def _headers(self, raw):
        block = self.decompressor.decompress(raw)
        return decode_header_block(block)

    def _control(self, ftype, flags, p):
        if ftype == SYN_STREAM:
            sid, _assoc = struct.unpack(">II", p[:8])
            sid &= 0x7FFFFFFF
            headers = self._headers(p[10:])
            self._syn_stream(sid, flags, headers)
        elif ftype == HEADERS:
            self._headers(p[4:])  # keep the zlib stream in step
        elif ftype == RST_STREAM:
            sid, _status = struct.unpack(">II", p[:8])
            st = self.streams.get(sid & 0x7FFFFFFF)
            if st is not None:
                with st.lock:
                    st.reset = True
                self._close_target(st)
                self._forget(st)
        elif ftype == PING:
            self._write(control_frame(PING, 0, p[:4]))
        elif ftype == GOAWAY:
            raise EOFError
        elif ftype in (SETTINGS, WINDOW_UPDATE, SYN_REPLY):
            pass  # no flow control, as kubectl; we open no streams ourselves
        # unknown control frames are ignored (SPDY/3 2.2.1)

    def _syn_stream(self, sid, flags, headers):
        with self.slock:
            if sid in self.streams:
                dup = True
            else:
                dup = False
                if len(self.streams) >= MAX_STREAMS:
                    full = True
                else:
                    full = False
                    st = _Stream(sid, headers)
                    self.streams[sid] = st
        if dup:
            self.send_rst(sid, RST_STREAM_IN_USE)
            return
        if full:
            self.send_rst(sid, RST_REFUSED_STREAM)
            return
        self.send_reply(sid)
        if flags & FLAG_FIN:
            st.peer_fin = True
        if st.kind == "error":
            return
        if st.kind != "data":
            self._error(st, None, 'invalid stream type "%s"' % st.kind)
            return
        # Pair with its error stream (same requestid; kubectl opens it first).
        with self.slock:
            for other in self.streams.values():
                if other.kind == "error" and other.requestid == st.requestid \
                        and other.sid < sid and not getattr(other, "paired", False):
                    other.paired = True
                    st.error_stream = other
                    break
        t = threading.Thread(target=self._target_thread, args=(st,),
                             name="pf-%s-%d" % (self.name, sid), daemon=True)
        self.threads.append(t)
        t.start()

    def _data(self, sid, flags, payload):
        st = self.streams.get(sid)
        if st is None:
            self.send_rst(sid, RST_INVALID_STREAM)
            return
        fin = bool(flags & FLAG_FIN)
        with st.lock:
            sock = st.sock
            if sock is None:
                if payload:
                    st.pending.append(payload)
                if fin:
                    st.peer_fin = True
                return
        try:
            if payload:
                sock.sendall(payload)
            if fin:
                st.peer_fin = True
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the target thread sees it too and reports
        if fin:
            self._maybe_forget(st)

    # -- per data stream --------------------------------------------------
    def _target_thread(self, st):
        try:
            port = int(st.headers.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self._error(st, None, 'invalid port "%s"' % st.headers.get("port", ""))
            return
        host, tport = "", port
        try:
            host, tport = self.resolve(port)
            sock = socket.create_connection((host, tport), timeout=CONNECT_TIMEOUT)
            sock.settimeout(None)
            # as the kubelet (Go sets TCP_NODELAY on every TCP connection):
            # without it small frames wait for delayed ACKs (~40 ms each)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except LookupError as e:
            self._error(st, port, str(e))
            return
        except OSError as e:
            why = (e.strerror or str(e)).lower() if isinstance(e, OSError) else str(e)
            self._error(st, port, "dial tcp4 %s:%d: connect: %s" % (host, tport, why))
            return
        # Flush what arrived early, then hand writes to the reader thread.
        while True:
            with st.lock:
                if st.reset:
                    sock.close()
                    return
                pending, st.pending = st.pending, []
                if not pending:
                    st.sock = sock
                    fin = st.peer_fin
                    break
            try:
                for chunk in pending:
                    sock.sendall(chunk)
            except OSError:
                pass
        if fin:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        try:
            while True:
                try:
                    chunk = sock.recv(MAX_DATA)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                if not self.send_data(st, chunk):
                    break
        finally:
            self.send_data(st, b"", fin=True)
            if st.error_stream is not None:
                self.send_data(st.error_stream, b"", fin=True)
            self._close_target(st)
            self._maybe_forget(st)

    def _error(self, st, port, message):
        text = message if port is None else \
            "error forwarding port %d to pod %s, uid : %s" % (port, self.name, message)
        err = st.error_stream
        if err is not None:
            self.send_data(err, text.encode())
            self.send_data(err, b"", fin=True)
        else:
            log.warning("%s: %s", self.name, text)
        self.send_data(st, b"", fin=True)
        self._maybe_forget(st)

    def _close_target(self, st):
        with st.lock:
            sock = st.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _maybe_forget(self, st):
        with st.lock:
            done = st.reset or (st.peer_fin and st.local_fin)
        if done:
            self._forget(st)

    def _forget(self, st):
        with self.slock:
            if self.streams.get(st.sid) is st:
                del self.streams[st.sid]
        if st.sock is not None and (st.reset or (st.peer_fin and st.local_fin)):
            try:
                st.sock.close()
            except OSError:
                pass

    def shutdown(self):
        with self.wlock:
            self.closed = True
        with self.slock:
            streams = list(self.streams.values())
        for st in streams:
            with st.lock:
                st.reset = True
            self._close_target(st)


def _header(handler, name):
    return handler.headers.get(name, "") or ""


def handle_portforward(handler, store, namespace, pod_name):
    """SUBRESOURCES["portforward"]: take over the connection of `handler`
    (an http.server.BaseHTTPRequestHandler) for GET/POST .../pods/P/portforward."""
    upgrade = _header(handler, "Upgrade").lower()
    if handler.command == "GET" or "websocket" in upgrade:
        # Refused on purpose: kubectl falls back to SPDY on any failed
        # WebSocket handshake.
        _send_status(handler, 400, "BadRequest",
                     "kubesim: WebSocket port-forward is not supported, use SPDY/3.1")
        return
    pod = _get_pod(store, namespace, pod_name)
    if pod is None:
        _send_status(handler, 404, "NotFound",
                     'pods "%s" not found' % pod_name)
        return
    protocols = [p.strip() for v in handler.headers.get_all("X-Stream-Protocol-Version", [])
                 for p in v.split(",")]
    if "spdy/3.1" not in upgrade or "portforward.k8s.io" not in protocols:
        _send_status(handler, 400, "BadRequest",
                     "kubesim: expected Upgrade: SPDY/3.1 with "
                     "X-Stream-Protocol-Version: portforward.k8s.io")
        return
    handler.close_connection = True
    handler.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                        b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
    handler.wfile.flush()
    _log_request(handler, 101)
    conn = handler.connection
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the API server (Go)
    try:
        conn.settimeout(None)
    except OSError:
        return

    def resolve(port):
        p = _get_pod(store, namespace, pod_name)
        if p is None:
            raise LookupError('pod "%s/%s" not found' % (namespace, pod_name))
        status = p.get("status") or {}
        if status.get("phase") != "Running":
            raise LookupError('pod "%s/%s" is not running (phase %s)'
                              % (namespace, pod_name, status.get("phase")))
        ip = status.get("podIP")
        if not ip:
            raise LookupError('pod "%s/%s" has no IP' % (namespace, pod_name))
        return ip, port

    SpdySession(handler.rfile, conn, resolve, "%s/%s" % (namespace, pod_name)).run()


def register(subresources=None):
    """Register with server.SUBRESOURCES (or the dict given)."""
    if subresources is None:
        from . import server  # noqa: the core's module
        subresources = server.SUBRESOURCES
    subresources["portforward"] = handle_portforward


try:  # registering at import time when loaded as part of the kubesim package
    register()
except Exception:  # pragma: no cover - server.py absent or loaded standalone
    pass
