"""Authentication and RBAC authorization for kubesim.

Authentication (bearer tokens only):
  * the admin token (random, in DIR/kubeconfig) -> user "admin", groups
    system:masters + system:authenticated: bypasses RBAC, like system:masters;
  * the dev token -> user "dev", group system:authenticated;
  * any token "sa:NS:NAME" -> service account
    "system:serviceaccount:NS:NAME", groups system:serviceaccounts,
    system:serviceaccounts:NS, system:authenticated (the SA need not exist);
  * anything else -> 401.
Impersonation (Impersonate-User / Impersonate-Group headers, kubectl --as /
--as-group) is allowed to the admin only.

Authorization is real RBAC evaluation: RoleBindings in the request's
namespace (to a Role of that namespace or a ClusterRole) and
ClusterRoleBindings (to a ClusterRole); subjects User, Group and
ServiceAccount; rules with verbs, apiGroups, resources (incl. "pods/log",
"pods/*", "*/status"), resourceNames and "*" wildcards.  Simplified: non
resource URLs (/api, /apis, /version, /openapi, ...) and
selfsubjectaccessreviews/selfsubjectrulesreviews are allowed to every
authenticated user (as the default system:discovery/system:basic-user
bindings do); no aggregated ClusterRoles, no default ClusterRoles.
"""

from . import store as storemod

ADMIN_GROUPS = ["system:masters", "system:authenticated"]


class User:
    def __init__(self, name, groups, is_admin=False):
        self.name, self.groups, self.is_admin = name, list(groups), is_admin

    def __repr__(self):
        return "<User %s>" % self.name


def sa_user(ns, name):
    return User("system:serviceaccount:%s:%s" % (ns, name),
                ["system:serviceaccounts", "system:serviceaccounts:%s" % ns, "system:authenticated"])


def authenticate(tokens, header):
    """tokens: {token: username}. header: the Authorization header value."""
    if not header or not header.lower().startswith("bearer "):
        return None
    tok = header[7:].strip()
    if tok.startswith("sa:"):
        parts = tok.split(":")
        if len(parts) == 3 and parts[1] and parts[2]:
            return sa_user(parts[1], parts[2])
        return None
    name = tokens.get(tok)
    if name is None:
        return None
    if name == "admin":
        return User("admin", ADMIN_GROUPS, is_admin=True)
    return User(name, ["system:authenticated"])


def impersonate(user, imp_user, imp_groups):
    """Returns the impersonated User, or None when not allowed."""
    if not user.is_admin:
        return None
    if imp_user.startswith("system:serviceaccount:"):
        parts = imp_user.split(":")
        if len(parts) == 4:
            u = sa_user(parts[2], parts[3])
            u.groups = list(dict.fromkeys(u.groups + list(imp_groups)))
            return u
    groups = list(imp_groups) or ["system:authenticated"]
    if "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return User(imp_user, groups, is_admin="system:masters" in groups)


def _subject_matches(subj, user, binding_ns):
    kind = subj.get("kind")
    if kind == "User":
        return subj.get("name") == user.name
    if kind == "Group":
        return subj.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subj.get("namespace") or binding_ns
        return user.name == "system:serviceaccount:%s:%s" % (ns, subj.get("name"))
    return False


def _has(values, want):
    return "*" in (values or []) or want in (values or [])


def _resource_matches(rule_resources, resource, subresource):
    full = resource + ("/" + subresource if subresource else "")
    for r in rule_resources or []:
        if r == "*" or r == full:
            return True
        if subresource and (r == resource + "/*" or r == "*/" + subresource):
            return True
    return False


def rule_allows(rule, verb, group, resource, subresource, name):
    if not _has(rule.get("verbs"), verb):
        return False
    if not _has(rule.get("apiGroups"), group):
        return False
    if not _resource_matches(rule.get("resources"), resource, subresource):
        return False
    names = rule.get("resourceNames")
    if names:
        return bool(name) and name in names
    return True


def rules_for(store, user, namespace):
    """All PolicyRules that apply to ``user`` in ``namespace`` (None = cluster scope)."""
    rules = []
    crb_res = storemod.resource_by_key("rbac.authorization.k8s.io/clusterrolebindings")
    rb_res = storemod.resource_by_key("rbac.authorization.k8s.io/rolebindings")
    cr_res = storemod.resource_by_key("rbac.authorization.k8s.io/clusterroles")
    role_res = storemod.resource_by_key("rbac.authorization.k8s.io/roles")

    def role_rules(ref, ns):
        if ref.get("kind") == "ClusterRole":
            obj = store.find(cr_res, None, ref.get("name"))
        elif ref.get("kind") == "Role" and ns:
            obj = store.find(role_res, ns, ref.get("name"))
        else:
            obj = None
        return (obj or {}).get("rules") or []

    for b in store.list(crb_res)[0]:
        if any(_subject_matches(s, user, None) for s in b.get("subjects") or []):
            rules.extend(role_rules(b.get("roleRef") or {}, None))
    if namespace:
        for b in store.list(rb_res, namespace)[0]:
            if any(_subject_matches(s, user, namespace) for s in b.get("subjects") or []):
                rules.extend(role_rules(b.get("roleRef") or {}, namespace))
    return rules


ALWAYS_ALLOWED = {("authorization.k8s.io", "selfsubjectaccessreviews"),
                  ("authorization.k8s.io", "selfsubjectrulesreviews")}


def authorize(store, user, verb, group, resource, subresource="", namespace=None, name=None):
    """Returns (allowed, reason)."""
    if user.is_admin or "system:masters" in user.groups:
        return True, "admin"
    if (group, resource) in ALWAYS_ALLOWED:
        return True, "always allowed"
    for rule in rules_for(store, user, namespace):
        if rule_allows(rule, verb, group, resource, subresource, name):
            return True, "RBAC: allowed by a rule"
    return False, ""


def forbidden_message(user, verb, group, resource, subresource, namespace, name):
    full = resource + ("/" + subresource if subresource else "")
    qual = resource + ("." + group if group else "")
    what = '%s "%s"' % (qual, name) if name else qual
    where = 'in the namespace "%s"' % namespace if namespace else "at the cluster scope"
    return '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        what, user.name, verb, full, group, where)
