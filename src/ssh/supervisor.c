/* supervisor.c - see supervisor.h.
 *
 * Everything happens on one event loop: ssh's stderr (read line by line to
 * learn when the forward is up and why it failed), SIGCHLD through a
 * signalfd (no handler races: the signal is blocked before the first
 * fork), and timers for backoff, the 5 s SIGTERM->SIGKILL escalation, the
 * stable period and health checks. */
#include "ssh/supervisor.h"
#include "cli/exitcodes.h"
#include "core/audit.h"
#include "core/backoff.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "ssh/ssh_argv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_GRACE_MS	  5000
#define SSH_LINE_MAX	  1024
#define HEALTH_DETAIL_MAX 512

enum sup_state {
	ST_STOPPED = 0,
	ST_STARTING,
	ST_CONNECTED,
	ST_DEGRADED,
	ST_RECONNECTING,
	ST_FAILED,
};

static const char *const state_names[] = {"stopped",  "starting",     "connected",
					  "degraded", "reconnecting", "failed"};

enum health_state { H_UNKNOWN = 0, H_OK, H_FAILING };
static const char *const health_names[] = {"unknown", "ok", "failing"};

struct sup {
	const struct cfg_tunnel *t;
	const char *dir;
	const char *actor, *actor_class;
	struct loop *loop;
	int ready_fd;
	char **argv;
	char local[300], remote[600];

	enum sup_state state;
	struct timespec since;
	char last_event[48];
	char detail[SSH_LINE_MAX];
	enum ssh_reason reason;
	unsigned reconnects; /* retries scheduled, ever */
	unsigned attempts;   /* failed attempts since the last stable connection */
	struct backoff bo;
	double next_delay;
	bool stopping, hup, usr1;
	int exit_code;

	pid_t ssh_pid;
	int ssh_err;
	char line[SSH_LINE_MAX];
	size_t line_len;
	bool line_long;
	char last_msg[SSH_LINE_MAX];
	enum ssh_reason run_reason; /* what this ssh run said */

	struct loop_timer *retry_timer, *kill_timer, *stable_timer, *health_timer;

	enum health_state health;
	pid_t health_pid;
	int health_fd;
	struct loop_timer *health_kill_timer;
	char health_detail[HEALTH_DETAIL_MAX];
};

static void attempt(struct sup *s);
static void on_stable(struct loop *l, void *data);

/* --- state file and audit --- */

static void write_state(struct sup *s)
{
	char since[40];
	fmt_iso8601(since, sizeof since, &s->since);
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s,"
	    " s:s, s:I}",
	    "name", s->t->name, "kind", "ssh", "state", state_names[s->state], "pid",
	    (json_int_t)getpid(), "since", since, "local", s->local, "remote", s->remote,
	    "reconnects", (json_int_t)s->reconnects, "health", health_names[s->health],
	    "last_event", s->last_event, "reason", s->reason ? ssh_reason_name(s->reason) : "",
	    "detail", s->detail, "direction", s->t->direction == TUNNEL_LOCAL ? "local" : "reverse",
	    "actor", s->actor, "attempt", (json_int_t)s->attempts);
	if (!o)
		return;
	json_object_set_new(o, "ssh_pid", s->ssh_pid > 0 ? json_integer(s->ssh_pid) : json_null());
	if (s->state == ST_RECONNECTING && s->retry_timer)
		json_object_set_new(o, "next_retry_seconds", json_real(s->next_delay));
	int r = state_write(s->dir, s->t->name, o);
	if (r < 0)
		log_error("%s: cannot write state: %s", s->t->name, strerror(-r));
	json_decref(o);
}

static void event(struct sup *s, const char *ev, const char *detail)
{
	snprintf(s->last_event, sizeof s->last_event, "%s", ev);
	int r = audit_append(s->dir, s->t->name, ev, s->actor, s->actor_class, detail);
	if (r < 0)
		log_error("%s: cannot append to audit log: %s", s->t->name, strerror(-r));
	log_info("%s: %s%s%s", s->t->name, ev, detail && *detail ? ": " : "", detail ? detail : "");
}

/* Move to `st`, record `ev` with `detail`, rewrite the state file. */
static void transition(struct sup *s, enum sup_state st, const char *ev, const char *detail)
{
	if (st != s->state)
		clock_gettime(CLOCK_REALTIME, &s->since);
	s->state = st;
	snprintf(s->detail, sizeof s->detail, "%s", detail ? detail : "");
	event(s, ev, detail);
	write_state(s);
}

