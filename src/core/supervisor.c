/* supervisor.c - see supervisor.h.
 *
 * Everything happens on one event loop: the child's stderr (and stdout when
 * the driver asks), read line by line to learn when the forward is up and
 * why it failed; SIGCHLD through a signalfd (no handler races: the signal
 * is blocked before the first fork); timers for backoff, the 5 s
 * SIGTERM->SIGKILL escalation, the stable period, health checks and the
 * readiness probe. */
#include "core/supervisor.h"
#include "cli/exitcodes.h"
#include "core/audit.h"
#include "core/backoff.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_GRACE_MS	  5000
#define LINE_MAX_	  1024
#define HEALTH_DETAIL_MAX 512
/* A probe connection that kubectl (or the service behind it) has not
 * failed within this long counts as through.  A refused target is
 * reported in a few tens of milliseconds on loopback. */
#define PROBE_WINDOW_MS 300

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

/* A line assembler for one of the child's output streams. */
struct stream {
	int fd;
	bool is_stdout;
	char line[LINE_MAX_];
	size_t len;
};

struct sup {
	struct sup_opts o;
	const struct sup_driver *drv;
	struct loop *loop;
	int ready_fd;
	char **argv;

	enum sup_state state;
	struct timespec since;
	char last_event[48];
	char detail[LINE_MAX_];
	int reason;
	unsigned reconnects; /* retries scheduled, ever */
	unsigned attempts;   /* failed attempts since the last stable connection */
	struct backoff bo;
	double next_delay;
	bool stopping, hup;
	bool ever_connected;
	int exit_code;

	pid_t child;
	struct stream out, err;
	char last_msg[LINE_MAX_];
	int run_reason; /* what this run said */

	struct loop_timer *retry_timer, *kill_timer, *stable_timer, *health_timer;

	/* readiness probe */
	int probe_fd;
	bool probing;
	bool reprobe; /* the probe running is a periodic one */
	struct loop_timer *probe_timer, *reprobe_timer;

	enum health_state health;
	pid_t health_pid;
	int health_fd;
	struct loop_timer *health_kill_timer;

	/* A driver that watches (sup_hold, sup_renew). */
	bool held; /* waiting for the driver: no child, no retry timer */
	int hold_reason;
	char hold_detail[LINE_MAX_];
	char last_hold[LINE_MAX_ + 16]; /* what the last bridge_waiting said */
	bool renew;			/* the child is being stopped by sup_renew */
	int renew_reason;
	char renew_why[LINE_MAX_];
};

static void attempt(struct sup *s);
static void hold(struct sup *s);
static void on_stable(struct loop *l, void *data);
static void stop_child(struct sup *s);
static void reprobe_schedule(struct sup *s);

void *sup_ctx(struct sup *s)
{
	return s->o.ctx;
}

const char *sup_name(struct sup *s)
{
	return s->o.name;
}

struct loop *sup_loop(struct sup *s)
{
	return s->loop;
}

bool sup_running(struct sup *s)
{
	return s->child > 0;
}

static bool has_health(const struct sup *s)
{
	return s->o.health && s->o.health->kind != HEALTH_NONE;
}

/* --- state file and audit --- */

static void write_state(struct sup *s)
{
	char since[40], local[300] = "", remote[600] = "", pidkey[32];
	fmt_iso8601(since, sizeof since, &s->since);
	if (s->drv->describe)
		s->drv->describe(s, local, sizeof local, remote, sizeof remote);
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s,"
	    " s:s, s:I}",
	    "name", s->o.name, "kind", s->drv->kind, "state", state_names[s->state], "pid",
	    (json_int_t)getpid(), "since", since, "local", local, "remote", remote, "reconnects",
	    (json_int_t)s->reconnects, "health", health_names[s->health], "last_event",
	    s->last_event, "reason", s->reason ? s->drv->reason_name(s->reason) : "", "detail",
	    s->detail, "actor", s->o.actor, "attempt", (json_int_t)s->attempts);
	if (!o)
		return;
	snprintf(pidkey, sizeof pidkey, "%s_pid", s->drv->program);
	json_object_set_new(o, pidkey, s->child > 0 ? json_integer(s->child) : json_null());
	if (s->state == ST_RECONNECTING && s->retry_timer)
		json_object_set_new(o, "next_retry_seconds", json_real(s->next_delay));
	if (s->drv->state_extra)
		s->drv->state_extra(s, o);
	int r = state_write(s->o.state_dir, s->o.name, o);
	if (r < 0)
		log_error("%s: cannot write state: %s", s->o.name, strerror(-r));
	json_decref(o);
}

