"""Devcontainer bridge: bulk data through a forwarded port."""

import hashlib
import os
import socket
import threading
import time

from container_helpers import MiB, roundtrip, sandbox, wait_for  # noqa: F401

N_CONN = 200
SIZE = 1 * MiB
LIMIT_S = 60


def test_container_200_concurrent_1mib_echo(sandbox):
    net = sandbox.net(1)
    host = sandbox.host_daemon(net.host_addr)
    sandbox.echo_server(net, 0, 7200)
    cd = sandbox.container_daemon(net, 0, host)
    hp = cd.wait_forward(7200)

    payloads = [os.urandom(SIZE) for _ in range(N_CONN)]
    want = [hashlib.sha256(p).hexdigest() for p in payloads]
    results = [None] * N_CONN
    connected = [0]
    lock = threading.Lock()
    go = threading.Event()

    def worker(i):
        try:
            s = socket.create_connection(("127.0.0.1", hp), timeout=15)
        except OSError as exc:
            results[i] = ("connect failed: %r" % exc, 0)
            with lock:
                connected[0] += 1
            return
        with lock:
            connected[0] += 1
        go.wait(30)
        try:
            results[i] = roundtrip(hp, payloads[i], timeout=LIMIT_S, sock=s)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = ("error: %r" % exc, 0)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(N_CONN)]
    for t in threads:
        t.start()
    wait_for(lambda: connected[0] == N_CONN, 20, "%d client connections to be made" % N_CONN)
    go.set()
    deadline = t0 + LIMIT_S
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    took = time.monotonic() - t0
    stuck = sum(1 for t in threads if t.is_alive())
    assert not stuck, "%d of %d transfers still running after %.0fs" % (stuck, N_CONN, took)

    bad = [(i, r) for i, r in enumerate(results) if r is None or r[0] != want[i] or r[1] != SIZE]
    assert not bad, "%d of %d connections did not echo 1 MiB intact; first: %r\nhost log:\n%s" % (
        len(bad), N_CONN, bad[:3], host.proc.tail(2000))
    assert took <= LIMIT_S, "200 x 1 MiB took %.1fs" % took
    assert host.proc.alive() and cd.proc.alive()