static void notify_ready(struct sup *s, const char *what, int code, const char *text)
{
	if (s->ready_fd < 0)
		return;
	char buf[SSH_LINE_MAX + 64];
	int n = snprintf(buf, sizeof buf, "%s %d %s\n", what, code, text && *text ? text : "-");
	if (n > (int)sizeof buf - 1)
		n = (int)sizeof buf - 1;
	(void)write_all(s->ready_fd, buf, (size_t)n);
	close(s->ready_fd);
	s->ready_fd = -1;
}

/* --- health checks, each in a forked child --- */

struct health_job {
	const struct cfg_health *h;
	int fd;
};

static int health_child(void *data)
{
	struct health_job *j = data;
	char detail[HEALTH_DETAIL_MAX];
	bool ok = health_run(j->h, detail, sizeof detail);
	(void)write_all(j->fd, detail, strlen(detail));
	return ok ? 0 : 1;
}

static void on_health_kill(struct loop *l, void *data)
{
	struct sup *s = data;
	s->health_kill_timer = NULL;
	if (s->health_pid > 0)
		kill(s->health_pid, SIGKILL);
}

static void health_start(struct sup *s)
{
	if (s->health_pid > 0 || s->t->health.kind == HEALTH_NONE)
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	struct health_job j = {.h = &s->t->health, .fd = p[1]};
	pid_t pid;
	int r = spawn_fork(health_child, &j, p[1], &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		log_error("%s: cannot start health check: %s", s->t->name, strerror(-r));
		return;
	}
	fd_set_nonblock(p[0], true);
	s->health_pid = pid;
	s->health_fd = p[0];
	loop_timer_add(s->loop, (uint64_t)s->t->health.timeout_s * 1000 + 2000, on_health_kill, s,
		       &s->health_kill_timer);
}

static void on_health_timer(struct loop *l, void *data);

static void health_schedule(struct sup *s)
{
	loop_timer_cancel(s->loop, s->health_timer);
	s->health_timer = NULL;
	if (s->t->health.kind == HEALTH_NONE)
		return;
	loop_timer_add(s->loop, (uint64_t)s->t->health.interval_s * 1000, on_health_timer, s,
		       &s->health_timer);
}

static void on_health_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	s->health_timer = NULL;
	if (s->state == ST_CONNECTED || s->state == ST_DEGRADED)
		health_start(s);
	health_schedule(s);
}

static void health_done(struct sup *s, int status)
{
	char detail[HEALTH_DETAIL_MAX] = "";
	ssize_t n = read(s->health_fd, detail, sizeof detail - 1);
	detail[n > 0 ? n : 0] = '\0';
	close(s->health_fd);
	s->health_fd = -1;
	s->health_pid = 0;
	loop_timer_cancel(s->loop, s->health_kill_timer);
	s->health_kill_timer = NULL;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok && !*detail)
		snprintf(detail, sizeof detail, "health check timed out");
	snprintf(s->health_detail, sizeof s->health_detail, "%s", detail);
	if (s->stopping || (s->state != ST_CONNECTED && s->state != ST_DEGRADED))
		return;
	enum health_state was = s->health;
	s->health = ok ? H_OK : H_FAILING;
	if (!ok && s->state == ST_CONNECTED)
		transition(s, ST_DEGRADED, "health_check_failed", detail);
	else if (ok && s->state == ST_DEGRADED)
		transition(s, ST_CONNECTED, "health_check_recovered", detail);
	else if (was != s->health)
		write_state(s);
}

/* --- the ssh child --- */