void sup_event(struct sup *s, const char *ev, const char *detail)
{
	snprintf(s->last_event, sizeof s->last_event, "%s", ev);
	int r = audit_append(s->o.state_dir, s->o.name, ev, s->o.actor, s->o.actor_class, detail);
	if (r < 0)
		log_error("%s: cannot append to audit log: %s", s->o.name, strerror(-r));
	log_info("%s: %s%s%s", s->o.name, ev, detail && *detail ? ": " : "", detail ? detail : "");
}

/* Move to `st`, record `ev` with `detail`, rewrite the state file. */
static void transition(struct sup *s, enum sup_state st, const char *ev, const char *detail)
{
	if (st != s->state)
		clock_gettime(CLOCK_REALTIME, &s->since);
	s->state = st;
	/* Cut, not formatted: details can be longer than the state keeps. */
	size_t n = detail ? strnlen(detail, sizeof s->detail - 1) : 0;
	memcpy(s->detail, detail ? detail : "", n);
	s->detail[n] = '\0';
	sup_event(s, ev, detail);
	write_state(s);
}

static void notify_ready(struct sup *s, const char *what, int code, const char *text)
{
	if (s->ready_fd < 0)
		return;
	char buf[LINE_MAX_ + 64];
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
	if (s->health_pid > 0 || !has_health(s))
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	struct health_job j = {.h = s->o.health, .fd = p[1]};
	pid_t pid;
	int r = spawn_fork(health_child, &j, p[1], &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		log_error("%s: cannot start health check: %s", s->o.name, strerror(-r));
		return;
	}
	fd_set_nonblock(p[0], true);
	s->health_pid = pid;
	s->health_fd = p[0];
	loop_timer_add(s->loop, (uint64_t)s->o.health->timeout_s * 1000 + 2000, on_health_kill, s,
		       &s->health_kill_timer);
}

static void on_health_timer(struct loop *l, void *data);

