"""Command line: python3 -m kubesim --dir DIR [--port 0] [--runtime].

Starts the HTTPS API server on 127.0.0.1, writes DIR/kubeconfig and DIR/ready
once listening, and stops cleanly on SIGTERM/SIGINT (DIR/ready removed).
The optional plug-ins are loaded when present: portforward.py always (it only
registers a subresource handler), runtime.py with --runtime (pods become
processes in network namespaces; needs root).
"""

import argparse
import importlib
import signal
import sys
import threading

from . import server


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m kubesim")
    ap.add_argument("--dir", required=True, help="directory for certs, kubeconfig, ready, logs")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: chosen by the kernel)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--runtime", action="store_true",
                    help="run pods as processes (runtime.py, needs root)")
    args = ap.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        importlib.import_module(__package__ + ".portforward")
    except ImportError as e:
        print("kubesim: no port-forward plug-in (%s)" % e, file=sys.stderr)

    sim = server.KubeSim(args.dir, args.port, args.host)
    if args.runtime:
        rt = importlib.import_module(__package__ + ".runtime")
        rt.install(store=sim.store, api=("127.0.0.1" if sim.host in ("0.0.0.0", "") else sim.host,
                                          sim.port), ca_file=sim.paths["ca.crt"])
        # runtime.install chains SIGTERM to our handler; make sure we still stop
    sim.start()
    print("kubesim: listening on https://%s:%d (dir %s)" % (sim.host, sim.port, sim.dir),
          file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            pass
    except SystemExit:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
