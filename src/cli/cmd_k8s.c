/* cmd_k8s.c - Kubernetes commands.  So far: rbac. */
#include "cli/cli.h"
#include "core/util.h"
#include "k8s/rbac.h"

#include <stdio.h>
#include <string.h>

int cmd_rbac(struct cli *c)
{
	const char *ns = NULL, *user = NULL, *group = NULL, *sa = NULL, *name = NULL;
	const struct cli_opt opts[] = {
	    {"--namespace", 'n', true, &ns, NULL}, {"--user", 0, true, &user, NULL},
	    {"--group", 0, true, &group, NULL},	   {"--serviceaccount", 0, true, &sa, NULL},
	    {"--name", 0, true, &name, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 0)
		return cli_error(c, EXIT_USAGE,
				 "rbac takes no arguments (see `devbridge rbac --help`)");
	if (!!user + !!group + !!sa > 1)
		return cli_error(c, EXIT_USAGE,
				 "give at most one of --user, --group, --serviceaccount");
	struct rbac_opts o = {.namespace = ns, .name = name};
	char sans[256] = "";
	if (user) {
		o.subject = RBAC_USER;
		o.subject_name = user;
	} else if (group) {
		o.subject = RBAC_GROUP;
		o.subject_name = group;
	} else if (sa) {
		const char *colon = strchr(sa, ':');
		if (!colon || (size_t)(colon - sa) >= sizeof sans)
			return cli_error(c, EXIT_USAGE,
					 "--serviceaccount: expected NAMESPACE:NAME");
		snprintf(sans, sizeof sans, "%.*s", (int)(colon - sa), sa);
		o.subject = RBAC_SERVICEACCOUNT;
		o.subject_namespace = sans;
		o.subject_name = colon + 1;
	}
	char err[256];
	if (rbac_check(&o, err, sizeof err) < 0)
		return cli_error(c, EXIT_USAGE, "%s", err);
	/* Pure YAML on stdout, even with --json: it is meant for a pipe into
	 * `kubectl apply -f -`. */
	rbac_write(stdout, &o);
	return EXIT_OK;
}
