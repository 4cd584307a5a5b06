"""The HTTPS API server of kubesim: routing, discovery, content types,
authentication/authorization, Tables, watch, and the subresource hooks.

Faithful where kubectl looks: /version (minor "32"), legacy discovery
(/api, /api/v1, /apis, /apis/G, /apis/G/V with subresources), metav1.Status
errors, List and meta.k8s.io/v1 Table responses (kubectl's columns for pods,
services, jobs, ...), create/get/list/update/patch/delete/deletecollection,
the four patch content types, chunked watch streams (?watch=true, with
resourceVersion, label/field selectors, timeoutSeconds, and an ERROR 410 event
for a too-old resourceVersion), dryRun=All, impersonation (admin only),
protobuf request bodies for the kinds kubectl's generators send (Namespace,
ConfigMap, Secret, ServiceAccount, Role(Binding), ClusterRole(Binding), Job,
SelfSubjectAccessReview, SelfSubjectRulesReview); replies are always JSON.

Simplified: no aggregated discovery (kubectl falls back to the legacy one),
/openapi/v3 is an empty index and /openapi/v2 is 404 (kubectl apply
then validates nothing client-side; pass --validate=false if in doubt), no
limit/continue paging (everything in one page), server-side apply has no
field ownership (it is a strategic merge of the applied object; fields
dropped from the applied config are not removed), pods/log returns "".

Subresource hooks: ``SUBRESOURCES[sub](handler, store, namespace, name)`` is
called for any pods/{name}/{sub} registered here (portforward.py registers
"portforward"; exec/attach/log may be registered the same way), after
authentication, RBAC ("create" for POST/websocket GET on pods/portforward)
and a check that the pod exists.  ``handler`` is the raw
BaseHTTPRequestHandler; the hook owns the connection (rfile/wfile/connection)
and the server closes it afterwards.
"""

import base64
import json
import os
import secrets
import select
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import rbac
from . import store as storemod
from .store import ApiError

SUBRESOURCES = {}
_SUB_KINDS = {"portforward": "PodPortForwardOptions", "exec": "PodExecOptions",
              "attach": "PodAttachOptions", "log": "Pod"}

VERSION_INFO = {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                "gitCommit": "kubesim", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                "compiler": "gc", "platform": "linux/amd64"}

try:
    import yaml  # Debian python3-yaml; only for YAML request bodies
except ImportError:  # pragma: no cover
    yaml = None


# ----------------------------------------------------------- discovery

def api_resource_list(group, version):
    res = []
    for r in storemod.RESOURCES:
        if r.group != group or r.version != version:
            continue
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
             "kind": r.kind, "verbs": r.verbs}
        if r.short_names:
            e["shortNames"] = r.short_names
        if r.categories:
            e["categories"] = r.categories
        res.append(e)
        subs = list(r.subresources)
        if r is storemod.POD:
            subs += [(s, _SUB_KINDS.get(s, "Pod"), ["create", "get"]) for s in sorted(SUBRESOURCES)
                     if s not in [x[0] for x in subs]]
        for sub in subs:
            sname, kind, verbs = sub[:3]
            e = {"name": "%s/%s" % (r.plural, sname), "singularName": "",
                 "namespaced": r.namespaced, "kind": kind, "verbs": verbs}
            e.update(sub[3] if len(sub) > 3 else {})
            res.append(e)
    gv = "%s/%s" % (group, version) if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


def api_group(group):
    versions = [{"groupVersion": "%s/%s" % (g, v), "version": v}
                for g, v in storemod.GROUP_VERSIONS if g == group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
            "preferredVersion": versions[0]}


def api_group_list():
    groups = sorted({g for g, _ in storemod.GROUP_VERSIONS})
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
                       for g in groups]}


def _gv_path(group, version):
    return "apis/%s/%s" % (group, version) if group else "api/" + version


def openapi_v3_index():
    """A tiny OpenAPI v3 index: one document per group/version."""
    gvs = [("", "v1")] + list(storemod.GROUP_VERSIONS)
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": "/openapi/v3/%s?hash=kubesim1"
                                       % _gv_path(g, v)} for g, v in gvs}}


