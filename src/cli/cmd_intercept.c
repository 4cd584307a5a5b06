/* cmd_intercept.c - `intercept SVC --steal|--mirror`: its flags, and the
 * rendering of its plan (--dry-run: the objects as YAML for a person, one
 * JSON document with --json).  The operation is src/app's (intercept.c). */
#include "cli/cli.h"
#include "core/schema.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/intercept.h"
#include "k8s/k8s_config.h"
#include "k8s/target.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A user's text, safe to echo on a terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	text_sanitize(buf);
	return buf;
}

/* --- YAML for a person ------------------------------------------------ */

/* A string that YAML would read back as itself without quotes. */
static bool plain_ok(const char *s)
{
	static const char *const words[] = {"true", "false", "yes", "no", "on",
					    "off",  "null",  "~",   "y",  "n"};
	if (!*s || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
		return false;
	if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) || strstr(s, ": ") || strstr(s, " #"))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcasecmp(s, words[i]) == 0)
			return false;
	bool num = true;
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == ':' || *c == '"')
			return false;
		num &= isdigit((unsigned char)*c) || *c == '.' || *c == '+' || *c == 'e';
	}
	return !num;
}

static void yaml_scalar(FILE *f, const json_t *v)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (plain_ok(s)) {
			fputs(s, f);
		} else {
			char *q = json_dumps(v, JSON_ENCODE_ANY);
			fputs(q ? q : "\"\"", f);
			free(q);
		}
	} else if (json_is_integer(v)) {
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		fprintf(f, "%g", json_real_value(v));
	} else if (json_is_true(v)) {
		fputs("true", f);
	} else if (json_is_false(v)) {
		fputs("false", f);
	} else if (json_is_object(v)) {
		fputs("{}", f);
	} else if (json_is_array(v)) {
		fputs("[]", f);
	} else {
		fputs("null", f);
	}
}

static bool nested(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v)) ||
	       (json_is_array(v) && json_array_size(v));
}

static void yaml_value(FILE *f, const json_t *v, int indent);

static void yaml_key(FILE *f, const char *k)
{
	json_t *s = json_string(k);
	yaml_scalar(f, s);
	json_decref(s);
}

/* The members of an object, each at `indent` (the first one's indent
 * already written when `first_done`). */
static void yaml_object(FILE *f, const json_t *o, int indent, bool first_done)
{
	const char *k;
	json_t *v;
	bool first = true;
	json_object_foreach((json_t *)o, k, v)
	{
		if (!(first && first_done))
			fprintf(f, "%*s", indent, "");
		first = false;
		yaml_key(f, k);
		fputc(':', f);
		if (nested(v)) {
			fputc('\n', f);
			yaml_value(f, v, json_is_array(v) ? indent : indent + 2);
		} else {
			fputc(' ', f);
			yaml_scalar(f, v);
			fputc('\n', f);
		}
	}
}

static void yaml_value(FILE *f, const json_t *v, int indent)
{
	if (json_is_object(v)) {
		yaml_object(f, v, indent, false);
		return;
	}
	size_t i;
	json_t *x;
	json_array_foreach((json_t *)v, i, x)
	{
		fprintf(f, "%*s- ", indent, "");
		if (json_is_object(x) && json_object_size(x))
			yaml_object(f, x, indent + 2, true);
		else if (nested(x)) {
			fputc('\n', f);
			yaml_value(f, x, indent + 2);
		} else {
			yaml_scalar(f, x);
			fputc('\n', f);
		}
	}
}

