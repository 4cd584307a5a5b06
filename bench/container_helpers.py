#!/usr/bin/env python3
"""Small helpers for bench/container.sh: ports, the host daemon's state file,
/proc readings, JSON parsing, the report.

    container_helpers.py free-ports N LO HI          -> N ports in [LO, HI] free on the host
    container_helpers.py wait-forward STATE PORT T   -> host_port of container port PORT
    container_helpers.py wait-unforward STATE PORT T -> (nothing) once PORT is no longer forwarded
    container_helpers.py wait-fds T PID:MOST...      -> seconds until each PID has <= MOST fds open
    container_helpers.py proc PID                    -> JSON: VmRSS, RssAnon, CPU ticks, ctx switches
    container_helpers.py slab                        -> Slab: of /proc/meminfo, KiB
    container_helpers.py descendants PID             -> every descendant pid
    container_helpers.py iperf-mbps FILE             -> receiver Mbit/s
    container_helpers.py report RECORDS RESULTS_MD   -> tables on stdout + markdown file

STATE is the host daemon's SD/host-daemon.state (JSON:
containers[].forwards[] {port, host_port}, ...).  Polls are every
10 ms.  Ports are chosen below the ephemeral range (32768-60999 here) so a
connect to a port nobody listens on is refused and can never be a TCP
self-connect.
"""
import json
import os
import random
import socket
import statistics
import sys
import time

# Shared with the SSH bench (bench/run.sh).
from bench_helpers import descendants, fmt, iperf_mbps, md, table  # noqa: E402,F401

POLL = 0.01


# ---------------------------------------------------------------- ports, state

