/* bridge.c - what every kind of bridge shares: its status row, its
 * supervisor process (start, first outcome, stop), its audit log, its
 * health check; and the operations on them: status, down, logs, check.
 * See app.h. */
#include "app/app.h"
#include "core/errcode.h"
#include "core/audit.h"
#include "app/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/supervisor.h"
#include "core/util.h"
#include "k8s/session.h"

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
#include <unistd.h>

#define STOP_WAIT_MS 8000 /* supervisor's own 5 s grace for ssh, plus slack */

bool app_no_config(const struct app *a)
{
	return strcmp(a->config_path, APP_NO_CONFIG) == 0;
}

/* --- status rows --- */

static json_t *jstr_or(json_t *o, const char *key, const char *dflt)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_copy(v) : json_string(dflt);
}

/* The status of one bridge as `status --json` shows it.  Liveness comes
 * from the pid file's lock, never from the state file alone. */
json_t *app_status_row(const struct app *a, const char *name, const struct cfg_tunnel *t)
{
	json_t *st = NULL;
	(void)state_read(a->state_dir, name, &st);
	pid_t live = state_probe(a->state_dir, name);
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
		(void)state_read_note(a->state_dir, name, note, sizeof note);
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
	/* A bridge of the OpsCatalog: where it is described. */
	if (t && t->catalog_file)
		json_object_set_new(
		    row, "catalog",
		    json_pack("{s:s, s:s}", "domain", t->catalog_domain, "file", t->catalog_file));
	/* What other worlds' supervisors add (k8s: the service and ports). */
	static const char *const extra[] = {"service",	    "namespace",	 "remote_port",
					    "local_port",   "requested_port",	 "kubectl_pid",
					    "pod",	    "target_port",	 "origin",
					    "context",	    "kubeconfig",	 "started_at",
					    "connected_at", "session",		 "agent_pod",
					    "ports",	    "original_selector", "mode"};
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
static void extra_names(const struct app *a, json_t *names)
{
	DIR *d = opendir(a->state_dir);
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
		if (!cfg_name_valid(name) || cfg_find_tunnel(a->cfg, name) ||
		    strcmp(name, "host-daemon") == 0)
			continue;
		json_array_append_new(names, json_string(name));
	}
	closedir(d);
}

int app_select_tunnels(const struct app *a, int n, char **names, const struct cfg_tunnel ***ret,
		       size_t *ret_n, struct err *e)
{
	size_t cap = n > 0 ? (size_t)n : a->cfg->n_tunnels;
	const struct cfg_tunnel **v = calloc(cap + 1, sizeof *v);
	if (!v)
		return err_set(e, EXIT_ERROR, "out of memory");
	size_t k = 0;
	if (n == 0) {
		for (size_t i = 0; i < a->cfg->n_tunnels; i++)
			v[k++] = &a->cfg->tunnels[i];
	}
	for (int i = 0; i < n; i++) {
		const struct cfg_tunnel *t = cfg_find_tunnel(a->cfg, names[i]);
		if (t) {
			bool dup = false;
			for (size_t j = 0; j < k; j++)
				dup |= v[j] == t;
			if (!dup)
				v[k++] = t;
			continue;
		}
		const char *best = NULL;
		int bestd = 3;
		for (size_t j = 0; j < a->cfg->n_tunnels; j++) {
			int d = edit_distance(names[i], a->cfg->tunnels[j].name, 2);
			if (d < bestd) {
				bestd = d;
				best = a->cfg->tunnels[j].name;
			}
		}
		free(v);
		if (best)
			return err_set(e, EXIT_UNKNOWN_BRIDGE,
				       "no bridge named '%s' in %s (did you mean '%s'?)", names[i],
				       a->config_path, best);
		return err_set(e, EXIT_UNKNOWN_BRIDGE, "no bridge named '%s' in %s", names[i],
			       a->config_path);
	}
	*ret = v;
	*ret_n = k;
	return 0;
}

/* The unknown-name error app_select_tunnels gives for `name`. */
static int unknown_name(const struct app *a, char *name, struct err *e)
{
	const struct cfg_tunnel **sel = NULL;
	size_t n;
	int r = app_select_tunnels(a, 1, &name, &sel, &n, e);
	free(sel);
	return r ? r : err_set(e, EXIT_UNKNOWN_BRIDGE, "no bridge named '%s'", name);
}