def openapi_v3_gv(gvpath):
    """Per group/version document: only the PATCH operations, declaring the
    fieldValidation parameter, so kubectl leaves validation to the server
    (which ignores it) instead of fetching /openapi/v2 schemas."""
    paths = {}
    for r in storemod.RESOURCES:
        if _gv_path(r.group, r.version) != gvpath or "patch" not in r.verbs:
            continue
        prefix = "/" + gvpath + ("/namespaces/{namespace}" if r.namespaced else "")
        paths["%s/%s/{name}" % (prefix, r.plural)] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "x-kubernetes-action": "patch",
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


# ------------------------------------------------------------- protobuf

def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def pb_fields(buf):
    """Yields (field number, value): ints for varints, bytes for the rest."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            val, i = bytes(buf[i:i + ln]), i + ln
        elif wt == 1:
            val, i = bytes(buf[i:i + 8]), i + 8
        elif wt == 5:
            val, i = bytes(buf[i:i + 4]), i + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wt)
        yield num, val


_S, _RS, _INT, _BOOL, _MAP, _MAPB = "s", "rs", "int", "bool", "map", "mapb"
_META = {1: ("name", _S), 2: ("generateName", _S), 3: ("namespace", _S), 5: ("uid", _S),
         6: ("resourceVersion", _S), 11: ("labels", _MAP), 12: ("annotations", _MAP),
         14: ("finalizers", _RS)}
_RULE = {1: ("verbs", _RS), 2: ("apiGroups", _RS), 3: ("resources", _RS),
         4: ("resourceNames", _RS), 5: ("nonResourceURLs", _RS)}
_SUBJECT = {1: ("kind", _S), 2: ("apiGroup", _S), 3: ("name", _S), 4: ("namespace", _S)}
_ROLEREF = {1: ("apiGroup", _S), 2: ("kind", _S), 3: ("name", _S)}
_CONTAINER = {1: ("name", _S), 2: ("image", _S), 3: ("command", _RS), 4: ("args", _RS),
              5: ("workingDir", _S),
              6: ("ports", [{1: ("name", _S), 2: ("hostPort", _INT), 3: ("containerPort", _INT),
                             4: ("protocol", _S)}]),
              7: ("env", [{1: ("name", _S), 2: ("value", _S)}]), 14: ("imagePullPolicy", _S)}
_PODSPEC = {2: ("containers", [_CONTAINER]), 3: ("restartPolicy", _S),
            4: ("terminationGracePeriodSeconds", _INT), 5: ("activeDeadlineSeconds", _INT),
            8: ("serviceAccountName", _S)}
_RESATTR = {1: ("namespace", _S), 2: ("verb", _S), 3: ("group", _S), 4: ("version", _S),
            5: ("resource", _S), 6: ("subresource", _S), 7: ("name", _S)}
PB_SCHEMAS = {
    "Namespace": {1: ("metadata", _META), 2: ("spec", {1: ("finalizers", _RS)})},
    "ConfigMap": {1: ("metadata", _META), 2: ("data", _MAP), 3: ("binaryData", _MAPB),
                  4: ("immutable", _BOOL)},
    "Secret": {1: ("metadata", _META), 2: ("data", _MAPB), 3: ("type", _S),
               4: ("stringData", _MAP), 5: ("immutable", _BOOL)},
    "ServiceAccount": {1: ("metadata", _META), 4: ("automountServiceAccountToken", _BOOL)},
    "Role": {1: ("metadata", _META), 2: ("rules", [_RULE])},
    "ClusterRole": {1: ("metadata", _META), 2: ("rules", [_RULE])},
    "RoleBinding": {1: ("metadata", _META), 2: ("subjects", [_SUBJECT]), 3: ("roleRef", _ROLEREF)},
    "ClusterRoleBinding": {1: ("metadata", _META), 2: ("subjects", [_SUBJECT]),
                           3: ("roleRef", _ROLEREF)},
    "Job": {1: ("metadata", _META),
            2: ("spec", {1: ("parallelism", _INT), 2: ("completions", _INT),
                         3: ("activeDeadlineSeconds", _INT),
                         6: ("template", {1: ("metadata", _META), 2: ("spec", _PODSPEC)}),
                         7: ("backoffLimit", _INT), 8: ("ttlSecondsAfterFinished", _INT)})},
    "SelfSubjectAccessReview": {
        1: ("metadata", _META),
        2: ("spec", {1: ("resourceAttributes", _RESATTR),
                     2: ("nonResourceAttributes", {1: ("path", _S), 2: ("verb", _S)})})},
    "SelfSubjectRulesReview": {1: ("metadata", _META), 2: ("spec", {1: ("namespace", _S)})},
}


def pb_decode(buf, schema):
    out = {}
    for num, val in pb_fields(buf):
        if num not in schema:
            continue
        name, typ = schema[num]
        if typ == _S:
            out[name] = val.decode("utf-8", "replace")
        elif typ == _RS:
            out.setdefault(name, []).append(val.decode("utf-8", "replace"))
        elif typ == _INT:
            out[name] = val - (1 << 64) if val >= 1 << 63 else val
        elif typ == _BOOL:
            out[name] = bool(val)
        elif typ in (_MAP, _MAPB):
            entry = dict(pb_fields(val))
            k = entry.get(1, b"").decode("utf-8", "replace")
            v = entry.get(2, b"")
            out.setdefault(name, {})[k] = (base64.b64encode(v).decode() if typ == _MAPB
                                           else v.decode("utf-8", "replace"))
        elif isinstance(typ, list):
            out.setdefault(name, []).append(pb_decode(val, typ[0]))
        elif isinstance(typ, dict):
            out[name] = pb_decode(val, typ)
    return out


def decode_protobuf(body):
    """Decode a k8s protobuf envelope (k8s\\0 + runtime.Unknown) to a dict."""
    if not body.startswith(b"k8s\x00"):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s\\0 prefix")
    unknown = dict(pb_fields(body[4:]))
    tm = dict(pb_fields(unknown.get(1, b"")))
    api_version = tm.get(1, b"").decode()
    kind = tm.get(2, b"").decode()
    schema = PB_SCHEMAS.get(kind)
    if schema is None:
        raise ApiError(415, "UnsupportedMediaType",
                       "kubesim cannot decode protobuf for kind %r; send JSON" % kind)
    obj = pb_decode(unknown.get(2, b""), schema)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj


# ----------------------------------------------------------------- tables

def _age(ts):
    try:
        t = time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (TypeError, ValueError):
        return "<unknown>"
    s = max(0, int(time.time() - t))
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    d = h // 24
    if d < 8:
        return "%dd%dh" % (d, h % 24) if h % 24 else "%dd" % d
    return "%dd" % d


def _col(name, typ="string", priority=0, fmt=""):
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def _pod_row(p):
    st = p.get("status") or {}
    cs = st.get("containerStatuses") or []
    n = len((p.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    reason = st.get("reason") or st.get("phase") or "Pending"
    for c in cs:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and st.get("phase") not in ("Succeeded", "Failed"):
            reason = state["terminated"].get("reason", reason)
        elif "terminated" in state:
            reason = state["terminated"].get("reason", reason)
    if p["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(c.get("restartCount", 0) for c in cs)
    return ["%d/%d" % (ready, n), reason, restarts, _age(p["metadata"].get("creationTimestamp")),
            st.get("podIP") or "<none>", (p.get("spec") or {}).get("nodeName") or "<none>",
            "<none>", "<none>"]


def _svc_ports(s):
    out = []
    for p in (s.get("spec") or {}).get("ports") or []:
        v = "%s" % p.get("port")
        if p.get("nodePort"):
            v += ":%s" % p["nodePort"]
        out.append("%s/%s" % (v, p.get("protocol", "TCP")))
    return ",".join(out) or "<none>"


def _selector(sel):
    return ",".join("%s=%s" % kv for kv in sorted((sel or {}).items())) or "<none>"


def _job_row(j):
    st = j.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else "Running"
    comp = "%d/%d" % (st.get("succeeded", 0), (j.get("spec") or {}).get("completions", 1))
    containers = ((j.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    dur = _age(st.get("startTime")) if st.get("startTime") else ""
    return [status, comp, dur, _age(j["metadata"].get("creationTimestamp")),
            ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            _selector(((j.get("spec") or {}).get("selector") or {}).get("matchLabels"))]


def _deploy_row(d):
    st = d.get("status") or {}
    containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ["%d/%d" % (st.get("readyReplicas", 0), (d.get("spec") or {}).get("replicas", 0)),
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0),
            _age(d["metadata"].get("creationTimestamp")),
            ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            _selector(((d.get("spec") or {}).get("selector") or {}).get("matchLabels"))]


def _ep_row(e):
    addrs = []
    for s in e.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{"port": None}]:
                addrs.append("%s:%s" % (a["ip"], p["port"]) if p["port"] else a["ip"])
    return [",".join(addrs) or "<none>", _age(e["metadata"].get("creationTimestamp"))]


def _binding_row(b):
    subj = b.get("subjects") or []

    def names(kind):
        return ",".join((s.get("namespace") + "/" if kind == "ServiceAccount" else "") + s.get("name", "")
                        for s in subj if s.get("kind") == kind)
    ref = b.get("roleRef") or {}
    return ["%s/%s" % (ref.get("kind"), ref.get("name")), _age(b["metadata"].get("creationTimestamp")),
            names("User"), names("Group"), names("ServiceAccount")]


TABLES = {
    "/pods": ([_col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"),
               _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
               _col("Readiness Gates", priority=1)], _pod_row),
    "/services": ([_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age"),
                   _col("Selector", priority=1)],
                  lambda s: [(s.get("spec") or {}).get("type", "ClusterIP"),
                             (s.get("spec") or {}).get("clusterIP", "<none>"),
                             ",".join((s.get("spec") or {}).get("externalIPs") or []) or "<none>",
                             _svc_ports(s), _age(s["metadata"].get("creationTimestamp")),
                             _selector((s.get("spec") or {}).get("selector"))]),
    "/namespaces": ([_col("Status"), _col("Age")],
                    lambda n: [(n.get("status") or {}).get("phase", "Active"),
                               _age(n["metadata"].get("creationTimestamp"))]),
    "/endpoints": ([_col("Endpoints"), _col("Age")], _ep_row),
    "/configmaps": ([_col("Data", "integer"), _col("Age")],
                    lambda c: [len(c.get("data") or {}) + len(c.get("binaryData") or {}),
                               _age(c["metadata"].get("creationTimestamp"))]),
    "/secrets": ([_col("Type"), _col("Data", "integer"), _col("Age")],
                 lambda c: [c.get("type", "Opaque"), len(c.get("data") or {}),
                            _age(c["metadata"].get("creationTimestamp"))]),
    "/serviceaccounts": ([_col("Secrets", "integer"), _col("Age")],
                         lambda c: [len(c.get("secrets") or []), _age(c["metadata"].get("creationTimestamp"))]),
    "apps/deployments": ([_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                          _col("Age"), _col("Containers", priority=1), _col("Images", priority=1),
                          _col("Selector", priority=1)], lambda d: _deploy_row(d)),
    "batch/jobs": ([_col("Status"), _col("Completions"), _col("Duration"), _col("Age"),
                    _col("Containers", priority=1), _col("Images", priority=1),
                    _col("Selector", priority=1)], _job_row),
    "rbac.authorization.k8s.io/roles": ([_col("Created At", "date")],
                                        lambda r: [r["metadata"].get("creationTimestamp")]),
    "rbac.authorization.k8s.io/clusterroles": ([_col("Created At", "date")],
                                               lambda r: [r["metadata"].get("creationTimestamp")]),
    "rbac.authorization.k8s.io/rolebindings": (
        [_col("Role"), _col("Age"), _col("Users", priority=1), _col("Groups", priority=1),
         _col("ServiceAccounts", priority=1)], _binding_row),
    "rbac.authorization.k8s.io/clusterrolebindings": (
        [_col("Role"), _col("Age"), _col("Users", priority=1), _col("Groups", priority=1),
         _col("ServiceAccounts", priority=1)], _binding_row),
}


def to_table(res, items, rv, include="PartialObjectMetadata"):
    cols, rowfn = TABLES.get(res.key, ([_col("Age")],
                                       lambda o: [_age(o["metadata"].get("creationTimestamp"))]))
    rows = []
    for o in items:
        if include == "Object":
            ro = o
        elif include == "None":
            ro = None
        else:
            ro = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                  "metadata": o["metadata"]}
        row = {"cells": [o["metadata"]["name"]] + rowfn(o)}
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [_col("Name", fmt="name")] + cols, "rows": rows}


# ----------------------------------------------------------------- server

class KubeSim:
    """Owns the store, the HTTPS server and the files in ``directory``."""

    def __init__(self, directory, port=0, host="127.0.0.1"):
        from . import certs
        self.dir = os.path.abspath(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.paths = certs.ensure_certs(self.dir)
        self.store = storemod.Store(log=self.log_line)
        self.tokens = {secrets.token_hex(16): "admin", secrets.token_hex(16): "dev"}
        self._log_lock = threading.Lock()
        self._reqlog = open(os.path.join(self.dir, "requests.log"), "a", buffering=1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.paths["server.crt"], self.paths["server.key"])
        ctx.set_alpn_protocols(["http/1.1"])
        self.httpd = _Server((host, port), Handler, ctx, self)
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread = None

    def token(self, user):
        return next(t for t, u in self.tokens.items() if u == user)

    def log_line(self, line):
        with self._log_lock:
            try:
                self._reqlog.write(line.rstrip("\n") + "\n")
            except ValueError:
                pass

    def write_files(self):
        with open(os.path.join(self.dir, "ca.crt"), "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        server = "https://%s:%d" % (self.host, self.port)
        kc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
              "clusters": [{"name": "kubesim", "cluster": {
                  "server": server, "certificate-authority-data": ca}}],
              "users": [{"name": "admin", "user": {"token": self.token("admin")}},
                        {"name": "dev", "user": {"token": self.token("dev")}}],
              "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "admin",
                                                           "namespace": "default"}},
                           {"name": "kubesim-dev", "context": {"cluster": "kubesim", "user": "dev",
                                                               "namespace": "default"}}],
              "current-context": "kubesim"}
        _atomic_write(os.path.join(self.dir, "kubeconfig"), json.dumps(kc, indent=2) + "\n", 0o600)
        _atomic_write(os.path.join(self.dir, "tokens.json"),
                      json.dumps({u: t for t, u in self.tokens.items()}) + "\n", 0o600)
        _atomic_write(os.path.join(self.dir, "ready"),
                      json.dumps({"port": self.port, "pid": os.getpid(), "server": server}) + "\n")

    def start(self):
        """Serve in a background thread and write kubeconfig + ready."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="kubesim-http",
                                        daemon=True)
        self._thread.start()
        self.write_files()

    def stop(self):
        try:
            os.unlink(os.path.join(self.dir, "ready"))
        except FileNotFoundError:
            pass
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.stop()
        self._reqlog.close()


