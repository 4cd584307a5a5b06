/* cmd_tunnels.c - up, down, restart, status, logs, check, and the hidden
 * __supervise that `up` runs in each detached supervisor process: their
 * flags and their rendering.  The operations are src/app's. */
#include "cli/cli.h"
#include "app/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "ssh/ssh_argv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_UP_TIMEOUT_S 30

static const char *row_str(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));
	return s ? s : "";
}

/* --- status --- */

/* The status table: each column as wide as its widest cell. */
void cli_print_status_table(struct cli *c, json_t *rows)
{
	enum { NCOL = 8 };
	static const char *const head[NCOL] = {"NAME",	 "KIND",  "STATE",  "LOCAL -> REMOTE",
					       "UPTIME", "RECON", "HEALTH", "LAST EVENT"};
	size_t nrows = json_array_size(rows);
	char(*cell)[NCOL][700] = calloc(nrows ? nrows : 1, sizeof *cell);
	if (!cell)
		return;
	size_t w[NCOL];
	for (int k = 0; k < NCOL; k++)
		w[k] = strlen(head[k]);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		char *lr = cell[i][3];
		size_t lrn = sizeof cell[i][3];
		double since;
		snprintf(cell[i][4], sizeof cell[i][4], "-");
		if (json_integer_value(json_object_get(row, "pid")) > 0 &&
		    parse_iso8601(row_str(row, "since"), &since) == 0) {
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			fmt_duration(cell[i][4], sizeof cell[i][4], (double)now.tv_sec - since);
		}
		snprintf(lr, lrn, "%s -> %s", row_str(row, "local"), row_str(row, "remote"));
		json_t *fws = json_object_get(row, "forwards");
		if (json_array_size(fws) > 0) {
			/* A container: one "host <- container (process)" per forward. */
			size_t k, off = 0;
			json_t *f;
			lr[0] = '\0';
			json_array_foreach(fws, k, f)
			{
				char proc[80];
				snprintf(proc, sizeof proc, "%s",
					 json_string_value(json_object_get(f, "process_name"))
					     ?: "");
				text_sanitize(proc);
				int wr = snprintf(
				    lr + off, lrn - off, "%s127.0.0.1:%lld <- %lld%s%s%s",
				    off ? ", " : "",
				    (long long)json_integer_value(json_object_get(f, "host_port")),
				    (long long)json_integer_value(json_object_get(f, "port")),
				    *proc ? " (" : "", proc, *proc ? ")" : "");
				if (wr < 0 || (size_t)wr >= lrn - off)
					break;
				off += (size_t)wr;
			}
		}
		if (strcmp(row_str(row, "kind"), "intercept") == 0)
			/* the cluster's traffic comes here: Service ports -> local ports */
			snprintf(lr, lrn, "%s -> %s%s%s%s", row_str(row, "remote"),
				 row_str(row, "local"),
				 *row_str(row, "agent_pod") ? " (agent " : "",
				 row_str(row, "agent_pod"), *row_str(row, "agent_pod") ? ")" : "");
		else if (strcmp(row_str(row, "direction"), "reverse") == 0)
			snprintf(lr, lrn, "%s <- %s", row_str(row, "local"),
				 row_str(row, "remote"));
		const char *reason = row_str(row, "reason");
		snprintf(cell[i][0], sizeof cell[i][0], "%s", row_str(row, "name"));
		snprintf(cell[i][1], sizeof cell[i][1], "%s", row_str(row, "kind"));
		snprintf(cell[i][2], sizeof cell[i][2], "%s", row_str(row, "state"));
		snprintf(cell[i][5], sizeof cell[i][5], "%lld",
			 (long long)json_integer_value(json_object_get(row, "reconnects")));
		snprintf(cell[i][6], sizeof cell[i][6], "%s", row_str(row, "health"));
		snprintf(cell[i][7], sizeof cell[i][7], "%s%s%s%s", row_str(row, "last_event"),
			 *reason ? " (" : "", reason, *reason ? ")" : "");
		for (int k = 0; k < NCOL; k++) {
			text_sanitize(cell[i][k]);
			size_t l = strlen(cell[i][k]);
			if (k < NCOL - 1 && l > w[k])
				w[k] = l;
		}
	}
	bool color = cli_color(c);
	for (int k = 0; k < NCOL; k++)
		printf(k < NCOL - 1 ? "%-*s " : "%.*s\n", (int)w[k], head[k]);
	json_array_foreach(rows, i, row)
	{
		const char *state = cell[i][2], *col = "", *end = "";
		if (color) {
			end = "\033[0m";
			if (!strcmp(state, "connected"))
				col = "\033[32m";
			else if (!strcmp(state, "degraded") || !strcmp(state, "reconnecting") ||
				 !strcmp(state, "starting"))
				col = "\033[33m";
			else if (!strcmp(state, "failed"))
				col = "\033[31m";
			else
				end = "";
		}
		for (int k = 0; k < NCOL - 1; k++)
			printf("%s%-*s%s ", k == 2 ? col : "", (int)w[k], cell[i][k],
			       k == 2 ? end : "");
		printf("%s\n", cell[i][NCOL - 1]);
	}
	free(cell);
}

