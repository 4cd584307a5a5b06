/* rbac.c - see rbac.h.
 *
 * Rules (REFERENCE, devx's documented table, plus what `kubectl apply`
 * itself needs: get and patch on every kind it creates):
 *   batch/jobs                      create delete get list watch patch
 *   serviceaccounts                 create delete get patch
 *   rbac roles, rolebindings        create delete get patch
 *   secrets                         create delete  (the agent's token; never read)
 *   services                        get list watch update patch
 *   pods                            get list watch
 *   pods/portforward                create
 *   endpoints                       get list watch  (connect follows them to pick Ready pods)
 *   namespaces (cluster-wide only)  get            (connect's pre-check)
 * Creating a Role that grants services update/patch also requires the
 * user to hold those rights (RBAC escalation check): they are included. */
#include "k8s/rbac.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

struct rule {
	const char *group;
	const char *resources;
	const char *verbs;
};

static const struct rule rules[] = {
    {"batch", "jobs", "create, delete, get, list, watch, patch"},
    {"", "serviceaccounts", "create, delete, get, patch"},
    {"rbac.authorization.k8s.io", "roles, rolebindings", "create, delete, get, patch"},
    {"", "secrets", "create, delete"},
    {"", "services", "get, list, watch, update, patch"},
    {"", "pods", "get, list, watch"},
    {"", "pods/portforward", "create"},
    {"", "endpoints", "get, list, watch"},
};

/* RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static bool dns_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* User and group names are free-form in Kubernetes; keep them printable
 * and quotable. */
static bool subject_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
			return false;
	return true;
}

int rbac_check(const struct rbac_opts *o, char *err, size_t errlen)
{
	if (o->namespace && !dns_label(o->namespace)) {
		snprintf(err, errlen,
			 "namespace '%s' is not a valid name (lowercase letters, "
			 "digits, '-', at most 63)",
			 o->namespace);
		return -EINVAL;
	}
	if (o->name && !dns_label(o->name)) {
		snprintf(err, errlen, "name '%s' is not a valid name", o->name);
		return -EINVAL;
	}
	if (o->subject == RBAC_SERVICEACCOUNT &&
	    (!dns_label(o->subject_name) || !dns_label(o->subject_namespace))) {
		snprintf(err, errlen, "service account must be NAMESPACE:NAME with valid names");
		return -EINVAL;
	}
	if ((o->subject == RBAC_USER || o->subject == RBAC_GROUP) && !subject_ok(o->subject_name)) {
		snprintf(err, errlen, "subject name must be 1-253 printable characters");
		return -EINVAL;
	}
	return 0;
}

void rbac_write(FILE *out, const struct rbac_opts *o)
{
	const char *name = o->name ? o->name : "devbridge";
	bool ns = o->namespace != NULL;
	const char *kind = ns ? "Role" : "ClusterRole";
	fprintf(out,
		"# devbridge: the minimum rights for `devbridge connect` and `devbridge "
		"intercept`%s%s.\n",
		ns ? " in namespace " : " (cluster-wide)", ns ? o->namespace : "");
	fprintf(out, "apiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n  name: %s\n",
		kind, name);
	if (ns)
		fprintf(out, "  namespace: %s\n", o->namespace);
	fprintf(out, "  labels:\n    app.kubernetes.io/managed-by: devbridge\nrules:\n");
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
		fprintf(out, "- apiGroups: [\"%s\"]\n  resources: [%s]\n  verbs: [%s]\n",
			rules[i].group, rules[i].resources, rules[i].verbs);
	if (!ns)
		fprintf(out, "- apiGroups: [\"\"]\n  resources: [namespaces]\n  verbs: [get]\n");
	if (o->subject == RBAC_NONE) {
		fprintf(out, "# Bind it, e.g.: kubectl create %s %s --%s=%s --user=NAME%s%s\n",
			ns ? "rolebinding" : "clusterrolebinding", name,
			ns ? "role" : "clusterrole", name, ns ? " -n " : "",
			ns ? o->namespace : "");
		fprintf(out, "# (or run `devbridge rbac --user NAME` to include the binding)\n");
		return;
	}
	fprintf(out,
		"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: %sBinding\n"
		"metadata:\n  name: %s\n",
		kind, name);
	if (ns)
		fprintf(out, "  namespace: %s\n", o->namespace);
	fprintf(out, "  labels:\n    app.kubernetes.io/managed-by: devbridge\nsubjects:\n");
	if (o->subject == RBAC_SERVICEACCOUNT)
		fprintf(out, "- kind: ServiceAccount\n  name: %s\n  namespace: %s\n",
			o->subject_name, o->subject_namespace);
	else
		fprintf(out, "- kind: %s\n  apiGroup: rbac.authorization.k8s.io\n  name: \"%s\"\n",
			o->subject == RBAC_USER ? "User" : "Group", o->subject_name);
	fprintf(out, "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: %s\n  name: %s\n",
		kind, name);
}
