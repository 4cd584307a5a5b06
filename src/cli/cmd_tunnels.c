/* cmd_tunnels.c - up, down, restart, status, logs, check, and the hidden
 * __supervise that `up` runs in each detached supervisor process. */
#include "cli/cli.h"
#include "core/audit.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "k8s/session.h"
#include "ssh/ssh_argv.h"
#include "ssh/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_UP_TIMEOUT_S 30
#define STOP_WAIT_MS	     8000 /* supervisor's own 5 s grace for ssh, plus slack */

/* --- status rows --- */

static json_t *jstr_or(json_t *o, const char *key, const char *dflt)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_copy(v) : json_string(dflt);
}

/* The status of one bridge as `status --json` shows it.  Liveness comes
 * from the pid file's lock, never from the state file alone. */
json_t *cli_status_row(struct cli *c, const char *name, const struct cfg_tunnel *t)
{
	json_t *st = NULL;
	(void)state_read(c->state_dir, name, &st);
	pid_t live = state_probe(c->state_dir, name);
	json_t *row = json_object();
	json_object_set_new(row, "name", json_string(name));
	json_object_set_new(row, "kind", t ? json_string("ssh") : jstr_or(st, "kind", "ssh"));
	const char *state = "stopped";
	json_t *fs = st ? json_object_get(st, "state") : NULL;
	if (live && json_is_string(fs))
		state = json_string_value(fs);
	else if (!live && json_is_string(fs) && strcmp(json_string_value(fs), "failed") == 0)
		state = "failed";
	json_object_set_new(row, "state", json_string(state));
	json_object_set_new(row, "pid", live ? json_integer(live) : json_null());
	/* ssh's own members: not on other kinds' rows. */
	bool ssh = strcmp(json_string_value(json_object_get(row, "kind")), "ssh") == 0;
	json_t *sp = st ? json_object_get(st, "ssh_pid") : NULL;
	if (ssh)
		json_object_set_new(row, "ssh_pid",
				    live && json_is_integer(sp) ? json_copy(sp) : json_null());
	json_object_set_new(row, "since", st ? jstr_or(st, "since", "") : json_null());
	char local[300] = "", remote[600] = "";
	if (t && t->direction == TUNNEL_LOCAL) {
		snprintf(local, sizeof local, "127.0.0.1:%d", t->local_port);
		snprintf(remote, sizeof remote, "%s:%d@%s", t->remote_host, t->remote_port,
			 t->host);
	} else if (t) {
		snprintf(local, sizeof local, "%s:%d", t->remote_host, t->local_port);
		snprintf(remote, sizeof remote, "%s:%d", t->host, t->remote_port);
	}
	json_object_set_new(row, "local", t ? json_string(local) : jstr_or(st, "local", ""));
	json_object_set_new(row, "remote", t ? json_string(remote) : jstr_or(st, "remote", ""));
	json_t *rc = st ? json_object_get(st, "reconnects") : NULL;
	json_object_set_new(row, "reconnects",
			    json_is_integer(rc) ? json_copy(rc) : json_integer(0));
	json_object_set_new(row, "health",
			    live ? jstr_or(st, "health", "unknown") : json_string("unknown"));
	json_object_set_new(row, "last_event", jstr_or(st, "last_event", ""));
	json_t *reason = jstr_or(st, "reason", "");
	if (!live && json_is_string(fs) && strcmp(json_string_value(fs), "stopped") != 0 &&
	    strcmp(json_string_value(fs), "failed") != 0) {
		/* The supervisor died without recording it (SIGKILL, crash). */
		json_decref(reason);
		reason = json_string("supervisor_gone");
	}
	/* A live supervisor that cannot write NAME.state says so in NAME.pid:
	 * what the state file says is then only the last state it wrote. */
	char note[700] = "";
	if (live)
		(void)state_read_note(c->state_dir, name, note, sizeof note);
	if (strncmp(note, "state_error: ", 13) == 0) {
		json_object_set_new(row, "state_error", json_string(note + 13));
		json_decref(reason);
		reason = json_string("state_unwritable");
	}
	json_object_set_new(row, "reason", reason);
	json_object_set_new(row, "detail", jstr_or(st, "detail", ""));
	const char *dir = t ? (t->direction == TUNNEL_LOCAL ? "local" : "reverse") : "";
	if (ssh)
		json_object_set_new(row, "direction",
				    t ? json_string(dir) : jstr_or(st, "direction", ""));
	json_object_set_new(row, "actor", t ? json_string(t->actor) : jstr_or(st, "actor", ""));
	/* What other worlds' supervisors add (k8s: the service and ports). */
	static const char *const extra[] = {
	    "service",	   "namespace",	 "remote_port", "local_port", "requested_port",
	    "kubectl_pid", "pod",	 "target_port", "origin",     "context",
	    "kubeconfig",  "started_at", "connected_at"};
	for (size_t k = 0; !t && st && k < ARRAY_SIZE(extra); k++) {
		json_t *x = json_object_get(st, extra[k]);
		bool run = !strcmp(extra[k], "kubectl_pid") || !strcmp(extra[k], "pod") ||
			   !strcmp(extra[k], "target_port");
		if (x && !(run && !live))
			json_object_set(row, extra[k], x);
	}
	json_decref(st);
	return row;
}

