"""kubesim: pods as real processes in network namespaces, plus a tiny
kube-proxy for ClusterIPs.  Linux, root (CAP_NET_ADMIN), `ip` from iproute2.

Network: a bridge `ksbr0` with 10.244.0.1/16 on the host side (created once,
shared by concurrent sims); each pod gets a netns `ks-<8 hex>`, a veth pair
(`ksv<8 hex>` on the bridge, `eth0` inside), an IP 10.244.X.Y/16, lo up and a
default route via 10.244.0.1.  Service ClusterIPs (10.96.0.0/12 only) are
added as /32 addresses on the bridge and served by a Python TCP proxy that
picks a ready pod matching the selector at accept time.

Images: IMAGES maps an image (tag ignored) to an argv template; KUBESIM_IMAGES
names a JSON file with more entries ({"image": ["argv", ...]}).  Template
words: {python} {runtime} (this file) {pod} {namespace} {podIP} {port} (first
containerPort) and {ports} (every containerPort, one word each).  A container
with `command` runs command+args as given (host filesystem, pod netns); with
only `args`, they are appended to the image's argv.  An unknown image without
a command runs "pause".

What a kubelet gives a pod (see README.md, "What a pod gets"): the
ServiceAccount files (token `sa:NS:NAME`, ca.crt, namespace) bind-mounted
at /var/run/secrets/kubernetes.io/serviceaccount in a private mount
namespace, KUBERNETES_SERVICE_HOST/PORT (the API, relayed from the bridge
address 10.244.0.1), env from Secrets and ConfigMaps (a missing one keeps
the pod Pending with CreateContainerConfigError, retried on every store
change), runAsUser/runAsGroup/fsGroup/supplementalGroups and
allowPrivilegeEscalation: false (no_new_privs); the rest of the
securityContext is recorded in LOG_DIR/NS_POD_CONTAINER.json.  The devbridge
agent image (KUBESIM_AGENT_IMAGE, default ghcr.io/devbridge/agent:*) runs
$DEVBRIDGE_BIN.

Run as a script, this file is also the code of the built-in images:
    runtime.py echo PORT...      TCP echo on every PORT (half-close aware)
    runtime.py greet NAME PORT...  the same, after a first line "NAME\n" per connection
  (both listen only after $KUBESIM_LISTEN_DELAY seconds, if set: a pod that
  is Running some time before it is Ready)
    runtime.py http NAME PORT    HTTP page naming the pod on PORT
    runtime.py pause             sleep until killed
    runtime.py exit CODE         exit at once with CODE (Jobs)
and of the container launcher (what runs between `ip netns exec` and the
container's argv):
    runtime.py podexec JSON -- ARGV...   new private mount namespace, the
                                bind mounts, groups/gid/uid, no_new_privs,
                                then exec ARGV
"""

import atexit
import base64
import fcntl
import fnmatch
import hashlib
import ipaddress
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

log = logging.getLogger("kubesim.runtime")

RUNTIME = os.path.abspath(__file__)
BRIDGE = os.environ.get("KUBESIM_BRIDGE", "ksbr0")
GATEWAY = "10.244.0.1"
POD_NET = ipaddress.ip_network("10.244.0.0/16")
SVC_NET = ipaddress.ip_network("10.96.0.0/12")
STATE_DIR = os.environ.get("KUBESIM_RUNTIME_STATE", "/run/kubesim")
READY_TIMEOUT = 15.0
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
AGENT_IMAGE = "ghcr.io/devbridge/agent:*"
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

IMAGES = {
    "kubesim/echo": ["{python}", "{runtime}", "echo", "{ports}"],
    "kubesim/greet": ["{python}", "{runtime}", "greet", "{pod}", "{ports}"],
    "kubesim/http": ["{python}", "{runtime}", "http", "{pod}", "{port}"],
    "kubesim/pause": ["{python}", "{runtime}", "pause"],
    "kubesim/exit": ["{python}", "{runtime}", "exit"],
}


def load_images(path=None):
    path = path or os.environ.get("KUBESIM_IMAGES")
    if path:
        with open(path) as f:
            IMAGES.update(json.load(f))


# --------------------------------------------------------------------------
# small helpers

def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _image_key(image):
    image = image or ""
    if image in IMAGES:
        return image
    base = image.split("@")[0]
    if ":" in base.rsplit("/", 1)[-1]:
        base = base.rsplit(":", 1)[0]
    return base


def _meta(obj):
    return obj.get("metadata") or {}


def is_agent_image(image, pattern=None):
    """True when IMAGE is the devbridge agent's: KUBESIM_AGENT_IMAGE (default
    ghcr.io/devbridge/agent:*) as a shell pattern on the image without its
    digest; a pattern without a tag matches any tag, and NAME:* also
    matches NAME with no tag."""
    pattern = pattern or os.environ.get("KUBESIM_AGENT_IMAGE") or AGENT_IMAGE
    image = (image or "").split("@")[0]
    if not image:
        return False
    repo = _image_key(image)
    if ":" not in pattern.rsplit("/", 1)[-1]:
        return fnmatch.fnmatchcase(repo, pattern)
    if pattern.endswith(":*") and fnmatch.fnmatchcase(repo, pattern[:-2]):
        return True
    return fnmatch.fnmatchcase(image, pattern)


def _sa_name(pod):
    spec = pod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


