#!/usr/bin/env python3
"""Small helpers for bench/run.sh: ports, polling, /proc, JSON parsing, report.

    bench_helpers.py free-ports N
    bench_helpers.py wait-port PORT TIMEOUT          -> epoch seconds when it accepts
    bench_helpers.py wait-state NAME [!]STATE TIMEOUT -> epoch seconds when reached
    bench_helpers.py descendants PID                 -> every descendant pid
    bench_helpers.py ctx PID                         -> voluntary + nonvoluntary ctx switches
    bench_helpers.py idle-record TUNNEL ROLE PID CTX0 WINDOW -> JSON record (memory, wakeups)
    bench_helpers.py iperf-mbps FILE                 -> receiver Mbit/s
    bench_helpers.py audit-reconnect NAME T0         -> JSON: gaps from the audit log
    bench_helpers.py listener PORT LOGFILE           -> accept loop, one line per connection
    bench_helpers.py report RECORDS RESULTS_MD       -> table on stdout + markdown file

Epoch seconds are time.time() (CLOCK_REALTIME), the clock the audit log's
UTC timestamps are taken from, so the two can be subtracted.  Polling helpers
call "$DEVBRIDGE_BIN" with the environment run.sh exported (config, state dir).
"""
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time

BIN = os.environ.get("DEVBRIDGE_BIN", "devbridge")
POLL = 0.01  # seconds between polls: the resolution of every latency below


def free_ports(n):
    """n distinct ports free on 127.0.0.1 (and ::1, where sshd also binds
    remote forwards for "localhost"); all held open until chosen."""
    held, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", port))
            held.append(s6)
        except OSError as e:
            if e.errno not in (97, 99):  # 97/99: no IPv6 here, fine
                held.append(s)
                continue
        held.append(s)
        ports.append(port)
    for s in held:
        s.close()
    print(" ".join(map(str, ports)))


def wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            print(f"{time.time():.6f}")
            return 0
        except OSError:
            if time.monotonic() > deadline:
                print(f"port {port} not accepting after {timeout}s", file=sys.stderr)
                return 1
            time.sleep(POLL)


def bridge(name):
    out = subprocess.run([BIN, "--json", "status", name], capture_output=True, text=True).stdout
    try:
        return json.loads(out)["bridges"][0]
    except (ValueError, KeyError, IndexError):
        return {}


def wait_state(name, want, timeout):
    negate = want.startswith("!")
    want = want.lstrip("!")
    deadline = time.monotonic() + timeout
    while True:
        state = bridge(name).get("state")
        if (state != want) if negate else (state == want):
            print(f"{time.time():.6f}")
            return 0
        if time.monotonic() > deadline:
            print(f"{name}: state {state!r}, waited {timeout}s for {'!' if negate else ''}{want}",
                  file=sys.stderr)
            return 1
        time.sleep(POLL)


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    print(" ".join(map(str, out)))


def proc_status(pid):
    f = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            f[k] = v.split()[0] if v.split() else ""
    return f


def ctx_switches(pid):
    f = proc_status(pid)
    return int(f["voluntary_ctxt_switches"]) + int(f["nonvoluntary_ctxt_switches"])


def idle_record(tunnel, role, pid, ctx0, window):
    """The idle-phase record for one process: memory now, context switches
    since ctx0, and the mappings that make up most of its RSS."""
    f = proc_status(pid)
    pss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            pss = next(int(l.split()[1]) for l in fh if l.startswith("Pss:"))
    except (OSError, StopIteration):
        pass
    by_map, cur = {}, None
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            parts = line.split()
            if not parts[0].endswith(":"):
                cur = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                by_map[cur] = by_map.get(cur, 0) + int(parts[1])
    r = {
        "kind": "idle", "tunnel": tunnel, "proc": role, "pid": pid,
        "rss_kib": int(f["VmRSS"]), "rss_anon_kib": int(f["RssAnon"]),
        "rss_file_kib": int(f["RssFile"]), "pss_kib": pss,
        "libs": sum(1 for k in by_map if ".so" in k),
        "top_maps": sorted(by_map.items(), key=lambda kv: -kv[1])[:6],
        "ctx_delta": ctx_switches(pid) - ctx0, "window_s": window}
    print(json.dumps(r))
    print(f"    {tunnel + '.' + role:<19} pid {pid:<7} VmRSS {r['rss_kib']:>5} KiB "
          f"(anon {r['rss_anon_kib']}, file {r['rss_file_kib']}, Pss {pss})  "
          f"{r['ctx_delta']:>3} context switches", file=sys.stderr)


def iperf_mbps(path):
    with open(path) as fh:
        d = json.load(fh)
    if "error" in d:
        sys.exit(f"iperf3: {d['error']}")
    print(f"{d['end']['sum_received']['bits_per_second'] / 1e6:.1f}")


