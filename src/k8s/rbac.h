/* rbac.h - the minimum RBAC that devbridge's Kubernetes bridges need
 * (connect and intercept), as a YAML manifest for `kubectl apply -f -`. */
#ifndef DEVBRIDGE_K8S_RBAC_H
#define DEVBRIDGE_K8S_RBAC_H

#include <stdio.h>

enum rbac_subject_kind { RBAC_NONE = 0, RBAC_USER, RBAC_GROUP, RBAC_SERVICEACCOUNT };

struct rbac_opts {
	const char *namespace; /* NULL: cluster-wide ClusterRole(+Binding) */
	const char *name;      /* object name; default "devbridge" */
	enum rbac_subject_kind subject;
	const char *subject_name;      /* user, group or service account name */
	const char *subject_namespace; /* service account's namespace */
};

/* Validate names as DNS-1123 labels/subdomains (what the API server will
 * accept); 0 or -EINVAL with the reason in err. */
int rbac_check(const struct rbac_opts *o, char *err, size_t errlen);

/* Write the manifest: only YAML (documents separated by ---, comments
 * allowed), nothing else on `out` (devx printed prose first). */
void rbac_write(FILE *out, const struct rbac_opts *o);

#endif