def _atomic_write(path, text, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx, sim):
        self.ssl_context, self.sim = ctx, sim
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, not in accept()
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim/1"

    def log_message(self, fmt, *args):  # silence stderr; we keep requests.log
        pass

    # ---- plumbing
    @property
    def sim(self):
        return self.server.sim

    @property
    def store(self):
        return self.server.sim.store

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                ln = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if ln == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(ln)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, code, obj, content_type="application/json"):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = code

    def send_status_error(self, code, reason, message, details=None):
        """For hooks too: reply with a metav1.Status failure."""
        self.send_json(code, ApiError(code, reason, message, details).status())

    def _dispatch(self, method):
        self._status, self._user = 0, None
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            self._route(method, path, params)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # a bug: report as 500 and keep serving
            import traceback
            self.sim.log_line("INTERNAL ERROR %s %s: %s" % (method, self.path, traceback.format_exc()))
            try:
                self.send_json(500, ApiError(500, "InternalError", "kubesim: %r" % e).status())
            except OSError:
                self.close_connection = True
        user = self._user.name if self._user else "-"
        self.sim.log_line("%s %s %s %s" % (method, self.path, self._status or "-", user))

    # ---- authn/authz
    def _authenticate(self):
        user = rbac.authenticate(self.sim.tokens, self.headers.get("Authorization"))
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        imp = self.headers.get("Impersonate-User")
        if imp:
            groups = self.headers.get_all("Impersonate-Group") or []
            new = rbac.impersonate(user, imp, groups)
            if new is None:
                self._user = user
                raise ApiError(403, "Forbidden", 'users "%s" is forbidden: User "%s" cannot '
                               'impersonate resource "users" in API group "" at the cluster scope'
                               % (imp, user.name), {"name": imp, "kind": "users"})
            user = new
        self._user = user
        return user

    def _authorize(self, user, verb, res, sub, ns, name):
        ok, _ = rbac.authorize(self.store, user, verb, res.group, res.plural, sub or "",
                               ns if res.namespaced else None, name)
        if not ok:
            msg = rbac.forbidden_message(user, verb, res.group, res.plural, sub or "",
                                         ns if res.namespaced else None, name)
            raise ApiError(403, "Forbidden", msg,
                           {"name": name, "group": res.group, "kind": res.plural} if name
                           else {"group": res.group, "kind": res.plural})

    # ---- routing
    def _route(self, method, path, params):
        if path in ("/version", "/healthz", "/livez", "/readyz") and method == "GET":
            if path == "/version":
                return self.send_json(200, VERSION_INFO)
            return self._send_text(200, "ok")
        user = self._authenticate()
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            if path == "/api":
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": [{
                                                "clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "%s:%d" % (self.sim.host, self.sim.port)}]})
            if path == "/apis":
                return self.send_json(200, api_group_list())
            if path == "/api/v1":
                return self.send_json(200, api_resource_list("", "v1"))
            if len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in storemod.GROUP_VERSIONS):
                return self.send_json(200, api_group(parts[1]))
            if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in storemod.GROUP_VERSIONS:
                return self.send_json(200, api_resource_list(parts[1], parts[2]))
            if path == "/openapi/v3":
                return self.send_json(200, openapi_v3_index())
            if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
                return self.send_json(200, openapi_v3_gv("/".join(parts[2:])))
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and storemod.find_resource(group, version, rest[2]):
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = storemod.find_resource(group, version, rest[0])
        if res is None or len(rest) > 3 or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if ns is None and res.namespaced and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._resource(method, user, res, ns, name, sub, params)

    def _verb(self, method, name, sub, params):
        if method == "GET":
            if params.get("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        raise ApiError(405, "MethodNotAllowed", "method %s not allowed" % method)

    def _resource(self, method, user, res, ns, name, sub, params):
        verb = self._verb(method, name, sub, params)
        if res.key in storemod.VIRTUAL:
            if method != "POST" or name:
                raise ApiError(405, "MethodNotAllowed", "only create is allowed on %s" % res.plural)
            return self._review(user, res)
        if sub:
            return self._subresource(method, verb, user, res, ns, name, sub, params)
        if verb not in res.verbs:
            raise ApiError(405, "MethodNotAllowed", "%s is not supported on %s" % (verb, res.plural))
        self._authorize(user, verb, res, None, ns, name)
        dry = params.get("dryRun") == "All"
        st = self.store
        if verb == "get":
            return self._send_obj(200, res, st.get(res, ns, name))
        if verb == "list":
            items, rv = st.list(res, ns, params.get("labelSelector", ""), params.get("fieldSelector", ""))
            return self._send_list(res, items, rv)
        if verb == "watch":
            return self._watch(res, ns, name, params)
        if verb == "create":
            body = self._body_obj()
            obj = st.create(res, ns, body, dry_run=dry)
            return self._send_obj(201, res, obj)
        if verb == "update":
            obj = st.replace(res, ns, name, self._body_obj(), dry_run=dry)
            return self._send_obj(200, res, obj)
        if verb == "patch":
            obj, created = self._do_patch(res, ns, name, None, dry)
            return self._send_obj(201 if created else 200, res, obj)
        if verb == "delete":
            opts = self._delete_options()
            obj = st.delete(res, ns, name, opts.get("propagationPolicy"), opts.get("preconditions"),
                            dry_run=dry or "All" in (opts.get("dryRun") or []))
            return self._send_obj(200, res, obj)
        if verb == "deletecollection":
            self._delete_options()
            items = st.delete_collection(res, ns, params.get("labelSelector", ""),
                                         params.get("fieldSelector", ""), dry_run=dry)
            return self._send_list(res, items, str(st.rv))
        raise ApiError(405, "MethodNotAllowed", "unsupported")

    def _subresource(self, method, verb, user, res, ns, name, sub, params):
        known = [s[0] for s in res.subresources]
        if res is storemod.POD and sub in SUBRESOURCES:
            if sub in ("portforward", "exec", "attach") and method in ("GET", "POST"):
                verb = "create"
            self._authorize(user, verb, res, sub, ns, name)
            self.store.get(res, ns, name)  # 404 if absent
            self._status = 101 if self.headers.get("Upgrade") else 0
            try:
                SUBRESOURCES[sub](self, self.store, ns, name)
            finally:
                self.close_connection = True
            return
        if sub not in known:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "portforward":
            self._authorize(user, "create", res, sub, ns, name)
            self.store.get(res, ns, name)
            raise ApiError(404, "NotFound", "kubesim: no port-forward handler registered")
        if sub == "log":
            self._authorize(user, "get", res, sub, ns, name)
            self.store.get(res, ns, name)
            return self._send_text(200, "")
        if sub == "scale":
            self._authorize(user, verb, res, sub, ns, name)
            if verb == "get":
                return self.send_json(200, self.store.scale(ns, name))
            if verb == "update":
                body = self._body_obj()
            elif verb == "patch":
                body = self._scale_patch(ns, name)
            else:
                raise ApiError(405, "MethodNotAllowed", "%s is not supported on %s/scale"
                               % (verb, res.plural))
            replicas = ((body or {}).get("spec") or {}).get("replicas") if isinstance(body, dict) \
                else None
            if params.get("dryRun") == "All":
                return self.send_json(200, self.store.scale(ns, name))
            return self.send_json(200, self.store.scale(ns, name, replicas if replicas is not None
                                                        else self.store.scale(ns, name)["spec"]["replicas"]))
        if sub == "status":
            self._authorize(user, verb, res, sub, ns, name)
            if verb == "get":
                return self._send_obj(200, res, self.store.get(res, ns, name))
            dry = params.get("dryRun") == "All"
            if verb == "update":
                return self._send_obj(200, res, self.store.replace(res, ns, name, self._body_obj(),
                                                                   subresource="status", dry_run=dry))
            if verb == "patch":
                obj, _ = self._do_patch(res, ns, name, "status", dry)
                return self._send_obj(200, res, obj)
        raise ApiError(405, "MethodNotAllowed", "%s is not supported on %s/%s" % (verb, res.plural, sub))

    def _scale_patch(self, ns, name):
        """The Scale after a merge, strategic or JSON patch of the current one."""
        from . import patch as patchmod
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        cur = self.store.scale(ns, name)
        try:
            body = json.loads(self._read_body() or b"null")
        except ValueError:
            raise ApiError(400, "BadRequest", "the patch body is not valid JSON")
        try:
            if ctype == "application/json-patch+json":
                return patchmod.json_patch(cur, body)
            if ctype == "application/merge-patch+json":
                return patchmod.merge_patch(cur, body)
            if ctype == "application/strategic-merge-patch+json":
                return patchmod.strategic_merge_patch(cur, body)
        except patchmod.PatchError as e:
            raise ApiError(422, "Invalid", str(e))
        raise ApiError(415, "UnsupportedMediaType", "unsupported patch type for scale")

    # ---- bodies
    def _body_obj(self, raw=None):
        raw = self._read_body() if raw is None else raw
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype == "application/vnd.kubernetes.protobuf":
            return decode_protobuf(raw)
        try:
            return json.loads(raw or b"null")
        except ValueError:
            if yaml is not None and ("yaml" in ctype):
                try:
                    return yaml.safe_load(raw)
                except yaml.YAMLError:
                    pass
            raise ApiError(400, "BadRequest", "the request body is not valid JSON")

    def _delete_options(self):
        raw = self._read_body()
        if not raw:
            return {}
        try:
            body = self._body_obj(raw)
        except ApiError:
            return {}
        return body if isinstance(body, dict) else {}

    def _do_patch(self, res, ns, name, sub, dry):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        kind = {"application/json-patch+json": "json", "application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic",
                "application/apply-patch+yaml": "apply", "application/apply-patch+cbor": None}.get(ctype)
        if kind is None:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types "
                           "include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml, application/strategic-merge-patch+json")
        raw = self._read_body()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            if kind == "apply" and yaml is not None:
                body = yaml.safe_load(raw)
            else:
                raise ApiError(400, "BadRequest", "the patch body is not valid JSON")
        if kind == "apply" and res.namespaced and isinstance(body, dict):
            md = body.get("metadata") or {}
            if md.get("namespace") not in (None, "", ns):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match "
                               "the namespace on the request")
            if md.get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        return self.store.patch(res, ns, name, kind, body, subresource=sub, dry_run=dry)

    # ---- responses
    def _wants_table(self):
        return "as=table" in (self.headers.get("Accept") or "").lower().replace(" ", "")

    def _include(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        return (q.get("includeObject") or ["PartialObjectMetadata"])[-1]

    def _send_obj(self, code, res, obj):
        if self._wants_table() and self.command == "GET":
            return self.send_json(code, to_table(res, [obj], obj["metadata"].get("resourceVersion", ""),
                                                 self._include()))
        return self.send_json(code, obj)

    def _send_list(self, res, items, rv):
        if self._wants_table():
            return self.send_json(200, to_table(res, items, rv, self._include()))
        return self.send_json(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                                    "metadata": {"resourceVersion": rv}, "items": items})

    def _send_text(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self._status = code

    # ---- access reviews
    def _review(self, user, res):
        body = self._body_obj()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "bad review body")
        spec = body.get("spec") or {}
        out = {"kind": res.kind, "apiVersion": res.api_version,
               "metadata": {"creationTimestamp": None}, "spec": spec}
        if res.plural == "selfsubjectaccessreviews":
            ra = spec.get("resourceAttributes")
            if ra:
                allowed, _ = rbac.authorize(self.store, user, ra.get("verb", ""), ra.get("group", ""),
                                            ra.get("resource", ""), ra.get("subresource", ""),
                                            ra.get("namespace") or None, ra.get("name") or None)
            else:
                nra = spec.get("nonResourceAttributes") or {}
                allowed = user.is_admin or (nra.get("verb") == "get" and user.name != "")
            out["status"] = {"allowed": bool(allowed)}
            if allowed:
                out["status"]["reason"] = "kubesim RBAC"
        else:
            ns = spec.get("namespace") or None
            if user.is_admin:
                rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
            else:
                rules = [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                          "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}]
                rules += rbac.rules_for(self.store, user, ns)
            out["status"] = {"resourceRules": rules,
                             "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": [
                                 "/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]}],
                             "incomplete": False}
        return self.send_json(201, out)

    # ---- watch
    def _watch(self, res, ns, name, params):
        lsel = params.get("labelSelector", "")
        fsel = params.get("fieldSelector", "")
        if name:
            fsel = (fsel + "," if fsel else "") + "metadata.name=" + name
        storemod.parse_label_selector(lsel)
        storemod.parse_field_selector(fsel)
        try:
            timeout = min(float(params.get("timeoutSeconds") or 1800), 3600)
        except ValueError:
            timeout = 1800
        table = self._wants_table()
        include = self._include()
        st = self.store
        rv_param = params.get("resourceVersion") or "0"
        try:
            last = int(rv_param)
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % rv_param)
        initial = []
        if last == 0:
            items, cur = st.list(res, ns, lsel, fsel)
            initial = [("ADDED", o) for o in items]
            last = int(cur)
        expired = None
        try:
            st.events_after(last)
        except ApiError as e:
            expired = e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._status = 200
        self.close_connection = True
        self.sim.log_line("%s %s %s %s (watch open)" % (self.command, self.path, 200, self._user.name))

        def send(typ, obj):
            if table and typ != "ERROR":
                obj = to_table(res, [obj], obj["metadata"].get("resourceVersion", ""), include)
            data = json.dumps({"type": typ, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            if expired is not None:
                send("ERROR", expired.status())
            else:
                for typ, obj in initial:
                    send(typ, obj)
                deadline = time.monotonic() + timeout
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    with st.cond:
                        evs = st.events_after(last)
                        if not evs:
                            st.cond.wait(min(left, 5.0))
                            evs = st.events_after(last)
                    if not evs:
                        # probe the client: a zero-length write cannot be sent in
                        # chunked encoding, so rely on select for EOF
                        if _peer_closed(self.connection):
                            return
                        continue
                    for erv, typ, key, ens, obj in evs:
                        last = erv
                        if key == res.key and st.matches(res, ns, obj, lsel, fsel):
                            send(typ, obj)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except ApiError as e:
            try:
                send("ERROR", e.status())
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        except OSError:
            pass


def _peer_closed(conn):
    """True when the client has gone away (EOF) on an otherwise idle watch."""
    try:
        r, _, _ = select.select([conn], [], [], 0)
        if not r:
            return False
        conn.settimeout(0.1)
        try:
            data = conn.recv(1)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        finally:
            conn.settimeout(None)
        return data == b""
    except (OSError, ValueError):
        return True


def serve(directory, port=0, host="127.0.0.1"):
    """Create and start a KubeSim (files written, listening); returns it."""
    sim = KubeSim(directory, port, host)
    sim.start()
    return sim


__all__ = ["KubeSim", "SUBRESOURCES", "serve", "Handler"]
