"""Patch formats served by kubesim: JSON merge patch (RFC 7386), JSON patch
(RFC 6902) and a strategic merge patch.

Faithful: merge patch and JSON patch follow their RFCs (JSON pointer with
~0/~1 escapes, "-" for append, test/move/copy).

Simplified strategic merge patch: instead of Go struct tags we keep a small
table of merge keys for the list fields kubesim's kinds use (containers, env,
volumes, volumeMounts, container ports by containerPort, service ports by
port, ...).  Supported directives: ``$patch: delete|replace|merge`` in maps
and list items, ``$deleteFromPrimitiveList/<field>``, ``$retainKeys``;
``$setElementOrder/<field>`` is accepted and ignored (order stays: existing
items in place, new items appended).  Lists without a merge key are replaced.
"""

import copy

# field name -> merge key, for list fields of maps merged by key.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name",
}
# primitive lists merged as sets
_MERGE_PRIMITIVE = {"finalizers"}


class PatchError(Exception):
    """Raised for malformed patches; the server turns it into 400/422."""


def merge_key(path, field):
    """Merge key for list ``field`` found at ``path`` (tuple of map keys)."""
    if field == "ports":
        # container ports are keyed by containerPort, service ports by port
        if path and path[-1] in ("containers", "initContainers", "ephemeralContainers"):
            return "containerPort"
        if path == ("spec",):
            return "port"
        return None
    return _MERGE_KEYS.get(field)


# ---------------------------------------------------------------- merge patch

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch; returns a new object."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ----------------------------------------------------------------- json patch

def _unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")


def _split_pointer(ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % ptr)
    return [_unescape(t) for t in ptr[1:].split("/")]


def _resolve_parent(doc, tokens, ptr):
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, list):
            try:
                cur = cur[int(tok)]
            except (ValueError, IndexError):
                raise PatchError("path %s not found" % ptr)
        elif isinstance(cur, dict):
            if tok not in cur:
                raise PatchError("path %s not found" % ptr)
            cur = cur[tok]
        else:
            raise PatchError("path %s not found" % ptr)
    return cur


def _get(doc, ptr):
    tokens = _split_pointer(ptr)
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, ptr)
    last = tokens[-1]
    try:
        if isinstance(parent, list):
            return parent[int(last)]
        return parent[last]
    except (KeyError, ValueError, IndexError, TypeError):
        raise PatchError("path %s not found" % ptr)


def _remove(doc, ptr):
    tokens = _split_pointer(ptr)
    if not tokens:
        raise PatchError("cannot remove the root")
    parent = _resolve_parent(doc, tokens, ptr)
    last = tokens[-1]
    try:
        if isinstance(parent, list):
            return parent.pop(int(last))
        return parent.pop(last)
    except (KeyError, ValueError, IndexError, TypeError):
        raise PatchError("unable to remove nonexistent key %s" % ptr)


def _add(doc, ptr, value, replace=False):
    tokens = _split_pointer(ptr)
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, ptr)
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
            return doc
        try:
            idx = int(last)
        except ValueError:
            raise PatchError("invalid index in %s" % ptr)
        if replace:
            if not 0 <= idx < len(parent):
                raise PatchError("path %s not found" % ptr)
            parent[idx] = value
        else:
            if not 0 <= idx <= len(parent):
                raise PatchError("index out of range in %s" % ptr)
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError("replace operation does not apply: doc is missing key: %s" % ptr)
        parent[last] = value
    else:
        raise PatchError("path %s not found" % ptr)
    return doc


def json_patch(target, ops):
    """RFC 6902 JSON patch; returns a new object."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid json patch operation %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "move":
            val = _remove(doc, op["from"])
            doc = _add(doc, path, val)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError("testing value %s failed" % path)
        else:
            raise PatchError("unknown json patch op %r" % kind)
    return doc


# ---------------------------------------------------- strategic merge patch

def strategic_merge_patch(target, patch, path=()):
    """Apply a strategic merge patch to the map ``target``; returns a new map."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
            continue
        cur = result.get(k)
        if isinstance(v, dict):
            merged = strategic_merge_patch(cur, v, path + (k,))
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(cur, v, path, k)
        else:
            result[k] = v
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(cur, patch_list, path, field):
    key = merge_key(path, field)
    # a list-level {"$patch": "replace"} element replaces the whole list
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch_list):
        return [copy.deepcopy(x) for x in patch_list
                if not (isinstance(x, dict) and "$patch" in x and len(x) == 1)]
    if not isinstance(cur, list):
        cur = []
    if field in _MERGE_PRIMITIVE:
        out = list(cur)
        for x in patch_list:
            if x not in out:
                out.append(x)
        return out
    if key is None or not all(isinstance(x, dict) for x in patch_list):
        return [_strip_directives(copy.deepcopy(x)) for x in patch_list]
    out = copy.deepcopy(cur)
    for item in patch_list:
        kv = item.get(key)
        idx = next((i for i, o in enumerate(out)
                    if isinstance(o, dict) and o.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(copy.deepcopy(item)))
        else:
            merged = strategic_merge_patch(out[idx], item, path + (field,))
            if merged is None:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _strip_directives(obj):
    if isinstance(obj, dict):
        return {k: _strip_directives(v) for k, v in obj.items()
                if not k.startswith("$")}
    if isinstance(obj, list):
        return [_strip_directives(x) for x in obj]
    return obj