/* seed 000's status header, for the live Kubernetes session. */
static void print_k8s_header(json_t *sess)
{
	double since;
	char up[32] = "-", at[16] = "";
	if (parse_iso8601(row_str(sess, "started_at"), &since) == 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		fmt_duration(up, sizeof up, (double)now.tv_sec - since);
		time_t t = (time_t)since;
		struct tm tm;
		if (localtime_r(&t, &tm))
			strftime(at, sizeof at, " (%H:%M:%S)", &tm);
	}
	char kc[PATH_MAX], cx[300];
	snprintf(kc, sizeof kc, "%s", row_str(sess, "kubeconfig"));
	snprintf(cx, sizeof cx, "%s", row_str(sess, "context"));
	text_sanitize(kc);
	text_sanitize(cx);
	printf("Kubernetes session (%lld bridge%s)\n  config:   %s\n  context:  %s\n  uptime:   "
	       "%s%s\n\n",
	       (long long)json_integer_value(json_object_get(sess, "bridges")),
	       json_integer_value(json_object_get(sess, "bridges")) == 1 ? "" : "s", kc, cx, up,
	       at);
}

int cmd_status(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	int r = cli_load_config_optional(c);
	if (r || (r = cli_state_dir(c)))
		return r;
	struct app *a = cli_app(c);
	json_t *doc;
	struct err e = {0};
	if ((r = app_status_doc(a, c->argc, c->argv, &doc, &e)))
		return cli_fail(c, &e);
	if (c->json) {
		cli_print_json(doc);
		return EXIT_OK;
	}
	json_t *rows = json_incref(json_object_get(doc, "bridges")),
	       *sess = json_incref(json_object_get(doc, "session"));
	json_decref(doc);
	if (json_array_size(rows) == 0) {
		size_t nt = c->cfg ? c->cfg->bridge.n_targets : 0;
		if (nt)
			printf("no bridges running; %s lists %zu Kubernetes target%s (`devbridge "
			       "connect` starts them)\n",
			       c->config_path, nt, nt == 1 ? "" : "s");
		else if (c->cfg && c->cfg->n_tunnels == 0 && app_no_config(a))
			printf("no bridges running and no containers connected\n");
		else
			printf("no bridges configured in %s and no containers connected\n",
			       c->config_path);
		json_decref(rows);
		json_decref(sess);
		return EXIT_OK;
	}
	if (sess)
		print_k8s_header(sess);
	json_decref(sess);
	cli_print_status_table(c, rows);
	fflush(stdout);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		if (*row_str(row, "state_error"))
			fprintf(
			    stderr,
			    "devbridge: %s: its supervisor (pid %lld) %s; the state shown is the "
			    "last one it could write\n",
			    row_str(row, "name"),
			    (long long)json_integer_value(json_object_get(row, "pid")),
			    row_str(row, "state_error"));
	}
	json_decref(rows);
	return EXIT_OK;
}

/* --- up --- */

static int up_names(struct cli *c, int argc, char **argv, bool foreground, int timeout_s);

