"""Copy a fixture catalog (tests/catalogs/valid by default) so that its
bridges reach a test's sshd: every target gets host 127.0.0.1, the sshd's
port, user and client key, and ssh_options pinning its known_hosts file;
bridges get the ports a test picked (free ports: tests run in parallel).
The copy's config.yaml is the fixture's (catalog_path: catalog, actors).

As a module:  copy_for_sshd(dst, sshd_port, user, key, known_hosts,
                            ports={"jupyter": (remote, local)}, health=True)
From a shell (node tests):  python3 tests/catalogs/sshd_copy.py DST \\
    --sshd-port N --user U --key K --known-hosts F [--ports ID=REMOTE:LOCAL]...
    [--no-health]   (prints {"config": DST/config.yaml} as JSON)

The files are edited line by line: they keep one top-level key per line,
which is all the fixtures use."""

import argparse
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_KEYS = ("host", "ssh_port", "ssh_user", "ssh_key", "ssh_options")


def _drop_keys(text, keys):
    """The text without the top-level keys given (a nested block with its key)."""
    out, skipping = [], False
    for line in text.splitlines():
        top = re.match(r"^([A-Za-z_]+):", line)
        if top:
            skipping = top.group(1) in keys
        elif line and not line.startswith((" ", "\t", "#")):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def copy_for_sshd(dst, sshd_port, user, key, known_hosts, ports=None, health=True,
                  src=os.path.join(HERE, "valid")):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    domains = os.path.join(dst, "catalog", "domains")
    for domain in sorted(os.listdir(domains)):
        tdir = os.path.join(domains, domain, "targets")
        for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
            path = os.path.join(tdir, name)
            with open(path) as f:
                text = _drop_keys(f.read(), TARGET_KEYS)
            text += ("host: 127.0.0.1\nssh_port: %d\nssh_user: %s\nssh_key: %s\n"
                     "ssh_options:\n  UserKnownHostsFile: %s\n  StrictHostKeyChecking: \"yes\"\n"
                     % (sshd_port, user, json.dumps(key), json.dumps(known_hosts)))
            with open(path, "w") as f:
                f.write(text)
        bdir = os.path.join(domains, domain, "bridges")
        for name in sorted(os.listdir(bdir)) if os.path.isdir(bdir) else []:
            bid, path = name[:-len(".yaml")], os.path.join(bdir, name)
            with open(path) as f:
                text = f.read()
            drop = [] if health else ["health_check"]
            if ports and bid in ports:
                drop += ["remote_port", "local_port"]
            text = _drop_keys(text, drop)
            if ports and bid in ports:
                text += "remote_port: %d\nlocal_port: %d\n" % ports[bid]
            # quick retries: a test should not wait 5 s for a second attempt
            text = _drop_keys(text, ["reconnect"])
            text += "reconnect:\n  backoff_initial: 0.2\n  backoff_max: 1\n"
            with open(path, "w") as f:
                f.write(text)
    return os.path.join(dst, "config.yaml")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dst")
    p.add_argument("--sshd-port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--known-hosts", required=True)
    p.add_argument("--ports", action="append", default=[], metavar="ID=REMOTE:LOCAL")
    p.add_argument("--no-health", action="store_true")
    a = p.parse_args(argv)
    ports = {}
    for spec in a.ports:
        bid, _, pair = spec.partition("=")
        remote, _, local = pair.partition(":")
        ports[bid] = (int(remote), int(local))
    config = copy_for_sshd(a.dst, a.sshd_port, a.user, a.key, a.known_hosts, ports,
                           health=not a.no_health)
    print(json.dumps({"config": config}))


if __name__ == "__main__":
    main(sys.argv[1:])