def parse_ts(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def audit_reconnect(name, t0):
    """The last bridge_connected, the bridge_reconnecting just before it (the
    failed attempt that scheduled the successful one: its detail ends with
    "retry in X.Xs"), and the first bridge_disconnected of that outage."""
    out = subprocess.run([BIN, "logs", name, "--json", "-n", "0"], capture_output=True,
                         text=True, check=True).stdout
    ev = json.loads(out)["events"]
    ic = max(i for i, e in enumerate(ev) if e["event"] == "bridge_connected")
    ir = max(i for i in range(ic) if ev[i]["event"] == "bridge_reconnecting")
    idis = max(i for i in range(ic) if ev[i]["event"] == "bridge_disconnected")
    detail = ev[ir].get("detail", "")
    backoff = None
    if "retry in " in detail:
        try:
            backoff = float(detail.rsplit("retry in ", 1)[1].rstrip("s").split()[0])
        except ValueError:
            pass
    tc = parse_ts(ev[ic]["ts"])
    print(json.dumps({
        "gap_s": tc - parse_ts(ev[ir]["ts"]),
        "backoff_s": backoff,
        "t0_to_audit_s": tc - t0,
        "outage_s": tc - parse_ts(ev[idis]["ts"]),
        "attempts": sum(1 for e in ev[idis:ic] if e["event"] == "bridge_reconnecting"),
    }))


def listener(port, logfile):
    """Accept and close; log one timestamp per connection (counts health checks)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    with open(logfile, "a", buffering=1) as log:
        while True:
            c, _ = s.accept()
            log.write(f"{time.time():.6f}\n")
            c.close()


# ---------------------------------------------------------------- report

def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def table(head, rows):
    w = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip()
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def md(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(records_path, md_path):
    recs = [json.loads(l) for l in open(records_path) if l.strip()]
    meta = next(r for r in recs if r["kind"] == "meta")
    sections = []  # (title, head, rows, notes)

    # 1. throughput
    tp = {}
    for r in recs:
        if r["kind"] == "tput":
            tp.setdefault(r["mode"], []).append(r["mbps"])
    if tp:
        med = {m: statistics.median(v) for m, v in tp.items()}
        labels = {"direct": "direct (iperf3 -> 127.0.0.1:LPORT)",
                  "ssh": "ssh -N -R by hand",
                  "devbridge": "devbridge reverse tunnel"}
        rows = [[labels[m], fmt(med[m], 0), " / ".join(fmt(x, 0) for x in tp[m])]
                for m in ("direct", "ssh", "devbridge") if m in med]
        r_ssh = med["devbridge"] / med["ssh"]
        r_dir = med["devbridge"] / med["direct"]
        notes = [f"devbridge / ssh-by-hand = {r_ssh:.3f}   (target ~1.00: the supervisor is not in the data path)",
                 f"devbridge / direct      = {r_dir:.3f}   (the cost of SSH itself: crypto + 2 extra hops)"]
        sections.append((f"Throughput, iperf3 single stream, {meta['tput_seconds']} s, "
                         f"median of {len(tp['direct'])} (runs alternate)",
                         ["path", "median Mbit/s", "runs Mbit/s"], rows, notes))

    # 2. reconnect
    rc = [r for r in recs if r["kind"] == "reconnect"]
    if rc:
        rows = []
        for r in rc:
            over = (r["gap_s"] - r["backoff_s"]) if r.get("backoff_s") is not None else None
            ok = "ok" if r["t0_to_status_s"] <= meta["backoff_initial"] + 1.0 else "OVER"
            rows.append([r["trial"], fmt(r["detect_s"], 3), fmt(r["t0_to_status_s"], 3),
                         fmt(r["t0_to_audit_s"], 3), fmt(r["gap_s"], 3), fmt(r.get("backoff_s"), 1),
                         fmt(over, 3), r["attempts"], ok])
        notes = [f"target: sshd back (T0) -> connected <= backoff step + 1 s = {meta['backoff_initial'] + 1:.0f} s "
                 f"(backoff_initial = backoff_max = {meta['backoff_initial']} s)",
                 "sshd is restarted as soon as the tunnel leaves `connected`, so T0 falls early in the "
                 "backoff wait; `backoff` is the supervisor's own \"retry in\" from the audit log and "
                 "`gap-backoff` is what the reconnect costs beyond it (ssh connect + auth + forward)"]
        sections.append(("Reconnect after sshd is SIGKILLed and restarted on the same port (seconds)",
                         ["#", "kill->!connected", "T0->connected(status)", "T0->connected(audit)",
                          "reconnecting->connected", "backoff", "gap-backoff", "attempts", "target"],
                         rows, notes))

    # 3. idle cost
    idle = [r for r in recs if r["kind"] == "idle"]
    if idle:
        rows = []
        mib = lambda k: None if k is None else k / 1024
        for r in idle:
            if r["proc"] == "supervisor":
                tgt = "ok" if r["rss_kib"] <= 2048 else "OVER (VmRSS > 2 MiB)"
            else:
                tgt = "(context)"
            rows.append([r["tunnel"], r["proc"], fmt(mib(r["rss_kib"])), fmt(mib(r["rss_anon_kib"])),
                         fmt(mib(r["rss_file_kib"])), fmt(mib(r.get("pss_kib"))), r["libs"],
                         r["ctx_delta"], fmt(r["ctx_delta"] * 60 / r["window_s"], 1), tgt])
        notes = []
        hc = next((r for r in recs if r["kind"] == "hc"), None)
        if hc:
            notes.append(f"health checks seen by the TCP target in the window: {hc['checks']} "
                         f"= {hc['checks'] * 60 / hc['window_s']:.1f}/min "
                         f"(configured every {hc['interval']} s = {60 / hc['interval']:.0f}/min)")
        sup = next((r for r in idle if r["proc"] == "supervisor"), None)
        if sup:
            notes.append("largest mappings in the bench supervisor's RSS (KiB): " +
                         ", ".join(f"{name} {kib}" for name, kib in sup["top_maps"]))
        notes.append("target: supervisor RSS <= 2 MiB; wakeups only from configured timers "
                     "(no health check -> ~0/min)")
        sections.append((f"Idle cost over {idle[0]['window_s']:.0f} s (MiB from /proc/PID/status and "
                         "smaps_rollup; context switches = voluntary + nonvoluntary)",
                         ["tunnel", "process", "VmRSS", "RssAnon", "RssFile", "Pss", "libs",
                          "ctx switches", "per min", "target"],
                         rows, notes))

    # 4. CLI latency (hyperfine, optional)
    cli = [r for r in recs if r["kind"] == "cli"]
    if cli:
        rows = [[r["command"], fmt(r["mean_ms"], 1), fmt(r["stddev_ms"], 1), fmt(r["min_ms"], 1),
                 r["runs"]] for r in cli]
        sections.append(("CLI latency (hyperfine)", ["command", "mean ms", "stddev ms", "min ms", "runs"],
                         rows, ["each status poll in the reconnect and idle phases costs this much, so the "
                                "(status) columns carry ~10-20 ms of polling resolution; the (audit) ones do not"]))

    # stdout
    print()
    for title, head, rows, notes in sections:
        print(f"== {title}")
        print(table(head, rows))
        for n in notes:
            print("   " + n)
        print()

    # markdown
    with open(md_path, "w") as fh:
        fh.write("# devbridge benchmark results\n\n")
        fh.write("Written by `bench/run.sh` (see `bench/README.md`); overwritten on every run.\n\n")
        fh.write(f"- date: {meta['date']}\n")
        end = next((r for r in recs if r["kind"] == "end"), {})
        fh.write(f"- machine: {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}; "
                 f"load average {meta['loadavg']} at start, {end.get('loadavg', '?')} at the end\n")
        fh.write(f"- {meta['ssh_version']}; {meta['iperf_version']}\n")
        fh.write(f"- devbridge: `{meta['bin']}` ({meta['devbridge_version']})\n")
        tmp = lambda s: s.replace(meta["tmp"], "$TMP")
        fh.write(f"- devbridge's ssh command line: `{tmp(meta['ssh_argv'])}`\n")
        fh.write(f"- ssh by hand: `{tmp(meta['hand_argv'])}`\n\n")
        for title, head, rows, notes in sections:
            fh.write(f"## {title}\n\n{md(head, rows)}\n\n")
            for n in notes:
                fh.write(f"- {n}\n")
            fh.write("\n")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "free-ports":
        free_ports(int(args[0]))
    elif cmd == "wait-port":
        return wait_port(int(args[0]), float(args[1]))
    elif cmd == "wait-state":
        return wait_state(args[0], args[1], float(args[2]))
    elif cmd == "descendants":
        descendants(int(args[0]))
    elif cmd == "ctx":
        print(ctx_switches(int(args[0])))
    elif cmd == "idle-record":
        idle_record(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
    elif cmd == "iperf-mbps":
        iperf_mbps(args[0])
    elif cmd == "audit-reconnect":
        audit_reconnect(args[0], float(args[1]))
    elif cmd == "listener":
        listener(int(args[0]), args[1])
    elif cmd == "report":
        report(args[0], args[1])
    else:
        sys.exit(f"bench_helpers.py: unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