int cmd_up(struct cli *c)
{
	const char *timeout = NULL;
	bool foreground = false;
	const struct cli_opt opts[] = {
	    {"--timeout", 0, true, &timeout, NULL},
	    {"--foreground", 'F', false, NULL, &foreground},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	unsigned timeout_s = DEFAULT_UP_TIMEOUT_S;
	if (timeout && cli_parse_uint(c, "--timeout", timeout, 1, 86400, &timeout_s) < 0)
		return EXIT_USAGE;
	return up_names(c, c->argc, c->argv, foreground, (int)timeout_s);
}

static int print_plan(struct cli *c, int argc, char **argv)
{
	json_t *plan;
	struct err e = {0};
	if (app_up_plan(cli_app(c), argc, argv, &plan, &e))
		return cli_fail(c, &e);
	if (c->json) {
		cli_print_json(json_pack("{s:b, s:o}", "dry_run", 1, "bridges", plan));
		return EXIT_OK;
	}
	size_t i;
	json_t *p;
	json_array_foreach(plan, i, p)
	{
		json_t *av = json_object_get(p, "argv");
		char **v = calloc(json_array_size(av) + 1, sizeof *v);
		size_t k;
		json_t *s;
		json_array_foreach(av, k, s) v[k] = (char *)json_string_value(s);
		char *line = v ? ssh_argv_format(v) : NULL;
		printf("%s\n", line ? line : "");
		free(line);
		free(v);
	}
	json_decref(plan);
	return EXIT_OK;
}

static void print_up_row(json_t *row)
{
	const char *name = row_str(row, "name"), *result = row_str(row, "result"),
		   *message = row_str(row, "message");
	int code = (int)json_integer_value(json_object_get(row, "code"));
	FILE *f = code ? stderr : stdout;
	if (strcmp(result, "connected") == 0)
		fprintf(f, "%s: connected (%s %s %s)\n", name, row_str(row, "local"),
			strcmp(row_str(row, "direction"), "local") == 0 ? "->" : "<-",
			row_str(row, "remote"));
	else if (strcmp(result, "retrying") == 0)
		fprintf(f,
			"%s: reconnecting: %s\n  (still retrying in the background; "
			"`devbridge logs %s` to watch, `devbridge down %s` to stop)\n",
			name, message, name, name);
	else
		fprintf(f, "%s: %s%s%s\n", name,
			strcmp(result, "already_running") == 0 ? "" : result,
			strcmp(result, "already_running") == 0 ? "" : ": ", message);
}

static int up_names(struct cli *c, int argc, char **argv, bool foreground, int timeout_s)
{
	int r = cli_load_config(c);
	if (r)
		return r;
	/* Key and config files, with every diagnostic, before anything runs. */
	struct cfg_diags d = {0};
	struct err e = {0};
	if ((r = app_up_check(cli_app(c), argc, argv, &d, &e)))
		r = d.n ? cli_report_diags(c, &d) : cli_fail(c, &e);
	cfg_diags_clear(&d);
	if (r)
		return r;
	if (c->dry_run)
		return print_plan(c, argc, argv);
	if ((r = cli_state_dir(c)))
		return r;
	struct app_started *v = NULL;
	size_t n = 0;
	json_t *doc = NULL;
	int code = app_up_doc(cli_app(c), argc, argv, timeout_s, foreground, &doc, &v, &n, &e);
	if (!doc) {
		free(v);
		return cli_fail(c, &e);
	}
	if (c->json) {
		cli_json_result(c, code, doc, e.message);
	} else {
		size_t i;
		json_t *row;
		json_array_foreach(json_object_get(doc, "bridges"), i, row) print_up_row(row);
		json_decref(doc);
	}
	if (foreground)
		code = cli_run_foreground(c, v, n);
	free(v);
	return code;
}

/* --- down --- */

/* Stop the named supervisors (all when argc is 0).  `quiet` leaves stdout to
 * a caller that prints its own document (restart); errors are reported
 * either way. */
static int down_names(struct cli *c, int argc, char **argv, bool quiet)
{
	int r = cli_load_config_optional(c);
	if (r)
		return r;
	if ((r = cli_state_dir(c)))
		return r;
	json_t *rows = NULL;
	struct err e = {0};
	int code = app_down(cli_app(c), argc, argv, &rows, &e);
	if (!rows)
		return cli_fail(c, &e);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		const char *name = row_str(row, "name"), *what = row_str(row, "result");
		if (c->dry_run) {
			json_int_t pid = json_integer_value(json_object_get(row, "pid"));
			if (!c->json && !quiet && pid)
				printf("%s: would stop supervisor pid %lld\n", name,
				       (long long)pid);
		} else if (strcmp(what, "error") == 0) {
			fprintf(stderr, "devbridge: %s\n", row_str(row, "message"));
		} else if (!c->json && !quiet && (strcmp(what, "stopped") == 0 || argc > 0)) {
			printf("%s: %s\n", name, what);
		}
	}
	if (c->json && (code || !quiet)) {
		json_t *doc;
		code = app_down_doc(cli_app(c), code, rows, &doc, &e);
		return cli_json_result(c, code, doc, e.message);
	}
	json_decref(rows);
	return code;
}

