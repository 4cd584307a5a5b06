"""kubesim: a small Kubernetes API server for tests (Python 3 stdlib).

Run it with ``cd tests && python3 -m kubesim --dir DIR [--port 0]``; it
writes DIR/kubeconfig (contexts ``kubesim`` = admin, ``kubesim-dev`` = dev),
DIR/ready ({"port", "pid"}) and DIR/requests.log.  See README.md.

Modules: server (HTTPS API, discovery, tables, watch, hooks), store (objects
and controllers), rbac (tokens, RBAC), patch (merge/json/strategic patches),
certs (openssl CA + server cert).  portforward.py and runtime.py plug into
``server.SUBRESOURCES`` and ``store.HOOKS``.
"""