static void print_plan(const json_t *doc)
{
	const char *ns = json_string_value(json_object_get(doc, "namespace"));
	const char *svc = json_string_value(json_object_get(doc, "service"));
	const char *from = json_string_value(json_object_get(doc, "resolved_from"));
	printf("# devbridge intercept --dry-run: nothing was created or changed.\n");
	printf("# %s/%s (context %s), mode %s, session %s, agent image %s\n", ns, svc,
	       json_string_value(json_object_get(doc, "context")),
	       json_string_value(json_object_get(doc, "mode")),
	       json_string_value(json_object_get(doc, "session")),
	       json_string_value(json_object_get(doc, "image")));
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(doc, "ports"), i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		const char *tn = json_string_value(json_object_get(p, "target_port_name"));
		printf("#   port %d%s%s%s -> agent :%d%s%s%s -> 127.0.0.1:%d\n",
		       (int)json_integer_value(json_object_get(p, "port")), name ? " (" : "",
		       name ? name : "", name ? ")" : "",
		       (int)json_integer_value(json_object_get(p, "target_port")),
		       tn ? " (targetPort " : "", tn ? tn : "", tn ? ")" : "",
		       (int)json_integer_value(json_object_get(p, "local_port")));
	}
	if (from)
		printf("#   named targetPorts resolved from pod %s\n", from);
	json_array_foreach(json_object_get(doc, "objects"), i, p)
	{
		printf("---\n");
		yaml_value(stdout, p, 0);
	}
	printf("---\n# the Service after the swap (the selector replaced, three annotations "
	       "added)\n");
	yaml_value(stdout, json_object_get(doc, "service_after"), 0);
}

static void print_warnings(const json_t *doc)
{
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(doc, "warnings"), i, w)
	{
		char buf[600];
		fprintf(stderr, "devbridge: warning: %s\n",
			clean(json_string_value(w), buf, sizeof buf));
	}
}

/* Each step of the real run, with its time, on stderr (stdout is for
 * --json). */
static void show_step(void *data, const char *step, const char *detail, unsigned ms)
{
	fprintf(stderr, "[%5.1fs] %s%s%s\n", ms / 1000.0, step, detail ? ": " : "",
		detail ? detail : "");
}

/* What a detached intercept tells the person who started it. */
static void print_detached(const json_t *doc)
{
	const char *name = json_string_value(json_object_get(doc, "name"));
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(doc, "ports"), i, p)
	    printf("%s/%s:%lld -> 127.0.0.1:%lld intercepted (steal)\n",
		   json_string_value(json_object_get(doc, "namespace")),
		   json_string_value(json_object_get(doc, "service")),
		   (long long)json_integer_value(json_object_get(p, "port")),
		   (long long)json_integer_value(json_object_get(p, "local_port")));
	printf("%s: agent %s, session %s, pid %lld; `devbridge down %s` or `devbridge "
	       "disconnect` restores the Service\n",
	       name, json_string_value(json_object_get(doc, "agent_pod")),
	       json_string_value(json_object_get(doc, "session")),
	       (long long)json_integer_value(json_object_get(doc, "pid")), name);
}

