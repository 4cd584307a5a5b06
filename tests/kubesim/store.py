"""In-memory object store and the few controllers kubesim runs.

Faithful enough for kubectl and for tests: object metadata (uid,
resourceVersion from one global counter, creationTimestamp, generation,
generateName), AlreadyExists/NotFound/Conflict errors, label selectors
(=, ==, !=, in, notin, exists, !exists), field selectors on any dotted path
(metadata.name, status.phase, ...), status subresources (writes to the main
resource keep the status, writes to /status keep everything else), a watch
event log, ClusterIP allocation from 10.96.0.0/16, an Endpoints controller
(services with a selector x pods with an IP -> Endpoints and one
EndpointSlice named like the service), and a Job controller.

Simplified: no admission, almost no validation (names, namespace existence,
clusterIP immutability), objects are deleted at once (no graceful deletion,
no finalizers), a namespace delete removes its objects at once, a Job runs
one pod at a time (completions/parallelism ignored; a failed pod is replaced
until backoffLimit, with no delay), no garbage collector beyond Job pods.

Hooks for a pod runtime (another module):

    HOOKS["pod_created"].append(fn)   # fn(store, pod_dict)
    HOOKS["pod_deleted"].append(fn)   # fn(store, pod_dict)

Services changes are reported too (runtime's ClusterIP proxy):
HOOKS["service_created" | "service_updated" | "service_deleted"], same
signature fn(store, service_dict).

Hooks run in the thread that made the change, after the store lock is
released; exceptions are logged and ignored.  The runtime reports back with
``store.update_pod_status(ns, name, phase="Running", podIP=..., ready=True)``.
Without a runtime pods stay Pending; ``store.fake_run(ns, name, ip)`` makes
one Running for tests.
"""

import base64
import collections
import copy
import hashlib
import ipaddress
import json
import random
import re
import sys
import threading
import time
import uuid

from . import patch as patchmod

HOOKS = {"pod_created": [], "pod_deleted": [],
         "service_created": [], "service_updated": [], "service_deleted": []}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Resource:
    def __init__(self, group, version, plural, singular, kind, namespaced,
                 short_names=(), verbs=ALL_VERBS, subresources=(), categories=(),
                 has_status=False):
        self.group, self.version, self.plural, self.singular = group, version, plural, singular
        self.kind, self.namespaced = kind, namespaced
        self.short_names, self.verbs = list(short_names), list(verbs)
        # subresources: list of (name, kind, verbs)
        self.subresources = list(subresources)
        self.categories = list(categories)
        self.has_status = has_status

    @property
    def key(self):
        return "%s/%s" % (self.group, self.plural)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    def __repr__(self):
        return "<Resource %s>" % self.key


_STATUS = ("status", None, ["get", "patch", "update"])
RESOURCES = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"],
             verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
             subresources=[("status", "Namespace", ["get", "patch", "update"])], has_status=True),
    Resource("", "v1", "pods", "pod", "Pod", True, ["po"], categories=["all"], has_status=True,
             subresources=[("status", "Pod", ["get", "patch", "update"]),
                           ("log", "Pod", ["get"]),
                           ("portforward", "PodPortForwardOptions", ["create", "get"])]),
    Resource("", "v1", "services", "service", "Service", True, ["svc"], categories=["all"],
             verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
             has_status=True, subresources=[("status", "Service", ["get", "patch", "update"])]),
    Resource("", "v1", "endpoints", "endpoints", "Endpoints", True, ["ep"]),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"]),
    Resource("", "v1", "secrets", "secret", "Secret", True),
    Resource("", "v1", "events", "event", "Event", True, ["ev"]),
    Resource("batch", "v1", "jobs", "job", "Job", True, categories=["all"], has_status=True,
             subresources=[("status", "Job", ["get", "patch", "update"])]),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"],
             categories=["all"], has_status=True,
             subresources=[("status", "Deployment", ["get", "patch", "update"]),
                           ("scale", "Scale", ["get", "patch", "update"],
                            {"group": "autoscaling", "version": "v1"})]),
    Resource("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
             "ClusterRoleBinding", False),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
             "SelfSubjectAccessReview", False, verbs=["create"]),
    Resource("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview",
             "SelfSubjectRulesReview", False, verbs=["create"]),
]
# resources that are computed by the server rather than stored
VIRTUAL = {"authorization.k8s.io/selfsubjectaccessreviews", "authorization.k8s.io/selfsubjectrulesreviews"}

GROUP_VERSIONS = []
for _r in RESOURCES:
    if _r.group and (_r.group, _r.version) not in GROUP_VERSIONS:
        GROUP_VERSIONS.append((_r.group, _r.version))


def find_resource(group, version, plural):
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def resource_by_key(key):
    for r in RESOURCES:
        if r.key == key:
            return r
    raise KeyError(key)


POD = resource_by_key("/pods")
SERVICE = resource_by_key("/services")
ENDPOINTS = resource_by_key("/endpoints")
NAMESPACE = resource_by_key("/namespaces")
JOB = resource_by_key("batch/jobs")
SERVICEACCOUNT = resource_by_key("/serviceaccounts")
ENDPOINTSLICE = resource_by_key("discovery.k8s.io/endpointslices")
DEPLOYMENT = resource_by_key("apps/deployments")