static void health_schedule(struct sup *s)
{
	loop_timer_cancel(s->loop, s->health_timer);
	s->health_timer = NULL;
	if (!has_health(s))
		return;
	loop_timer_add(s->loop, (uint64_t)s->o.health->interval_s * 1000, on_health_timer, s,
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

/* --- connected, and the readiness probe before it --- */

/* `probed`: a connection went through, which is as good as a check. */
static void became_connected(struct sup *s, bool probed)
{
	char d[128];
	snprintf(d, sizeof d, "%s pid %ld%s", s->drv->program, (long)s->child,
		 probed ? "; probe connection through" : "");
	s->reason = 0;
	s->health = probed ? H_OK : H_UNKNOWN;
	s->ever_connected = true;
	transition(s, ST_CONNECTED, "bridge_connected", d);
	notify_ready(s, SUP_READY_CONNECTED, 0, NULL);
	loop_timer_cancel(s->loop, s->stable_timer);
	s->stable_timer = NULL;
	loop_timer_add(s->loop, (uint64_t)(s->o.stable_s * 1000), on_stable, s, &s->stable_timer);
	health_schedule(s);
	/* A first check right away, so degraded shows without waiting a
	 * whole interval. */
	health_start(s);
	reprobe_schedule(s);
	if (s->drv->connected)
		s->drv->connected(s);
}

static void probe_end(struct sup *s)
{
	if (s->probe_fd >= 0) {
		loop_del_fd(s->loop, s->probe_fd);
		close(s->probe_fd);
		s->probe_fd = -1;
	}
	loop_timer_cancel(s->loop, s->probe_timer);
	s->probe_timer = NULL;
	s->probing = false;
	s->reprobe = false;
}

static void probe_ok(struct sup *s)
{
	bool periodic = s->reprobe;
	probe_end(s);
	if (s->stopping || s->child <= 0)
		return;
	if (!periodic) {
		became_connected(s, true);
		return;
	}
	enum health_state was = s->health;
	s->health = H_OK;
	if (s->state == ST_DEGRADED)
		transition(s, ST_CONNECTED, "health_check_recovered", "probe connection through");
	else if (was != H_OK)
		write_state(s);
	reprobe_schedule(s);
}

/* The forward is not usable: end this run; its exit takes the usual way
 * (reason, backoff, attempts).  A periodic probe first records the failed
 * check. */
static void probe_fail(struct sup *s, const char *why)
{
	bool periodic = s->reprobe;
	probe_end(s);
	if (!s->last_msg[0])
		snprintf(s->last_msg, sizeof s->last_msg, "%s probe: %s",
			 periodic ? "health" : "readiness", why);
	log_info("%s: %s probe failed: %s", s->o.name, periodic ? "health" : "readiness", why);
	if (periodic && s->state == ST_CONNECTED) {
		char d[LINE_MAX_ + 64];
		snprintf(d, sizeof d, "probe through the forward failed: %s", why);
		s->health = H_FAILING;
		transition(s, ST_DEGRADED, "health_check_failed", d);
	}
	stop_child(s);
}

static void on_probe_window(struct loop *l, void *data)
{
	struct sup *s = data;
	s->probe_timer = NULL;
	probe_ok(s);
}

static void on_probe_io(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	if (!s->probe_timer) {
		/* Still connecting. */
		int e = net_so_error(fd);
		if (e) {
			probe_fail(s, strerror(e));
			return;
		}
		loop_mod_fd(l, fd, LOOP_READ);
		loop_timer_add(l, PROBE_WINDOW_MS, on_probe_window, s, &s->probe_timer);
		return;
	}
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n > 0) {
		/* The service spoke: the path is through. */
		probe_ok(s);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Closed.  Either the service hung up or the forward failed: the
	 * child says which (a failure line, then usually its exit) before
	 * the window ends. */
	loop_del_fd(l, fd);
	close(fd);
	s->probe_fd = -1;
}

static void probe_start(struct sup *s, int port);

static void on_reprobe(struct loop *l, void *data)
{
	struct sup *s = data;
	s->reprobe_timer = NULL;
	if (s->probing || s->stopping || s->child <= 0 ||
	    (s->state != ST_CONNECTED && s->state != ST_DEGRADED))
		return;
	int port = s->drv->probe_port(s);
	if (port <= 0)
		return;
	s->reprobe = true;
	probe_start(s, port);
}

static void reprobe_schedule(struct sup *s)
{
	loop_timer_cancel(s->loop, s->reprobe_timer);
	s->reprobe_timer = NULL;
	if (s->o.probe_interval_s && s->drv->probe_port)
		loop_timer_add(s->loop, (uint64_t)s->o.probe_interval_s * 1000, on_reprobe, s,
			       &s->reprobe_timer);
}

static void probe_start(struct sup *s, int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = net_connect_nb((struct sockaddr *)&sin, sizeof sin);
	if (fd < 0) {
		probe_fail(s, strerror(-fd));
		return;
	}
	s->probe_fd = fd;
	s->probing = true;
	loop_add_fd(s->loop, fd, LOOP_WRITE, on_probe_io, s);
}

/* --- the child's output --- */

static void handle_line(struct sup *s, const char *line, size_t len, bool is_stdout)
{
	int reason = 0;
	switch (s->drv->classify(s, line, len, is_stdout, &reason)) {
	case SUP_LINE_NOISE:
		if (log_get_level() >= LOG_DEBUG)
			log_debug("%s: %s: %.*s", s->o.name, s->drv->program, (int)len, line);
		return;
	case SUP_LINE_READY:
		if ((s->state == ST_STARTING || s->state == ST_RECONNECTING) && !s->probing &&
		    !s->stopping && s->child > 0) {
			int port = s->drv->probe_port ? s->drv->probe_port(s) : 0;
			if (port > 0)
				probe_start(s, port);
			else
				became_connected(s, false);
		}
		return;
	case SUP_LINE_REASON:
		/* The first explanation wins: later lines are consequences. */
		if (!s->run_reason)
			s->run_reason = reason;
		snprintf(s->last_msg, sizeof s->last_msg, "%.*s", (int)len, line);
		log_info("%s: %s: %s", s->o.name, s->drv->program, s->last_msg);
		if (s->probing)
			probe_fail(s, s->last_msg);
		return;
	case SUP_LINE_MESSAGE:
		snprintf(s->last_msg, sizeof s->last_msg, "%.*s", (int)len, line);
		log_info("%s: %s: %s", s->o.name, s->drv->program, s->last_msg);
		return;
	}
}

/* Read what the child wrote; split into lines; over-long lines are cut. */
static void drain(struct sup *s, struct stream *st)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(st->fd, buf, sizeof buf);
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n' || c == '\r') {
				if (st->len)
					handle_line(s, st->line, st->len, st->is_stdout);
				st->len = 0;
				continue;
			}
			if (st->len < sizeof st->line - 1)
				st->line[st->len++] = c;
		}
	}
}