static void handle_line(struct sup *s, const char *line, size_t len)
{
	enum ssh_reason reason = SSH_R_NONE;
	switch (ssh_classify_line(line, len, s->t->direction == TUNNEL_LOCAL, &reason)) {
	case SSH_LINE_NOISE:
		if (log_get_level() >= LOG_DEBUG)
			log_debug("%s: ssh: %.*s", s->t->name, (int)len, line);
		return;
	case SSH_LINE_READY:
		if (s->state == ST_STARTING || s->state == ST_RECONNECTING) {
			char d[128];
			snprintf(d, sizeof d, "ssh pid %ld", (long)s->ssh_pid);
			s->reason = SSH_R_NONE;
			s->health = H_UNKNOWN;
			transition(s, ST_CONNECTED, "bridge_connected", d);
			notify_ready(s, SUP_READY_CONNECTED, 0, NULL);
			loop_timer_cancel(s->loop, s->stable_timer);
			s->stable_timer = NULL;
			loop_timer_add(s->loop, (uint64_t)(s->t->stable_s * 1000), on_stable, s,
				       &s->stable_timer);
			health_schedule(s);
			/* A first check right away, so degraded shows without
			 * waiting a whole interval. */
			health_start(s);
		}
		return;
	case SSH_LINE_REASON:
		/* The first explanation wins: later lines are consequences. */
		if (s->run_reason == SSH_R_NONE)
			s->run_reason = reason;
		/* fall through */
	case SSH_LINE_MESSAGE:
		snprintf(s->last_msg, sizeof s->last_msg, "%.*s", (int)len, line);
		log_info("%s: ssh: %s", s->t->name, s->last_msg);
		return;
	}
}

/* Read what ssh wrote; split into lines; over-long lines are cut. */
static void drain_stderr(struct sup *s)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(s->ssh_err, buf, sizeof buf);
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n' || c == '\r') {
				if (s->line_len)
					handle_line(s, s->line, s->line_len);
				s->line_len = 0;
				s->line_long = false;
				continue;
			}
			if (s->line_len < sizeof s->line - 1)
				s->line[s->line_len++] = c;
			else
				s->line_long = true;
		}
	}
}

static void on_ssh_stderr(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	drain_stderr(s);
	if (events & LOOP_ERROR) {
		/* ssh closed stderr (it exited); SIGCHLD does the rest. */
		loop_del_fd(l, fd);
	}
}

static void on_kill_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	s->kill_timer = NULL;
	if (s->ssh_pid > 0) {
		log_warn("%s: ssh pid %ld ignored SIGTERM for %d s; sending SIGKILL", s->t->name,
			 (long)s->ssh_pid, KILL_GRACE_MS / 1000);
		kill(s->ssh_pid, SIGKILL);
	}
}

static void stop_ssh(struct sup *s)
{
	if (s->ssh_pid <= 0)
		return;
	kill(s->ssh_pid, SIGTERM);
	if (!s->kill_timer)
		loop_timer_add(s->loop, KILL_GRACE_MS, on_kill_timer, s, &s->kill_timer);
}

static void finish(struct sup *s)
{
	loop_timer_cancel(s->loop, s->retry_timer);
	s->retry_timer = NULL;
	if (s->health_pid > 0)
		kill(s->health_pid, SIGKILL);
	if (s->state != ST_FAILED)
		transition(s, ST_STOPPED, "bridge_stopped", "supervisor stopped");
	notify_ready(s, SUP_READY_FAILED, EXIT_TUNNEL_FAILED, "stopped before connecting");
	loop_stop(s->loop);
}

static void on_retry(struct loop *l, void *data)
{
	struct sup *s = data;
	s->retry_timer = NULL;
	attempt(s);
}