class ApiError(Exception):
    """An error to be returned to the client as a metav1.Status."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (_qualified(res), name),
                    {"name": name, "group": res.group, "kind": res.plural})


def _qualified(res):
    return res.plural + ("." + res.group if res.group else "")


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"


# ------------------------------------------------------------ selectors

def _neg(text):
    """A sort key that orders strings the other way round."""
    return [-ord(c) for c in text] + [1]


def parse_label_selector(text):
    """Parse a label selector into a list of (key, op, values) tuples."""
    reqs = []
    if not text:
        return reqs
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", p)
        if m:
            vals = [v.strip() for v in m.group(3).split(",") if v.strip()]
            reqs.append((m.group(1), m.group(2), vals))
        elif "!=" in p:
            k, v = p.split("!=", 1)
            reqs.append((k.strip(), "!=", [v.strip()]))
        elif "==" in p:
            k, v = p.split("==", 1)
            reqs.append((k.strip(), "=", [v.strip()]))
        elif "=" in p:
            k, v = p.split("=", 1)
            reqs.append((k.strip(), "=", [v.strip()]))
        elif p.startswith("!"):
            reqs.append((p[1:].strip(), "!exists", []))
        elif re.match(r"^[A-Za-z0-9._/-]+$", p):
            reqs.append((p, "exists", []))
        else:
            raise ApiError(400, "BadRequest", "unable to parse requirement: %r" % p)
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and not (has and v == vals[0]):
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and not (has and v in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
    return True


def selector_matches(selector, labels):
    """A map-style selector (Service.spec.selector) matches labels."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def parse_field_selector(text):
    reqs = []
    for p in (text or "").split(","):
        p = p.strip()
        if not p:
            continue
        if "!=" in p:
            k, v = p.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in p:
            k, v = p.split("==", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif "=" in p:
            k, v = p.split("=", 1)
            reqs.append((k.strip(), "=", v.strip()))
        else:
            raise ApiError(400, "BadRequest", "invalid field selector: %r" % p)
    return reqs


def fields_match(reqs, obj):
    for path, op, want in reqs:
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        have = "" if cur is None else str(cur)
        if (op == "=") != (have == want):
            return False
    return True


# ---------------------------------------------------------------- store

class Store:
    def __init__(self, log=None):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects = {}          # (resource key, namespace, name) -> object
        self.rv = 0
        self.events = collections.deque(maxlen=5000)   # (rv, type, key, ns, obj)
        self._pending = []         # hook calls to run once the lock is released
        self._timers = []
        self._next_ip = 2
        self._log = log or (lambda msg: print("kubesim: " + msg, file=sys.stderr))
        for ns in ("default", "kube-system", "kube-public"):
            self.create(NAMESPACE, None, {"metadata": {"name": ns}})

    # ---- helpers
    def _bump(self):
        self.rv += 1
        return str(self.rv)

    def _emit(self, typ, res, obj):
        self.events.append((self.rv, typ, res.key, obj["metadata"].get("namespace"),
                            copy.deepcopy(obj)))
        self.cond.notify_all()

    def _finish(self):
        pend, self._pending = self._pending, []
        return pend

    def _run_hooks(self, pend):
        for event, obj in pend:
            for fn in list(HOOKS.get(event, [])):
                try:
                    fn(self, copy.deepcopy(obj))
                except Exception as e:   # a broken hook must not break the API
                    self._log("hook %s %r failed: %r" % (event, fn, e))

    def _public(self, fn, *args, **kw):
        with self.lock:
            try:
                result = fn(*args, **kw)
            finally:
                pend = self._finish()
        self._run_hooks(pend)
        return result

    def stop(self):
        for t in self._timers:
            t.cancel()

    # ---- reads
    def get(self, res, ns, name):
        with self.lock:
            obj = self.objects.get((res.key, ns if res.namespaced else None, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def find(self, res, ns, name):
        """Like get, but returns None when absent."""
        with self.lock:
            obj = self.objects.get((res.key, ns if res.namespaced else None, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, res, ns=None, label_selector="", field_selector=""):
        """Returns (items, resourceVersion). ns None = all namespaces."""
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        with self.lock:
            items = [copy.deepcopy(o) for (k, ons, _), o in sorted(self.objects.items(),
                                                                    key=lambda kv: (kv[0][1] or "", kv[0][2]))
                     if k == res.key and (ns is None or not res.namespaced or ons == ns)
                     and labels_match(lreqs, o["metadata"].get("labels"))
                     and fields_match(freqs, o)]
            return items, str(self.rv)

    def matches(self, res, ns, obj, label_selector="", field_selector=""):
        if res.namespaced and ns is not None and obj["metadata"].get("namespace") != ns:
            return False
        return (labels_match(parse_label_selector(label_selector), obj["metadata"].get("labels"))
                and fields_match(parse_field_selector(field_selector), obj))

    # ---- writes (public wrappers run hooks after releasing the lock)
    def create(self, res, ns, obj, dry_run=False):
        return self._public(self._create, res, ns, obj, dry_run)

    def replace(self, res, ns, name, obj, subresource=None, dry_run=False):
        return self._public(self._replace, res, ns, name, obj, subresource, dry_run)

    def patch(self, res, ns, name, patch_type, body, subresource=None, dry_run=False):
        """Apply a patch; returns (object, created)."""
        return self._public(self._patch, res, ns, name, patch_type, body, subresource, dry_run)

    def delete(self, res, ns, name, propagation=None, preconditions=None, dry_run=False):
        return self._public(self._delete, res, ns, name, propagation, preconditions, dry_run)

    def delete_collection(self, res, ns, label_selector="", field_selector="", dry_run=False):
        items, _ = self.list(res, ns, label_selector, field_selector)
        out = []
        for it in items:
            try:
                out.append(self.delete(res, it["metadata"].get("namespace"),
                                       it["metadata"]["name"], dry_run=dry_run))
            except ApiError:
                pass
        return out

    def update_pod_status(self, ns, name, phase=None, podIP=None, ready=None,
                          exit_code=None, reason=None, message=None, waiting=None):
        """Called by the pod runtime. Returns the new pod, or None if it is gone.
        ``waiting=(reason, message)``: the containers of a pod that is not
        running yet wait for that reason (e.g. CreateContainerConfigError)
        instead of ContainerCreating."""
        return self._public(self._update_pod_status, ns, name, phase, podIP, ready,
                            exit_code, reason, message, waiting)

    def fake_run(self, ns, name, ip):
        """Mark a pod Running and Ready with ``ip`` (tests without a runtime)."""
        return self.update_pod_status(ns, name, phase="Running", podIP=ip, ready=True)

    # ---- internals
    def _check_ns(self, res, ns):
        if res.namespaced:
            if not ns:
                raise ApiError(400, "BadRequest", "namespace is required")
            if ("/namespaces", None, ns) not in self.objects:
                raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                               {"name": ns, "kind": "namespaces"})

    def _validate_name(self, res, name):
        rx = _LABEL_RE if res.plural in ("namespaces", "services") else _NAME_RE
        if not name or len(name) > 253 or not rx.match(name):
            raise ApiError(422, "Invalid",
                           '%s "%s" is invalid: metadata.name: Invalid value: "%s": a lowercase '
                           "RFC 1123 name must consist of lower case alphanumeric characters, "
                           "'-' or '.', and must start and end with an alphanumeric character"
                           % (res.kind, name, name),
                           {"name": name, "group": res.group, "kind": res.kind})

    def _create(self, res, ns, obj, dry_run=False):
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if md is None or not isinstance(md, dict):
            md = obj["metadata"] = {}
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            ns = ns or md.get("namespace")
            self._check_ns(res, ns)
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
            ns = None
        name = md.get("name")
        if not name:
            if md.get("generateName"):
                for _ in range(100):
                    name = md["generateName"] + "".join(random.choice(_GEN_CHARS) for _ in range(5))
                    if (res.key, ns, name) not in self.objects:
                        break
                md["name"] = name
            else:
                raise ApiError(422, "Invalid", "%s is invalid: metadata.name: Required value: "
                               "name or generateName is required" % res.kind)
        self._validate_name(res, name)
        if (res.key, ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (_qualified(res), name),
                           {"name": name, "group": res.group, "kind": res.plural})
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        for k in ("resourceVersion", "deletionTimestamp", "managedFields", "selfLink"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now()
        md["generation"] = 1
        if res.has_status:
            obj.pop("status", None)
        self._defaults(res, obj, None)
        if dry_run:
            md["resourceVersion"] = str(self.rv)
            return obj
        md["resourceVersion"] = self._bump()
        self.objects[(res.key, ns, name)] = obj
        self._emit("ADDED", res, obj)
        self._after_create(res, obj)
        return copy.deepcopy(obj)

    def _defaults(self, res, obj, old):
        """Server-side defaulting and the little validation we do."""
        spec = obj.get("spec")
        if res is NAMESPACE:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = (old or {}).get("status") or {"phase": "Active"}
        elif res is POD:
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            for c in spec.get("containers") or []:
                for p in c.get("ports") or []:
                    p.setdefault("protocol", "TCP")
            if old is None:
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort",
                                 "conditions": [{"type": "PodScheduled", "status": "True",
                                                 "lastTransitionTime": now()}]}
        elif res is SERVICE:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                if "targetPort" not in p and "port" in p:
                    p["targetPort"] = p["port"]
                if spec["type"] in ("NodePort", "LoadBalancer") and "nodePort" not in p:
                    p["nodePort"] = 30000 + random.randrange(2768)
            old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
            if old is not None:
                if spec.get("clusterIP") in (None, "") and old_ip:
                    spec["clusterIP"] = old_ip
                elif spec.get("clusterIP") != old_ip:
                    raise ApiError(422, "Invalid", 'Service "%s" is invalid: spec.clusterIP: '
                                   'Invalid value: "%s": field is immutable'
                                   % (obj["metadata"]["name"], spec.get("clusterIP")))
            else:
                spec["clusterIP"] = self._alloc_cluster_ip(spec.get("clusterIP"),
                                                           obj["metadata"]["name"])
            spec["clusterIPs"] = [spec["clusterIP"]]
            if spec["clusterIP"] != "None":
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            if old is None:
                obj["status"] = {"loadBalancer": {}}
        elif res is JOB:
            spec = obj.setdefault("spec", {})
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            tmpl = spec.setdefault("template", {})
            tmpl.setdefault("metadata", {})
            tmpl.setdefault("spec", {})
            if not (tmpl["spec"].get("containers")):
                raise ApiError(422, "Invalid", 'Job.batch "%s" is invalid: spec.template.spec.'
                               "containers: Required value" % obj["metadata"]["name"])
            if old is None:
                uid = obj["metadata"]["uid"]
                labels = {"controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
                          "job-name": obj["metadata"]["name"],
                          "batch.kubernetes.io/job-name": obj["metadata"]["name"]}
                spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
                tl = tmpl["metadata"].setdefault("labels", {})
                tl.update(labels)
                obj["status"] = {}
        elif res is DEPLOYMENT:
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("strategy", {"type": "Recreate"})
            spec.setdefault("revisionHistoryLimit", 10)
            tmpl = spec.setdefault("template", {})
            tmpl.setdefault("metadata", {})
            tmpl.setdefault("spec", {})
            name = obj["metadata"]["name"]
            sel = (spec.get("selector") or {}).get("matchLabels")
            if not sel:
                raise ApiError(422, "Invalid", 'Deployment.apps "%s" is invalid: spec.selector: '
                               "Required value" % name)
            if not selector_matches(sel, tmpl["metadata"].get("labels")):
                raise ApiError(422, "Invalid", 'Deployment.apps "%s" is invalid: spec.template.'
                               "metadata.labels: Invalid value: `selector` does not match "
                               "template `labels`" % name)
            if not tmpl["spec"].get("containers"):
                raise ApiError(422, "Invalid", 'Deployment.apps "%s" is invalid: spec.template.'
                               "spec.containers: Required value" % name)
            if not isinstance(spec["replicas"], int) or spec["replicas"] < 0:
                raise ApiError(422, "Invalid", 'Deployment.apps "%s" is invalid: spec.replicas: '
                               "Invalid value: must be greater than or equal to 0" % name)
            if old is None:
                obj["status"] = {}
        elif res.kind == "Secret":
            if not obj.get("type"):
                obj["type"] = "Opaque"
            sd = obj.pop("stringData", None) or {}
            if sd:
                data = obj.setdefault("data", {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()

    def _alloc_cluster_ip(self, wanted, name):
        used = {(o.get("spec") or {}).get("clusterIP") for (k, _, _), o in self.objects.items()
                if k == SERVICE.key}
        net = ipaddress.ip_network("10.96.0.0/16")
        if wanted == "None":
            return "None"
        if wanted:
            try:
                ok = ipaddress.ip_address(wanted) in net
            except ValueError:
                ok = False
            if not ok or wanted in used:
                raise ApiError(422, "Invalid", 'Service "%s" is invalid: spec.clusterIPs: Invalid '
                               'value: ["%s"]: failed to allocate IP %s: %s' % (
                                   name, wanted, wanted,
                                   "provided IP is already allocated" if ok else
                                   "provided IP is not in the valid range"))
            return wanted
        for _ in range(65534):
            n = self._next_ip
            self._next_ip = 2 if n >= 65533 else n + 1
            ip = str(net[n])
            if ip not in used:
                return ip
        raise ApiError(500, "InternalError", "no ClusterIP left")

    def _after_create(self, res, obj):
        ns = obj["metadata"].get("namespace")
        if res is NAMESPACE:
            self._create(SERVICEACCOUNT, obj["metadata"]["name"], {"metadata": {"name": "default"}})
        elif res is POD:
            self._pending.append(("pod_created", obj))
            self._sync_endpoints(ns)
        elif res is SERVICE:
            self._pending.append(("service_created", obj))
            self._sync_endpoints(ns)
        elif res is JOB:
            self._job_start(obj)
        elif res is DEPLOYMENT:
            self._deploy_sync(obj)

    def _replace(self, res, ns, name, obj, subresource=None, dry_run=False, _cur=None):
        key = (res.key, ns if res.namespaced else None, name)
        cur = _cur or self.objects.get(key)
        if cur is None:
            raise not_found(res, name)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        new = copy.deepcopy(obj)
        md = new.get("metadata")
        if not isinstance(md, dict):
            md = new["metadata"] = {}
        if md.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name "
                           "on the URL (%s)" % (md.get("name"), name))
        if res.namespaced and md.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request")
        rv = md.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object '
                           "has been modified; please apply your changes to the latest version "
                           "and try again" % (_qualified(res), name),
                           {"name": name, "group": res.group, "kind": res.plural})
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(cur)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            for k in ("name", "namespace", "uid", "creationTimestamp", "generateName",
                      "deletionTimestamp"):
                if k in cur["metadata"]:
                    md[k] = cur["metadata"][k]
                else:
                    md.pop(k, None)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            if res.has_status:
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
                else:
                    new.pop("status", None)
            self._defaults(res, new, cur)
            md["generation"] = cur["metadata"].get("generation", 1)
            if new.get("spec") != cur.get("spec"):
                md["generation"] += 1
        md = new["metadata"]
        md["resourceVersion"] = cur["metadata"]["resourceVersion"]
        md.pop("managedFields", None)
        if new == cur:
            return copy.deepcopy(cur)
        if dry_run:
            return new
        md["resourceVersion"] = self._bump()
        self.objects[key] = new
        self._emit("MODIFIED", res, new)
        if res is SERVICE:
            self._pending.append(("service_updated", new))
        if res in (POD, SERVICE):
            self._sync_endpoints(ns)
        if res is DEPLOYMENT and subresource != "status":
            self._deploy_sync(new)
        if res is POD:
            self._deploy_pod_changed(new)
        return copy.deepcopy(new)

    def _patch(self, res, ns, name, patch_type, body, subresource=None, dry_run=False):
        key = (res.key, ns if res.namespaced else None, name)
        cur = self.objects.get(key)
        if patch_type == "apply":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "apply patch must be an object")
            if cur is None:
                obj = copy.deepcopy(body)
                obj.setdefault("metadata", {})["name"] = name
                return self._create(res, ns, obj, dry_run), True
            new = patchmod.strategic_merge_patch(cur, body)
        else:
            if cur is None:
                raise not_found(res, name)
            try:
                if patch_type == "json":
                    new = patchmod.json_patch(cur, body)
                elif patch_type == "merge":
                    new = patchmod.merge_patch(cur, body)
                elif patch_type == "strategic":
                    new = patchmod.strategic_merge_patch(cur, body)
                else:
                    raise ApiError(415, "UnsupportedMediaType", "unsupported patch type")
            except patchmod.PatchError as e:
                raise ApiError(422, "Invalid", str(e))
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "patch result is not an object")
        # a resourceVersion put into the patch is a precondition; otherwise
        # the patch applies to whatever is current
        patched_rv = (new.get("metadata") or {}).get("resourceVersion")
        if patched_rv != cur["metadata"]["resourceVersion"]:
            if patched_rv:
                pass  # _replace raises Conflict
        else:
            new["metadata"].pop("resourceVersion", None)
        return self._replace(res, ns, name, new, subresource, dry_run, _cur=cur), False

    def _delete(self, res, ns, name, propagation=None, preconditions=None, dry_run=False):
        if res is NAMESPACE and name in ("default", "kube-system", "kube-public"):
            raise ApiError(403, "Forbidden", 'namespaces "%s" is forbidden: this namespace may '
                           "not be deleted" % name, {"name": name, "kind": "namespaces"})
        key = (res.key, ns if res.namespaced else None, name)
        cur = self.objects.get(key)
        if cur is None:
            raise not_found(res, name)
        pre = preconditions or {}
        if (pre.get("uid") and pre["uid"] != cur["metadata"]["uid"]) or (
                pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]):
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": '
                           "Precondition failed" % (_qualified(res), name))
        if dry_run:
            return copy.deepcopy(cur)
        del self.objects[key]
        out = copy.deepcopy(cur)
        out["metadata"]["deletionTimestamp"] = now()
        out["metadata"]["deletionGracePeriodSeconds"] = 0
        self._bump()
        out["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", res, out)
        if res is NAMESPACE:
            for (k, ons, oname) in [kk for kk in self.objects if kk[1] == name]:
                if (k, ons, oname) in self.objects:
                    self._delete(resource_by_key(k), ons, oname, "Background")
        elif res is POD:
            self._pending.append(("pod_deleted", out))
            self._sync_endpoints(ns)
            self._job_pod_gone(out)
            self._deploy_pod_changed(out)
        elif res is SERVICE:
            self._pending.append(("service_deleted", out))
            for r in (ENDPOINTS, ENDPOINTSLICE):
                if (r.key, ns, name) in self.objects:
                    self._delete(r, ns, name)
        elif res in (JOB, DEPLOYMENT) and propagation != "Orphan":
            for (k, ons, oname), o in list(self.objects.items()):
                if k == POD.key and ons == ns and self._owner_uid(o) == cur["metadata"]["uid"]:
                    self._delete(POD, ns, oname)
        return out

    # ---- pods
    def _update_pod_status(self, ns, name, phase, podIP, ready, exit_code, reason, message,
                           waiting=None):
        cur = self.objects.get((POD.key, ns, name))
        if cur is None:
            return None
        pod = copy.deepcopy(cur)
        st = pod.setdefault("status", {})
        ts = now()
        if phase:
            st["phase"] = phase
        if podIP:
            st["podIP"] = podIP
            st["podIPs"] = [{"ip": podIP}]
            st.setdefault("hostIP", "127.0.0.1")
            st.setdefault("hostIPs", [{"ip": "127.0.0.1"}])
        if reason:
            st["reason"] = reason
        if message:
            st["message"] = message
        if st.get("phase") in ("Succeeded", "Failed"):
            ready = False
        if phase == "Running" or st.get("phase") in ("Running", "Succeeded", "Failed"):
            st.setdefault("startTime", ts)
        ready_s = "True" if ready else "False"
        conds = {c["type"]: c for c in st.get("conditions") or []}
        if phase == "Running" or ready is not None:
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
                val = "True" if t in ("PodScheduled", "Initialized") else ready_s
                if conds.get(t, {}).get("status") != val:
                    conds[t] = {"type": t, "status": val, "lastTransitionTime": ts}
            st["conditions"] = [conds[t] for t in ("PodScheduled", "Initialized",
                                                   "ContainersReady", "Ready") if t in conds]
        cstat = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            old = next((s for s in st.get("containerStatuses") or [] if s.get("name") == c.get("name")), {})
            s = {"name": c.get("name"), "image": c.get("image", ""), "imageID": "",
                 "restartCount": old.get("restartCount", 0),
                 "ready": st.get("conditions") is not None and ready_s == "True",
                 "started": st.get("phase") == "Running"}
            if st.get("phase") == "Running":
                s["state"] = old.get("state") if "running" in (old.get("state") or {}) else \
                    {"running": {"startedAt": ts}}
            elif st.get("phase") in ("Succeeded", "Failed"):
                code = exit_code if exit_code is not None else (0 if st["phase"] == "Succeeded" else 1)
                s["state"] = {"terminated": {"exitCode": code,
                                             "reason": "Completed" if code == 0 else "Error",
                                             "startedAt": st.get("startTime", ts), "finishedAt": ts}}
            elif waiting:
                s["state"] = {"waiting": {"reason": waiting[0]}}
                if waiting[1]:
                    s["state"]["waiting"]["message"] = waiting[1]
            else:
                s["state"] = {"waiting": {"reason": "ContainerCreating"}}
            cstat.append(s)
        st["containerStatuses"] = cstat
        new = self._replace(POD, ns, name, pod, subresource="status", _cur=cur)
        self._job_pod_changed(new)
        return new

    # ---- endpoints controller
    @staticmethod
    def _pod_ready(pod):
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    def _sync_endpoints(self, ns):
        pods = [o for (k, ons, _), o in self.objects.items() if k == POD.key and ons == ns]
        for (k, ons, name), svc in list(self.objects.items()):
            if k != SERVICE.key or ons != ns:
                continue
            sel = (svc.get("spec") or {}).get("selector")
            if not sel:
                continue
            ready, not_ready = [], []
            chosen = [p for p in sorted(pods, key=lambda p: p["metadata"]["name"])
                      if selector_matches(sel, p["metadata"].get("labels"))
                      and (p.get("status") or {}).get("podIP")
                      and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
            for p in chosen:
                addr = {"ip": p["status"]["podIP"], "nodeName": "kubesim",
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                      "uid": p["metadata"]["uid"]}}
                (ready if self._pod_ready(p) else not_ready).append(addr)
            ports = []
            for sp in (svc.get("spec") or {}).get("ports") or []:
                tp = sp.get("targetPort", sp.get("port"))
                if isinstance(tp, str) and not tp.isdigit():
                    tp = self._named_port(chosen, tp)
                    if tp is None:
                        continue
                ep = {"port": int(tp), "protocol": sp.get("protocol", "TCP")}
                if sp.get("name"):
                    ep["name"] = sp["name"]
                ports.append(ep)
            subset = {}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            body = {"metadata": {"name": name, "namespace": ns}}
            if svc["metadata"].get("labels"):
                body["metadata"]["labels"] = dict(svc["metadata"]["labels"])
            if subset:
                subset["ports"] = ports
                body["subsets"] = [subset]
            self._upsert(ENDPOINTS, ns, name, body, ("subsets",))
            slice_eps = [{"addresses": [a["ip"]], "nodeName": "kubesim", "targetRef": a["targetRef"],
                          "conditions": {"ready": a in ready, "serving": a in ready,
                                         "terminating": False}}
                         for a in ready + not_ready]
            self._upsert(ENDPOINTSLICE, ns, name, {
                "metadata": {"name": name, "namespace": ns, "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                         "uid": svc["metadata"]["uid"], "controller": True,
                                         "blockOwnerDeletion": True}]},
                "addressType": "IPv4", "endpoints": slice_eps,
                "ports": [dict(p, name=p.get("name", "")) for p in ports]}, ("endpoints", "ports"))

    def _upsert(self, res, ns, name, body, fields):
        """Create, or update ``fields`` of, a controller-owned object."""
        cur = self.objects.get((res.key, ns, name))
        if cur is None:
            self._create(res, ns, body)
        elif any(cur.get(f) != body.get(f) for f in fields):
            new = copy.deepcopy(cur)
            for f in fields:
                new.pop(f, None)
                if f in body:
                    new[f] = body[f]
            self._replace(res, ns, name, new, _cur=cur)

    @staticmethod
    def _named_port(pods, port_name):
        for p in pods:
            for c in (p.get("spec") or {}).get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == port_name:
                        return cp.get("containerPort")
        return None

    # ---- job controller
    @staticmethod
    def _owner_uid(obj):
        for o in obj["metadata"].get("ownerReferences") or []:
            if o.get("controller"):
                return o.get("uid")
        return None

    def _job_for_pod(self, pod):
        uid = self._owner_uid(pod)
        if not uid:
            return None
        for (k, ons, _), o in self.objects.items():
            if k == JOB.key and ons == pod["metadata"]["namespace"] and o["metadata"]["uid"] == uid:
                return o
        return None

    @staticmethod
    def _job_finished(job):
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in (job.get("status") or {}).get("conditions") or [])

    def _job_set_status(self, job, **changes):
        cur = self.objects.get((JOB.key, job["metadata"]["namespace"], job["metadata"]["name"]))
        if cur is None:
            return None
        new = copy.deepcopy(cur)
        st = new.setdefault("status", {})
        for k, v in changes.items():
            if v is None:
                st.pop(k, None)
            else:
                st[k] = v
        was_finished = self._job_finished(cur)
        out = self._replace(JOB, cur["metadata"]["namespace"], cur["metadata"]["name"], new,
                            subresource="status", _cur=cur)
        if not was_finished and self._job_finished(out):
            self._job_ttl_arm(out)
        return out

    # ttlSecondsAfterFinished (the TTL-after-finished controller): that many
    # seconds after the Job got its Complete or Failed condition, the Job is
    # deleted with propagation Background (its pods go with it).
    def _job_ttl_arm(self, job):
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        try:
            ttl = max(0.0, float(ttl))
        except (TypeError, ValueError):
            return
        md = job["metadata"]
        t = threading.Timer(ttl, self._job_ttl_expired, (md["namespace"], md["name"], md["uid"]))
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _job_ttl_expired(self, ns, name, uid):
        with self.lock:
            try:
                job = self.objects.get((JOB.key, ns, name))
                if job is not None and job["metadata"]["uid"] == uid and self._job_finished(job):
                    self._delete(JOB, ns, name, "Background")
            finally:
                pend = self._finish()
        self._run_hooks(pend)

    def _job_start(self, job):
        self._job_spawn_pod(job)
        self._job_set_status(job, startTime=now(), active=1)
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline:
            t = threading.Timer(float(deadline), self._job_deadline,
                                (job["metadata"]["namespace"], job["metadata"]["name"],
                                 job["metadata"]["uid"]))
            t.daemon = True
            self._timers.append(t)
            t.start()

    def _job_spawn_pod(self, job):
        tmpl = copy.deepcopy(job["spec"]["template"])
        md = tmpl.get("metadata") or {}
        pod = {"metadata": {"generateName": job["metadata"]["name"] + "-",
                            "labels": md.get("labels") or {},
                            "annotations": md.get("annotations") or {},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                                 "name": job["metadata"]["name"],
                                                 "uid": job["metadata"]["uid"],
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": tmpl.get("spec") or {}}
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        pod["spec"].setdefault("restartPolicy", "Never")
        return self._create(POD, job["metadata"]["namespace"], pod)

    def _job_deadline(self, ns, name, uid):
        with self.lock:
            job = self.objects.get((JOB.key, ns, name))
            if job is None or job["metadata"]["uid"] != uid or self._job_finished(job):
                pend = self._finish()
            else:
                ts = now()
                victims = [pname for (k, ons, pname), o in self.objects.items()
                           if k == POD.key and ons == ns and self._owner_uid(o) == uid]
                # mark the job failed first, so deleting its pods spawns no replacement
                self._job_set_status(job, active=None, ready=0,
                                     failed=(job.get("status") or {}).get("failed", 0) + len(victims),
                                     conditions=[{"type": "Failed", "status": "True",
                                                  "reason": "DeadlineExceeded",
                                                  "message": "Job was active longer than specified deadline",
                                                  "lastProbeTime": ts, "lastTransitionTime": ts}])
                for pname in victims:
                    self._delete(POD, ns, pname)
                pend = self._finish()
        self._run_hooks(pend)

    def _job_pod_changed(self, pod):
        job = self._job_for_pod(pod)
        if job is None or self._job_finished(job):
            return
        phase = (pod.get("status") or {}).get("phase")
        st = job.get("status") or {}
        ts = now()
        if phase == "Succeeded":
            self._job_set_status(job, active=None, succeeded=st.get("succeeded", 0) + 1,
                                 completionTime=ts, ready=0,
                                 conditions=[{"type": "Complete", "status": "True",
                                              "lastProbeTime": ts, "lastTransitionTime": ts}])
        elif phase == "Failed":
            failed = st.get("failed", 0) + 1
            if failed > job["spec"].get("backoffLimit", 6):
                self._job_set_status(job, active=None, failed=failed, ready=0,
                                     conditions=[{"type": "Failed", "status": "True",
                                                  "reason": "BackoffLimitExceeded",
                                                  "message": "Job has reached the specified backoff limit",
                                                  "lastProbeTime": ts, "lastTransitionTime": ts}])
            else:
                self._job_set_status(job, failed=failed)
                self._job_spawn_pod(job)
        elif phase == "Running":
            self._job_set_status(job, active=1, ready=1 if self._pod_ready(pod) else 0)

    def _job_pod_gone(self, pod):
        """A job pod was deleted while the job still runs: replace it."""
        job = self._job_for_pod(pod)
        if job is None or self._job_finished(job):
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        uid = job["metadata"]["uid"]
        if not any(k == POD.key and self._owner_uid(o) == uid for (k, _, _), o in self.objects.items()):
            self._job_spawn_pod(job)

    # ---- deployment controller (a Deployment keeps spec.replicas pods of
    # its template; a ReplicaSet is not modelled: pods are owned by the
    # Deployment and named NAME-HASH-xxxxx with label pod-template-hash.
    # A template change replaces every pod at once, like strategy Recreate.)
    def scale(self, ns, name, replicas=None):
        """The autoscaling/v1 Scale of a Deployment; with ``replicas``, set it first."""
        return self._public(self._scale, ns, name, replicas)

    def _scale(self, ns, name, replicas):
        dep = self.objects.get((DEPLOYMENT.key, ns, name))
        if dep is None:
            raise not_found(DEPLOYMENT, name)
        if replicas is not None:
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: '
                               "Invalid value: must be greater than or equal to 0" % name)
            new = copy.deepcopy(dep)
            new["spec"]["replicas"] = replicas
            dep = self._replace(DEPLOYMENT, ns, name, new, _cur=dep)
        md = dep["metadata"]
        sel = dep["spec"]["selector"].get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": ns, "uid": md["uid"],
                             "resourceVersion": md["resourceVersion"],
                             "creationTimestamp": md["creationTimestamp"]},
                "spec": {"replicas": dep["spec"]["replicas"]},
                "status": {"replicas": (dep.get("status") or {}).get("replicas", 0),
                           "selector": ",".join("%s=%s" % kv for kv in sorted(sel.items()))}}

    @staticmethod
    def _template_hash(dep):
        text = json.dumps(dep["spec"]["template"], sort_keys=True).encode()
        h = int.from_bytes(hashlib.sha256(text).digest()[:8], "big")
        return "".join(_GEN_CHARS[(h >> (5 * i)) % len(_GEN_CHARS)] for i in range(10))

    def _deploy_pods(self, dep):
        uid = dep["metadata"]["uid"]
        return [o for (k, ons, _), o in self.objects.items()
                if k == POD.key and ons == dep["metadata"]["namespace"] and self._owner_uid(o) == uid]

    def _deploy_sync(self, dep):
        if getattr(self, "_deploy_busy", False):
            return
        self._deploy_busy = True
        try:
            ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
            dep = self.objects.get((DEPLOYMENT.key, ns, name))
            if dep is None:
                return
            h = self._template_hash(dep)
            for p in self._deploy_pods(dep):
                if (p["metadata"].get("labels") or {}).get("pod-template-hash") != h:
                    self._delete(POD, ns, p["metadata"]["name"])
            active = [p for p in self._deploy_pods(dep)
                      if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
            want = dep["spec"]["replicas"]
            if len(active) > want:
                # as the ReplicaSet controller: not Ready ones first, then the newest
                victims = sorted(active, key=lambda p: (
                    self._pod_ready(p), _neg(p["metadata"]["creationTimestamp"]),
                    _neg(p["metadata"]["name"])))[:len(active) - want]
                for p in victims:
                    self._delete(POD, ns, p["metadata"]["name"])
            for _ in range(max(0, want - len(active))):
                tmpl = copy.deepcopy(dep["spec"]["template"])
                md = tmpl.get("metadata") or {}
                labels = dict(md.get("labels") or {}, **{"pod-template-hash": h})
                pod = {"metadata": {"generateName": "%s-%s-" % (name, h), "labels": labels,
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "name": name, "uid": dep["metadata"]["uid"],
                                                         "controller": True,
                                                         "blockOwnerDeletion": True}]},
                       "spec": tmpl.get("spec") or {}}
                if md.get("annotations"):
                    pod["metadata"]["annotations"] = dict(md["annotations"])
                self._create(POD, ns, pod)
            self._deploy_status(dep)
        finally:
            self._deploy_busy = False

    def _deploy_status(self, dep):
        cur = self.objects.get((DEPLOYMENT.key, dep["metadata"]["namespace"], dep["metadata"]["name"]))
        if cur is None:
            return
        pods = [p for p in self._deploy_pods(cur)
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        ready = sum(1 for p in pods if self._pod_ready(p))
        want = cur["spec"]["replicas"]
        ts = now()
        old = cur.get("status") or {}
        avail = "True" if ready >= want else "False"
        cond = next((c for c in old.get("conditions") or [] if c.get("type") == "Available"), None)
        if cond is None or cond.get("status") != avail:
            cond = {"type": "Available", "status": avail, "lastUpdateTime": ts,
                    "lastTransitionTime": ts,
                    "reason": "MinimumReplicasAvailable" if avail == "True" else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability." if avail == "True"
                    else "Deployment does not have minimum availability."}
        st = {"observedGeneration": cur["metadata"].get("generation", 1), "replicas": len(pods),
              "updatedReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
              "conditions": [cond]}
        if len(pods) - ready:
            st["unavailableReplicas"] = len(pods) - ready
        if st != old:
            new = copy.deepcopy(cur)
            new["status"] = st
            self._replace(DEPLOYMENT, cur["metadata"]["namespace"], cur["metadata"]["name"], new,
                          subresource="status", _cur=cur)

    def _deploy_pod_changed(self, pod):
        uid = self._owner_uid(pod)
        if not uid:
            return
        for (k, ons, _), o in list(self.objects.items()):
            if k == DEPLOYMENT.key and ons == pod["metadata"]["namespace"] and o["metadata"]["uid"] == uid:
                self._deploy_sync(o)
                return

    # ---- watch support
    def events_after(self, rv):
        """Events with resourceVersion > rv; raises 410 if rv is too old."""
        with self.lock:
            if self.events and rv < self.events[0][0] - 1 and rv < self.rv:
                raise ApiError(410, "Expired", "too old resource version: %d (%d)"
                               % (rv, self.events[0][0]))
            return [e for e in self.events if e[0] > rv]

    def dump(self):
        with self.lock:
            return json.dumps([o for o in self.objects.values()], indent=1)