static void on_child_output(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	struct stream *st = fd == s->out.fd ? &s->out : &s->err;
	drain(s, st);
	if (events & LOOP_ERROR) {
		/* The child closed it (it exited); SIGCHLD does the rest. */
		loop_del_fd(l, fd);
	}
}

static void stream_close(struct sup *s, struct stream *st)
{
	if (st->fd < 0)
		return;
	drain(s, st);
	if (st->len)
		handle_line(s, st->line, st->len, st->is_stdout);
	st->len = 0;
	loop_del_fd(s->loop, st->fd);
	close(st->fd);
	st->fd = -1;
}

static void on_kill_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	s->kill_timer = NULL;
	if (s->child > 0) {
		log_warn("%s: %s pid %ld ignored SIGTERM for %d s; sending SIGKILL", s->o.name,
			 s->drv->program, (long)s->child, KILL_GRACE_MS / 1000);
		kill(s->child, SIGKILL);
	}
}

static void stop_child(struct sup *s)
{
	if (s->child <= 0)
		return;
	kill(s->child, SIGTERM);
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
	if (s->drv->finished)
		s->drv->finished(s);
	loop_stop(s->loop);
}

static void on_retry(struct loop *l, void *data)
{
	struct sup *s = data;
	s->retry_timer = NULL;
	attempt(s);
}

static void fail_for_good(struct sup *s, int code, const char *detail)
{
	s->exit_code = code;
	transition(s, ST_FAILED, "bridge_failed", detail);
	notify_ready(s, SUP_READY_FAILED, code, detail);
	finish(s);
}