int cmd_down(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	return down_names(c, c->argc, c->argv, false);
}

int cmd_restart(struct cli *c)
{
	const char *timeout = NULL;
	const struct cli_opt opts[] = {{"--timeout", 0, true, &timeout, NULL}};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	/* Checked before anything stops. */
	unsigned timeout_s = DEFAULT_UP_TIMEOUT_S;
	if (timeout && cli_parse_uint(c, "--timeout", timeout, 1, 86400, &timeout_s) < 0)
		return EXIT_USAGE;
	/* One document on stdout with --json: the up's. */
	int r = down_names(c, c->argc, c->argv, c->json);
	if (r)
		return r;
	return up_names(c, c->argc, c->argv, false, (int)timeout_s);
}

/* --- foreground --- */

/* One loop: each supervisor watched by its own pidfd, SIGINT/SIGTERM
 * through a signalfd. */
struct fg {
	struct cli *c;
	struct app_started *v;
	struct loop_child *w;
	size_t n, alive;
	int code;
	bool stopping;
};

static void fg_stop_all(struct loop *l, struct fg *f)
{
	f->stopping = true;
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].pid > 0)
			kill(f->v[i].pid, SIGTERM);
	if (f->alive == 0)
		loop_stop(l);
}

static void fg_on_exit(struct loop *l, pid_t pid, int st, void *data)
{
	struct fg *f = data;
	for (size_t i = 0; i < f->n; i++) {
		if (f->v[i].pid != pid)
			continue;
		f->v[i].pid = 0;
		f->alive--;
		if (!f->stopping && WIFEXITED(st) && WEXITSTATUS(st) != 0) {
			f->code = WEXITSTATUS(st);
			fprintf(stderr, "%s: supervisor exited (code %d)\n", f->v[i].name, f->code);
		}
	}
	if (f->alive == 0)
		loop_stop(l);
}

static void fg_on_signal(struct loop *l, int signo, void *data)
{
	struct fg *f = data;
	if (!f->stopping)
		fg_stop_all(l, f);
}

int cli_run_foreground(struct cli *c, struct app_started *v, size_t n)
{
	static const int sigs[] = {SIGINT, SIGTERM, 0};
	struct fg f = {.c = c, .v = v, .n = n, .code = EXIT_OK};
	struct loop *l = NULL;
	int r = loop_new(&l);
	if (r == 0)
		r = loop_watch_signals(l, sigs, fg_on_signal, &f);
	if (r == 0 && !(f.w = calloc(n ? n : 1, sizeof *f.w)))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (v[i].pid <= 0)
			continue;
		r = loop_child_watch(l, &f.w[i], v[i].pid, fg_on_exit, &f);
		f.alive += r == 0;
	}
	if (r < 0) {
		/* Nothing may run unwatched: stop them all, reap what the loop
		 * cannot. */
		fprintf(stderr, "devbridge: cannot watch the supervisors: %s\n", strerror(-r));
		for (size_t i = 0; i < n; i++) {
			if (v[i].pid <= 0)
				continue;
			kill(v[i].pid, SIGTERM);
			if (f.w)
				loop_child_unwatch(l, &f.w[i]);
			waitpid(v[i].pid, NULL, 0);
			v[i].pid = 0;
		}
		free(f.w);
		loop_free(l);
		return EXIT_ERROR;
	}
	if (!c->json)
		printf("devbridge: running in the foreground; Ctrl+C stops the bridges\n");
	fflush(stdout);
	if (f.alive > 0 && (r = loop_run(l)) < 0) {
		fprintf(stderr, "devbridge: event loop: %s\n", strerror(-r));
		f.code = EXIT_ERROR;
		for (size_t i = 0; i < n; i++) {
			if (v[i].pid > 0) {
				kill(v[i].pid, SIGTERM);
				loop_child_unwatch(l, &f.w[i]);
				waitpid(v[i].pid, NULL, 0);
				v[i].pid = 0;
			}
		}
	}
	free(f.w);
	loop_free(l);
	if (f.stopping) {
		if (!c->json)
			printf("devbridge: stopped\n");
		return EXIT_OK;
	}
	return f.code;
}