def free_ports(n, lo, hi):
    ports, tried = [], set()
    while len(ports) < n:
        p = random.randint(lo, hi)
        if p in tried:
            continue
        tried.add(p)
        ok = True
        for host in ("127.0.0.1", "0.0.0.0"):
            s = socket.socket()
            try:
                s.bind((host, p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            ports.append(p)
    print(" ".join(map(str, ports)))


def read_state(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def forward_of(state, port):
    for c in state.get("containers", []):
        for f in c.get("forwards", []):
            if f.get("port") == port:
                return f
    return None


def wait_forward(path, port, timeout, present=True):
    deadline = time.monotonic() + timeout
    while True:
        f = forward_of(read_state(path), port)
        if present and f and f.get("host_port"):
            print(f["host_port"])
            return 0
        if not present and f is None:
            return 0
        if time.monotonic() > deadline:
            print(f"port {port}: {'no forward' if present else 'still forwarded'} after {timeout}s",
                  file=sys.stderr)
            return 1
        time.sleep(POLL)


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(limits, timeout):
    """Until every pid has at most its number of fds open (the daemons' state
    file counts relays only when it is rewritten, on forward changes, so
    open fds are the live measure: 2 per relay)."""
    t0 = time.monotonic()
    while True:
        n = {p: nfds(p) for p in limits}
        if all(n[p] <= m for p, m in limits.items()):
            print(f"{time.monotonic() - t0:.3f}")
            return 0
        if time.monotonic() - t0 > timeout:
            print(f"fds {n} after {timeout}s, expected at most {limits}", file=sys.stderr)
            print("null")
            return 1
        time.sleep(POLL)


# ---------------------------------------------------------------- /proc

def proc(pid):
    f = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            f[k] = v.split()[0] if v.split() else ""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    # fields 14 and 15 (utime, stime) are rest[11], rest[12]
    ticks = int(rest[11]) + int(rest[12])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    print(json.dumps({"pid": pid, "rss_kib": int(f["VmRSS"]), "anon_kib": int(f["RssAnon"]),
                      "ticks": ticks, "hz": os.sysconf("SC_CLK_TCK"), "fds": fds,
                      "ctx": int(f["voluntary_ctxt_switches"]) + int(f["nonvoluntary_ctxt_switches"]),
                      "mono": time.monotonic()}))


def slab():
    """Slab (kernel objects: sockets, epoll items, ...) of the whole machine, KiB."""
    with open("/proc/meminfo") as fh:
        print(next(int(l.split()[1]) for l in fh if l.startswith("Slab:")))


# ---------------------------------------------------------------- report

PATHS = ("direct", "devbridge", "devbridge-base", "haproxy", "socat", "haproxy-x2")


def vs_base(recs, kind, key):
    """devbridge / devbridge-base of `key`: (ratio of the medians, per-round ratios), or None."""
    by = {}
    for r in recs:
        if r["kind"] == kind and r["path"] in ("devbridge", "devbridge-base"):
            by.setdefault(r["path"], {})[r.get("round")] = r[key]
    if len(by) < 2:
        return None
    a, b = by["devbridge"], by["devbridge-base"]
    per = [a[k] / b[k] for k in a if k in b and b[k]]
    return statistics.median(a.values()) / statistics.median(b.values()), per


def vs_base_note(recs, kind, key, what):
    v = vs_base(recs, kind, key)
    if not v:
        return []
    ratio, per = v
    spread = f", per round {statistics.median(per):.3f} ({min(per):.3f} - {max(per):.3f})" if per else ""
    return [f"devbridge / devbridge-base {what} = {ratio:.3f}{spread} (same run; the baseline binary)"]


def pctl(xs, p):
    """nearest rank"""
    s = sorted(xs)
    k = max(1, min(len(s), int(p / 100 * len(s) + 0.999999999)))
    return s[k - 1]


def verdict(ok):
    return "met" if ok else "NOT met"


def report(records_path, md_path):
    recs = [json.loads(l) for l in open(records_path) if l.strip()]
    meta = next(r for r in recs if r["kind"] == "meta")
    end = next((r for r in recs if r["kind"] == "end"), {})
    hops = meta["hops"]
    sections, targets = [], []  # sections: (title, head, rows, notes)

    # 1. throughput
    tp = {}
    for r in recs:
        if r["kind"] == "tput":
            tp.setdefault(r["path"], []).append(r["mbps"])
    if tp:
        med = {p: statistics.median(v) for p, v in tp.items()}
        rows = [[p, hops[p], fmt(med[p], 0), " / ".join(fmt(x, 0) for x in tp[p])]
                for p in PATHS if p in med]
        r_hap = med["devbridge"] / med["haproxy"]
        r_dir = med["devbridge"] / med["direct"]
        r_soc = med["devbridge"] / med["socat"]
        r_hx2 = med["devbridge"] / med["haproxy-x2"] if "haproxy-x2" in med else None
        notes = [f"devbridge / haproxy = {r_hap:.3f} (target >= 1.1: {verdict(r_hap >= 1.1)})",
                 f"devbridge / direct  = {r_dir:.3f} (target >= 0.7: {verdict(r_dir >= 0.7)})",
                 f"devbridge / socat   = {r_soc:.3f}",
                 f"devbridge / haproxy-x2 = {fmt(r_hx2, 3)} (like for like: two relays each; no target)",
                 "devbridge's bytes cross TWO user-space relays (host daemon, then container daemon, "
                 "plus one extra loopback hop inside the namespace); haproxy and socat cross ONE; "
                 "direct crosses none; haproxy-x2 crosses two, on the same route as devbridge"]
        notes += vs_base_note(recs, "tput", "mbps", "throughput")
        targets += [("throughput devbridge/haproxy >= 1.1", f"{r_hap:.3f}", verdict(r_hap >= 1.1)),
                    ("throughput devbridge/direct >= 0.7", f"{r_dir:.3f}", verdict(r_dir >= 0.7))]
        sections.append((f"1. Throughput, iperf3 single stream, {meta['tput_seconds']} s per run, "
                         f"median of {len(tp['direct'])} (paths alternate, order rotates per round)",
                         ["path", "relays", "median Mbit/s", "runs Mbit/s"], rows, notes))

    # 2. latency
    lat = {}
    for r in recs:
        if r["kind"] == "latency":
            lat.setdefault(r["path"], []).append(r)
    if lat:
        rows = []
        m50, m99 = {}, {}
        for p in PATHS:
            if p not in lat:
                continue
            m50[p] = statistics.median(x["p50_us"] for x in lat[p])
            m99[p] = statistics.median(x["p99_us"] for x in lat[p])
            rows.append([p, hops[p], fmt(m50[p], 1), fmt(m99[p], 1),
                         fmt(statistics.median(x["mean_us"] for x in lat[p]), 1),
                         fmt(min(x["min_us"] for x in lat[p]), 1),
                         ", ".join(f"{x['p50_us']:.1f}/{x['p99_us']:.1f}" for x in lat[p])])
        ok50 = m50["devbridge"] <= m50["haproxy"]
        ok99 = m99["devbridge"] <= m99["haproxy"]
        notes = [f"devbridge p50 {m50['devbridge']:.1f} us vs haproxy {m50['haproxy']:.1f} us "
                 f"(target devbridge <= haproxy: {verdict(ok50)}); "
                 f"p99 {m99['devbridge']:.1f} vs {m99['haproxy']:.1f} us ({verdict(ok99)})"]
        if "haproxy-x2" in m50:
            notes.append(f"like for like (two relays each): devbridge p50 {m50['devbridge']:.1f} / "
                         f"p99 {m99['devbridge']:.1f} us vs haproxy-x2 {m50['haproxy-x2']:.1f} / "
                         f"{m99['haproxy-x2']:.1f} us")
        notes += vs_base_note(recs, "latency", "p50_us", "p50")
        notes += vs_base_note(recs, "latency", "p99_us", "p99")
        per = [f"{p} {(m50[p] - m50['direct']) / hops[p]:.1f}" for p in PATHS if p in m50 and hops[p]]
        notes.append("p50 added per relay over direct, (p50 - direct p50) / relays, us: " + ", ".join(per))
        notes += [
                 f"each run: {lat['direct'][0]['n']} timed 1-byte round trips on one TCP_NODELAY "
                 "connection after a warm-up; the table gives the median over the runs of each "
                 "run's percentile (and mean); min is the fastest round trip of all runs, the path's cost "
                 "with the least scheduling noise"]
        targets += [("latency p50 devbridge <= haproxy",
                     f"{m50['devbridge']:.1f} vs {m50['haproxy']:.1f} us", verdict(ok50)),
                    ("latency p99 devbridge <= haproxy",
                     f"{m99['devbridge']:.1f} vs {m99['haproxy']:.1f} us", verdict(ok99))]
        sections.append((f"2. 1-byte ping-pong latency (microseconds), {len(lat['direct'])} runs per path",
                         ["path", "relays", "p50", "p99", "mean", "min", "runs p50/p99"], rows, notes))

    # 3. connection rate
    crs = {}
    for r in recs:
        if r["kind"] == "connrate":
            crs.setdefault(r["path"], []).append(r)
    # one run per path, or the median of the rounds (conns and errors summed)
    cr = {p: {"rate": statistics.median(x["rate"] for x in v),
              "seconds": statistics.median(x["seconds"] for x in v),
              "conns": sum(x["conns"] for x in v), "errors": sum(x["errors"] for x in v),
              "runs": [x["rate"] for x in v]} for p, v in crs.items()}
    if cr:
        rows = [[p, hops[p], fmt(cr[p]["rate"], 0), cr[p]["conns"], cr[p]["errors"],
                 fmt(cr[p]["seconds"], 2)] + ([" / ".join(fmt(x, 0) for x in cr[p]["runs"])]
                                              if len(cr[p]["runs"]) > 1 else [])
                for p in PATHS if p in cr]
        multi = any(len(v["runs"]) > 1 for v in cr.values())
        notes = ["each connection: connect, send 1 byte, read the 1-byte echo, close; sequential, "
                 f"one client; stops after {meta['conn_max']} connections or {meta['conn_seconds']} s",
                 "socat forks a process per connection (its `fork` option); devbridge asks the "
                 "container daemon for a reverse data connection per client (ConnectRequest on the "
                 "control connection, local connect in the namespace, data connection back, "
                 "ConnectReady) before the first byte can flow"]
        if multi:
            notes.append(f"{len(crs['direct'])} rounds, paths rotated: conns/s and seconds are "
                         "medians, conns and errors totals")
        notes += vs_base_note(recs, "connrate", "rate", "connection rate")
        sections.append(("3. Connection rate (sequential)",
                         ["path", "relays", "conns/s", "conns", "errors", "seconds"]
                         + (["runs conns/s"] if multi else []), rows, notes))

    # 4. 10,000 idle connections
    hold = next((r for r in recs if r["kind"] == "hold"), None)
    if hold:
        rows = []
        n = hold["opened"]
        for who in ("host", "container"):
            b, a, c = hold[f"{who}_before"], hold[f"{who}_after"], hold.get(f"{who}_closed")
            delta = (a["rss_kib"] - b["rss_kib"]) * 1024
            per = delta / n if n else None
            ok = per is not None and per <= 4096 and hold["errors"] == 0
            rows.append([f"{who} daemon", b["rss_kib"], a["rss_kib"],
                         c["rss_kib"] if c else "-", fmt(delta / 1024, 0),
                         fmt(per, 0), f"{b['fds']} -> {a['fds']}" + (f" -> {c['fds']}" if c else ""),
                         verdict(ok)])
            targets.append((f"{who} daemon RSS per idle connection <= 4 KiB, 0 errors",
                            f"{fmt(per, 0)} B, {hold['errors']} errors", verdict(ok)))
        notes = [f"{n} connections opened through devbridge and held, {hold['errors']} errors"
                 + (f" (first: {hold['first_error']})" if hold.get("first_error") else "")
                 + f"; opening took {hold['open_s']:.2f} s (sequential, each proven by a 1-byte echo)",
                 f"after the client closed them all ({hold['close_s']:.2f} s for its close() loop), "
                 f"both daemons were back to their fd count from before in "
                 f"{fmt(hold.get('drain_s'), 2)} s",
                 "RSS from /proc/PID/status (VmRSS) just before opening and with all connections "
                 "held; per connection = (after - before) / connections; kernel socket buffers are "
                 "not in RSS. 'closed' = after all were closed and the fds were released; fds = open "
                 "file descriptors of the daemon (2 per relayed connection)"]
        if n and "slab_after_kib" in hold:
            sl = (hold["slab_after_kib"] - hold["slab_before_kib"]) * 1024 / n
            notes.append(f"for scale, kernel memory outside RSS: Slab (whole machine) grew by "
                         f"{(hold['slab_after_kib'] - hold['slab_before_kib']) / 1024:.1f} MiB = "
                         f"{sl:.0f} B per held connection, for all 6 sockets of its chain (client, "
                         "host daemon x2, container daemon x2, server) plus epoll entries; noisy, "
                         "other processes allocate too")
        sections.append((f"4. {hold['wanted']} concurrent idle connections through devbridge (RSS KiB)",
                         ["process", "before", "held", "closed", "delta KiB", "bytes/conn", "fds",
                          "target"], rows, notes))

    # 5. listen -> answer, idle CPU
    la = [r for r in recs if r["kind"] == "listen"]
    if la:
        ok_trials = [r["ms"] for r in la if r["ms"] is not None]
        failed = len(la) - len(ok_trials)
        p50 = pctl(ok_trials, 50) if ok_trials else None
        p90 = pctl(ok_trials, 90) if ok_trials else None
        mx = max(ok_trials) if ok_trials else None
        ok = p50 is not None and p50 <= 100 and failed == 0
        rows = [[len(la), failed, fmt(p50, 1), fmt(p90, 1), fmt(mx, 1), fmt(min(ok_trials), 1)
                 if ok_trials else "-"]]
        notes = [f"target p50 <= 100 ms: {verdict(ok)}",
                 "T0 = CLOCK_MONOTONIC right after listen() in a fresh server in the namespace (fresh "
                 f"port each time); T1 = first 1-byte echo through 127.0.0.1:PORT on the host, "
                 f"polled every {meta['probe_ms']} ms (a refused connect = forward not there yet); "
                 f"the container daemon scans every 50 ms (its default)",
                 "all trials (ms): " + ", ".join(fmt(r["ms"], 1) for r in la)]
        targets.append(("listen -> answer p50 <= 100 ms", f"{fmt(p50, 1)} ms", verdict(ok)))
        sections.append(("5a. Listen-to-answer latency (ms)",
                         ["trials", "failed", "p50", "p90", "max", "min"], rows, notes))
    idle = [r for r in recs if r["kind"] == "idle"]
    if idle:
        rows = []
        for r in idle:
            rows.append([f"{r['who']} daemon", fmt(r["window_s"], 1), r["ticks"], fmt(r["cpu_pct"], 3),
                         fmt(r["ctx"] / r["window_s"], 1), r["rss_kib"]])
            if r["who"] == "container":
                targets.append(("container daemon idle CPU <= 1 % of a core",
                                f"{r['cpu_pct']:.3f} %", verdict(r["cpu_pct"] <= 1.0)))
        notes = ["utime + stime from /proc/PID/stat (clock ticks of 1/%d s) over the window, "
                 "no traffic; %% of one core; wakeups = voluntary + nonvoluntary context switches"
                 % idle[0]["hz"],
                 f"forwards present during the window: {idle[0].get('forwards')}"]
        sections.append(("5b. Idle cost of the daemons",
                         ["process", "window s", "CPU ticks", "CPU % of a core", "wakeups/s",
                          "VmRSS KiB"], rows, notes))

    summary = ("Targets", ["target", "measured", "result"], [list(t) for t in targets], [])

    print()
    for title, head, rows, notes in sections + [summary]:
        print(f"== {title}")
        print(table(head, rows))
        for n in notes:
            print("   " + n)
        print()

    with open(md_path, "w") as fh:
        fh.write("# devbridge devcontainer bridge: benchmark results\n\n")
        fh.write("Written by `bench/container.sh` (see the \"Devcontainer bridge\" section of "
                 "`bench/README.md`); overwritten on every run.\n\n")
        fh.write(f"- date: {meta['date']}\n")
        fh.write(f"- machine: {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}, "
                 f"{meta['os']}\n")
        fh.write(f"- load average (1/5/15 min): {meta['loadavg']} at start, "
                 f"{end.get('loadavg', '?')} at the end\n")
        fh.write(f"- devbridge: `{meta['bin']}` ({meta['devbridge_version']}, binary built "
                 f"{meta.get('built', '?')}; source tree at commit {meta.get('head', '?')}, "
                 "uncommitted changes not recorded)\n")
        if meta.get("base_bin"):
            fh.write(f"- baseline (path devbridge-base, phases 1-3): `{meta['base_bin']}` "
                     f"({meta['base_version']}, binary built {meta['base_built']})\n")
        fh.write(f"- {meta['iperf_version']}; {meta['haproxy_version']}; {meta['socat_version']}; "
                 f"client/server: bench/container_net.c built with {meta['cc_version']}\n")
        fh.write(f"- wall time of the run: {end.get('elapsed_s', '?')} s\n\n")
        fh.write("Setup: network namespace with a veth pair, host side 10.232.0.1/24, namespace "
                 "side 10.232.0.2/24. Paths (client always on the host):\n\n")
        for p in PATHS:
            if p in meta["path_desc"] and (p != "devbridge-base" or meta.get("base_bin")):
                fh.write(f"- **{p}**: {meta['path_desc'][p]}\n")
        fh.write("\n")
        for title, head, rows, notes in [summary] + sections:
            fh.write(f"## {title}\n\n{md(head, rows)}\n\n")
            for n in notes:
                fh.write(f"- {n}\n")
            fh.write("\n")
        remarks = [r["text"] for r in recs if r["kind"] == "remark"]
        if remarks:
            fh.write("## Remarks\n\n")
            for n in remarks:
                fh.write(f"- {n}\n")


def main(argv):
    cmd, a = argv[1], argv[2:]
    if cmd == "free-ports":
        free_ports(int(a[0]), int(a[1]), int(a[2]))
    elif cmd == "wait-forward":
        return wait_forward(a[0], int(a[1]), float(a[2]))
    elif cmd == "wait-unforward":
        return wait_forward(a[0], int(a[1]), float(a[2]), present=False)
    elif cmd == "wait-fds":
        return wait_fds({int(x.split(":")[0]): int(x.split(":")[1]) for x in a[1:]}, float(a[0]))
    elif cmd == "proc":
        proc(int(a[0]))
    elif cmd == "slab":
        slab()
    elif cmd == "descendants":
        descendants(int(a[0]))
    elif cmd == "iperf-mbps":
        iperf_mbps(a[0])
    elif cmd == "report":
        report(a[0], a[1])
    else:
        sys.exit(f"container_helpers.py: unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