/* The child is gone: decide between reconnecting and failed. */
static void child_exited(struct sup *s, int status)
{
	pid_t pid = s->child;
	s->child = 0;
	stream_close(s, &s->err);
	stream_close(s, &s->out);
	probe_end(s);
	loop_timer_cancel(s->loop, s->reprobe_timer);
	s->reprobe_timer = NULL;
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

	char why[LINE_MAX_ + 128];
	int r = s->run_reason ? s->run_reason : s->drv->reason_other;
	const char *prog = s->drv->program;
	if (s->hup)
		snprintf(why, sizeof why, "SIGHUP: reconnecting now");
	else if (s->renew)
		snprintf(why, sizeof why, "%s", s->renew_why);
	else if (s->last_msg[0])
		snprintf(why, sizeof why, "%s: %s", s->drv->reason_text(r), s->last_msg);
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "%s (pid %ld) killed by signal %d", prog, (long)pid,
			 WTERMSIG(status));
	else
		snprintf(why, sizeof why, "%s (pid %ld) exited with status %d", prog, (long)pid,
			 WEXITSTATUS(status));
	s->reason = s->hup ? 0 : s->renew ? s->renew_reason : r;

	bool was_up = s->state == ST_CONNECTED || s->state == ST_DEGRADED;
	if (was_up)
		transition(s, s->state, "bridge_disconnected", why);
	s->health = H_UNKNOWN;

	if (s->hup || s->renew) {
		/* Uncounted: a signal, or the driver knows the run is stale. */
		s->hup = s->renew = false;
		s->reconnects++;
		s->next_delay = 0;
		transition(s, ST_RECONNECTING, "bridge_reconnecting", why);
		attempt(s);
		return;
	}
	if (!was_up && s->drv->retry_now && s->drv->retry_now(s, r)) {
		/* The driver changed the next run's arguments (e.g. another
		 * local port): no backoff, no attempt counted. */
		write_state(s);
		attempt(s);
		return;
	}

	s->attempts++;
	int max = s->o.max_attempts;
	if (!s->ever_connected && s->o.first_max_attempts)
		max = s->o.first_max_attempts;
	if (max > 0 && s->attempts >= (unsigned)max) {
		char d[sizeof why + 64];
		snprintf(d, sizeof d, "gave up after %u attempts: %s", s->attempts, why);
		fail_for_good(s, s->drv->reason_exit(r), d);
		return;
	}
	s->next_delay = backoff_next(&s->bo);
	s->reconnects++;
	char d[sizeof why + 96];
	snprintf(d, sizeof d, "%s; attempt %u, retry in %.1fs", why, s->attempts + 1,
		 s->next_delay);
	loop_timer_add(s->loop, (uint64_t)(s->next_delay * 1000), on_retry, s, &s->retry_timer);
	transition(s, ST_RECONNECTING, "bridge_reconnecting", d);
	if (!s->o.ready_waits_retries)
		notify_ready(s, SUP_READY_RETRYING, s->drv->reason_exit(r), why);
}

static int stream_open(struct sup *s, struct stream *st, bool is_stdout, int *child_end)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	st->fd = p[0];
	st->is_stdout = is_stdout;
	st->len = 0;
	fd_set_nonblock(p[0], true);
	*child_end = p[1];
	return 0;
}

static void attempt(struct sup *s)
{
	int ew = -1, ow = -1, r;
	s->run_reason = 0;
	s->last_msg[0] = '\0';
	if (s->argv) {
		s->drv->free_argv(s->argv);
		s->argv = NULL;
	}
	r = s->drv->build_argv(s, &s->argv);
	if (r == -EAGAIN) {
		hold(s);
		return;
	}
	if (r == 0)
		r = stream_open(s, &s->err, false, &ew);
	if (r == 0 && s->drv->read_stdout)
		r = stream_open(s, &s->out, true, &ow);
	if (r < 0) {
		log_error("%s: cannot prepare %s: %s", s->o.name, s->drv->program, strerror(-r));
		goto fail;
	}
	struct spawn_opts so = {.argv = s->argv,
				.stdin_fd = -1,
				.stdout_fd = ow,
				.stderr_fd = ew,
				.die_with_parent = true};
	pid_t pid;
	r = spawn_process(&so, &pid);
	close(ew);
	if (ow >= 0)
		close(ow);
	ew = ow = -1;
	if (r == -ENOENT) {
		char d[256];
		snprintf(d, sizeof d, "cannot run %s: %s (install it or fix PATH)", s->drv->program,
			 strerror(-r));
		s->reason = s->drv->reason_not_found;
		stream_close(s, &s->err);
		stream_close(s, &s->out);
		fail_for_good(s, s->drv->exit_not_found, d);
		return;
	}
	if (r < 0) {
		log_error("%s: cannot run %s: %s", s->o.name, s->drv->program, strerror(-r));
		goto fail;
	}
	s->child = pid;
	loop_add_fd(s->loop, s->err.fd, LOOP_READ, on_child_output, s);
	if (s->out.fd >= 0)
		loop_add_fd(s->loop, s->out.fd, LOOP_READ, on_child_output, s);
	write_state(s);
	return;
fail:
	if (ew >= 0)
		close(ew);
	if (ow >= 0)
		close(ow);
	/* Counted like a run that failed at once. */
	child_exited(s, 1 << 8);
}