class ConfigError(Exception):
    """A container cannot be started yet: the pod stays Pending with this
    waiting reason (CreateContainerConfigError, ErrImagePull)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


def _security(pod, c):
    """The effective securityContext of container C (the container's
    fields over the pod's)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = c.get("securityContext") or {}

    def pick(k):
        return csc[k] if csc.get(k) is not None else psc.get(k)
    return {"runAsUser": pick("runAsUser"), "runAsGroup": pick("runAsGroup"),
            "runAsNonRoot": pick("runAsNonRoot"),
            "fsGroup": psc.get("fsGroup"),
            "supplementalGroups": list(psc.get("supplementalGroups") or []),
            "readOnlyRootFilesystem": bool(csc.get("readOnlyRootFilesystem")),
            "allowPrivilegeEscalation": csc.get("allowPrivilegeEscalation"),
            "privileged": bool(csc.get("privileged")),
            "capabilities": csc.get("capabilities"),
            "seccompProfile": pick("seccompProfile")}


def _sanitizer_opts(value):
    """ASAN_OPTIONS/UBSAN_OPTIONS for a pod: kubesim's own, without log_path
    (the pod may run as a uid that cannot write there: reports go to
    stderr, i.e. the container's log file)."""
    return ":".join(o for o in value.split(":") if o and not o.startswith("log_path="))


def _pod_ready(pod):
    st = pod.get("status") or {}
    if st.get("phase") != "Running" or not st.get("podIP"):
        return False
    conds = st.get("conditions")
    if conds:
        for c in conds:
            if c.get("type") == "Ready":
                return c.get("status") == "True"
    cs = st.get("containerStatuses")
    if cs:
        return all(c.get("ready") for c in cs)
    return True


# -- store access (kubesim.store: get/find/list take a Resource) -----------

def _res(plural):
    from . import store as storemod
    return storemod.resource_by_key("/" + plural)


def _store_list(store, resource, namespace=None):
    items, _rv = store.list(_res(resource), namespace)
    return items


def _update_status(store, ns, name, **kw):
    try:
        store.update_pod_status(ns, name, **kw)
    except KeyError:
        pass  # deleted meanwhile
    except Exception as e:  # never kill a runtime thread for the store's sake
        log.warning("update_pod_status %s/%s: %s", ns, name, e)


# --------------------------------------------------------------------------

class PodRuntime:
    def __init__(self, ns, name, uid):
        self.ns, self.name, self.uid = ns, name, uid
        short = hashlib.sha1(("%s/%s/%s" % (ns, name, uid)).encode()).hexdigest()[:8]
        self.netns = "ks-" + short
        self.veth = "ksv" + short
        self.peer = "ksp" + short
        self.ip = None
        self.procs = []
        self.plans = []      # what each process runs as (Runtime._plan)
        self.grace = 2.0
        self.deleted = False
        self.ready = False   # as last reported
        self.lock = threading.Lock()


class Runtime:
    def __init__(self, store=None, log_dir=None, api=None, ca_file=None):
        self.store = store
        self.log_dir = log_dir
        self.api = api              # (host, port) of the HTTPS API server
        self.ca_file = ca_file      # its CA (the pods' ca.crt)
        self.api_forward = None     # the relay GATEWAY:port -> api
        self.pods = {}
        self.lock = threading.Lock()
        self.net_lock = threading.Lock()
        self.bridge_ready = False
        self.bridge_checked = 0.0
        self.proxies = {}       # (clusterIP, port) -> _ServiceProxy
        self.svc_ips = set()
        self.stopped = False
        self.rr = itertools.count()
        self.poller = None
        self.tmp_log_dir = None
        self.owner_file = os.path.join(STATE_DIR, "sim-%d.owner" % os.getpid())

    # -- state files shared by sims on this host ------------------------
    def _locked_state(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        f = open(os.path.join(STATE_DIR, "lock"), "a+")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    def _state_files(self):
        try:
            names = os.listdir(STATE_DIR)
        except FileNotFoundError:
            return []
        return [n for n in names if n.endswith(".json")]

    def _read_state(self, n):
        try:
            with open(os.path.join(STATE_DIR, n)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def reap_stale(self):
        """Remove namespaces left by sims that died without cleaning up."""
        with self._locked_state():
            for n in self._state_files():
                st = self._read_state(n)
                if st and _alive(st.get("owner", 0)):
                    continue
                netns = n[:-5]
                self._kill_netns(netns)
                _ip("link", "del", "ksv" + netns[3:], check=False)
                shutil.rmtree(os.path.join(STATE_DIR, "pods", netns), ignore_errors=True)
                try:
                    os.unlink(os.path.join(STATE_DIR, n))
                except OSError:
                    pass
            for n in self._owner_files():
                if not _alive(self._owner_pid(n)):
                    try:
                        os.unlink(os.path.join(STATE_DIR, n))
                    except OSError:
                        pass

    def _owner_files(self):
        try:
            return [n for n in os.listdir(STATE_DIR) if n.endswith(".owner")]
        except FileNotFoundError:
            return []

    @staticmethod
    def _owner_pid(n):
        try:
            return int(n[len("sim-"):-len(".owner")])
        except ValueError:
            return 0

    def _kill_netns(self, netns):
        r = _ip("netns", "pids", netns, check=False)
        for p in r.stdout.split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        _ip("netns", "del", netns, check=False)

    def _ensure_bridge(self, force=False):
        """Create the bridge with GATEWAY if missing.  Checked again at every
        pod start (force) and at most once a second otherwise: another sim
        on the host (an older kubesim that did not see this one) may have
        deleted it; its ClusterIP addresses are then added again."""
        with self.net_lock:
            now = time.monotonic()
            if self.bridge_ready and not force and now - self.bridge_checked < 1.0:
                return
            self.bridge_checked = now
            r = _ip("-4", "addr", "show", "dev", BRIDGE, check=False)
            if r.returncode != 0:
                if self.bridge_ready:
                    log.warning("bridge %s disappeared; creating it again", BRIDGE)
                    self.svc_ips.clear()
                r2 = _ip("link", "add", BRIDGE, "type", "bridge", check=False)
                if r2.returncode != 0 and "File exists" not in r2.stderr:
                    raise RuntimeError("ip link add %s: %s" % (BRIDGE, r2.stderr.strip()))
                r = _ip("-4", "addr", "show", "dev", BRIDGE)
            if GATEWAY + "/16" not in r.stdout:
                r2 = _ip("addr", "add", GATEWAY + "/16", "dev", BRIDGE, check=False)
                if r2.returncode != 0 and "File exists" not in r2.stderr:
                    raise RuntimeError("ip addr add %s: %s" % (GATEWAY, r2.stderr.strip()))
            if "state UP" not in r.stdout and ",UP" not in r.stdout and "<UP" not in r.stdout:
                _ip("link", "set", BRIDGE, "up")
            self.bridge_ready = True

    def _alloc_ip(self, pr):
        """Pick a free pod IP (across every sim on the host) and record the
        namespace as ours, under the host-wide lock."""
        with self._locked_state():
            used = {GATEWAY}
            for n in self._state_files():
                st = self._read_state(n)
                if st and st.get("ip"):
                    used.add(st["ip"])
            for addr in POD_NET.hosts():
                a = str(addr)
                if a not in used and not a.endswith(".0") and not a.endswith(".255"):
                    break
            else:
                raise RuntimeError("pod network exhausted")
            with open(os.path.join(STATE_DIR, pr.netns + ".json"), "w") as f:
                json.dump({"owner": os.getpid(), "ip": a, "pod": "%s/%s" % (pr.ns, pr.name)}, f)
            pr.ip = a

    def _free_state(self, pr):
        try:
            os.unlink(os.path.join(STATE_DIR, pr.netns + ".json"))
        except OSError:
            pass

    # -- pods --------------------------------------------------------------
    def pod_created(self, store, pod):
        self.store = store
        m = _meta(pod)
        key = (m.get("namespace", "default"), m.get("name"))
        with self.lock:
            if self.stopped or key in self.pods:
                return
            pr = PodRuntime(key[0], key[1], m.get("uid", ""))
            # SIGTERM, then SIGKILL after terminationGracePeriodSeconds
            # (capped at 30; a process that exits on SIGTERM goes at once)
            try:
                pr.grace = min(30.0, max(0.0, float(
                    (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 2))))
            except (TypeError, ValueError):
                pr.grace = 2.0
            self.pods[key] = pr
        threading.Thread(target=self._start_pod, args=(pr, pod),
                         name="pod-%s" % pr.name, daemon=True).start()

    def pod_deleted(self, store, pod):
        m = _meta(pod)
        key = (m.get("namespace", "default"), m.get("name"))
        with self.lock:
            pr = self.pods.get(key)
            if pr is None or (m.get("uid") and pr.uid and m.get("uid") != pr.uid):
                return
            del self.pods[key]
        threading.Thread(target=self._stop_pod, args=(pr, pr.grace),
                         name="stop-%s" % pr.name, daemon=True).start()

    def _setup_net(self, pr):
        self._ensure_bridge(force=True)
        self._alloc_ip(pr)
        _ip("netns", "add", pr.netns)
        _ip("link", "add", pr.veth, "type", "veth", "peer", "name", pr.peer)
        _ip("link", "set", pr.peer, "netns", pr.netns)
        _ip("-n", pr.netns, "link", "set", pr.peer, "name", "eth0")
        _ip("-n", pr.netns, "addr", "add", pr.ip + "/16", "dev", "eth0")
        _ip("-n", pr.netns, "link", "set", "lo", "up")
        _ip("-n", pr.netns, "link", "set", "eth0", "up")
        _ip("-n", pr.netns, "route", "add", "default", "via", GATEWAY)
        _ip("link", "set", pr.veth, "master", BRIDGE)
        _ip("link", "set", pr.veth, "up")
        # The IP may have belonged to a pod (of this sim or another) that
        # just went away: a neighbour entry still naming the old veth's
        # MAC would black-hole the host's traffic to the new pod until it
        # times out (several seconds), so forget it now.
        _ip("neigh", "flush", "to", pr.ip, "dev", BRIDGE, check=False)

    def _argv(self, pr, pod, c):
        ports = [str(p["containerPort"]) for p in (c.get("ports") or [])
                 if p.get("containerPort")]
        subst = {"python": sys.executable, "runtime": RUNTIME, "pod": pr.name,
                 "namespace": pr.ns, "podIP": pr.ip or "",
                 "port": ports[0] if ports else "80"}
        if is_agent_image(c.get("image")):
            # the agent image's entrypoint is the devbridge binary: the one
            # under test, $DEVBRIDGE_BIN (from kubesim's own environment)
            argv = list(c.get("command") or ["devbridge"]) + list(c.get("args") or [])
            if argv and os.path.basename(argv[0]) == "devbridge":
                binary = os.environ.get("DEVBRIDGE_BIN")
                if not binary:
                    raise ConfigError("ErrImagePull", "kubesim: image %s runs $DEVBRIDGE_BIN, "
                                      "which is not set in kubesim's environment" % c.get("image"))
                if not os.access(binary, os.X_OK):
                    raise ConfigError("ErrImagePull", "kubesim: image %s: DEVBRIDGE_BIN=%s is not "
                                      "an executable" % (c.get("image"), binary))
                argv[0] = os.path.abspath(binary)
            return argv
        if c.get("command"):
            return list(c["command"]) + list(c.get("args") or [])
        tmpl = IMAGES.get(_image_key(c.get("image")), IMAGES["kubesim/pause"])
        if isinstance(tmpl, str):
            tmpl = [tmpl]
        argv = []
        for w in tmpl:
            if w == "{ports}":
                argv.extend(ports)
            else:
                argv.append(w.format(**subst))
        return argv + list(c.get("args") or [])

    # -- configuration: env from Secrets/ConfigMaps ------------------------
    def _source(self, kind, ns, name):
        """{key: bytes} of Secret/ConfigMap NS/NAME, or None if absent."""
        obj = self.store.find(_res("secrets" if kind == "Secret" else "configmaps"), ns, name)
        if obj is None:
            return None
        out = {}
        if kind == "Secret":
            for k, v in (obj.get("data") or {}).items():
                try:
                    out[k] = base64.b64decode(v or "")
                except (ValueError, TypeError):
                    out[k] = b""
            for k, v in (obj.get("stringData") or {}).items():
                out[k] = str(v).encode()
        else:
            for k, v in (obj.get("data") or {}).items():
                out[k] = str(v).encode()
            for k, v in (obj.get("binaryData") or {}).items():
                try:
                    out[k] = base64.b64decode(v or "")
                except (ValueError, TypeError):
                    out[k] = b""
        return out

    def _key_ref(self, pr, kind, ref):
        """The value of a secretKeyRef/configMapKeyRef, None when optional
        and missing; raises ConfigError (as the kubelet's messages)."""
        name, key = ref.get("name") or "", ref.get("key") or ""
        data = self._source(kind, pr.ns, name)
        if data is None:
            if ref.get("optional"):
                return None
            raise ConfigError("CreateContainerConfigError",
                              '%s "%s" not found' % (kind.lower(), name))
        if key not in data:
            if ref.get("optional"):
                return None
            raise ConfigError("CreateContainerConfigError", "couldn't find key %s in %s %s/%s"
                              % (key, kind, pr.ns, name))
        return data[key].decode("utf-8", "surrogateescape")

    def _env(self, pr, pod, c, uid=None):
        env = {}
        # envFrom, then env (later wins); the service variables only where
        # the container did not define them, as the kubelet does
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix") or ""
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                ref = ef.get(field)
                if ref is None:
                    continue
                data = self._source(kind, pr.ns, ref.get("name") or "")
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError("CreateContainerConfigError",
                                      '%s "%s" not found' % (kind.lower(), ref.get("name") or ""))
                for k, v in sorted(data.items()):
                    if _ENV_NAME.match(prefix + k):
                        env[prefix + k] = v.decode("utf-8", "surrogateescape")
        fields = {"metadata.name": pr.name, "metadata.namespace": pr.ns,
                  "metadata.uid": pr.uid, "status.podIP": pr.ip or "",
                  "spec.nodeName": "kubesim", "status.hostIP": GATEWAY,
                  "spec.serviceAccountName": _sa_name(pod)}
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
                continue
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "Secret" if "secretKeyRef" in vf else "ConfigMap"
                v = self._key_ref(pr, kind, vf.get("secretKeyRef") or vf.get("configMapKeyRef") or {})
                if v is not None:
                    env[e["name"]] = v
                continue
            ref = (vf.get("fieldRef") or {}).get("fieldPath")
            if ref in fields:
                env[e["name"]] = fields[ref]
            elif "valueFrom" not in e:
                env[e["name"]] = ""
        base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "HOME": "/root" if not uid else "/", "HOSTNAME": pr.name,
                "KUBESIM_POD_NAME": pr.name, "KUBESIM_POD_NAMESPACE": pr.ns,
                "KUBESIM_POD_IP": pr.ip or "", "PYTHONUNBUFFERED": "1"}
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if os.environ.get(var):
                base[var] = _sanitizer_opts(os.environ[var])
        if self.api_forward is not None:
            host, port = GATEWAY, self.api_forward.port
            base.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                         "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
                         "KUBERNETES_PORT": "tcp://%s:%d" % (host, port),
                         "KUBERNETES_PORT_%d_TCP" % port: "tcp://%s:%d" % (host, port),
                         "KUBERNETES_PORT_%d_TCP_PROTO" % port: "tcp",
                         "KUBERNETES_PORT_%d_TCP_PORT" % port: str(port),
                         "KUBERNETES_PORT_%d_TCP_ADDR" % port: host})
        for k, v in base.items():
            env.setdefault(k, v)
        return env

    def _plan(self, pr, pod):
        """What to run for each container: argv, env, credentials.  Raises
        ConfigError while the pod cannot start (missing Secret, key,
        binary, runAsNonRoot without a uid)."""
        plans = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            sc = _security(pod, c)
            uid = sc["runAsUser"]
            if sc["runAsNonRoot"] and not uid:
                raise ConfigError("CreateContainerConfigError",
                                  'container has runAsNonRoot and image will run as root '
                                  '(pod: "%s_%s(%s)", container: %s)'
                                  % (pr.name, pr.ns, pr.uid, c.get("name")))
            gid = sc["runAsGroup"]
            if gid is None and uid is not None:
                gid = 0   # a numeric uid without an image user: group root, as runc
            groups = [g for g in [sc["fsGroup"]] + sc["supplementalGroups"] if g is not None]
            argv = self._argv(pr, pod, c)
            env = self._env(pr, pod, c, uid)
            plans.append({"container": c, "argv": argv, "env": env, "uid": uid, "gid": gid,
                          "groups": groups, "security": sc, "serviceAccountName": _sa_name(pod),
                          "nnp": sc["allowPrivilegeEscalation"] is False})
        return plans

    def _wait_plan(self, pr, pod):
        """The plans, once the configuration resolves; until then the pod is
        Pending with the reason, re-tried on every store change (a Secret
        created later starts the pod).  None if the pod went away."""
        store = self.store
        shown = None
        while not pr.deleted and not self.stopped:
            rv = store.rv
            try:
                return self._plan(pr, pod)
            except ConfigError as e:
                if (e.reason, e.message) != shown:
                    shown = (e.reason, e.message)
                    log.info("pod %s/%s: %s: %s", pr.ns, pr.name, e.reason, e.message)
                    _update_status(store, pr.ns, pr.name, podIP=pr.ip, ready=False,
                                   waiting=(e.reason, e.message))
            with store.cond:
                store.cond.wait_for(lambda: store.rv != rv or pr.deleted or self.stopped,
                                    timeout=1.0)
        return None

    # -- the ServiceAccount volume ---------------------------------------
    def _sa_dir(self, pr):
        return os.path.join(STATE_DIR, "pods", pr.netns, "serviceaccount")

    def _mount_sa(self, pr, pod, plans):
        """Write the pod's ServiceAccount files (token sa:NS:NAME, ca.crt,
        namespace) to a per-pod directory; returns it, or None when the pod
        (or its ServiceAccount) sets automountServiceAccountToken: false."""
        spec = pod.get("spec") or {}
        name = _sa_name(pod)
        auto = spec.get("automountServiceAccountToken")
        if auto is None:
            sa = self.store.find(_res("serviceaccounts"), pr.ns, name)
            auto = (sa or {}).get("automountServiceAccountToken")
        if auto is False:
            return None
        d = self._sa_dir(pr)
        os.makedirs(os.path.dirname(d), mode=0o700, exist_ok=True)
        os.chmod(os.path.dirname(os.path.dirname(d)), 0o700)
        os.makedirs(d, exist_ok=True)
        ca = b""
        if self.ca_file:
            with open(self.ca_file, "rb") as f:
                ca = f.read()
        # readable by the pod's uid (owner: the first container's uid/gid or
        # fsGroup), 0644 as the kubelet's default mode
        owner = next((p for p in plans if p["uid"] is not None), None)
        uid = owner["uid"] if owner else 0
        gid = (owner["security"]["fsGroup"] if owner and owner["security"]["fsGroup"] is not None
               else owner["gid"] if owner else 0)
        for fn, data in (("token", ("sa:%s:%s" % (pr.ns, name)).encode()), ("ca.crt", ca),
                         ("namespace", pr.ns.encode())):
            path = os.path.join(d, fn)
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.chmod(path + ".tmp", 0o644)
            os.chown(path + ".tmp", uid, gid)
            os.replace(path + ".tmp", path)
        os.chmod(d, 0o755)
        os.chown(d, uid, gid)
        os.makedirs(SA_MOUNT, exist_ok=True)   # the mountpoint (empty on the host)
        return d

    @staticmethod
    def _launcher(plan, mounts):
        spec = {"mounts": mounts, "uid": plan["uid"], "gid": plan["gid"],
                "groups": plan["groups"], "nnp": plan["nnp"]}
        return [sys.executable, RUNTIME, "podexec", json.dumps(spec), "--"]

    def _record(self, pr, plan, proc, mounts):
        """LOG_DIR/NS_POD_CONTAINER.json: what the container runs as (the
        securityContext fields kubesim does not enforce are recorded here)."""
        c, sc = plan["container"], plan["security"]
        rec = {"pod": pr.name, "namespace": pr.ns, "container": c.get("name"),
               "image": c.get("image"), "pid": proc.pid, "argv": plan["argv"],
               "uid": plan["uid"] if plan["uid"] is not None else 0,
               "gid": plan["gid"] if plan["gid"] is not None else 0, "groups": plan["groups"],
               "noNewPrivs": plan["nnp"], "serviceAccountName": plan["serviceAccountName"],
               "serviceAccountMount": SA_MOUNT if mounts else None,
               "env": sorted(plan["env"]),
               "readOnlyRootFilesystem": sc["readOnlyRootFilesystem"],
               "runAsNonRoot": sc["runAsNonRoot"], "privileged": sc["privileged"],
               "capabilities": sc["capabilities"], "seccompProfile": sc["seccompProfile"],
               "enforced": ["runAsUser", "runAsGroup", "fsGroup", "supplementalGroups",
                            "allowPrivilegeEscalation"]}
        path = os.path.splitext(self._log_path(pr, c))[0] + ".json"
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(rec, f, indent=1)
            os.replace(path + ".tmp", path)
        except OSError as e:
            log.warning("record %s: %s", path, e)

    def _log_path(self, pr, c):
        d = self.log_dir
        if d is None:
            d = self.log_dir = self.tmp_log_dir = tempfile.mkdtemp(prefix="kubesim-pods-")
        return os.path.join(d, "%s_%s_%s.log" % (pr.ns, pr.name, c.get("name", "c")))

    def _start_pod(self, pr, pod):
        store = self.store
        try:
            # pr.lock is held through the setup so that a delete arriving
            # meanwhile waits for it and then tears everything down.
            with pr.lock:
                if pr.deleted:
                    return
                self._setup_net(pr)
        except Exception as e:
            log.error("pod %s/%s failed to start: %s", pr.ns, pr.name, e)
            if not pr.deleted:
                _update_status(store, pr.ns, pr.name, phase="Failed", podIP=pr.ip,
                               ready=False, reason="StartError", message=str(e))
            return
        plans = self._wait_plan(pr, pod)
        if plans is None:
            return
        try:
            with pr.lock:
                if pr.deleted:
                    return
                sa = self._mount_sa(pr, pod, plans)
                mounts = [[sa, SA_MOUNT, True]] if sa else []
                for plan in plans:
                    path = self._log_path(pr, plan["container"])
                    with open(path, "ab") as out:
                        p = subprocess.Popen(
                            ["ip", "netns", "exec", pr.netns] + self._launcher(plan, mounts)
                            + plan["argv"],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                            env=plan["env"], cwd="/", start_new_session=True)
                    pr.procs.append(p)
                    pr.plans.append(plan)
                    self._record(pr, plan, p, mounts)
        except Exception as e:
            log.error("pod %s/%s failed to start: %s", pr.ns, pr.name, e)
            if not pr.deleted:
                _update_status(store, pr.ns, pr.name, phase="Failed", podIP=pr.ip,
                               ready=False, reason="StartError", message=str(e))
            return
        # Running as soon as its processes run (with its IP), Ready later:
        # see _readiness.
        if pr.deleted:
            return
        _update_status(store, pr.ns, pr.name, phase="Running", podIP=pr.ip, ready=False)
        threading.Thread(target=self._readiness, args=(pr, pod), name="ready-%s" % pr.name,
                         daemon=True).start()
        # Watch: when every container has exited, the pod is finished.
        codes = [p.wait() for p in pr.procs]
        if pr.deleted or self.stopped:
            return
        phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        log.info("pod %s/%s exited %s -> %s", pr.ns, pr.name, codes, phase)
        code = next((c for c in codes if c != 0), 0)
        if code < 0:
            code = 128 - code   # killed by a signal, as a container runtime reports it
        _update_status(store, pr.ns, pr.name, phase=phase, podIP=pr.ip, ready=False,
                       exit_code=code)

    # -- readiness ------------------------------------------------------
    # A container with a readinessProbe (tcpSocket, httpGet or exec, with
    # initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
    # failureThreshold as the kubelet reads them) is probed for the pod's
    # whole life, so a pod can become Ready, then not Ready, then Ready
    # again.  A container without one is Ready once every containerPort of
    # it accepts a connection (a built-in probe, checked until it passes).
    # The pod is Ready when every container is.

    @staticmethod
    def _probe_port(c, port):
        if isinstance(port, str) and not port.isdigit():
            for cp in c.get("ports") or []:
                if cp.get("name") == port:
                    return cp.get("containerPort")
            return None
        return int(port)

    def _probe_once(self, pr, c, probe):
        timeout = max(1, int(probe.get("timeoutSeconds") or 1))
        try:
            if "exec" in probe:
                cmd = (probe["exec"] or {}).get("command") or []
                r = subprocess.run(self._exec_argv(pr, c) + list(cmd),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=timeout)
                return r.returncode == 0
            if "tcpSocket" in probe:
                port = self._probe_port(c, (probe["tcpSocket"] or {}).get("port"))
                socket.create_connection((pr.ip, port), timeout=timeout).close()
                return True
            if "httpGet" in probe:
                import http.client
                hg = probe["httpGet"] or {}
                conn = http.client.HTTPConnection(pr.ip, self._probe_port(c, hg.get("port")),
                                                  timeout=timeout)
                try:
                    conn.request("GET", hg.get("path") or "/")
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
        except (OSError, subprocess.TimeoutExpired, TypeError, ValueError):
            return False
        return False

    def _exec_argv(self, pr, c):
        """The prefix that runs a command inside container C: its network
        and mount namespaces, its uid/gid (an exec probe, as the kubelet's)."""
        for p, plan in zip(list(pr.procs), list(pr.plans)):
            if plan["container"].get("name") == c.get("name") and p.poll() is None:
                return (["nsenter", "--target", str(p.pid), "--net", "--mount", "--"]
                        + self._launcher(plan, []))
        return ["ip", "netns", "exec", pr.netns]

    def _readiness(self, pr, pod):
        store = self.store
        containers = (pod.get("spec") or {}).get("containers") or []
        start = time.monotonic()
        ready = [False] * len(containers)
        streak = [0] * len(containers)   # successes (> 0) or failures (< 0) in a row
        next_at = [0.0] * len(containers)
        for i, c in enumerate(containers):
            pb = c.get("readinessProbe")
            if pb:
                next_at[i] = start + float(pb.get("initialDelaySeconds") or 0)
        warned = False
        deadline = start + READY_TIMEOUT
        while not pr.deleted and not self.stopped:
            if pr.procs and all(p.poll() is not None for p in pr.procs):
                return   # finished: _start_pod reports the phase
            now = time.monotonic()
            for i, c in enumerate(containers):
                pb = c.get("readinessProbe")
                if not pb:
                    if ready[i]:
                        continue
                    ports = [p["containerPort"] for p in (c.get("ports") or [])
                             if p.get("containerPort") and p.get("protocol", "TCP") == "TCP"]
                    ok = True
                    for port in ports:
                        try:
                            socket.create_connection((pr.ip, port), timeout=0.5).close()
                        except OSError:
                            ok = False
                            break
                    if not ok and now > deadline and not warned:
                        warned = True
                        log.warning("pod %s/%s: a port of %s never listened", pr.ns, pr.name,
                                    c.get("name"))
                    ready[i] = ok
                    continue
                if now < next_at[i]:
                    continue
                next_at[i] = now + max(1.0, float(pb.get("periodSeconds") or 10))
                ok = self._probe_once(pr, c, pb)
                streak[i] = (max(streak[i], 0) + 1) if ok else (min(streak[i], 0) - 1)
                if ok and streak[i] >= int(pb.get("successThreshold") or 1):
                    ready[i] = True
                elif not ok and -streak[i] >= int(pb.get("failureThreshold") or 3):
                    ready[i] = False
            pod_ready = all(ready)
            if pod_ready != pr.ready and not pr.deleted:
                # no phase: a pod that has just finished stays finished
                _update_status(store, pr.ns, pr.name, podIP=pr.ip, ready=pod_ready)
                pr.ready = pod_ready
            if pod_ready and not any(c.get("readinessProbe") for c in containers):
                return   # nothing left to probe
            time.sleep(0.05)

    def _stop_pod(self, pr, grace=2.0):
        with pr.lock:
            pr.deleted = True
            procs = list(pr.procs)
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        self._kill_netns(pr.netns)   # also anything else left in the netns
        _ip("link", "del", pr.veth, check=False)
        shutil.rmtree(os.path.join(STATE_DIR, "pods", pr.netns), ignore_errors=True)
        self._free_state(pr)

    # -- services (ClusterIP proxy) ---------------------------------------
    def services_changed(self, store=None, svc=None):
        if store is not None:
            self.store = store
        if self.store is None or self.stopped:
            return
        try:
            services = _store_list(self.store, "services")
        except Exception as e:
            log.debug("list services: %s", e)
            return
        want = {}
        for s in services:
            spec = s.get("spec") or {}
            cip = spec.get("clusterIP")
            if not cip or cip == "None" or spec.get("type") == "ExternalName":
                continue
            try:
                if ipaddress.ip_address(cip) not in SVC_NET:
                    continue
            except ValueError:
                continue
            m = _meta(s)
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP") != "TCP" or not p.get("port"):
                    continue
                want[(cip, int(p["port"]))] = (m.get("namespace", "default"), m.get("name"))
        with self.net_lock:
            stale = [k for k in self.proxies if want.get(k) != self.proxies[k].svc]
            for k in stale:
                self.proxies.pop(k).stop()
        if want:
            self._ensure_bridge()
        for ip in {k[0] for k in want} - self.svc_ips:
            r = _ip("addr", "add", ip + "/32", "dev", BRIDGE, check=False)
            if r.returncode == 0 or "File exists" in r.stderr:
                self.svc_ips.add(ip)
        for k, svc in want.items():
            with self.net_lock:
                if k in self.proxies:
                    continue
                try:
                    self.proxies[k] = _ServiceProxy(self, k[0], k[1], svc)
                except OSError as e:
                    log.warning("ClusterIP %s:%d: %s", k[0], k[1], e)
        for ip in self.svc_ips - {k[0] for k in want}:
            _ip("addr", "del", ip + "/32", "dev", BRIDGE, check=False)
            self.svc_ips.discard(ip)

    def _poll_services(self):
        """Re-sync the ClusterIP listeners whenever the store changes (the
        store has no service hooks; its Condition tells us about any write)."""
        while self.store is None and not self.stopped:
            time.sleep(0.05)
        last = None
        while not self.stopped:
            cond = getattr(self.store, "cond", None)
            if cond is None:
                time.sleep(0.2)
                rv = None
            else:
                with cond:
                    cond.wait_for(lambda: self.store.rv != last or self.stopped, timeout=0.5)
                    rv = self.store.rv
            if rv != last or rv is None:
                last = rv
                self.services_changed()

    def pick_backend(self, svc, port):
        """(podIP, targetPort) of a ready pod behind service svc=(ns, name)."""
        ns, name = svc
        s = None
        for cand in _store_list(self.store, "services", ns):
            if _meta(cand).get("name") == name:
                s = cand
        if s is None:
            return None
        spec = s.get("spec") or {}
        sel = spec.get("selector") or {}
        if not sel:
            return None
        sport = next((p for p in spec.get("ports") or [] if int(p.get("port", 0)) == port), None)
        if sport is None:
            return None
        pods = [p for p in _store_list(self.store, "pods", ns)
                if all((_meta(p).get("labels") or {}).get(k) == v for k, v in sel.items())
                and _pod_ready(p)]
        if not pods:
            return None
        pods.sort(key=lambda p: _meta(p).get("name", ""))
        pod = pods[next(self.rr) % len(pods)]
        tp = sport.get("targetPort", port)
        if isinstance(tp, str) and not tp.isdigit():
            for c in (pod.get("spec") or {}).get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == tp:
                        return pod["status"]["podIP"], int(cp["containerPort"])
            return None
        return pod["status"]["podIP"], int(tp)

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        self.reap_stale()
        with self._locked_state():
            with open(self.owner_file, "w") as f:
                f.write("%d\n" % os.getpid())
        if self.api is not None:
            # The API as pods see it: GATEWAY (the bridge, always there) on
            # the API's port when free, relayed to the server (TLS passes
            # through; the certificate has GATEWAY as a SAN).
            self._ensure_bridge()
            for port in (self.api[1], 0):
                try:
                    self.api_forward = _Forward(GATEWAY, port, self.api)
                    break
                except OSError as e:
                    log.warning("API relay on %s:%d: %s", GATEWAY, port, e)
        self.poller = threading.Thread(target=self._poll_services,
                                       name="kube-proxy", daemon=True)
        self.poller.start()

    def shutdown(self):
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            pods = list(self.pods.values())
            self.pods.clear()
        for k in list(self.proxies):
            self.proxies.pop(k).stop()
        if self.api_forward is not None:
            self.api_forward.stop()
        threads = [threading.Thread(target=self._stop_pod, args=(pr, 1.0)) for pr in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for ip in list(self.svc_ips):
            _ip("addr", "del", ip + "/32", "dev", BRIDGE, check=False)
        self.svc_ips.clear()
        with self._locked_state():
            try:
                os.unlink(self.owner_file)
            except OSError:
                pass
            if self.bridge_ready:
                # another live sim (with pods or not) still needs the bridge
                others = [n for n in self._state_files()
                          if _alive((self._read_state(n) or {}).get("owner", 0))]
                others += [n for n in self._owner_files() if _alive(self._owner_pid(n))]
                if not others:
                    _ip("link", "del", BRIDGE, check=False)
        if self.tmp_log_dir:
            import shutil
            shutil.rmtree(self.tmp_log_dir, ignore_errors=True)


class _ServiceProxy:
    def __init__(self, rt, ip, port, svc):
        self.rt, self.ip, self.port, self.svc = rt, ip, port, svc
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((ip, port))
            self.sock.listen(128)
        except OSError:
            self.sock.close()
            raise
        self.thread = threading.Thread(target=self._accept, daemon=True,
                                       name="svc-%s:%d" % (ip, port))
        self.thread.start()

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes accept()
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            backend = self.rt.pick_backend(self.svc, self.port)
        except Exception as e:
            log.warning("ClusterIP %s:%d: %s", self.ip, self.port, e)
            backend = None
        if backend is None:
            c.close()   # no endpoints: kube-proxy would reject
            return
        try:
            b = socket.create_connection(backend, timeout=5)
            b.settimeout(None)
        except OSError:
            c.close()
            return
        _nodelay(c, b)
        relay(c, b)


class _Forward(_ServiceProxy):
    """A TCP relay from ip:port (0: any) to a fixed backend (the API)."""

    def __init__(self, ip, port, backend):
        self.backend = backend
        super().__init__(None, ip, port, None)
        self.port = self.sock.getsockname()[1]

    def _serve(self, c):
        try:
            b = socket.create_connection(self.backend, timeout=5)
            b.settimeout(None)
        except OSError:
            c.close()
            return
        _nodelay(c, b)
        relay(c, b)


def _nodelay(*socks):
    """kube-proxy forwards in the kernel: a user-space stand-in must not
    add Nagle's delays (~40 ms per small write waiting on a delayed ACK)."""
    for x in socks:
        try:
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(a, b):
    t = threading.Thread(target=_pump, args=(b, a), daemon=True)
    t.start()
    _pump(a, b)
    t.join()
    a.close()
    b.close()


# --------------------------------------------------------------------------
# installation into the sim

RUNTIME_INSTANCE = None


def install(store_module=None, store=None, log_dir=None, api=None, ca_file=None):
    """Register the hooks with store.HOOKS; clean up at exit and on SIGTERM.
    Container output goes to LOG_DIR/NS_POD_CONTAINER.log (default: a
    temporary directory removed at shutdown; env KUBESIM_POD_LOGS).
    api=(host, port) of the API server and ca_file its CA: pods get them
    (KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's ca.crt)."""
    global RUNTIME_INSTANCE
    if RUNTIME_INSTANCE is not None:
        return RUNTIME_INSTANCE
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/ip") and not os.path.exists("/sbin/ip"):
        log.warning("kubesim.runtime: needs root and iproute2; pods will not run")
        return None
    if store_module is None:
        from . import store as store_module
    load_images()
    log_dir = log_dir or os.environ.get("KUBESIM_POD_LOGS")
    rt = Runtime(store, log_dir, api=api, ca_file=ca_file)
    if log_dir is None:
        rt.log_dir = tempfile.mkdtemp(prefix="kubesim-pods-")
        rt.tmp_log_dir = rt.log_dir
    else:
        os.makedirs(log_dir, exist_ok=True)
    RUNTIME_INSTANCE = rt
    hooks = store_module.HOOKS
    hooks.setdefault("pod_created", []).append(rt.pod_created)
    hooks.setdefault("pod_deleted", []).append(rt.pod_deleted)
    for k in ("service_created", "service_deleted", "service_updated"):
        hooks.setdefault(k, []).append(rt.services_changed)
    rt.start()
    atexit.register(rt.shutdown)
    if threading.current_thread() is threading.main_thread():
        prev = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            rt.shutdown()
            if callable(prev):
                prev(signum, frame)
            else:
                raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, on_term)
    return rt