/* ssh is gone: decide between reconnecting and failed. */
static void ssh_exited(struct sup *s, int status)
{
	if (s->ssh_err >= 0) {
		drain_stderr(s);
		if (s->line_len)
			handle_line(s, s->line, s->line_len);
		s->line_len = 0;
		loop_del_fd(s->loop, s->ssh_err);
		close(s->ssh_err);
		s->ssh_err = -1;
	}
	pid_t pid = s->ssh_pid;
	s->ssh_pid = 0;
	loop_timer_cancel(s->loop, s->kill_timer);
	s->kill_timer = NULL;
	loop_timer_cancel(s->loop, s->stable_timer);
	s->stable_timer = NULL;
	loop_timer_cancel(s->loop, s->health_timer);
	s->health_timer = NULL;
	if (s->stopping) {
		finish(s);
		return;
	}

	char why[SSH_LINE_MAX + 128];
	enum ssh_reason r = s->run_reason ? s->run_reason : SSH_R_OTHER;
	if (s->hup)
		snprintf(why, sizeof why, "SIGHUP: reconnecting now");
	else if (s->last_msg[0])
		snprintf(why, sizeof why, "%s: %s", ssh_reason_text(r), s->last_msg);
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "ssh (pid %ld) killed by signal %d", (long)pid,
			 WTERMSIG(status));
	else
		snprintf(why, sizeof why, "ssh (pid %ld) exited with status %d", (long)pid,
			 WEXITSTATUS(status));
	s->reason = s->hup ? SSH_R_NONE : r;

	bool was_up = s->state == ST_CONNECTED || s->state == ST_DEGRADED;
	if (was_up)
		transition(s, s->state, "bridge_disconnected", why);
	s->health = H_UNKNOWN;

	if (s->hup) {
		s->hup = false;
		s->reconnects++;
		s->next_delay = 0;
		transition(s, ST_RECONNECTING, "bridge_reconnecting", why);
		attempt(s);
		return;
	}

	s->attempts++;
	if (s->t->max_attempts > 0 && s->attempts >= (unsigned)s->t->max_attempts) {
		char d[sizeof why + 64];
		snprintf(d, sizeof d, "gave up after %u attempts: %s", s->attempts, why);
		s->exit_code = ssh_reason_exit_code(r);
		transition(s, ST_FAILED, "bridge_failed", d);
		notify_ready(s, SUP_READY_FAILED, s->exit_code, d);
		finish(s);
		return;
	}
	s->next_delay = backoff_next(&s->bo);
	s->reconnects++;
	char d[sizeof why + 96];
	snprintf(d, sizeof d, "%s; attempt %u, retry in %.1fs", why, s->attempts + 1,
		 s->next_delay);
	loop_timer_add(s->loop, (uint64_t)(s->next_delay * 1000), on_retry, s, &s->retry_timer);
	transition(s, ST_RECONNECTING, "bridge_reconnecting", d);
	notify_ready(s, SUP_READY_RETRYING, ssh_reason_exit_code(r), why);
}

static void attempt(struct sup *s)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("%s: pipe: %s", s->t->name, strerror(errno));
		s->ssh_pid = 0;
		ssh_exited(s, 1 << 8);
		return;
	}
	s->run_reason = SSH_R_NONE;
	s->last_msg[0] = '\0';
	s->line_len = 0;
	struct spawn_opts o = {.argv = s->argv,
			       .stdin_fd = -1,
			       .stdout_fd = -1,
			       .stderr_fd = p[1],
			       .die_with_parent = true};
	pid_t pid;
	int r = spawn_process(&o, &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		s->exit_code = r == -ENOENT ? EXIT_SSH_NOT_FOUND : EXIT_TUNNEL_FAILED;
		char d[256];
		snprintf(d, sizeof d, "cannot run ssh: %s%s", strerror(-r),
			 r == -ENOENT ? " (install openssh-client or fix PATH)" : "");
		s->reason = SSH_R_NOT_FOUND;
		transition(s, ST_FAILED, "bridge_failed", d);
		notify_ready(s, SUP_READY_FAILED, s->exit_code, d);
		finish(s);
		return;
	}
	s->ssh_pid = pid;
	s->ssh_err = p[0];
	fd_set_nonblock(p[0], true);
	loop_add_fd(s->loop, p[0], LOOP_READ, on_ssh_stderr, s);
	write_state(s);
}

static void on_stable(struct loop *l, void *data)
{
	struct sup *s = data;
	s->stable_timer = NULL;
	backoff_reset(&s->bo);
	s->attempts = 0;
}

/* --- signals --- */

static void reap(struct sup *s)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		if (pid == s->ssh_pid)
			ssh_exited(s, status);
		else if (pid == s->health_pid)
			health_done(s, status);
	}
}

static void on_signal(struct loop *l, int signo, void *data)
{
	struct sup *s = data;
	switch (signo) {
	case SIGCHLD:
		reap(s);
		break;
	case SIGTERM:
	case SIGINT:
		if (s->stopping)
			break;
		s->stopping = true;
		log_info("%s: %s received, stopping", s->t->name, strsignal(signo));
		if (s->ssh_pid > 0)
			stop_ssh(s);
		else
			finish(s);
		break;
	case SIGHUP:
		if (s->stopping)
			break;
		if (s->ssh_pid > 0) {
			s->hup = true;
			stop_ssh(s);
		} else if (s->retry_timer) {
			loop_timer_cancel(l, s->retry_timer);
			s->retry_timer = NULL;
			s->next_delay = 0;
			transition(s, ST_RECONNECTING, "bridge_reconnecting",
				   "SIGHUP: retrying now");
			attempt(s);
		}
		break;
	case SIGUSR1:
		if (s->state == ST_CONNECTED || s->state == ST_DEGRADED)
			health_start(s);
		break;
	}
}