/* --- drivers that watch: sup_hold, sup_renew --- */

void sup_hold(struct sup *s, int reason, const char *detail)
{
	s->hold_reason = reason;
	snprintf(s->hold_detail, sizeof s->hold_detail, "%s", detail ? detail : "");
}

/* build_argv said -EAGAIN: wait for sup_renew.  One audit event per
 * distinct reason, not one per renewal that changed nothing. */
static void hold(struct sup *s)
{
	s->held = true;
	s->reason = s->hold_reason;
	if (s->argv) {
		s->drv->free_argv(s->argv);
		s->argv = NULL;
	}
	enum sup_state st = s->state == ST_STARTING ? ST_STARTING : ST_RECONNECTING;
	char key[sizeof s->last_hold];
	snprintf(key, sizeof key, "%d %s", s->hold_reason, s->hold_detail);
	if (st != s->state || strcmp(key, s->last_hold) != 0) {
		memcpy(s->last_hold, key, sizeof key);
		transition(s, st, "bridge_waiting", s->hold_detail);
	} else {
		write_state(s);
	}
	if (!s->o.ready_waits_retries)
		notify_ready(s, SUP_READY_RETRYING, s->drv->reason_exit(s->reason), s->hold_detail);
}

void sup_renew(struct sup *s, int reason, const char *why)
{
	if (s->stopping)
		return;
	if (s->child > 0) {
		if (!s->renew && !s->hup) {
			s->renew = true;
			s->renew_reason = reason;
			snprintf(s->renew_why, sizeof s->renew_why, "%s", why ? why : "");
		}
		stop_child(s);
		return;
	}
	if (!s->held && !s->retry_timer)
		return;
	loop_timer_cancel(s->loop, s->retry_timer);
	s->retry_timer = NULL;
	s->held = false;
	s->last_hold[0] = '\0';
	s->next_delay = 0;
	if (s->state == ST_RECONNECTING)
		transition(s, ST_RECONNECTING, "bridge_reconnecting", why);
	else
		log_info("%s: %s", s->o.name, why ? why : "running now");
	attempt(s);
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
		if (pid == s->child)
			child_exited(s, status);
		else if (pid == s->health_pid)
			health_done(s, status);
		else if (s->drv->reaped)
			s->drv->reaped(s, pid, status);
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
		log_info("%s: %s received, stopping", s->o.name, strsignal(signo));
		if (s->child > 0)
			stop_child(s);
		else
			finish(s);
		break;
	case SIGHUP:
		if (s->stopping)
			break;
		if (s->child > 0) {
			s->hup = true;
			stop_child(s);
		} else if (s->retry_timer || s->held) {
			loop_timer_cancel(l, s->retry_timer);
			s->retry_timer = NULL;
			s->held = false;
			s->last_hold[0] = '\0';
			s->next_delay = 0;
			transition(s, ST_RECONNECTING, "bridge_reconnecting",
				   "SIGHUP: retrying now");
			attempt(s);
		}
		break;
	case SIGUSR1:
		if (s->state != ST_CONNECTED && s->state != ST_DEGRADED)
			break;
		health_start(s);
		/* Without a configured check, the periodic probe through the
		 * forward is the check: run it now (`devbridge check`). */
		if (!has_health(s) && s->o.probe_interval_s && s->drv->probe_port && !s->probing) {
			loop_timer_cancel(l, s->reprobe_timer);
			on_reprobe(l, s);
		}
		break;
	}
}