# --------------------------------------------------------------------------
# built-in images

def _echo_main(ports, greeting=None):
    def serve(c):
        try:
            if greeting is not None:
                c.sendall(greeting.encode() + b"\n")
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def listen(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(128)
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    delay = float(os.environ.get("KUBESIM_LISTEN_DELAY") or 0)
    if delay > 0:
        time.sleep(delay)
    ts = [threading.Thread(target=listen, args=(int(p),), daemon=True) for p in ports]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _http_main(pod, port):
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("<html><body><h1>kubesim pod %s</h1><p>namespace %s, ip %s, path %s</p>"
                    "</body></html>\n" % (pod, os.environ.get("KUBESIM_POD_NAMESPACE", ""),
                                          os.environ.get("KUBESIM_POD_IP", ""), self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("%s\n" % (fmt % args))

    http.server.ThreadingHTTPServer(("0.0.0.0", int(port)), H).serve_forever()


def _podexec(spec, argv):
    """The container launcher: runs in the pod's netns (ip netns exec),
    makes a private mount namespace with the bind mounts, drops to the
    container's groups/gid/uid, sets no_new_privs, and execs ARGV with the
    environment it was given."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def check(r, what):
        if r != 0:
            e = ctypes.get_errno()
            sys.stderr.write("kubesim podexec: %s: %s\n" % (what, os.strerror(e)))
            sys.stderr.flush()
            os._exit(126)
    ms_rdonly, ms_remount, ms_bind, ms_rec, ms_private = 1, 32, 4096, 16384, 1 << 18
    if spec.get("mounts"):
        check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")   # CLONE_NEWNS
        check(libc.mount(b"none", b"/", None, ms_rec | ms_private, None),
              "mount --make-rprivate /")
        for src, dst, ro in spec["mounts"]:
            check(libc.mount(os.fsencode(src), os.fsencode(dst), None, ms_bind, None),
                  "bind %s on %s" % (src, dst))
            if ro:
                check(libc.mount(b"none", os.fsencode(dst), None,
                                 ms_remount | ms_bind | ms_rdonly, None), "remount ro " + dst)
    try:
        if spec.get("uid") is not None or spec.get("gid") is not None or spec.get("groups"):
            os.setgroups([int(g) for g in spec.get("groups") or []])
        if spec.get("gid") is not None:
            os.setgid(int(spec["gid"]))
        if spec.get("uid") is not None:
            os.setuid(int(spec["uid"]))
    except OSError as e:
        sys.stderr.write("kubesim podexec: credentials: %s\n" % e)
        os._exit(126)
    if spec.get("nnp"):
        check(libc.prctl(38, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if not argv:
        sys.stderr.write("kubesim podexec: no command\n")
        os._exit(127)
    try:
        os.execvpe(argv[0], argv, os.environ)
    except OSError as e:
        sys.stderr.write("kubesim podexec: exec %s: %s\n" % (argv[0], e))
        sys.stderr.flush()
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def main(argv):
    if argv[:1] == ["podexec"]:
        rest = argv[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        _podexec(json.loads(argv[1]), rest)
        return
    if not argv:
        sys.exit("usage: runtime.py echo PORT... | greet NAME PORT... | http NAME PORT | pause | "
                 "exit CODE")
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    cmd, args = argv[0], argv[1:]
    if cmd == "echo":
        _echo_main(args)
    elif cmd == "greet":
        _echo_main(args[1:], greeting=args[0] if args else "")
    elif cmd == "http":
        _http_main(args[0], args[1] if len(args) > 1 else "80")
    elif cmd == "pause":
        while True:
            signal.pause()
    elif cmd == "exit":
        sys.exit(int(args[0]) if args else 0)
    else:
        sys.exit("unknown image command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