static const char *row_str(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));
	return s ? s : "";
}

/* Names with a pid file in the state dir that the config does not list:
 * bridges started from an older config must stay visible and stoppable. */
static void extra_names(struct cli *c, json_t *names)
{
	DIR *d = opendir(c->state_dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n <= 4 || strcmp(de->d_name + n - 4, ".pid") != 0)
			continue;
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)(n - 4), de->d_name);
		/* host-daemon.pid belongs to the devcontainer host daemon. */
		if (!cfg_name_valid(name) || cfg_find_tunnel(c->cfg, name) ||
		    strcmp(name, "host-daemon") == 0)
			continue;
		json_array_append_new(names, json_string(name));
	}
	closedir(d);
}

/* The status table: each column as wide as its widest cell. */
static void print_status_table(struct cli *c, json_t *rows)
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
		if (strcmp(row_str(row, "direction"), "reverse") == 0)
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
	/* A supervisor killed without cleaning up: its variables go now. */
	(void)k8s_session_prune(c->state_dir);
	json_t *rows = json_array();
	for (int i = 0; i < c->argc; i++) {
		const struct cfg_tunnel *t = cfg_find_tunnel(c->cfg, c->argv[i]);
		if (t) {
			json_array_append_new(rows, cli_status_row(c, t->name, t));
			continue;
		}
		/* Kubernetes bridges by bridge name or by service. */
		if (k8s_status_rows(c, c->argv[i], rows) > 0)
			continue;
		const struct cfg_tunnel **sel;
		size_t n;
		json_decref(rows);
		return cli_select_tunnels(c, 1, &c->argv[i], &sel, &n); /* reports it: 48 */
	}
	if (c->argc == 0) {
		for (size_t i = 0; i < c->cfg->n_tunnels; i++)
			json_array_append_new(
			    rows, cli_status_row(c, c->cfg->tunnels[i].name, &c->cfg->tunnels[i]));
		container_status_rows(c, rows);
		json_t *extra = json_array();
		extra_names(c, extra);
		size_t i;
		json_t *v;
		json_array_foreach(extra, i, v)
		{
			json_t *row = cli_status_row(c, json_string_value(v), NULL);
			/* Live ones, failed ones until disconnect or down clears
			 * them, and those whose supervisor died without saying
			 * so: a failure must stay visible. */
			if (json_integer_value(json_object_get(row, "pid")) > 0 ||
			    strcmp(row_str(row, "state"), "failed") == 0 ||
			    strcmp(row_str(row, "reason"), "supervisor_gone") == 0)
				json_array_append_new(rows, row);
			else
				json_decref(row);
		}
		json_decref(extra);
	}
	json_t *sess = k8s_status_session(c);
	if (c->json) {
		json_t *doc = json_pack("{s:o}", "bridges", rows);
		if (sess)
			json_object_set_new(doc, "session", sess);
		cli_print_json(doc);
		return EXIT_OK;
	}
	if (json_array_size(rows) == 0) {
		size_t nt = c->cfg ? c->cfg->bridge.n_targets : 0;
		if (nt)
			printf("no bridges running; %s lists %zu Kubernetes target%s (`devbridge "
			       "connect` starts them)\n",
			       c->config_path, nt, nt == 1 ? "" : "s");
		else if (c->cfg && c->cfg->n_tunnels == 0 &&
			 strcmp(c->config_path, "(no config)") == 0)
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
	print_status_table(c, rows);
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

static int self_exe(char *buf, size_t n)
{
	ssize_t r = readlink("/proc/self/exe", buf, n - 1);
	if (r < 0)
		return -errno;
	buf[r] = '\0';
	return 0;
}

int cli_spawn_supervisor(struct cli *c, struct cli_started *s, char **argv, bool foreground)
{
	char exe[PATH_MAX], out[PATH_MAX];
	int r = self_exe(exe, sizeof exe);
	if (r < 0)
		return r;
	if ((r = state_path(out, sizeof out, c->state_dir, s->name, "out")) < 0)
		return r;
	argv[0] = exe;
	int outfd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (outfd < 0)
		return -errno;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		close(outfd);
		return r;
	}
	struct spawn_opts o = {.argv = argv,
			       .stdin_fd = -1,
			       .stdout_fd = outfd,
			       .stderr_fd = outfd,
			       .new_session = true,
			       .die_with_parent = foreground,
			       .pass_fd = p[1]};
	r = spawn_process(&o, &s->pid);
	close(p[1]);
	close(outfd);
	if (r < 0) {
		close(p[0]);
		return r;
	}
	s->fd = p[0];
	return 0;
}