int sup_run(const struct sup_opts *o)
{
	struct sup s = {.o = *o,
			.drv = o->drv,
			.ready_fd = o->ready_fd,
			.out = {.fd = -1},
			.err = {.fd = -1},
			.probe_fd = -1,
			.health_fd = -1,
			.exit_code = EXIT_OK};

	pid_t holder = 0;
	int lock_fd = state_lock(o->state_dir, o->name, &holder);
	if (lock_fd == -EBUSY) {
		char d[32];
		snprintf(d, sizeof d, "%ld", (long)holder);
		notify_ready(&s, SUP_READY_BUSY, 0, d);
		return EXIT_OK;
	}
	if (lock_fd < 0) {
		log_error("%s: cannot lock %s/%s.pid: %s", o->name, o->state_dir, o->name,
			  strerror(-lock_fd));
		notify_ready(&s, SUP_READY_FAILED, EXIT_ERROR, "cannot lock the pid file");
		return EXIT_ERROR;
	}

	int r = loop_new(&s.loop);
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, 0};
	if (r == 0)
		r = loop_watch_signals(s.loop, sigs, on_signal, &s);
	if (r < 0) {
		log_error("%s: %s", o->name, strerror(-r));
		notify_ready(&s, SUP_READY_FAILED, EXIT_ERROR, strerror(-r));
		loop_free(s.loop);
		close(lock_fd);
		return EXIT_ERROR;
	}
	/* A pipe reader (`up`) that went away must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	backoff_init(&s.bo, o->backoff_initial, o->backoff_max);
	if (s.drv->start && (r = s.drv->start(&s)) < 0)
		log_warn("%s: %s", o->name, strerror(-r));

	/* The first run's command line, for the audit log. */
	char **argv = NULL, d[4096];
	char *cmd = NULL;
	if (s.drv->build_argv(&s, &argv) == 0) {
		cmd = argv_format(argv);
		s.drv->free_argv(argv);
	}
	snprintf(d, sizeof d, "supervisor pid %ld: %s", (long)getpid(), cmd ? cmd : s.drv->program);
	free(cmd);
	clock_gettime(CLOCK_REALTIME, &s.since);
	transition(&s, ST_STARTING, "bridge_started", d);
	attempt(&s);
	r = loop_run(s.loop);
	if (r < 0)
		log_error("%s: event loop: %s", o->name, strerror(-r));

	/* Never leave a child behind, whatever ended the loop. */
	if (s.child > 0) {
		kill(s.child, SIGKILL);
		waitpid(s.child, NULL, 0);
	}
	if (s.health_pid > 0) {
		kill(s.health_pid, SIGKILL);
		waitpid(s.health_pid, NULL, 0);
	}
	if (s.err.fd >= 0)
		close(s.err.fd);
	if (s.out.fd >= 0)
		close(s.out.fd);
	if (s.probe_fd >= 0)
		close(s.probe_fd);
	if (s.health_fd >= 0)
		close(s.health_fd);
	loop_timer_cancel(s.loop, s.retry_timer);
	loop_timer_cancel(s.loop, s.kill_timer);
	loop_timer_cancel(s.loop, s.stable_timer);
	loop_timer_cancel(s.loop, s.health_timer);
	loop_timer_cancel(s.loop, s.health_kill_timer);
	loop_timer_cancel(s.loop, s.probe_timer);
	loop_timer_cancel(s.loop, s.reprobe_timer);
	loop_free(s.loop);
	if (s.argv)
		s.drv->free_argv(s.argv);
	/* The pid file stays: its lock, not its presence, is the liveness. */
	close(lock_fd);
	return s.exit_code;
}
