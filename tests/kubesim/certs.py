"""Test PKI for kubesim: a self-signed CA and a server certificate for
127.0.0.1/localhost and the addresses pods reach the API on (10.244.0.1,
the pod bridge, and 10.96.0.1, the usual `kubernetes` ClusterIP), made with the ``openssl`` command line (no Python
dependency).  Keys are EC P-256, valid for 10 days; nothing is reused
between runs unless the files already exist in the directory.
"""

import os
import subprocess


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_certs(directory):
    """Create ca.crt/ca.key/server.crt/server.key in ``directory`` if absent.

    Returns a dict with the paths.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {n: os.path.join(directory, n)
             for n in ("ca.crt", "ca.key", "server.crt", "server.key")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,IP:10.244.0.1,IP:10.96.0.1,DNS:localhost,"
                "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                "DNS:kubernetes.default.svc.cluster.local\n")
    _run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], directory)
    _run(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "10",
          "-subj", "/CN=kubesim-ca", "-out", "ca.crt",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"], directory)
    _run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"], directory)
    _run(["req", "-new", "-key", "server.key", "-subj", "/CN=kube-apiserver",
          "-out", "server.csr"], directory)
    _run(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "10", "-sha256", "-extfile", "server.ext",
          "-out", "server.crt"], directory)
    for p in ("server.csr", "server.ext", "ca.srl"):
        try:
            os.unlink(os.path.join(directory, p))
        except FileNotFoundError:
            pass
    return paths
