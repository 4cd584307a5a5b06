#!/usr/bin/env python3
"""Clients, timing and the report for bench/k8s.sh (`k8s_helpers.py COMMAND ARGS`,
see main() for the commands)."""
import json, os, random, socket, statistics, subprocess, sys, threading, time

def free_ports(n):
    """n free 127.0.0.1 ports below the ephemeral range, each with the two
    above it free too (room for a port shift); below that range no ephemeral
    socket takes one meanwhile and a connect to it can never self-connect."""
    try:
        lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    out = []
    for _ in range(2000):
        p = random.randrange(10000, max(lo - 10, 12000))
        if any(abs(p - q) < 3 for q in out):
            continue
        ok = True
        for i in range(3):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p + i))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            out.append(p)
            if len(out) == n:
                return out
    raise SystemExit("no free ports below %d" % lo)

def echo1(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise SystemExit("no echo through 127.0.0.1:%d" % port)
    finally:
        s.close()

def tput(host, port, nbytes, chunk=256 * 1024):
    """Send nbytes (a sender thread) while reading the echo back; seconds from
    the first send to the last byte back.  The first chunk is compared."""
    buf = os.urandom(chunk)
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    err = []

    def sender():
        try:
            left, mv = nbytes, memoryview(buf)
            while left:
                n = min(left, chunk)
                s.sendall(mv[:n])
                left -= n
        except OSError as e:
            err.append(str(e))
    t0 = time.perf_counter()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    rb, got, head = bytearray(chunk), 0, bytearray()
    while got < nbytes:
        n = s.recv_into(rb)
        if not n:
            break
        if len(head) < chunk:
            head += rb[:min(n, chunk - len(head))]
        got += n
    t1 = time.perf_counter()
    th.join(5)
    s.close()
    if got != nbytes or bytes(head) != buf[:len(head)] or err:
        raise SystemExit("throughput %s:%d: %d of %d bytes back, first chunk %s %s"
                         % (host, port, got, nbytes, "ok" if bytes(head) == buf[:len(head)] else "differs", err))
    return {"bytes": got, "seconds": t1 - t0, "mibps": got / (t1 - t0) / 2**20}

def pingpong(host, port, n, warm):
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pc, lat = time.perf_counter_ns, []
    for i in range(warm + n):
        t = pc()
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise SystemExit("ping-pong %s:%d: short echo" % (host, port))
        if i >= warm:
            lat.append(pc() - t)
    s.close()
    lat.sort()

    def q(p):  # nearest rank
        return lat[min(len(lat) - 1, max(0, -(-len(lat) * p // 100) - 1))] / 1e3
    return {"n": n, "p50_us": q(50), "p99_us": q(99), "mean_us": sum(lat) / len(lat) / 1e3,
            "min_us": lat[0] / 1e3, "max_us": lat[-1] / 1e3}

def proc(pid):
    """CPU ticks (utime+stime) and context switches of all threads, VmRSS of a pid."""
    st = open("/proc/%d/stat" % pid).read()
    f = st[st.rindex(")") + 2:].split()
    ctx = rss = 0
    for t in os.listdir("/proc/%d/task" % pid):  # every thread (kubectl is a Go program)
        try:
            for l in open("/proc/%d/task/%s/status" % (pid, t)):
                if l.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    ctx += int(l.split()[1])
        except OSError:
            pass
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            rss = int(l.split()[1])
    try:
        ag = open("/proc/%d/autogroup" % pid).read().split()[0]
    except (OSError, IndexError):
        ag = "-"
    return {"ticks": int(f[11]) + int(f[12]), "ctx": ctx, "rss_kib": rss,
            "hz": os.sysconf("SC_CLK_TCK"), "sid": int(f[3]), "autogroup": ag}

def wait_line(path, pattern, seconds, pid):
    """Wait until file path has a line containing pattern; print it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            for l in open(path, errors="replace"):
                if pattern in l:
                    print(l.strip())
                    return
        except OSError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            raise SystemExit("pid %d exited before printing %r" % (pid, pattern))
        time.sleep(0.01)
    raise SystemExit("no %r in %s after %s s" % (pattern, path, seconds))

def _end(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

def first_kubectl(port, argv):
    """kubectl port-forward from exec to "Forwarding from" on its stdout, then
    one echoed byte through it; kubectl is ended (by its pid) before returning."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        timer = threading.Timer(30, p.kill)  # bounded: a kubectl that never says anything
        timer.start()
        seen = []
        for line in p.stdout:
            seen.append(line.strip())
            if line.startswith("Forwarding from 127.0.0.1:"):
                break
        else:
            raise SystemExit("kubectl port-forward: no Forwarding line: %s" % seen)
        timer.cancel()
        t_fwd = time.monotonic()
        echo1(port)
        t_echo = time.monotonic()
        # drain its output meanwhile ("Handling connection for ...")
        threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    finally:
        _end(p)
    return {"fwd_ms": (t_fwd - t0) * 1e3, "echo_ms": (t_echo - t0) * 1e3}

def audit(state, name):
    ev = {}
    try:
        for l in open(os.path.join(state, name + ".log")):
            e = json.loads(l)
            ev[e["event"]] = e  # the last of each kind
    except (OSError, ValueError):
        pass
    return ev

def wall(ts):  # "2026-11-23T14:21:50.074985Z" -> epoch seconds
    import datetime
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

def first_devbridge(binary, state, port, target):
    """`devbridge connect` from exec until it returns, then one echoed byte
    through the local port it reports; then `disconnect -y` (timed), and the
    wait until its kubectl is gone."""
    name = None
    out, err = os.path.join(state, "..", "connect.out"), os.path.join(state, "..", "connect.err")
    w0, t0 = time.time(), time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:  # files: the supervisor inherits nothing we wait on
        p = subprocess.Popen([binary, "--state-dir", state, "--json", "connect", "-t", target],
                             stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        try:
            rc = p.wait(75)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise SystemExit("devbridge connect did not return in 75 s")
    t_exit = time.monotonic()
    try:
        j = json.load(open(out))
        b = j["bridges"][0]
        name, lport = b["name"], b["local_port"]
    except (OSError, ValueError, KeyError, IndexError):
        j, b, lport = None, {}, None
    if rc != 0 or not lport:
        raise SystemExit("devbridge connect: exit %d: %s %s" % (rc, open(out).read(), open(err).read()))
    echo1(lport)
    t_echo = time.monotonic()
    ev = audit(state, name)
    st = json.loads(subprocess.run([binary, "--state-dir", state, "--json", "status"], capture_output=True,
                                   text=True, timeout=30).stdout or "{}")
    kpid = next((r.get("kubectl_pid") for r in st.get("bridges", []) if r.get("name") == name), None)
    d0 = time.monotonic()
    r = subprocess.run([binary, "--state-dir", state, "disconnect", "-y"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    d1 = time.monotonic()
    if r.returncode != 0:
        raise SystemExit("disconnect -y: exit %d: %s" % (r.returncode, r.stderr))
    for _ in range(500):  # its kubectl gone, so the next run starts clean (5 s at most)
        if not kpid or not os.path.exists("/proc/%d" % kpid):
            break
        time.sleep(0.01)
    res = {"exit_ms": (t_exit - t0) * 1e3, "echo_ms": (t_echo - t0) * 1e3,
           "disconnect_ms": (d1 - d0) * 1e3, "local_port": lport, "requested_port": b.get("requested_port"),
           "started_ms": None, "connected_ms": None}
    if "bridge_started" in ev and "bridge_connected" in ev:
        res["started_ms"] = (wall(ev["bridge_started"]["ts"]) - w0) * 1e3
        res["connected_ms"] = (wall(ev["bridge_connected"]["ts"]) - w0) * 1e3
    return res

def dryrun(binary, state, target):
    t0 = time.monotonic()
    r = subprocess.run([binary, "--state-dir", state, "--json", "connect", "--dry-run", "-t", target],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    t1 = time.monotonic()
    if r.returncode != 0:
        raise SystemExit("connect --dry-run: exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
    return {"ms": (t1 - t0) * 1e3, "argv": json.loads(r.stdout)["bridges"][0]["argv"]}

# ------------------------------------------------------------------ report

def spread(v):
    """(max - min) / median of single runs."""
    return (max(v) - min(v)) / statistics.median(v) if v else 0.0

def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"

def report(records_path, md_path):
    recs = [json.loads(l) for l in open(records_path) if l.strip()]
    meta = next(r for r in recs if r["kind"] == "meta")
    end = next((r for r in recs if r["kind"] == "end"), {})
    paths = ["direct", "kubectl", "kubectl-2", "kubectl-setsid", "devbridge"]
    L = []
    a = L.append
    a("# devbridge Kubernetes bridge (`devbridge connect`): benchmark results")
    a("")
    a("Written by `bench/k8s.sh` (see the \"Kubernetes bridge\" section of `bench/README.md`); "
      "overwritten on every run.")
    a("")
    a(f"- date: {meta['date']}")
    a(f"- machine: {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}, {meta['os']}")
    a(f"- load average (1/5/15 min): {meta['loadavg']} at start, {end.get('loadavg', '?')} at the end")
    others = meta.get("other_sims", 0)
    if others:
        a(f"- **other work on the machine**: {others} other kubesim process(es) were running when the "
          f"benchmark started (other test runs); they share the 2 CPUs, see the load averages")
    a(f"- devbridge: `{meta['bin']}` ({meta['devbridge_version']}, binary built {meta['built']}; source tree "
      f"at commit {meta['head']}, uncommitted changes not recorded)")
    a(f"- kubectl: `{meta['kubectl']}` ({meta['kubectl_version']}); kubesim (tests/kubesim, --runtime) "
      f"under {meta['python']}; clients: Python ({meta['python']})")
    a(f"- command: `{meta['command']}`")
    for r in recs:
        if r["kind"] == "remark":
            a(f"- note: {r['text']}")
    a(f"- wall time of the run: {end.get('elapsed_s', '?')} s")
    a("")
    a(f"Setup: one kubesim with `--runtime`: pod `echo` (image kubesim/echo, a Python TCP echo server on "
      f"containerPort 8080) in its own network namespace at {meta['pod_ip']} on the bridge ksbr0; service "
      f"`echo` port 80 -> targetPort 8080 (ClusterIP {meta['cluster_ip']}, not used by any path below: "
      f"port-forward goes to the pod). Paths, client always on the host:")
    a("")
    for p in paths:
        a(f"- **{p}**: {meta['path_desc'][p]}")
    a("")
    a("The kubectl processes run the same command line (below); in each, every byte goes client -> "
      "kubectl (127.0.0.1:LOCAL) -> TLS + SPDY/3.1 stream to the API server (kubesim, Python) -> "
      "pod:8080 and back. devbridge only starts kubectl and reads its output.")
    a("")
    a(f"- by hand:   `{' '.join(meta['kpf_argv'])}`")
    a(f"- devbridge: `{meta['db_argv']}` (from its `bridge_started` audit event)")
    a("")

    # 1. throughput
    tp = {}
    for r in recs:
        if r["kind"] == "tput":
            tp.setdefault(r["path"], []).append(r["mibps"])
    ratios = {}
    if tp:
        med = {p: statistics.median(v) for p, v in tp.items()}
        a(f"## 1. Throughput: {meta['tput_mib']} MiB sent and echoed back on one connection, "
          f"median of {len(tp['direct'])} (paths alternate, order rotates per round)")
        a("")
        a("| path | median MiB/s | runs MiB/s |")
        a("|---|---|---|")
        for p in paths:
            if p in med:
                a(f"| {p} | {fmt(med[p])} | {' / '.join(fmt(x) for x in tp[p])} |")
        a("")
        ratios["tput_db_k"] = med["devbridge"] / med["kubectl"]
        ratios["tput_db_d"] = med["devbridge"] / med["direct"]
        ratios["tput_k2_k"] = med["kubectl-2"] / med["kubectl"]
        ratios["tput_spread"] = spread(tp["kubectl"] + tp["kubectl-2"])
        ratios["tput_db_ks"] = med["devbridge"] / med["kubectl-setsid"]
        ratios["tput_ks_k"] = med["kubectl-setsid"] / med["kubectl"]
        a(f"- devbridge / kubectl = **{ratios['tput_db_k']:.3f}** "
          f"(control: kubectl-2 / kubectl = {ratios['tput_k2_k']:.3f}, two identical hand-run kubectls)")
        a(f"- devbridge / kubectl-setsid = **{ratios['tput_db_ks']:.3f}** (like for like: both kubectls in a "
          f"session of their own; kubectl-setsid / kubectl = {ratios['tput_ks_k']:.3f})")
        a(f"- devbridge / direct  = **{ratios['tput_db_d']:.3f}** "
          f"(kubectl / direct = {med['kubectl'] / med['direct']:.3f})")
        a(f"- MiB/s counts the bytes one way ({meta['tput_mib']} MiB) over the time from the first send "
          "to the last echoed byte; the same bytes cross each path twice")
        a("")

    # 2. latency
    lt = {}
    for r in recs:
        if r["kind"] == "latency":
            lt.setdefault(r["path"], []).append(r)
    if lt:
        a(f"## 2. 1-byte ping-pong latency (microseconds): one connection, TCP_NODELAY, {meta['warmup']} "
          f"warm-up then {meta['pings']} timed round trips, {len(lt['direct'])} runs per path")
        a("")
        a("| path | p50 | p99 | mean | min | runs p50/p99 |")
        a("|---|---|---|---|---|---|")
        m = {}
        for p in paths:
            if p not in lt:
                continue
            rs = lt[p]
            m[p] = {k: statistics.median(r[k] for r in rs) for k in ("p50_us", "p99_us", "mean_us")}
            mn = min(r["min_us"] for r in rs)
            a(f"| {p} | {fmt(m[p]['p50_us'])} | {fmt(m[p]['p99_us'])} | {fmt(m[p]['mean_us'])} | {fmt(mn)} | "
              f"{', '.join(fmt(r['p50_us']) + '/' + fmt(r['p99_us']) for r in rs)} |")
        a("")
        ratios["p50_db_k"] = m["devbridge"]["p50_us"] / m["kubectl"]["p50_us"]
        ratios["p99_db_k"] = m["devbridge"]["p99_us"] / m["kubectl"]["p99_us"]
        ratios["p50_k2_k"] = m["kubectl-2"]["p50_us"] / m["kubectl"]["p50_us"]
        ratios["p99_k2_k"] = m["kubectl-2"]["p99_us"] / m["kubectl"]["p99_us"]
        ratios["p50_spread"] = spread([r["p50_us"] for r in lt["kubectl"] + lt["kubectl-2"]])
        ratios["p99_spread"] = spread([r["p99_us"] for r in lt["kubectl"] + lt["kubectl-2"]])
        ratios["p50_db_ks"] = m["devbridge"]["p50_us"] / m["kubectl-setsid"]["p50_us"]
        ratios["p99_db_ks"] = m["devbridge"]["p99_us"] / m["kubectl-setsid"]["p99_us"]
        a(f"- devbridge / kubectl: p50 **{ratios['p50_db_k']:.3f}**, p99 **{ratios['p99_db_k']:.3f}** "
          f"(control: kubectl-2 / kubectl: p50 {ratios['p50_k2_k']:.3f}, p99 {ratios['p99_k2_k']:.3f})")
        a(f"- devbridge / kubectl-setsid: p50 **{ratios['p50_db_ks']:.3f}**, p99 **{ratios['p99_db_ks']:.3f}** "
          f"(like for like)")
        a(f"- devbridge / direct:  p50 {m['devbridge']['p50_us'] / m['direct']['p50_us']:.2f}, "
          f"p99 {m['devbridge']['p99_us'] / m['direct']['p99_us']:.2f} "
          f"(kubectl / direct: p50 {m['kubectl']['p50_us'] / m['direct']['p50_us']:.2f}, "
          f"p99 {m['kubectl']['p99_us'] / m['direct']['p99_us']:.2f}); port-forward adds "
          f"{m['kubectl']['p50_us'] - m['direct']['p50_us']:.0f} us (kubectl) / "
          f"{m['devbridge']['p50_us'] - m['direct']['p50_us']:.0f} us (devbridge) per round trip at p50")
        a("")

    # data-path check
    cpu = next((r for r in recs if r["kind"] == "cpu"), None)
    if cpu:
        a("## Who worked during phases 1-2")
        a("")
        a(f"CPU time (utime + stime) and context switches of each process over the whole of phases 1 and 2 "
          f"({cpu['window_s']:.1f} s; each path got {meta['tput_mib']} MiB x {len(tp.get('direct', []))} "
          f"plus {len(lt.get('direct', []))} x {meta['pings'] + meta['warmup']} round trips):")
        a("")
        a("| process | CPU ms | context switches (all threads) | VmRSS KiB at the end | session | autogroup |")
        a("|---|---|---|---|---|---|")
        for who in ("kubectl (by hand)", "kubectl-2 (by hand)", "kubectl-setsid (by hand)", "kubectl (devbridge's)",
                    "devbridge supervisor"):
            c = cpu["procs"].get(who)
            if c:
                own = "the bench's" if c["sid"] == cpu["bench_sid"] else "its own"
                a(f"| {who} | {c['cpu_ms']:.0f} | {c['ctx']} | {c['rss_kib']} | {own} | {c['autogroup']} |")
        a("")
        a("The supervisor is not on the data path: it only reads kubectl's output (one \"Handling "
          "connection for PORT\" line per client connection). Each kubectl did the same work (same bytes, "
          "same round trips), so differences in its CPU time and context switches come from how it was "
          f"scheduled: with kernel.sched_autogroup_enabled = {cpu['autogroup_enabled']}, a kubectl in a session "
          "of its own (devbridge's, as the supervisor is a daemon with a session of its own, and kubectl-setsid) "
          "is a scheduling group of its own, competing as a group with the group of the client, the API server "
          "and the bench, which the hand-run kubectls share; kubectl-setsid shows what that alone does.")
        a("")

    # verdict on the data path
    if "tput_db_k" in ratios and "p50_db_k" in ratios:
        ok = all(abs(ratios[k] - 1) <= 0.10 for k in ("tput_db_k", "p50_db_k"))
        a("**Data path**: " + (
            f"devbridge / kubectl = {ratios['tput_db_k']:.3f} (throughput), {ratios['p50_db_k']:.3f} (p50), "
            f"{ratios['p99_db_k']:.3f} (p99); two identical hand-run kubectls differ by "
            f"{ratios['tput_k2_k']:.3f} / {ratios['p50_k2_k']:.3f} / {ratios['p99_k2_k']:.3f}, and single "
            f"runs of the two hand-run kubectls spread by ±{ratios['tput_spread'] * 50:.0f} % (throughput), "
            f"±{ratios['p50_spread'] * 50:.0f} % (p50), ±{ratios['p99_spread'] * 50:.0f} % (p99). "
            f"Like for like, devbridge / kubectl-setsid = {ratios['tput_db_ks']:.3f} / {ratios['p50_db_ks']:.3f} / "
            f"{ratios['p99_db_ks']:.3f}. "
            + ("Throughput and p50 are within ±0.10 of 1.0: devbridge adds nothing to the bytes, which go "
               "through the kubectl it runs exactly as through one started by hand (p99 is the tail of a "
               "Python API server and a Go relay sharing 2 CPUs with the client: read it against the "
               "control, not against 1.0)."
               if ok else
               "NOT within ±0.10 of 1.0: compare with the control ratio and the individual runs above "
               "before reading it as a devbridge cost (see bench/README.md).")))
        a("")

    # 3. start to first byte
    fk = [r for r in recs if r["kind"] == "first_kubectl"]
    fd = [r for r in recs if r["kind"] == "first_devbridge"]
    dr = [r["ms"] for r in recs if r["kind"] == "dryrun"]
    if fk and fd:
        a(f"## 3. Start to first echoed byte (ms), {len(fd)} runs each, alternating (after one untimed "
          "warm-up of each: kubectl's discovery cache is warm)")
        a("")
        a("Plain kubectl: exec of `kubectl port-forward` -> \"Forwarding from\" on its stdout -> a client "
          "connects to the local port and gets 1 byte echoed.")
        a("")
        a("| run | -> Forwarding from | -> first echoed byte |")
        a("|---|---|---|")
        for i, r in enumerate(fk, 1):
            a(f"| {i} | {fmt(r['fwd_ms'])} | {fmt(r['echo_ms'])} |")
        mk = {k: statistics.median(r[k] for r in fk) for k in ("fwd_ms", "echo_ms")}
        a(f"| **median** | **{fmt(mk['fwd_ms'])}** | **{fmt(mk['echo_ms'])}** |")
        a("")
        a("devbridge: exec of `devbridge connect -t echo:80:LOCAL` -> it returns (exit 0, bridge connected) -> "
          "a client connects to the local port it reports and gets 1 byte echoed; then `disconnect -y`. "
          "The middle columns are the `bridge_started` and `bridge_connected` audit timestamps, relative "
          "to the exec.")
        a("")
        a("| run | -> bridge_started | -> bridge_connected | -> connect returns | -> first echoed byte "
          "| disconnect -y |")
        a("|---|---|---|---|---|---|")
        for i, r in enumerate(fd, 1):
            a(f"| {i} | {fmt(r['started_ms'])} | {fmt(r['connected_ms'])} | {fmt(r['exit_ms'])} | "
              f"{fmt(r['echo_ms'])} | {fmt(r['disconnect_ms'])} |")

        def md(k):
            v = [r[k] for r in fd if r[k] is not None]
            return statistics.median(v) if v else None
        mdb = {k: md(k) for k in ("started_ms", "connected_ms", "exit_ms", "echo_ms", "disconnect_ms")}
        a(f"| **median** | **{fmt(mdb['started_ms'])}** | **{fmt(mdb['connected_ms'])}** | "
          f"**{fmt(mdb['exit_ms'])}** | **{fmt(mdb['echo_ms'])}** | **{fmt(mdb['disconnect_ms'])}** |")
        a("")
        shifted = [r for r in fd if r["local_port"] != r["requested_port"]]
        if shifted:
            a(f"- {len(shifted)} run(s) got a shifted local port (the requested one was still taken)")
        a(f"- **devbridge {fmt(mdb['echo_ms'], 0)} ms vs kubectl {fmt(mk['echo_ms'], 0)} ms** to the first "
          f"echoed byte: devbridge costs {fmt(mdb['echo_ms'] - mk['echo_ms'], 0)} ms more "
          f"(ratio {mdb['echo_ms'] / mk['echo_ms']:.2f})")
        a("")
        a("Breakdown of devbridge's median (medians of each step; they need not add up exactly):")
        a("")
        st = [r for r in fd if r["started_ms"] is not None]
        if st:
            pre = statistics.median(r["started_ms"] for r in st)
            run = statistics.median(r["connected_ms"] - r["started_ms"] for r in st)
            ret = statistics.median(r["exit_ms"] - r["connected_ms"] for r in st)
            ech = statistics.median(r["echo_ms"] - r["exit_ms"] for r in fd)
            a("| step | ms |")
            a("|---|---|")
            a(f"| pre-checks + starting the supervisor (exec -> `bridge_started`) | {pre:.0f} |")
            if dr:
                a(f"| for comparison: the pre-checks alone, `connect --dry-run` from exec to exit (median of "
                  f"{len(dr)}: {', '.join(fmt(x, 0) for x in dr)}) | {statistics.median(dr):.0f} |")
            a(f"| kubectl start -> \"Forwarding from\" -> probe connection -> 300 ms readiness window "
              f"(`bridge_started` -> `bridge_connected`) | {run:.0f} |")
            a(f"| of which kubectl to \"Forwarding from\" (not logged by devbridge; plain kubectl's median "
              f"above, for scale) | {mk['fwd_ms']:.0f} |")
            a("| of which the readiness window (fixed: the echo server does not speak first, so the whole "
              "window runs) | 300 |")
            a(f"| `bridge_connected` -> connect returns | {ret:.0f} |")
            a(f"| connect returns -> first echoed byte (a new connection through kubectl) | {ech:.0f} |")
            a("")
            a("The pre-checks are two rounds of kubectl runs, each round in parallel (`get --raw /version` "
              "with `config view --minify`, then `get namespace` with `get service -o json` for every "
              "target), each run a full kubectl start; the readiness "
              "window is what makes `connect` return only once a probe connection through kubectl was not "
              "failed by it. Plain kubectl's \"Forwarding from\" only says it listens locally: the pod side "
              "is first tried when a client connects.")
            a("")
    open(md_path, "w").write("\n".join(L).rstrip() + "\n")

def meta(argv):
    e = os.environ
    print(json.dumps({"kind": "meta", "date": e["DATE"], "nproc": e["NPROC"], "kernel": e["KERNEL"],
                      "cpu": e["CPU"], "os": e["OS"], "loadavg": e["LOADAVG"], "devbridge_version": e["DBV"],
                      "bin": e["BINP"], "built": e["BUILT"], "head": e["HEAD"], "kubectl": e["KUBECTLP"],
                      "kubectl_version": e["KUBECTLV"], "python": e["PYV"], "command": e["CMD"],
                      "pod_ip": e["POD_IP"], "cluster_ip": e["CLUSTER_IP"], "tput_mib": int(e["TPUT_MIB"]),
                      "pings": int(e["PINGS"]), "warmup": int(e["WARMUP"]), "other_sims": int(e["OTHER_SIMS"]),
                      "kpf_argv": json.loads(e["KPF_ARGV"]), "db_argv": e["DB_ARGV"],
                      "path_desc": {"direct": e["D_DIRECT"], "kubectl": e["D_KUBECTL"], "kubectl-2": e["D_KUBECTL2"],
                                    "kubectl-setsid": e["D_KUBECTLS"],
                                    "devbridge": e["D_DB"]}}))

def cpu(window_s, *pairs):
    """cpu WINDOW NAME=BEFORE_JSON=AFTER_JSON ..."""
    out = {}
    for p in pairs:
        name, b, af = p.split("=", 2)
        b, af = json.loads(b), json.loads(af)
        out[name] = {"cpu_ms": (af["ticks"] - b["ticks"]) * 1000 / b["hz"], "ctx": af["ctx"] - b["ctx"],
                     "rss_kib": af["rss_kib"], "sid": af["sid"], "autogroup": af["autogroup"]}
    print(json.dumps({"kind": "cpu", "window_s": float(window_s), "procs": out,
                      "bench_sid": os.getsid(0), "autogroup_enabled": _read("/proc/sys/kernel/sched_autogroup_enabled")}))

def _read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None

if __name__ == "__main__":
    c, args = sys.argv[1], sys.argv[2:]
    if c == "free-ports":
        print(" ".join(map(str, free_ports(int(args[0])))))
    elif c == "wait-line":
        wait_line(args[0], args[1], float(args[2]), int(args[3]))
    elif c == "tput":
        print(json.dumps(tput(args[0], int(args[1]), int(args[2]))))
    elif c == "pingpong":
        print(json.dumps(pingpong(args[0], int(args[1]), int(args[2]), int(args[3]))))
    elif c == "echo1":
        echo1(int(args[0]))
    elif c == "proc":
        print(json.dumps(proc(int(args[0]))))
    elif c == "first-kubectl":
        print(json.dumps(first_kubectl(int(args[0]), args[1:])))
    elif c == "first-devbridge":
        print(json.dumps(first_devbridge(args[0], args[1], int(args[2]), args[3])))
    elif c == "dryrun":
        print(json.dumps(dryrun(args[0], args[1], args[2])))
    elif c == "json-get":  # json-get KEY... < JSON
        v = json.load(sys.stdin)
        for k in args:
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v if not isinstance(v, (dict, list)) else json.dumps(v))
    elif c == "meta":
        meta(args)
    elif c == "cpu":
        cpu(args[0], *args[1:])
    elif c == "report":
        report(args[0], args[1])
    else:
        raise SystemExit("unknown command " + c)
