"""What the intercept and agent tests share: a server standing in for the
laptop (or for an original pod), and a client round trip."""

import socket
import threading


class TagServer:
    """A TCP server: reads each connection to EOF, records what it read,
    answers `tag` + the bytes, closes."""

    def __init__(self, tag=b"LAPTOP ", host="127.0.0.1", port=0):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.tag = tag
        self.got = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        data = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
        with self.lock:
            self.got.append(data)
        try:
            c.sendall(self.tag + data)
        except OSError:
            pass
        c.close()

    def requests(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.ls.close()


def roundtrip(host, port, data, timeout=20):
    """A client: connect, send data, half-close, read the reply to EOF."""
    s = socket.create_connection((host, port), timeout=timeout)
    out = []

    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                return
            out.append(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout + 10)
    s.close()
    return b"".join(out)