int cmd_intercept(struct cli *c)
{
	uint64_t start_ms = now_mono_ms();
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL, *timeout = NULL, *local = NULL,
		   *image = NULL, *ports[ICPT_MAX_PORTS + 1];
	size_t nports = 0;
	bool steal = false, mirror = false, foreground = false;
	const struct cli_opt opts[] = {
	    {"--steal", 0, false, NULL, &steal},
	    {"--mirror", 0, false, NULL, &mirror},
	    {"--port", 'p', true, NULL, NULL, ports, &nports, ICPT_MAX_PORTS},
	    {"--local-port", 0, true, &local, NULL},
	    {"--agent-image", 0, true, &image, NULL},
	    {"--kubeconfig", 0, true, &kubeconfig, NULL},
	    {"--context", 0, true, &context, NULL},
	    {"--namespace", 'n', true, &ns, NULL},
	    {"--timeout", 0, true, &timeout, NULL},
	    {"--foreground", 'F', false, NULL, &foreground},
	};
	char shown[200];
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc > 1)
		return cli_error(c, EXIT_USAGE, "intercept: one SERVICE at a time, got '%s' too",
				 clean(c->argv[1], shown, sizeof shown));
	if (steal && mirror)
		return cli_error(c, EXIT_USAGE, "intercept: --steal or --mirror, not both");
	const char *svc = c->argc ? c->argv[0] : NULL;
	if (svc && !k8s_dns_label(svc))
		return cli_error(c, EXIT_USAGE,
				 "intercept: '%s' is not a valid service name (lowercase letters, "
				 "digits, '-')",
				 clean(svc, shown, sizeof shown));
	unsigned timeout_s = APP_INTERCEPT_TIMEOUT_S, lp = 0;
	if ((timeout && cli_parse_uint(c, "--timeout", timeout, 1, 86400, &timeout_s) < 0) ||
	    (local && cli_parse_uint(c, "--local-port", local, 1, 65535, &lp) < 0))
		return EXIT_USAGE;
	if (ns && !k8s_dns_label(ns))
		return cli_error(c, EXIT_USAGE, "-n '%s': not a valid namespace name",
				 clean(ns, shown, sizeof shown));
	if (context && !*context)
		return cli_error(c, EXIT_USAGE,
				 "--context: an empty name; leave --context out to use the "
				 "kubeconfig's current context");
	if (kubeconfig && !*kubeconfig)
		return cli_error(c, EXIT_USAGE, "--kubeconfig: an empty path");
	if (image && !*image)
		return cli_error(c, EXIT_USAGE,
				 "--agent-image: an empty name; leave it out for the default");
	if (cli_check_length(c, "--context", context, CFG_CONTEXT_MAX) ||
	    cli_check_length(c, "--kubeconfig", kubeconfig, CFG_PATH_MAX))
		return EXIT_USAGE;

	int r = cli_load_config_optional(c);
	if (r)
		return r;
	struct app_intercept_opts o = {.service = svc,
				       .mode = steal	? INTERCEPT_STEAL
					       : mirror ? INTERCEPT_MIRROR
							: -1,
				       .ports = ports,
				       .n_ports = nports,
				       .local_port = (int)lp,
				       .agent_image = image,
				       .kubeconfig = kubeconfig,
				       .context = context,
				       .namespace = ns,
				       .profile = c->profile,
				       .timeout_s = timeout_s,
				       .start_ms = start_ms};
	/* the sweep before the checks reads the state directory */
	if (!c->dry_run && (r = cli_state_dir(c)))
		return r;
	struct app_iplan *p;
	struct err e = {0};
	if (app_intercept_plan(cli_app(c), &o, &p, &e))
		return cli_fail(c, &e);
	if (c->dry_run) {
		json_t *doc = app_intercept_describe(p, true);
		app_iplan_free(p);
		if (!doc)
			return cli_error(c, EXIT_ERROR, "out of memory");
		print_warnings(doc);
		if (c->json) {
			cli_print_json(doc);
			return EXIT_OK;
		}
		print_plan(doc);
		json_decref(doc);
		return EXIT_OK;
	}
	if ((r = cli_state_dir(c))) {
		app_iplan_free(p);
		return r;
	}
	json_t *doc = NULL;
	int code =
	    app_intercept(cli_app(c), p, foreground, c->json ? NULL : show_step, c, &doc, &e);
	app_iplan_free(p);
	if (!doc || (code != 0 && !c->json)) {
		json_decref(doc);
		return cli_fail(c, &e);
	}
	if (c->json)
		return cli_json_result(c, code, doc, e.message);
	if (code)
		cli_fail(c, &e);
	else if (json_is_true(json_object_get(doc, "detached")))
		print_detached(doc);
	json_decref(doc);
	return code;
}

/* --- __intercept: the detached process that holds an intercept --- */

int cmd_intercept_hold(struct cli *c)
{
	if (c->argc != 1 || !cfg_name_valid(c->argv[0]))
		return cli_error(c, EXIT_USAGE, "__intercept: bad arguments");
	int ready = cli_supervisor_begin(c);
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* the token: one line on stdin (a pipe from the command that started
	 * us), never on the command line */
	char token[ICPT_TOKEN_LEN + 2] = "";
	size_t got = 0;
	while (got < sizeof token - 1) {
		ssize_t n = read(STDIN_FILENO, token + got, sizeof token - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	token[strcspn(token, "\n")] = '\0';
	if (!icpt_hex_ok(token, ICPT_TOKEN_LEN)) {
		explicit_bzero(token, sizeof token);
		return cli_error(c, EXIT_USAGE, "__intercept: no token on stdin");
	}
	struct err e = {0};
	r = app_intercept_hold(cli_app(c), c->argv[0], token, ready, &e);
	explicit_bzero(token, sizeof token);
	return r ? cli_fail(c, &e) : EXIT_OK;
}