static int start_supervisor(struct cli *c, struct cli_started *s, bool foreground)
{
	char *args[] = {NULL, /* this executable */
			"__supervise",
			(char *)s->name,
			"--config",
			c->config_path,
			"--state-dir",
			c->state_dir,
			c->verbose >= 2 ? "-vv" : "-v",
			NULL};
	return cli_spawn_supervisor(c, s, args, foreground);
}

static void parse_ready(struct cli_started *s)
{
	char what[32] = "";
	int code = EXIT_ERROR, off = 0;
	s->line[s->len] = '\0';
	char *nl = strchr(s->line, '\n');
	if (nl)
		*nl = '\0';
	if (sscanf(s->line, "%31s %d %n", what, &code, &off) < 2) {
		s->result = "failed";
		s->code = EXIT_ERROR;
		snprintf(s->message, sizeof s->message, "supervisor exited before reporting");
		return;
	}
	const char *text = s->line + off;
	if (strcmp(text, "-") == 0)
		text = "";
	s->code = code;
	snprintf(s->message, sizeof s->message, "%s", text);
	if (strcmp(what, SUP_READY_CONNECTED) == 0)
		s->result = "connected";
	else if (strcmp(what, SUP_READY_RETRYING) == 0)
		s->result = "retrying";
	else if (strcmp(what, SUP_READY_BUSY) == 0) {
		/* It lost a race with another `up`: the text is the winner's pid. */
		s->result = "already_running";
		s->code = 0;
		snprintf(s->message, sizeof s->message, "already running (pid %s)", text);
	} else
		s->result = "failed";
}