int ssh_supervise(const struct cfg *cfg, const struct cfg_tunnel *t, const char *state_dir,
		  int ready_fd)
{
	struct sup s = {.t = t,
			.dir = state_dir,
			.ready_fd = ready_fd,
			.ssh_err = -1,
			.health_fd = -1,
			.exit_code = EXIT_OK};
	const struct cfg_actor *a = cfg_find_actor(cfg, t->actor);
	s.actor = t->actor;
	s.actor_class = a ? (a->cls == ACTOR_HUMAN ? "human" : "automation") : "automation";
	if (t->direction == TUNNEL_LOCAL) {
		snprintf(s.local, sizeof s.local, "127.0.0.1:%d", t->local_port);
		snprintf(s.remote, sizeof s.remote, "%s:%d@%s", t->remote_host, t->remote_port,
			 t->host);
	} else {
		snprintf(s.local, sizeof s.local, "%s:%d", t->remote_host, t->local_port);
		snprintf(s.remote, sizeof s.remote, "%s:%d", t->host, t->remote_port);
	}

	pid_t holder = 0;
	int lock_fd = state_lock(state_dir, t->name, &holder);
	if (lock_fd == -EBUSY) {
		char d[32];
		snprintf(d, sizeof d, "%ld", (long)holder);
		notify_ready(&s, SUP_READY_BUSY, 0, d);
		return EXIT_OK;
	}
	if (lock_fd < 0) {
		log_error("%s: cannot lock %s/%s.pid: %s", t->name, state_dir, t->name,
			  strerror(-lock_fd));
		notify_ready(&s, SUP_READY_FAILED, EXIT_ERROR, "cannot lock the pid file");
		return EXIT_ERROR;
	}

	int r = ssh_argv_build(t, &s.argv);
	if (r == 0)
		r = loop_new(&s.loop);
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, 0};
	if (r == 0)
		r = loop_watch_signals(s.loop, sigs, on_signal, &s);
	if (r < 0) {
		log_error("%s: %s", t->name, strerror(-r));
		notify_ready(&s, SUP_READY_FAILED, EXIT_ERROR, strerror(-r));
		ssh_argv_free(s.argv);
		loop_free(s.loop);
		close(lock_fd);
		return EXIT_ERROR;
	}
	/* A pipe reader (`up`) that went away must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	backoff_init(&s.bo, t->backoff_initial, t->backoff_max);

	char *cmd = ssh_argv_format(s.argv);
	char d[4096];
	snprintf(d, sizeof d, "supervisor pid %ld: %s", (long)getpid(), cmd ? cmd : "ssh");
	free(cmd);
	clock_gettime(CLOCK_REALTIME, &s.since);
	transition(&s, ST_STARTING, "bridge_started", d);
	attempt(&s);
	r = loop_run(s.loop);
	if (r < 0)
		log_error("%s: event loop: %s", t->name, strerror(-r));

	/* Never leave a child behind, whatever ended the loop. */
	if (s.ssh_pid > 0) {
		kill(s.ssh_pid, SIGKILL);
		waitpid(s.ssh_pid, NULL, 0);
	}
	if (s.health_pid > 0) {
		kill(s.health_pid, SIGKILL);
		waitpid(s.health_pid, NULL, 0);
	}
	if (s.ssh_err >= 0)
		close(s.ssh_err);
	if (s.health_fd >= 0)
		close(s.health_fd);
	loop_timer_cancel(s.loop, s.retry_timer);
	loop_timer_cancel(s.loop, s.kill_timer);
	loop_timer_cancel(s.loop, s.stable_timer);
	loop_timer_cancel(s.loop, s.health_timer);
	loop_timer_cancel(s.loop, s.health_kill_timer);
	loop_free(s.loop);
	ssh_argv_free(s.argv);
	/* The pid file stays: its lock, not its presence, is the liveness. */
	close(lock_fd);
	return s.exit_code;
}