/* --- logs --- */

static void print_event(struct cli *c, json_t *ev)
{
	if (c->json) {
		char *s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			printf("%s\n", s);
		free(s);
		return;
	}
	/* The log is data a peer may have influenced: no raw control bytes
	 * reach the terminal. */
	char f[5][2048];
	static const char *const keys[] = {"ts", "event", "actor", "actor_class", "detail"};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		snprintf(f[i], sizeof f[i], "%s", row_str(ev, keys[i]));
		text_sanitize(f[i]);
	}
	printf("%s  %-22s %s (%s)%s%s\n", f[0], f[1], f[2], f[3], f[4][0] ? "  " : "", f[4]);
}

static bool follow_event(json_t *ev, void *data)
{
	if (ev)
		print_event(data, ev);
	else
		fflush(stdout); /* caught up */
	return true;
}

int cmd_logs(struct cli *c)
{
	const char *lines = NULL;
	bool f = false;
	const struct cli_opt opts[] = {
	    {"--lines", 'n', true, &lines, NULL},
	    {"--follow", 'f', false, NULL, &f},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 1)
		return cli_error(c, EXIT_USAGE, "usage: devbridge logs NAME [-n N] [-f]");
	unsigned n = 20;
	if (lines && cli_parse_uint(c, "--lines", lines, 0, INT_MAX, &n) < 0)
		return EXIT_USAGE;
	int r = cli_load_config_optional(c);
	if (r)
		return r;
	if ((r = cli_state_dir(c)))
		return r;
	struct app *a = cli_app(c);
	const char *name = c->argv[0];
	json_t *doc;
	struct err e = {0};
	if (app_logs_doc(a, name, n, &doc, &e))
		return cli_fail(c, &e);
	off_t from = app_logs_size(a, name);
	if (c->json && !f) {
		cli_print_json(doc);
		return EXIT_OK;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(doc, "events"), i, ev) print_event(c, ev);
	json_decref(doc);
	fflush(stdout);
	if (!f)
		return EXIT_OK;
	signal(SIGPIPE, SIG_DFL);
	if (app_logs_follow(a, name, from, follow_event, c, &e))
		return cli_fail(c, &e);
	return EXIT_OK;
}

/* --- check --- */

int cmd_check(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* Tunnels need the config; Kubernetes bridges are known by their
	 * state, so the config is required only when some name is not one. */
	bool need_cfg = c->argc == 0;
	json_t *k8s = json_array();
	for (int i = 0; i < c->argc && !need_cfg; i++)
		need_cfg = app_k8s_status_rows(cli_app(c), c->argv[i], k8s) == 0;
	json_decref(k8s);
	if ((r = need_cfg ? cli_load_config(c) : cli_load_config_optional(c)))
		return r;
	json_t *doc = NULL;
	struct err e = {0};
	int code = app_check_doc(cli_app(c), c->argc, c->argv, &doc, &e);
	if (!doc)
		return cli_fail(c, &e);
	if (c->json)
		return cli_json_result(c, code, doc, e.message);
	printf("%-24s %-8s %s\n", "NAME", "HEALTH", "DETAIL");
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(doc, "checks"), i, row)
	    printf("%-24s %-8s %s\n", row_str(row, "name"), row_str(row, "health"),
		   row_str(row, "detail"));
	json_decref(doc);
	return code;
}

/* --- __supervise --- */

int cli_supervisor_begin(struct cli *c)
{
	/* Its output goes to NAME.out: timestamps, and at least info. */
	log_set_timestamps(1);
	log_rotate_stderr(); /* NAME.out, when that is where stderr goes */
	if (log_get_level() < LOG_INFO)
		log_set_level(LOG_INFO);
	/* fd 3 is the ready pipe when cli_spawn_supervisor started us. */
	int ready = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
	if (ready >= 0)
		fd_set_cloexec(ready, true);
	return ready;
}

int cmd_supervise(struct cli *c)
{
	if (c->argc != 1)
		return EXIT_USAGE;
	int ready = cli_supervisor_begin(c);
	int r = cli_load_config(c);
	if (r)
		return r;
	if ((r = cli_state_dir(c)))
		return r;
	struct err e = {0};
	r = app_supervise_tunnel(cli_app(c), c->argv[0], ready, &e);
	return e.code ? cli_fail(c, &e) : r;
}