/* Wait for each supervisor's first outcome, or the deadline. */
void cli_wait_ready(struct cli_started *v, size_t n, int timeout_s)
{
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_s * 1000;
	for (;;) {
		struct pollfd pfd[n ? n : 1];
		size_t k = 0, idx[n ? n : 1];
		for (size_t i = 0; i < n; i++) {
			if (v[i].done || v[i].fd < 0)
				continue;
			pfd[k].fd = v[i].fd;
			pfd[k].events = POLLIN;
			idx[k++] = i;
		}
		if (k == 0)
			return;
		uint64_t now = now_mono_ms();
		if (now >= deadline)
			break;
		int pr = poll(pfd, k, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			break;
		for (size_t j = 0; j < k && pr > 0; j++) {
			if (!pfd[j].revents)
				continue;
			struct cli_started *s = &v[idx[j]];
			ssize_t r = read(s->fd, s->line + s->len, sizeof s->line - 1 - s->len);
			if (r > 0) {
				s->len += (size_t)r;
				if (!memchr(s->line, '\n', s->len) && s->len < sizeof s->line - 1)
					continue;
			}
			s->done = true;
			parse_ready(s);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].done || v[i].fd < 0)
			continue;
		v[i].result = "timeout";
		v[i].code = EXIT_TIMEOUT;
		snprintf(v[i].message, sizeof v[i].message,
			 "not connected after %d s; still trying in the background", timeout_s);
	}
}

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

static int up_names(struct cli *c, int argc, char **argv, bool foreground, int timeout_s)
{
	int r = cli_load_config(c);
	if (r)
		return r;
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	if ((r = cli_select_tunnels(c, argc, argv, &sel, &nsel)))
		return r;
	if (nsel == 0) {
		free(sel);
		return cli_error(c, EXIT_CONFIG, "%s defines no tunnels", c->config_path);
	}
	for (size_t i = 0; i < nsel; i++) {
		if ((r = cli_check_files(c, sel[i]))) {
			free(sel);
			return r;
		}
	}
	if (c->dry_run) {
		json_t *plan = json_array();
		for (size_t i = 0; i < nsel; i++) {
			char **av = NULL;
			if (ssh_argv_build(sel[i], &av) < 0)
				continue;
			char *line = ssh_argv_format(av);
			if (c->json) {
				json_t *a = json_array();
				for (char **p = av; *p; p++)
					json_array_append_new(a, json_string(*p));
				json_array_append_new(
				    plan, json_pack("{s:s, s:o}", "name", sel[i]->name, "argv", a));
			} else {
				printf("%s\n", line ? line : "");
			}
			free(line);
			ssh_argv_free(av);
		}
		free(sel);
		if (c->json)
			cli_print_json(json_pack("{s:b, s:o}", "dry_run", 1, "bridges", plan));
		else
			json_decref(plan);
		return EXIT_OK;
	}
	char *ssh = spawn_which("ssh");
	if (!ssh) {
		free(sel);
		return cli_error(c, EXIT_SSH_NOT_FOUND,
				 "ssh not found on PATH: install the OpenSSH client "
				 "(apt-get install openssh-client)");
	}
	free(ssh);
	if ((r = cli_state_dir(c))) {
		free(sel);
		return r;
	}

	struct cli_started *v = calloc(nsel, sizeof *v);
	if (!v) {
		free(sel);
		return cli_error(c, EXIT_ERROR, "out of memory");
	}
	for (size_t i = 0; i < nsel; i++) {
		v[i].t = sel[i];
		v[i].name = sel[i]->name;
		v[i].fd = -1;
		pid_t live = state_probe(c->state_dir, sel[i]->name);
		if (live) {
			v[i].done = true;
			v[i].result = "already_running";
			v[i].pid = live;
			snprintf(v[i].message, sizeof v[i].message, "already running (pid %ld)",
				 (long)live);
			continue;
		}
		r = start_supervisor(c, &v[i], foreground);
		if (r < 0) {
			v[i].done = true;
			v[i].result = "failed";
			v[i].code = EXIT_ERROR;
			snprintf(v[i].message, sizeof v[i].message, "cannot start supervisor: %s",
				 strerror(-r));
		}
	}
	free(sel);
	cli_wait_ready(v, nsel, timeout_s);

	int code = EXIT_OK;
	json_t *rows = json_array();
	for (size_t i = 0; i < nsel; i++) {
		struct cli_started *s = &v[i];
		if (s->fd >= 0) {
			close(s->fd);
			s->fd = -1;
		}
		if (strcmp(s->result, "already_running") == 0 && !*s->message)
			snprintf(s->message, sizeof s->message, "already running");
		if (code == EXIT_OK && s->code != 0)
			code = s->code;
		json_t *row = cli_status_row(c, s->t->name, s->t);
		json_object_set_new(row, "result", json_string(s->result));
		json_object_set_new(row, "code", json_integer(s->code));
		json_object_set_new(row, "message", json_string(s->message));
		json_array_append_new(rows, row);
		if (c->json)
			continue;
		FILE *f = s->code ? stderr : stdout;
		if (strcmp(s->result, "connected") == 0)
			fprintf(f, "%s: connected (%s %s %s)\n", s->t->name, row_str(row, "local"),
				s->t->direction == TUNNEL_LOCAL ? "->" : "<-",
				row_str(row, "remote"));
		else if (strcmp(s->result, "retrying") == 0)
			fprintf(f,
				"%s: reconnecting: %s\n  (still retrying in the background; "
				"`devbridge logs %s` to watch, `devbridge down %s` to stop)\n",
				s->t->name, s->message, s->t->name, s->t->name);
		else
			fprintf(f, "%s: %s%s%s\n", s->t->name,
				strcmp(s->result, "already_running") == 0 ? "" : s->result,
				strcmp(s->result, "already_running") == 0 ? "" : ": ", s->message);
	}
	if (c->json) {
		json_t *doc = json_pack("{s:O}", "bridges", rows);
		cli_json_result(c, code, doc, "not every bridge connected");
	}
	json_decref(rows);
	if (foreground)
		code = cli_run_foreground(c, v, nsel);
	free(v);
	return code;
}

