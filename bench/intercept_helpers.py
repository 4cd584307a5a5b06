#!/usr/bin/env python3
"""Clients, the laptop's servers, timing and the report for bench/intercept.sh
(`intercept_helpers.py COMMAND ARGS`, see the end of the file for the
commands).  Throughput and free ports come from k8s_helpers.py."""
import json, os, signal, socket, statistics, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from k8s_helpers import free_ports, tput  # noqa: E402


def _echo_conn(c, tag):
    """Echo until the peer half-closes (tag first, once), then close."""
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tag:
            c.sendall(tag)
        while True:
            b = c.recv(262144)
            if not b:
                break
            c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()


def serve(port, tag=b""):
    """The developer's server on 127.0.0.1:port: a thread per connection,
    echoing (after `tag`).  Runs until killed (SIGTERM); prints "ready"
    once listening."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(512)

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=_echo_conn, args=(c, tag), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    ls.close()


def _q(v, p):  # nearest rank
    v = sorted(v)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))]


def rr(host, port, n, size, warm):
    """n request/response round trips of `size` bytes, each over a fresh
    connection: connect, send, read the `size` bytes echoed, close.  Times
    from before connect() to the last byte back, in microseconds."""
    req = os.urandom(size)
    pc, lat = time.perf_counter_ns, []
    for i in range(warm + n):
        t = pc()
        s = socket.create_connection((host, port), timeout=20)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req)
            got = b""
            while len(got) < size:
                b = s.recv(65536)
                if not b:
                    break
                got += b
        finally:
            s.close()
        if got != req:
            raise SystemExit("request/response %s:%d: %d of %d bytes back%s"
                             % (host, port, len(got), size, "" if len(got) < size else ", differ"))
        if i >= warm:
            lat.append((pc() - t) / 1e3)
    return {"n": n, "size": size, "p50_us": _q(lat, 50), "p99_us": _q(lat, 99),
            "mean_us": sum(lat) / len(lat), "min_us": min(lat), "max_us": max(lat)}


def tputs(host, port, nbytes, reps):
    """`reps` transfers of nbytes (sent and echoed back), each on a fresh
    connection; MiB/s per transfer."""
    return {"bytes": nbytes, "mibps": [tput(host, port, nbytes)["mibps"] for _ in range(reps)]}


def _probe(host, port, tag):
    """One fresh connection: whose answer is it?  'laptop', 'pod' or None."""
    try:
        s = socket.create_connection((host, port), timeout=1)
    except OSError:
        return None
    try:
        s.settimeout(2)
        s.sendall(b"p")
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(256)
            if not b:
                break
            got += b
    except OSError:
        return None
    finally:
        s.close()
    if got == tag + b"p":
        return "laptop"
    return "pod" if got == b"p" else None


def first(binary, state, service, lport, cip, cport, timeout_s):
    """`devbridge intercept SERVICE --steal -p CPORT:LPORT` from spawn to the
    first request to CIP:CPORT answered by the laptop (a tagged echo on
    LPORT, started here), with the arrival time of every progress line on
    stderr; then SIGINT and the time until the CLI exits (restore and
    cleanup).  Probes: a fresh connection every 10 ms."""
    tag = b"LAPTOP:"
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(64)

    def accept():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=_echo_conn, args=(c, tag), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    if _probe(cip, cport, tag) != "pod":
        raise SystemExit("before the intercept, %s:%d is not the pod's" % (cip, cport))
    lines, t0 = [], time.monotonic()
    p = subprocess.Popen([binary, "--state-dir", state, "intercept", service, "--steal",
                          "-p", "%d:%d" % (cport, lport)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def reader():
        for l in p.stderr:
            lines.append((time.monotonic() - t0, l.rstrip("\n")))
    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    t_first, probes = None, 0
    deadline = t0 + timeout_s
    try:
        while time.monotonic() < deadline and p.poll() is None:
            probes += 1
            if _probe(cip, cport, tag) == "laptop":
                t_first = time.monotonic() - t0
                break
            time.sleep(0.01)
        if t_first is None:
            raise SystemExit("no request reached the laptop within %s s (rc %s): %s"
                             % (timeout_s, p.poll(), [l for _, l in lines]))
        ts = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(60)
        t_stop = time.monotonic() - ts
        rt.join(5)
        if rc != 0:
            raise SystemExit("intercept exited %d: %s" % (rc, [l for _, l in lines]))
        if _probe(cip, cport, tag) != "pod":
            raise SystemExit("after the intercept, %s:%d is not the pod's" % (cip, cport))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ls.close()
    steps = []
    for at, l in lines:  # "[  2.5s] agent ready: POD"
        if l.startswith("[") and "s] " in l:
            cli_s = float(l[1:l.index("s]")])
            name = l[l.index("s] ") + 3:].split(":")[0]
            steps.append({"step": name, "at_s": at, "cli_s": cli_s})
    return {"first_s": t_first, "stop_s": t_stop, "probes": probes, "steps": steps}


# ---------------------------------------------------------------- report

def _md(x, nd=1):
    return "-" if x is None else ("%.*f" % (nd, x))


def report(records_path, md_path):
    recs = [json.loads(l) for l in open(records_path) if l.strip()]
    meta = next(r for r in recs if r["kind"] == "meta")
    end = next((r for r in recs if r["kind"] == "end"), {})
    paths = meta["paths"]
    o = []
    w = o.append
    w("# Kubernetes intercept benchmark\n")
    w("Written by `bench/intercept.sh` (see the \"Kubernetes intercept\" section of "
      "[README.md](README.md)); overwritten on every run.\n")
    w("- date: %s; machine: %s CPUs, %s; kernel %s; %s" % (meta["date"], meta["nproc"], meta["cpu"],
                                                          meta["kernel"], meta["os"]))
    w("- devbridge: %s (%s, built %s, tree %s); kubectl: %s; %s" % (
        meta["dbv"], meta["bin"], meta["built"], meta["head"], meta["kubectlv"], meta["pyv"]))
    w("- command: `%s`" % meta["cmd"])
    w("- load average at start %s, at end %s; other kubesim processes at start: %s; elapsed %s s"
      % (meta["loadavg"], end.get("loadavg", "?"), meta["other_sims"], end.get("elapsed_s", "?")))
    w("")
    w("Paths (the client is always on the host; kubesim --runtime: pods are processes in "
      "network namespaces on the bridge ksbr0, ClusterIPs are served by kubesim's Python "
      "proxy, `kubectl port-forward` by kubesim's Python API server):\n")
    w("| path | route |")
    w("|---|---|")
    for pth in paths:
        w("| %s | %s |" % (pth, meta["desc"][pth]))
    w("")

    lat = [r for r in recs if r["kind"] == "rr"]
    w("## 1. Added latency: small request/response over a fresh connection each\n")
    w("%s round trips of %s bytes per run (%s warm-up), each connect + send + read the echo + "
      "close, timed from before connect() to the last byte back; %s runs per path in rotated "
      "rounds. The table gives the median over runs of each run's p50 / p99 (nearest rank); "
      "*added* is intercept minus the path named.\n" % (meta["rr_n"], meta["rr_size"],
                                                        meta["rr_warm"], meta["rounds"]))
    med = {}
    w("| path | p50 µs | p99 µs | runs (p50 / p99) |")
    w("|---|---:|---:|---|")
    for pth in paths:
        rs = [r for r in lat if r["path"] == pth]
        if not rs:
            continue
        p50 = statistics.median(r["p50_us"] for r in rs)
        p99 = statistics.median(r["p99_us"] for r in rs)
        med[pth] = (p50, p99)
        w("| %s | %s | %s | %s |" % (pth, _md(p50, 0), _md(p99, 0),
                                     ", ".join("%.0f / %.0f" % (r["p50_us"], r["p99_us"]) for r in rs)))
    w("")
    if "intercept" in med:
        w("| intercept vs | added p50 µs | added p99 µs | ratio p50 | ratio p99 |")
        w("|---|---:|---:|---:|---:|")
        ip50, ip99 = med["intercept"]
        for pth in paths:
            if pth == "intercept" or pth not in med:
                continue
            b50, b99 = med[pth]
            w("| %s | %+.0f | %+.0f | %.2f | %.2f |" % (pth, ip50 - b50, ip99 - b99, ip50 / b50, ip99 / b99))
        w("")

    w("## 2. Throughput\n")
    w("Bytes sent and echoed back on one connection (a sender thread while the client reads), "
      "MiB/s of the echoed stream; each size is sent `reps` times per run on fresh connections, "
      "%s rounds, rotated. Median of all transfers per path and size; the ratio is against "
      "`intercept`.\n" % meta["rounds"])
    tp = [r for r in recs if r["kind"] == "tput"]
    for size in sorted({r["bytes"] for r in tp}):
        w("### %d MiB (%d transfers per run)\n" % (size >> 20, next(len(r["mibps"]) for r in tp if r["bytes"] == size)))
        w("| path | MiB/s (median) | min | max | intercept / path |")
        w("|---|---:|---:|---:|---:|")
        vals = {pth: [v for r in tp if r["bytes"] == size and r["path"] == pth for v in r["mibps"]] for pth in paths}
        im = statistics.median(vals["intercept"]) if vals.get("intercept") else None
        for pth in paths:
            v = vals[pth]
            if not v:
                continue
            m = statistics.median(v)
            w("| %s | %s | %s | %s | %s |" % (pth, _md(m), _md(min(v)), _md(max(v)),
                                              _md(im / m, 2) if im else "-"))
        w("")

    fr = [r for r in recs if r["kind"] == "first"]
    w("## 3. `intercept` to the first routed request\n")
    w("%d runs of `devbridge intercept web --steal -p 80:LPORT` (a fresh session each: new agent "
      "objects, new agent pod, swap, tunnel), a client probing the ClusterIP of `web` with a "
      "fresh connection every 10 ms until the laptop answers; then SIGINT and the time until "
      "the CLI has restored the selector, removed the agent's objects and exited. Each step is "
      "the moment its progress line reached the script (seconds after spawn); the CLI's own "
      "stamp (`[  2.5s]`) counts from the end of the pre-checks, so *pre-checks* = arrival − "
      "stamp of the first line. **Goal: first routed request ≤ 3 s** (devx documents 10-30 s "
      "for its setup).\n" % len(fr))
    names = []
    for r in fr:
        for s in r["steps"]:
            if s["step"] not in names and s["step"] not in ("stopping", "selector restored",
                                                             "agent removed"):
                names.append(s["step"])
    cols = ["pre-checks"] + names + ["first routed request", "stop (SIGINT -> exit)"]
    w("| run | " + " | ".join(cols) + " |")
    w("|---|" + "---:|" * len(cols))
    per = {c: [] for c in cols}
    for i, r in enumerate(fr, 1):
        st = {s["step"]: s for s in r["steps"]}
        pre = r["steps"][0]["at_s"] - r["steps"][0]["cli_s"] if r["steps"] else None
        row = [pre] + [st[n]["at_s"] if n in st else None for n in names] + [r["first_s"], r["stop_s"]]
        for c, v in zip(cols, row):
            if v is not None:
                per[c].append(v)
        w("| %d | %s |" % (i, " | ".join(_md(v, 2) for v in row)))
    w("| **median** | %s |" % " | ".join(_md(statistics.median(per[c]), 2) if per[c] else "-" for c in cols))
    w("")
    if per["first routed request"]:
        m = statistics.median(per["first routed request"])
        w("Median time to the first routed request: **%.2f s** (goal ≤ 3 s: %s); worst %.2f s.\n"
          % (m, "met" if m <= 3 else "NOT met", max(per["first routed request"])))
        # the split, as differences of the medians of each step's arrival
        w("Split (median arrival of each step minus the previous one's):\n")
        prev, prevn = 0.0, "spawn"
        for c in cols[:-1]:
            if per[c]:
                v = statistics.median(per[c])
                w("- %s -> %s: %.2f s" % (prevn, c, v - prev))
                prev, prevn = v, c
        w("")
    for r in recs:
        if r["kind"] == "remark":
            w("Note: %s\n" % r["text"])
    open(md_path, "w").write("\n".join(o) + "\n")
    print("\n".join(o))


if __name__ == "__main__":
    c, args = sys.argv[1], sys.argv[2:]
    if c == "free-ports":
        print(" ".join(map(str, free_ports(int(args[0])))))
    elif c == "serve":
        serve(int(args[0]), args[1].encode() if len(args) > 1 else b"")
    elif c == "rr":
        print(json.dumps(rr(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]))))
    elif c == "tputs":
        print(json.dumps(tputs(args[0], int(args[1]), int(args[2]), int(args[3]))))
    elif c == "first":
        print(json.dumps(first(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]),
                               float(args[6]))))
    elif c == "report":
        report(args[0], args[1])
    else:
        raise SystemExit("unknown command " + c)