int app_status(const struct app *a, int n, char **names, json_t **ret_rows, json_t **ret_session,
	       struct err *e)
{
	/* A supervisor killed without cleaning up: its variables go now. */
	(void)k8s_session_prune(a->state_dir);
	json_t *rows = json_array();
	for (int i = 0; i < n; i++) {
		const struct cfg_tunnel *t = cfg_find_tunnel(a->cfg, names[i]);
		if (t) {
			json_array_append_new(rows, app_status_row(a, t->name, t));
			continue;
		}
		/* Kubernetes bridges by bridge name or by service. */
		if (app_k8s_status_rows(a, names[i], rows) > 0)
			continue;
		/* An intercept by its name (intercept-SVC): its state file. */
		if (app_is_intercept(a, names[i])) {
			json_array_append_new(rows, app_status_row(a, names[i], NULL));
			continue;
		}
		json_decref(rows);
		return unknown_name(a, names[i], e);
	}
	if (n == 0) {
		for (size_t i = 0; i < a->cfg->n_tunnels; i++)
			json_array_append_new(
			    rows, app_status_row(a, a->cfg->tunnels[i].name, &a->cfg->tunnels[i]));
		app_container_rows(a, rows);
		json_t *extra = json_array();
		extra_names(a, extra);
		size_t i;
		json_t *v;
		json_array_foreach(extra, i, v)
		{
			json_t *row = app_status_row(a, json_string_value(v), NULL);
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
	*ret_rows = rows;
	*ret_session = app_k8s_session(a);
	return 0;
}

/* --- supervisor processes --- */

static int self_exe(char *buf, size_t n)
{
	ssize_t r = readlink("/proc/self/exe", buf, n - 1);
	if (r < 0)
		return -errno;
	buf[r] = '\0';
	return 0;
}

int app_spawn_supervisor(const struct app *a, struct app_started *s, char **argv, bool foreground)
{
	return app_spawn_supervisor_stdin(a, s, argv, foreground, -1);
}

int app_spawn_supervisor_stdin(const struct app *a, struct app_started *s, char **argv,
			       bool foreground, int stdin_fd)
{
	char exe[PATH_MAX], out[PATH_MAX];
	int r = self_exe(exe, sizeof exe);
	if (r < 0)
		return r;
	if ((r = state_path(out, sizeof out, a->state_dir, s->name, "out")) < 0)
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
			       .stdin_fd = stdin_fd,
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

static void parse_ready(struct app_started *s)
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
void app_wait_ready(struct app_started *v, size_t n, int timeout_s)
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
			struct app_started *s = &v[idx[j]];
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

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Stop NAME's supervisor; 1 if it was running, 0 if not, <0 on error. */
int app_stop_bridge(const struct app *a, const char *name)
{
	return app_stop_bridge_wait(a, name, STOP_WAIT_MS);
}

int app_stop_bridge_wait(const struct app *a, const char *name, int wait_ms)
{
	pid_t pid = state_probe(a->state_dir, name);
	if (!pid)
		return 0;
	/* Pin the process, then confirm it still holds the lock: a pidfd cannot
	 * be redirected to a reused pid. */
	int pfd = pidfd_open_(pid);
	if (pfd < 0)
		return errno == ESRCH ? 0 : -errno;
	if (state_probe(a->state_dir, name) != pid) {
		close(pfd);
		return 0;
	}
	if (syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH) {
		int e = -errno;
		close(pfd);
		return e;
	}
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	uint64_t deadline = now_mono_ms() + (uint64_t)wait_ms;
	while (now_mono_ms() < deadline) {
		if (poll(&p, 1, (int)(deadline - now_mono_ms())) > 0)
			break;
	}
	if (!(p.revents & POLLIN)) {
		log_warn("%s: supervisor pid %ld did not stop in %d s; killing it", name, (long)pid,
			 wait_ms / 1000);
		syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		poll(&p, 1, 2000);
	}
	close(pfd);
	return 1;
}

int app_down(const struct app *a, int n, char **names, json_t **ret_rows, struct err *e)
{
	json_t *list = json_array();
	if (n == 0) {
		for (size_t i = 0; i < a->cfg->n_tunnels; i++)
			json_array_append_new(list, json_string(a->cfg->tunnels[i].name));
		extra_names(a, list);
	}
	for (int i = 0; i < n; i++) {
		if (!cfg_find_tunnel(a->cfg, names[i]) && !state_probe(a->state_dir, names[i]) &&
		    !app_is_intercept(a, names[i])) {
			json_decref(list);
			return unknown_name(a, names[i], e);
		}
		json_array_append_new(list, json_string(names[i]));
	}
	int code = EXIT_OK;
	json_t *rows = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *name = json_string_value(v);
		if (a->dry_run) {
			pid_t pid = state_probe(a->state_dir, name);
			json_array_append_new(rows,
					      json_pack("{s:s, s:b, s:I}", "name", name, "running",
							pid != 0, "pid", (json_int_t)pid));
			continue;
		}
		if (app_is_intercept(a, name)) {
			/* its process restores and cleans up; gone, we do */
			struct err e1 = {0};
			int s = app_intercept_stop(a, name, &e1);
			json_t *row = json_pack("{s:s, s:s}", "name", name, "result",
						s > 0	 ? "stopped"
						: s == 0 ? "cleaned up"
							 : "error");
			if (s < 0) {
				code = err_set(e, e1.code ? e1.code : EXIT_ERROR, "%s", e1.message);
				json_object_set_new(row, "message", json_string(e1.message));
			}
			json_array_append_new(rows, row);
			continue;
		}
		int r = app_stop_bridge(a, name);
		const char *what = r > 0 ? "stopped" : r == 0 ? "not running" : "error";
		json_t *row = json_pack("{s:s, s:s}", "name", name, "result", what);
		if (r < 0) {
			code = err_set(e, EXIT_ERROR, "%s: cannot stop: %s", name, strerror(-r));
			json_object_set_new(row, "message", json_string(e->message));
		}
		json_array_append_new(rows, row);
	}
	json_decref(list);
	*ret_rows = rows;
	return code;
}

/* --- logs --- */

int app_logs(const struct app *a, const char *name, long n, json_t **ret_events, struct err *e)
{
	if (!cfg_name_valid(name))
		return err_set(e, EXIT_UNKNOWN_BRIDGE, "invalid bridge name '%s'", name);
	json_t *events = NULL;
	int r = audit_tail(a->state_dir, name, n, &events);
	if (r == -ENOENT) {
		if (!cfg_find_tunnel(a->cfg, name))
			return unknown_name(a, (char *)name, e);
		events = json_array();
	} else if (r < 0) {
		return err_set(e, EXIT_ERROR, "%s/%s.log: %s", a->state_dir, name, strerror(-r));
	}
	*ret_events = events;
	return 0;
}

off_t app_logs_size(const struct app *a, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	if (state_path(path, sizeof path, a->state_dir, name, "log") < 0 || stat(path, &st) < 0)
		return 0;
	return st.st_size;
}

/* Follow NAME's audit log; see app.h. */
int app_logs_follow(const struct app *a, const char *name, off_t from,
		    bool (*cb)(json_t *ev, void *data), void *data, struct err *e)
{
	char path[PATH_MAX];
	state_path(path, sizeof path, a->state_dir, name, "log");
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0)
		return err_set(e, EXIT_ERROR, "inotify: %s", strerror(errno));
	/* Watch the directory: the log may not exist yet. */
	if (inotify_add_watch(in, a->state_dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
		close(in);
		return err_set(e, EXIT_ERROR, "inotify: %s", strerror(errno));
	}
	char partial[8192];
	size_t plen = 0;
	off_t off = from;
	int fd = -1;
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
						bool more = cb(ev, data);
						json_decref(ev);
						if (!more)
							goto out;
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
		if (!cb(NULL, data)) /* caught up: the caller may flush */
			break;
		char ebuf[4096];
		if (read(in, ebuf, sizeof ebuf) < 0 && errno != EINTR)
			break;
	}
out:
	if (fd >= 0)
		close(fd);
	close(in);
	return EXIT_OK;
}

/* --- check --- */

int app_check(const struct app *a, int n, char **names, json_t **ret_rows, struct err *e)
{
	/* Kubernetes bridges named (by bridge name or service) are checked by
	 * a probe through their forward; the other names are tunnels. */
	json_t *k8s = json_array();
	char **rest = calloc((size_t)n + 1, sizeof *rest);
	int nrest = 0;
	if (!rest) {
		json_decref(k8s);
		return err_set(e, EXIT_ERROR, "out of memory");
	}
	for (int i = 0; i < n; i++)
		if (app_k8s_status_rows(a, names[i], k8s) == 0)
			rest[nrest++] = names[i];
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	int r = 0;
	if (n == 0 || nrest > 0)
		r = app_select_tunnels(a, nrest, rest, &sel, &nsel, e);
	free(rest);
	if (r) {
		json_decref(k8s);
		return r;
	}
	int code = EXIT_OK;
	json_t *rows = json_array();
	for (size_t i = 0; i < nsel; i++) {
		const struct cfg_tunnel *t = sel[i];
		char detail[512];
		const char *health;
		if (t->health.kind == HEALTH_NONE) {
			json_t *row = app_status_row(a, t->name, t);
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
		pid_t pid = state_probe(a->state_dir, t->name);
		if (pid > 0)
			kill(pid, SIGUSR1);
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
		    app_k8s_check_row(a, row, detail, sizeof detail) ? "ok" : "failing";
		if (strcmp(health, "ok") != 0)
			code = EXIT_HEALTH_FAILING;
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "name", name, "health",
						      health, "detail", detail));
	}
	json_decref(k8s);
	*ret_rows = rows;
	if (code)
		err_set(e, code, "a health check is failing");
	return code;
}