/* --- down --- */

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Stop NAME's supervisor; 1 if it was running, 0 if not, <0 on error. */
int cli_stop_bridge(struct cli *c, const char *name)
{
	pid_t pid = state_probe(c->state_dir, name);
	if (!pid)
		return 0;
	/* Pin the process, then confirm it still holds the lock: a pidfd cannot
	 * be redirected to a reused pid. */
	int pfd = pidfd_open_(pid);
	if (pfd < 0)
		return errno == ESRCH ? 0 : -errno;
	if (state_probe(c->state_dir, name) != pid) {
		close(pfd);
		return 0;
	}
	if (syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH) {
		int e = -errno;
		close(pfd);
		return e;
	}
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	uint64_t deadline = now_mono_ms() + STOP_WAIT_MS;
	while (now_mono_ms() < deadline) {
		if (poll(&p, 1, (int)(deadline - now_mono_ms())) > 0)
			break;
	}
	if (!(p.revents & POLLIN)) {
		log_warn("%s: supervisor pid %ld did not stop in %d s; killing it", name, (long)pid,
			 STOP_WAIT_MS / 1000);
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		poll(&p, 1, 2000);
	}
	close(pfd);
	return 1;
}

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
	json_t *names = json_array();
	if (argc == 0) {
		for (size_t i = 0; i < c->cfg->n_tunnels; i++)
			json_array_append_new(names, json_string(c->cfg->tunnels[i].name));
		extra_names(c, names);
	}
	for (int i = 0; i < argc; i++) {
		if (!cfg_find_tunnel(c->cfg, argv[i]) && !state_probe(c->state_dir, argv[i])) {
			json_decref(names);
			const struct cfg_tunnel **sel;
			size_t n;
			char *one[] = {argv[i]};
			/* Reports the unknown name with a suggestion. */
			return cli_select_tunnels(c, 1, one, &sel, &n);
		}
		json_array_append_new(names, json_string(argv[i]));
	}
	int code = EXIT_OK;
	json_t *rows = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v)
	{
		const char *name = json_string_value(v);
		if (c->dry_run) {
			pid_t pid = state_probe(c->state_dir, name);
			if (!c->json && !quiet && pid)
				printf("%s: would stop supervisor pid %ld\n", name, (long)pid);
			json_array_append_new(
			    rows, json_pack("{s:s, s:b}", "name", name, "running", pid != 0));
			continue;
		}
		r = cli_stop_bridge(c, name);
		const char *what = r > 0 ? "stopped" : r == 0 ? "not running" : "error";
		if (r < 0) {
			code = EXIT_ERROR;
			fprintf(stderr, "devbridge: %s: cannot stop: %s\n", name, strerror(-r));
		} else if (!c->json && !quiet && (r > 0 || argc > 0)) {
			printf("%s: %s\n", name, what);
		}
		json_array_append_new(rows, json_pack("{s:s, s:s}", "name", name, "result", what));
	}
	json_decref(names);
	if (c->json && (code || !quiet)) {
		json_t *doc = json_pack("{s:o}", "bridges", rows);
		return cli_json_result(c, code, doc, "some bridges could not be stopped");
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
	struct cli_started *v;
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

int cli_run_foreground(struct cli *c, struct cli_started *v, size_t n)
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

static int follow(struct cli *c, const char *name, off_t from)
{
	char path[PATH_MAX];
	state_path(path, sizeof path, c->state_dir, name, "log");
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0)
		return cli_error(c, EXIT_ERROR, "inotify: %s", strerror(errno));
	/* Watch the directory: the log may not exist yet. */
	if (inotify_add_watch(in, c->state_dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
		close(in);
		return cli_error(c, EXIT_ERROR, "inotify: %s", strerror(errno));
	}
	char partial[8192];
	size_t plen = 0;
	off_t off = from;
	int fd = -1;
	signal(SIGPIPE, SIG_DFL);
	for (;;) {
		if (fd < 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			struct stat st;
			if (fstat(fd, &st) == 0 && st.st_size < off)
				off = 0; /* truncated or replaced */
		}
		/* Read what the open file has; when the path names another
		 * file (the log was rotated to NAME.log.1), finish this one,
		 * then go on with the new one from its start. */
		for (bool again = fd >= 0; again;) {
			char buf[8192];
			ssize_t r;
			while ((r = pread(fd, buf, sizeof buf, off)) > 0) {
				off += r;
				for (ssize_t i = 0; i < r; i++) {
					if (buf[i] != '\n') {
						if (plen < sizeof partial)
							partial[plen++] = buf[i];
						continue;
					}
					json_t *ev;
					if (audit_parse_line(partial, plen, &ev) == 0) {
						print_event(c, ev);
						json_decref(ev);
					}
					plen = 0;
				}
			}
			struct stat fst, pst;
			again = false;
			if (fstat(fd, &fst) == 0 &&
			    (stat(path, &pst) < 0 || pst.st_ino != fst.st_ino ||
			     pst.st_dev != fst.st_dev)) {
				close(fd);
				fd = open(path, O_RDONLY | O_CLOEXEC);
				off = 0;
				plen = 0;
				again = fd >= 0;
			}
		}
		fflush(stdout);
		char ebuf[4096];
		if (read(in, ebuf, sizeof ebuf) < 0 && errno != EINTR)
			break;
	}
	if (fd >= 0)
		close(fd);
	close(in);
	return EXIT_OK;
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
	const char *name = c->argv[0];
	if (!cfg_name_valid(name))
		return cli_error(c, EXIT_UNKNOWN_BRIDGE, "invalid bridge name '%s'", name);
	json_t *events = NULL;
	r = audit_tail(c->state_dir, name, n, &events);
	if (r == -ENOENT) {
		if (!cfg_find_tunnel(c->cfg, name)) {
			const struct cfg_tunnel **sel;
			size_t k;
			return cli_select_tunnels(c, 1, c->argv, &sel, &k);
		}
		events = json_array();
	} else if (r < 0) {
		return cli_error(c, EXIT_ERROR, "%s/%s.log: %s", c->state_dir, name, strerror(-r));
	}
	if (c->json && !f) {
		cli_print_json(json_pack("{s:s, s:o}", "name", name, "events", events));
		return EXIT_OK;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) print_event(c, ev);
	json_decref(events);
	fflush(stdout);
	if (!f)
		return EXIT_OK;
	char path[PATH_MAX];
	state_path(path, sizeof path, c->state_dir, name, "log");
	struct stat st;
	off_t from = stat(path, &st) == 0 ? st.st_size : 0;
	return follow(c, name, from);
}

/* --- check --- */

int cmd_check(struct cli *c)
{
	if (cli_scan_opts(c, NULL, 0) < 0)
		return EXIT_USAGE;
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* Kubernetes bridges named (by bridge name or service) are checked by
	 * a probe through their forward; the other names are tunnels. */
	json_t *k8s = json_array();
	char **rest = calloc((size_t)c->argc + 1, sizeof *rest);
	int nrest = 0;
	if (!rest) {
		json_decref(k8s);
		return cli_error(c, EXIT_ERROR, "out of memory");
	}
	for (int i = 0; i < c->argc; i++)
		if (k8s_status_rows(c, c->argv[i], k8s) == 0)
			rest[nrest++] = c->argv[i];
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	if (c->argc == 0 || nrest > 0) {
		r = cli_load_config(c);
		if (!r)
			r = cli_select_tunnels(c, nrest, rest, &sel, &nsel);
	}
	free(rest);
	if (r) {
		json_decref(k8s);
		return r;
	}
	int code = EXIT_OK;
	json_t *rows = json_array();
	if (!c->json)
		printf("%-24s %-8s %s\n", "NAME", "HEALTH", "DETAIL");
	for (size_t i = 0; i < nsel; i++) {
		const struct cfg_tunnel *t = sel[i];
		char detail[512];
		const char *health;
		if (t->health.kind == HEALTH_NONE) {
			json_t *row = cli_status_row(c, t->name, t);
			const char *st = row_str(row, "state");
			bool up = !strcmp(st, "connected") || !strcmp(st, "degraded");
			health = up ? "ok" : "failing";
			snprintf(detail, sizeof detail, "no health check configured; bridge is %s",
				 st);
			json_decref(row);
		} else {
			health = health_run(&t->health, detail, sizeof detail) ? "ok" : "failing";
		}
		if (strcmp(health, "ok") != 0)
			code = EXIT_HEALTH_FAILING;
		/* Let a live supervisor update its own view now. */
		pid_t pid = state_probe(c->state_dir, t->name);
		if (pid > 0)
			kill(pid, SIGUSR1);
		if (!c->json)
			printf("%-24s %-8s %s\n", t->name, health, detail);
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name", t->name, "health",
						      health, "detail", detail));
	}
	free(sel);
	size_t i;
	json_t *row;
	json_array_foreach(k8s, i, row)
	{
		char detail[512];
		const char *name = row_str(row, "name");
		const char *health =
		    k8s_check_row(c, row, detail, sizeof detail) ? "ok" : "failing";
		if (strcmp(health, "ok") != 0)
			code = EXIT_HEALTH_FAILING;
		if (!c->json)
			printf("%-24s %-8s %s\n", name, health, detail);
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name", name, "health",
						      health, "detail", detail));
	}
	json_decref(k8s);
	if (c->json) {
		json_t *doc = json_pack("{s:o}", "checks", rows);
		return cli_json_result(c, code, doc, "a health check is failing");
	}
	json_decref(rows);
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
	const struct cfg_tunnel *t = cfg_find_tunnel(c->cfg, c->argv[0]);
	if (!t)
		return cli_error(c, EXIT_UNKNOWN_BRIDGE, "no bridge named '%s'", c->argv[0]);
	return ssh_supervise(c->cfg, t, c->state_dir, ready);
}
