/* supervisor.c - see supervisor.h.
 *
 * Everything happens on the caller's event loop: the child's stderr (and
 * stdout when the driver asks), read line by line to learn when the
 * forward is up and why it failed; the child's exit through its own pidfd
 * watch, opened right after the fork (an unreaped pid cannot be reused, so
 * no exit goes unnoticed); embedded timers for backoff, the SIGTERM->SIGKILL
 * escalation, the stable period, health checks and the readiness probe.
 *
 * Re-entrancy: every way into the supervisor from the loop (a timer, an
 * fd, a child's exit, a deferral) and from its driver (sup_renew) counts
 * `depth`.  sup_free inside one only marks `dead`; the outermost return
 * frees (ctl.c's depth/dead).  sup_stop, sup_reconnect and sup_check are
 * requests run from a deferral, so an embedder's on_state that calls them
 * never cuts into the middle of a transition; on_finished always comes
 * from a deferral too. */
#include "core/supervisor.h"
#include "core/errcode.h"
#include "core/audit.h"
#include "core/backoff.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/proc.h"
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_GRACE_MS	  5000 /* default of sup_opts.kill_grace_ms */
#define LINE_MAX_	  1024
#define HEALTH_DETAIL_MAX 512
/* A probe connection that kubectl (or the service behind it) has not
 * failed within this long counts as through.  A refused target is
 * reported in a few tens of milliseconds on loopback. */
#define PROBE_WINDOW_MS 300
/* The lock check, the retry of a state file that could not be written
 * and the stall watch run this often. */
#define TICK_MS 1000
/* The stall watch samples once a tick: a child is killed only after the
 * stall window plus this much, so a wake-up just after a sample is never
 * missed. */
#define STALL_SLACK_MS 2000

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

	/* lifetime, see the top */
	unsigned depth;
	bool dead; /* sup_free inside a callback: freed at depth 0 */
	bool start_called;
	bool started;	  /* sup_start got past the lock */
	bool drv_started; /* drv->start ran: drv->finished is owed */
	bool finished;	  /* finish() ran: nothing more happens */
	bool want_stop, want_reconnect, want_check;
	struct loop_defer requests; /* runs want_* */
	struct loop_defer report;   /* calls on_finished */

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
	struct loop_child child_w;
	struct stream out, err;
	char last_msg[LINE_MAX_];
	int run_reason; /* what this run said */

	struct loop_timer retry_timer, kill_timer, stable_timer, health_timer;

	/* readiness probe */
	int probe_fd;
	bool probing;
	bool reprobe; /* the probe running is a periodic one */
	struct loop_timer probe_timer, reprobe_timer;

	enum health_state health;
	pid_t health_pid;
	struct loop_child health_w;
	int health_fd;
	struct loop_timer health_kill_timer;

	int lock_fd; /* NAME.pid, locked */
	struct loop_timer tick_timer;
	/* -errno of the last failed write of NAME.state / NAME.log, 0 once
	 * they work (again); said in NAME.pid for `status`. */
	int state_err, audit_err;
	/* Another supervisor holds NAME.pid now: its files are not ours. */
	bool orphaned;
	int lock_err; /* the last failure to re-create NAME.pid (logged once) */

	/* stall watch, see sup_opts.stall_ms */
	bool stall_known;	/* stall_runs is a sample of this child */
	uint64_t stall_runs;	/* proc_sample.runs at the last tick */
	uint64_t stall_seen_ms; /* when the child last made progress */
	bool stalled;		/* stopped: health failing */
	bool stall_degraded;	/* and that moved it connected -> degraded */
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
static void destroy(struct sup *s);
static void hold(struct sup *s);
static void on_stable(struct loop *l, void *data);
static void on_tick(struct loop *l, void *data);
static void on_retry(struct loop *l, void *data);
static void stop_child(struct sup *s);
static void reprobe_schedule(struct sup *s);
static void health_start(struct sup *s);

/* Around every way in (see the top).  After leave, s may be gone. */
static void enter(struct sup *s)
{
	s->depth++;
}

static void leave(struct sup *s)
{
	if (--s->depth == 0 && s->dead)
		destroy(s);
}

const char *sup_state_name(enum sup_state st)
{
	return (unsigned)st < ARRAY_SIZE(state_names) ? state_names[st] : "unknown";
}

enum sup_state sup_get_state(const struct sup *s)
{
	return s->state;
}

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

/* Say in NAME.pid what could not be written (or that all is well again):
 * the one file a supervisor can still write when the directory is not. */
static void update_note(struct sup *s)
{
	char note[700];
	int e = s->state_err ? s->state_err : s->audit_err;
	if (s->lock_fd < 0 || s->orphaned)
		return;
	if (e)
		snprintf(note, sizeof note, "state_error: cannot write %s/%s.%s: %s",
			 s->o.state_dir, s->o.name, s->state_err ? "state" : "log", strerror(-e));
	int r = state_lock_note(s->lock_fd, e ? note : NULL);
	if (r < 0 && e)
		log_error("%s: cannot note that in %s/%s.pid either: %s", s->o.name, s->o.state_dir,
			  s->o.name, strerror(-r));
}

/* Record the outcome of a write of NAME.EXT; logged once per change. */
static void note_write(struct sup *s, int *err, int r, const char *ext)
{
	if (r == *err)
		return;
	if (r < 0)
		log_error("%s: cannot write %s/%s.%s: %s%s", s->o.name, s->o.state_dir, s->o.name,
			  ext, strerror(-r), *err ? "" : " (retrying every second)");
	else
		log_info("%s: %s/%s.%s written again", s->o.name, s->o.state_dir, s->o.name, ext);
	*err = r;
	update_note(s);
}

static void write_state(struct sup *s)
{
	char since[40], local[300] = "", remote[600] = "", pidkey[32];
	if (s->orphaned)
		return;
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
	if (s->state == SUP_RECONNECTING && loop_timer_active(&s->retry_timer))
		json_object_set_new(o, "next_retry_seconds", json_real(s->next_delay));
	if (s->drv->state_extra)
		s->drv->state_extra(s, o);
	int r = state_write(s->o.state_dir, s->o.name, o);
	note_write(s, &s->state_err, r < 0 ? r : 0, "state");
	json_decref(o);
}

void sup_event(struct sup *s, const char *ev, const char *detail)
{
	snprintf(s->last_event, sizeof s->last_event, "%s", ev);
	int r = audit_append(s->o.state_dir, s->o.name, ev, s->o.actor, s->o.actor_class, detail);
	note_write(s, &s->audit_err, r < 0 ? r : 0, "log");
	log_info("%s: %s%s%s", s->o.name, ev, detail && *detail ? ": " : "", detail ? detail : "");
}

/* Move to `st`, record `ev` with `detail`, rewrite the state file. */
static void transition(struct sup *s, enum sup_state st, const char *ev, const char *detail)
{
	bool changed = st != s->state;
	if (changed)
		clock_gettime(CLOCK_REALTIME, &s->since);
	s->state = st;
	/* Cut, not formatted: details can be longer than the state keeps. */
	size_t n = detail ? strnlen(detail, sizeof s->detail - 1) : 0;
	memcpy(s->detail, detail ? detail : "", n);
	s->detail[n] = '\0';
	sup_event(s, ev, detail);
	write_state(s);
	if (s->o.on_state && !s->dead)
		s->o.on_state(s, st, s->o.data);
}

/* One line on the ready pipe, which is then closed. */
static void ready_line(int fd, const char *what, int code, const char *text)
{
	if (fd < 0)
		return;
	char buf[LINE_MAX_ + 64];
	int n = snprintf(buf, sizeof buf, "%s %d %s\n", what, code, text && *text ? text : "-");
	if (n > (int)sizeof buf - 1)
		n = (int)sizeof buf - 1;
	(void)write_all(fd, buf, (size_t)n);
	close(fd);
}

static void notify_ready(struct sup *s, const char *what, int code, const char *text)
{
	ready_line(s->ready_fd, what, code, text);
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

static void on_health_kill_(struct loop *l, void *data)
{
	struct sup *s = data;
	if (s->health_pid > 0)
		kill(s->health_pid, SIGKILL);
}

static void on_health_kill(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_health_kill_(l, data);
	leave(s);
}

static void health_done(struct sup *s, int status);

static void on_health_exit_(struct loop *l, pid_t pid, int status, void *data)
{
	health_done(data, status);
}

static void on_health_exit(struct loop *l, pid_t pid, int status, void *data)
{
	struct sup *s = data;
	enter(s);
	on_health_exit_(l, pid, status, data);
	leave(s);
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
	if (r == 0 && (r = loop_child_watch(s->loop, &s->health_w, pid, on_health_exit, s)) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (r < 0) {
		close(p[0]);
		log_error("%s: cannot start health check: %s", s->o.name, strerror(-r));
		return;
	}
	fd_set_nonblock(p[0], true);
	s->health_pid = pid;
	s->health_fd = p[0];
	loop_timer_start(s->loop, &s->health_kill_timer,
			 (uint64_t)s->o.health->timeout_s * 1000 + 2000, on_health_kill, s);
}

static void on_health_timer(struct loop *l, void *data);

static void health_schedule(struct sup *s)
{
	loop_timer_stop(s->loop, &s->health_timer);
	if (!has_health(s))
		return;
	loop_timer_start(s->loop, &s->health_timer, (uint64_t)s->o.health->interval_s * 1000,
			 on_health_timer, s);
}

static void on_health_timer_(struct loop *l, void *data)
{
	struct sup *s = data;
	if (s->state == SUP_CONNECTED || s->state == SUP_DEGRADED)
		health_start(s);
	health_schedule(s);
}

static void on_health_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_health_timer_(l, data);
	leave(s);
}

static void health_done(struct sup *s, int status)
{
	char detail[HEALTH_DETAIL_MAX] = "";
	ssize_t n = read(s->health_fd, detail, sizeof detail - 1);
	detail[n > 0 ? n : 0] = '\0';
	close(s->health_fd);
	s->health_fd = -1;
	s->health_pid = 0;
	loop_timer_stop(s->loop, &s->health_kill_timer);
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!ok && !*detail)
		snprintf(detail, sizeof detail, "health check timed out");
	if (s->stopping || (s->state != SUP_CONNECTED && s->state != SUP_DEGRADED))
		return;
	/* A stopped child forwards nothing, whatever the local side says. */
	if (s->stalled)
		return;
	enum health_state was = s->health;
	s->health = ok ? H_OK : H_FAILING;
	if (!ok && s->state == SUP_CONNECTED)
		transition(s, SUP_DEGRADED, "health_check_failed", detail);
	else if (ok && s->state == SUP_DEGRADED)
		transition(s, SUP_CONNECTED, "health_check_recovered", detail);
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
	transition(s, SUP_CONNECTED, "bridge_connected", d);
	notify_ready(s, SUP_READY_CONNECTED, 0, NULL);
	loop_timer_stop(s->loop, &s->stable_timer);
	loop_timer_start(s->loop, &s->stable_timer, (uint64_t)(s->o.stable_s * 1000), on_stable, s);
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
	loop_timer_stop(s->loop, &s->probe_timer);
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
	if (s->stalled) {
		reprobe_schedule(s);
		return;
	}
	s->health = H_OK;
	if (s->state == SUP_DEGRADED)
		transition(s, SUP_CONNECTED, "health_check_recovered", "probe connection through");
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
	if (periodic && s->state == SUP_CONNECTED) {
		char d[LINE_MAX_ + 64];
		snprintf(d, sizeof d, "probe through the forward failed: %s", why);
		s->health = H_FAILING;
		transition(s, SUP_DEGRADED, "health_check_failed", d);
	}
	stop_child(s);
}

static void on_probe_window_(struct loop *l, void *data)
{
	struct sup *s = data;
	probe_ok(s);
}

static void on_probe_window(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_probe_window_(l, data);
	leave(s);
}

static void on_probe_io_(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	if (!loop_timer_active(&s->probe_timer)) {
		/* Still connecting. */
		int e = net_so_error(fd);
		if (e) {
			probe_fail(s, strerror(e));
			return;
		}
		int r = loop_mod_fd(l, fd, LOOP_READ);
		if (r < 0) {
			probe_fail(s, strerror(-r));
			return;
		}
		loop_timer_start(l, &s->probe_timer, PROBE_WINDOW_MS, on_probe_window, s);
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

static void on_probe_io(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	enter(s);
	on_probe_io_(l, fd, events, data);
	leave(s);
}

static void probe_start(struct sup *s, int port);

static void on_reprobe_(struct loop *l, void *data)
{
	struct sup *s = data;
	if (s->probing || s->stopping || s->child <= 0 ||
	    (s->state != SUP_CONNECTED && s->state != SUP_DEGRADED))
		return;
	int port = s->drv->probe_port(s);
	if (port <= 0)
		return;
	s->reprobe = true;
	probe_start(s, port);
}

static void on_reprobe(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_reprobe_(l, data);
	leave(s);
}

static void reprobe_schedule(struct sup *s)
{
	loop_timer_stop(s->loop, &s->reprobe_timer);
	if (s->o.probe_interval_s && s->drv->probe_port)
		loop_timer_start(s->loop, &s->reprobe_timer, (uint64_t)s->o.probe_interval_s * 1000,
				 on_reprobe, s);
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
	int r = loop_add_fd(s->loop, fd, LOOP_WRITE, on_probe_io, s);
	if (r < 0)
		probe_fail(s, strerror(-r));
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
		if ((s->state == SUP_STARTING || s->state == SUP_RECONNECTING) && !s->probing &&
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

static void on_child_output_(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	struct stream *st = fd == s->out.fd ? &s->out : &s->err;
	drain(s, st);
	if (events & LOOP_ERROR) {
		/* The child closed it (it exited); its watch does the rest. */
		loop_del_fd(l, fd);
	}
}

static void on_child_output(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	enter(s);
	on_child_output_(l, fd, events, data);
	leave(s);
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

static void on_kill_timer_(struct loop *l, void *data)
{
	struct sup *s = data;
	if (s->child > 0) {
		log_warn("%s: %s pid %ld ignored SIGTERM for %.1f s; sending SIGKILL", s->o.name,
			 s->drv->program, (long)s->child, (double)s->o.kill_grace_ms / 1000);
		kill(s->child, SIGKILL);
	}
}

static void on_kill_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_kill_timer_(l, data);
	leave(s);
}

static void stop_child(struct sup *s)
{
	if (s->child <= 0)
		return;
	kill(s->child, SIGTERM);
	/* A stopped child would keep SIGTERM pending until the kill timer. */
	kill(s->child, SIGCONT);
	if (!loop_timer_active(&s->kill_timer))
		loop_timer_start(s->loop, &s->kill_timer, s->o.kill_grace_ms, on_kill_timer, s);
}

static void on_report(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	if (s->o.on_finished && !s->dead)
		s->o.on_finished(s, s->exit_code, s->o.data);
	leave(s);
}

/* The driver's finished, once, if its start ran. */
static void driver_finished(struct sup *s)
{
	if (!s->drv_started)
		return;
	s->drv_started = false;
	if (s->drv->finished)
		s->drv->finished(s);
}

/* Stopped or failed for good, the child gone: nothing more happens but
 * on_finished, from the loop.  A health check still running is killed and
 * reaped now, so every child is gone by then. */
static void finish(struct sup *s)
{
	if (s->finished)
		return;
	s->finished = true;
	loop_timer_stop(s->loop, &s->retry_timer);
	loop_timer_stop(s->loop, &s->tick_timer);
	loop_timer_stop(s->loop, &s->health_timer);
	loop_timer_stop(s->loop, &s->health_kill_timer);
	loop_timer_stop(s->loop, &s->kill_timer);
	loop_timer_stop(s->loop, &s->stable_timer);
	loop_child_kill_wait(s->loop, &s->health_w);
	s->health_pid = 0;
	if (s->health_fd >= 0) {
		close(s->health_fd);
		s->health_fd = -1;
	}
	/* An orphaned supervisor has said why in the audit log already; the
	 * state file is the new supervisor's. */
	if (s->state != SUP_FAILED && !s->orphaned)
		transition(s, SUP_STOPPED, "bridge_stopped", "supervisor stopped");
	notify_ready(s, SUP_READY_FAILED, EXIT_TUNNEL_FAILED, "stopped before connecting");
	driver_finished(s);
	loop_defer(s->loop, &s->report, on_report, s);
}

static void on_retry_(struct loop *l, void *data)
{
	struct sup *s = data;
	attempt(s);
}

static void on_retry(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_retry_(l, data);
	leave(s);
}

static void fail_for_good(struct sup *s, int code, const char *detail)
{
	s->exit_code = code;
	transition(s, SUP_FAILED, "bridge_failed", detail);
	notify_ready(s, SUP_READY_FAILED, code, detail);
	finish(s);
}

/* The child is gone: decide between reconnecting and failed. */
static void child_exited(struct sup *s, int status)
{
	pid_t pid = s->child;
	s->child = 0;
	s->stalled = s->stall_degraded = false;
	stream_close(s, &s->err);
	stream_close(s, &s->out);
	probe_end(s);
	loop_timer_stop(s->loop, &s->reprobe_timer);
	loop_timer_stop(s->loop, &s->kill_timer);
	loop_timer_stop(s->loop, &s->stable_timer);
	loop_timer_stop(s->loop, &s->health_timer);
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

	bool was_up = s->state == SUP_CONNECTED || s->state == SUP_DEGRADED;
	if (was_up)
		transition(s, s->state, "bridge_disconnected", why);
	s->health = H_UNKNOWN;

	if (s->hup || s->renew) {
		/* Uncounted: a signal, or the driver knows the run is stale. */
		s->hup = s->renew = false;
		s->reconnects++;
		s->next_delay = 0;
		transition(s, SUP_RECONNECTING, "bridge_reconnecting", why);
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
		snprintf(d, sizeof d, "gave up after %u attempt%s: %s", s->attempts,
			 s->attempts == 1 ? "" : "s", why);
		fail_for_good(
		    s, s->drv->exit_gave_up ? s->drv->exit_gave_up : s->drv->reason_exit(r), d);
		return;
	}
	s->next_delay = backoff_next(&s->bo);
	s->reconnects++;
	char d[sizeof why + 96];
	snprintf(d, sizeof d, "%s; attempt %u, retry in %.1fs", why, s->attempts + 1,
		 s->next_delay);
	loop_timer_start(s->loop, &s->retry_timer, (uint64_t)(s->next_delay * 1000), on_retry, s);
	transition(s, SUP_RECONNECTING, "bridge_reconnecting", d);
	if (!s->o.ready_waits_retries)
		notify_ready(s, SUP_READY_RETRYING, s->drv->reason_exit(r), why);
}

static void on_child_exit_(struct loop *l, pid_t pid, int status, void *data)
{
	child_exited(data, status);
}

static void on_child_exit(struct loop *l, pid_t pid, int status, void *data)
{
	struct sup *s = data;
	enter(s);
	on_child_exit_(l, pid, status, data);
	leave(s);
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
	if (s->dead || s->finished || s->stopping)
		return;
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
	/* Watched before anything else: its exit is the one event that
	 * always comes, and ends the run however it ends. */
	r = loop_child_watch(s->loop, &s->child_w, pid, on_child_exit, s);
	if (r < 0) {
		log_error("%s: cannot watch %s pid %ld: %s", s->o.name, s->drv->program, (long)pid,
			  strerror(-r));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto fail;
	}
	s->child = pid;
	s->stall_known = false;
	s->stall_seen_ms = now_mono_ms();
	r = loop_add_fd(s->loop, s->err.fd, LOOP_READ, on_child_output, s);
	if (r == 0 && s->out.fd >= 0)
		r = loop_add_fd(s->loop, s->out.fd, LOOP_READ, on_child_output, s);
	if (r < 0) {
		/* Unread, its lines (readiness among them) would never be
		 * seen: this run fails, its exit takes the usual way. */
		snprintf(s->last_msg, sizeof s->last_msg, "cannot read %s's output: %s",
			 s->drv->program, strerror(-r));
		log_error("%s: %s", s->o.name, s->last_msg);
		kill(pid, SIGKILL);
	}
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
	enum sup_state st = s->state == SUP_STARTING ? SUP_STARTING : SUP_RECONNECTING;
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

static void renew(struct sup *s, int reason, const char *why)
{
	if (s->stopping || s->finished || s->dead)
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
	if (!s->held && !loop_timer_active(&s->retry_timer))
		return;
	loop_timer_stop(s->loop, &s->retry_timer);
	s->held = false;
	s->last_hold[0] = '\0';
	s->next_delay = 0;
	if (s->state == SUP_RECONNECTING)
		transition(s, SUP_RECONNECTING, "bridge_reconnecting", why);
	else
		log_info("%s: %s", s->o.name, why ? why : "running now");
	attempt(s);
}

void sup_renew(struct sup *s, int reason, const char *why)
{
	enter(s);
	renew(s, reason, why);
	leave(s);
}

static void on_stable_(struct loop *l, void *data)
{
	struct sup *s = data;
	backoff_reset(&s->bo);
	s->attempts = 0;
}

static void on_stable(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_stable_(l, data);
	leave(s);
}

/* --- every second: the lock, unwritten state, stalls --- */

static void begin_stop(struct sup *s)
{
	if (s->stopping || s->finished)
		return;
	s->stopping = true;
	if (s->child > 0)
		stop_child(s);
	else
		finish(s);
}

/* NAME.out is this process's stdout and stderr: when the state directory
 * was deleted, diagnostics would go to a file nobody can open. */
static void reopen_out(struct sup *s)
{
	struct stat st;
	char path[4096];
	if (fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink > 0 ||
	    state_path(path, sizeof path, s->o.state_dir, s->o.name, "out") < 0)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Is NAME.pid still the file we lock?  If the state directory was deleted
 * (or the file replaced), `status` and `down` cannot see us and the next
 * `up` would start a second supervisor: take the lock on a new file, or,
 * when another supervisor already holds it, stop and leave it the name. */
static void lock_check(struct sup *s)
{
	if (state_lock_is_current(s->lock_fd, s->o.state_dir, s->o.name) != 0)
		return; /* ours, or cannot tell (then the next tick asks again) */
	pid_t holder = 0;
	int fd = state_dir_ensure(s->o.state_dir);
	if (fd == 0)
		fd = state_lock(s->o.state_dir, s->o.name, &holder);
	if (fd == -EBUSY) {
		char d[256];
		snprintf(d, sizeof d,
			 "supervisor pid %ld stops: %s.pid was replaced and supervisor pid %ld "
			 "holds it",
			 (long)getpid(), s->o.name, (long)holder);
		log_warn("%s: %s", s->o.name, d);
		s->orphaned = true;
		sup_event(s, "bridge_stopped", d);
		begin_stop(s);
		return;
	}
	if (fd < 0) {
		if (fd != s->lock_err)
			log_error("%s: %s/%s.pid is gone and cannot be re-created: %s (retrying "
				  "every second)",
				  s->o.name, s->o.state_dir, s->o.name, strerror(-fd));
		s->lock_err = fd;
		return;
	}
	s->lock_err = 0;
	/* Another inode: closing the old fd leaves the new lock alone. */
	close(s->lock_fd);
	s->lock_fd = fd;
	reopen_out(s);
	log_warn("%s: %s/%s.pid had been removed; locked a new one", s->o.name, s->o.state_dir,
		 s->o.name);
	update_note(s);
	write_state(s);
}

static void stall_stopped(struct sup *s, char state)
{
	char d[200];
	s->stalled = true;
	snprintf(d, sizeof d,
		 "%s pid %ld is stopped (state %c): it carries no traffic and sends no "
		 "keepalives until it runs again",
		 s->drv->program, (long)s->child, state);
	log_warn("%s: %s", s->o.name, d);
	if (s->state != SUP_CONNECTED && s->state != SUP_DEGRADED)
		return; /* not up yet: the kill at the end of the window decides */
	s->health = H_FAILING;
	if (s->state == SUP_CONNECTED) {
		s->stall_degraded = true;
		transition(s, SUP_DEGRADED, "health_check_failed", d);
	} else {
		write_state(s);
	}
}

static void stall_resumed(struct sup *s)
{
	char d[128];
	bool degraded = s->stall_degraded;
	s->stalled = s->stall_degraded = false;
	if (s->state != SUP_CONNECTED && s->state != SUP_DEGRADED)
		return;
	snprintf(d, sizeof d, "%s pid %ld runs again", s->drv->program, (long)s->child);
	s->health = H_UNKNOWN;
	if (degraded && s->state == SUP_DEGRADED)
		transition(s, SUP_CONNECTED, "health_check_recovered", d);
	else
		write_state(s);
	/* Whatever the health was before the stop, ask again now. */
	health_start(s);
}

static void stall_check(struct sup *s)
{
	struct proc_sample ps;
	if (!s->o.stall_ms || s->child <= 0 || s->stopping || proc_sample(s->child, &ps) < 0)
		return;
	uint64_t now = now_mono_ms();
	bool up = s->state == SUP_CONNECTED || s->state == SUP_DEGRADED;
	bool stopped = proc_state_stopped(ps.state);
	/* Before the forward is up ssh may wait in connect() for its whole
	 * ConnectTimeout: only a stopped child is stuck then.  Once up, ssh
	 * wakes at least every ServerAliveInterval, so not being scheduled at
	 * all is a stall too. */
	bool ran = !up || !ps.have_runs || !s->stall_known || ps.runs != s->stall_runs;
	s->stall_known = ps.have_runs;
	s->stall_runs = ps.runs;
	if (!stopped && ran) {
		s->stall_seen_ms = now;
		if (s->stalled)
			stall_resumed(s);
		return;
	}
	if (stopped && !s->stalled)
		stall_stopped(s, ps.state);
	uint64_t idle = now - s->stall_seen_ms;
	if (idle < (uint64_t)s->o.stall_ms + STALL_SLACK_MS)
		return;
	s->run_reason = s->drv->reason_stalled;
	snprintf(s->last_msg, sizeof s->last_msg,
		 "%s pid %ld made no progress for %.0f s (%s); killed it", s->drv->program,
		 (long)s->child, (double)idle / 1000, stopped ? "stopped" : "never scheduled");
	log_warn("%s: %s", s->o.name, s->last_msg);
	/* SIGKILL: a stopped process acts on nothing else. */
	kill(s->child, SIGKILL);
	s->stall_seen_ms = now; /* once */
}

static void on_tick_(struct loop *l, void *data)
{
	struct sup *s = data;
	if (!s->stopping)
		lock_check(s);
	if (s->stopping || s->finished)
		return;
	if (s->state_err)
		write_state(s);
	stall_check(s);
	loop_timer_start(l, &s->tick_timer, TICK_MS, on_tick, s);
}

static void on_tick(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	on_tick_(l, data);
	leave(s);
}

/* --- requests: sup_stop, sup_reconnect, sup_check --- */

static void reconnect(struct sup *s)
{
	if (s->stopping || s->finished)
		return;
	if (s->child > 0) {
		s->hup = true;
		stop_child(s);
	} else if (loop_timer_active(&s->retry_timer) || s->held) {
		loop_timer_stop(s->loop, &s->retry_timer);
		s->held = false;
		s->last_hold[0] = '\0';
		s->next_delay = 0;
		transition(s, SUP_RECONNECTING, "bridge_reconnecting", "SIGHUP: retrying now");
		attempt(s);
	}
}

static void check(struct sup *s)
{
	if (s->finished || (s->state != SUP_CONNECTED && s->state != SUP_DEGRADED))
		return;
	health_start(s);
	/* Without a configured check, the periodic probe through the forward
	 * is the check: run it now (`devbridge check`). */
	if (!has_health(s) && s->o.probe_interval_s && s->drv->probe_port && !s->probing) {
		loop_timer_stop(s->loop, &s->reprobe_timer);
		on_reprobe(s->loop, s);
	}
}

static void on_requests(struct loop *l, void *data)
{
	struct sup *s = data;
	enter(s);
	bool stop = s->want_stop, rec = s->want_reconnect, chk = s->want_check;
	s->want_stop = s->want_reconnect = s->want_check = false;
	if (stop)
		begin_stop(s);
	if (rec && !s->dead)
		reconnect(s);
	if (chk && !s->dead)
		check(s);
	leave(s);
}

static void request(struct sup *s, bool *want)
{
	if (!s->started || s->finished || s->dead)
		return;
	*want = true;
	loop_defer(s->loop, &s->requests, on_requests, s);
}

void sup_stop(struct sup *s)
{
	request(s, &s->want_stop);
}

void sup_reconnect(struct sup *s)
{
	request(s, &s->want_reconnect);
}

void sup_check(struct sup *s)
{
	request(s, &s->want_check);
}

/* --- the object --- */

int sup_new(struct loop *loop, const struct sup_opts *o, const struct sup_driver *drv,
	    struct sup **ret)
{
	if (!loop || !o || !drv || !o->name || !o->state_dir)
		return -EINVAL;
	struct sup *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->o = *o;
	if (!s->o.kill_grace_ms)
		s->o.kill_grace_ms = KILL_GRACE_MS;
	s->drv = drv;
	s->loop = loop;
	s->ready_fd = o->ready_fd;
	s->out.fd = s->err.fd = -1;
	s->probe_fd = s->health_fd = s->lock_fd = -1;
	s->exit_code = EXIT_OK;
	backoff_init(&s->bo, o->backoff_initial, o->backoff_max);
	*ret = s;
	return 0;
}

static int start(struct sup *s)
{
	const struct sup_opts *o = &s->o;
	pid_t holder = 0;
	int lock_fd = state_lock(o->state_dir, o->name, &holder);
	if (lock_fd == -EBUSY) {
		char d[32];
		snprintf(d, sizeof d, "%ld", (long)holder);
		notify_ready(s, SUP_READY_BUSY, 0, d);
		return -EBUSY;
	}
	if (lock_fd < 0) {
		char d[600];
		snprintf(d, sizeof d, "cannot lock %s/%s.pid: %s", o->state_dir, o->name,
			 strerror(-lock_fd));
		log_error("%s: %s", o->name, d);
		notify_ready(s, SUP_READY_FAILED, EXIT_ERROR, d);
		return lock_fd;
	}
	s->lock_fd = lock_fd;
	s->started = true;
	int r;
	s->drv_started = true;
	if (s->drv->start && (r = s->drv->start(s)) < 0)
		log_warn("%s: %s", o->name, strerror(-r));

	/* The first run's command line, for the audit log. */
	char **argv = NULL, d[4096];
	char *cmd = NULL;
	if (s->drv->build_argv(s, &argv) == 0) {
		cmd = argv_format(argv);
		s->drv->free_argv(argv);
	}
	snprintf(d, sizeof d, "supervisor pid %ld: %s", (long)getpid(),
		 cmd ? cmd : s->drv->program);
	free(cmd);
	clock_gettime(CLOCK_REALTIME, &s->since);
	transition(s, SUP_STARTING, "bridge_started", d);
	if (s->state_err || s->audit_err) {
		/* Nobody could see this bridge: `status` would show a stale
		 * state, `logs` nothing.  Say so instead of connecting. */
		int e = s->state_err ? s->state_err : s->audit_err;
		snprintf(d, sizeof d,
			 "cannot write %s/%s.%s: %s (the state directory must be writable)",
			 o->state_dir, o->name, s->state_err ? "state" : "log", strerror(-e));
		log_error("%s: %s", o->name, d);
		sup_event(s, "bridge_failed", d); /* the audit log may still work */
		notify_ready(s, SUP_READY_FAILED, EXIT_ERROR, d);
		driver_finished(s);
		s->finished = true; /* no on_finished: the start failed */
		return e;
	}
	loop_timer_start(s->loop, &s->tick_timer, TICK_MS, on_tick, s);
	attempt(s);
	return 0;
}

int sup_start(struct sup *s)
{
	if (s->start_called)
		return -EALREADY;
	s->start_called = true;
	enter(s);
	int r = start(s);
	leave(s);
	return r;
}

static void destroy(struct sup *s)
{
	loop_defer_cancel(s->loop, &s->requests);
	loop_defer_cancel(s->loop, &s->report);
	/* Never leave a child behind, however it ends. */
	loop_child_kill_wait(s->loop, &s->child_w);
	loop_child_kill_wait(s->loop, &s->health_w);
	s->child = s->health_pid = 0;
	driver_finished(s);
	int fds[] = {s->out.fd, s->err.fd, s->probe_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (fds[i] >= 0) {
			loop_del_fd(s->loop, fds[i]);
			close(fds[i]);
		}
	}
	if (s->health_fd >= 0)
		close(s->health_fd);
	struct loop_timer *timers[] = {&s->retry_timer,	  &s->kill_timer,	 &s->stable_timer,
				       &s->health_timer,  &s->health_kill_timer, &s->probe_timer,
				       &s->reprobe_timer, &s->tick_timer};
	for (size_t i = 0; i < ARRAY_SIZE(timers); i++)
		loop_timer_stop(s->loop, timers[i]);
	if (s->argv)
		s->drv->free_argv(s->argv);
	if (s->ready_fd >= 0)
		close(s->ready_fd);
	/* The pid file stays: its lock, not its presence, is the liveness. */
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s);
}

void sup_free(struct sup *s)
{
	if (!s)
		return;
	if (s->depth > 0) {
		s->dead = true;
		return;
	}
	destroy(s);
}

/* --- the wrapper for a process that runs one supervisor --- */

struct run {
	struct sup *s;
	int code;
	bool stopping;
};

static void run_finished(struct sup *s, int code, void *data)
{
	struct run *r = data;
	r->code = code;
	loop_stop(sup_loop(s));
}

static void run_signal(struct loop *l, int signo, void *data)
{
	struct run *r = data;
	if (signo == SIGHUP) {
		sup_reconnect(r->s);
	} else if (signo == SIGUSR1) {
		sup_check(r->s);
	} else if (!r->stopping) {
		r->stopping = true;
		log_info("%s: %s received, stopping", sup_name(r->s), strsignal(signo));
		sup_stop(r->s);
	}
}

int sup_run(const struct sup_opts *o, const struct sup_driver *drv)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, 0};
	struct run run = {.code = EXIT_ERROR};
	struct sup_opts so = *o;
	struct loop *l = NULL;
	so.on_finished = run_finished;
	so.data = &run;
	/* A pipe reader (`up`) that went away must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	int r = loop_new(&l);
	if (r == 0)
		r = sup_new(l, &so, drv, &run.s); /* it owns the ready pipe from here */
	if (r == 0 && (r = loop_watch_signals(l, sigs, run_signal, &run)) < 0)
		notify_ready(run.s, SUP_READY_FAILED, EXIT_ERROR, strerror(-r));
	else if (r < 0)
		ready_line(o->ready_fd, SUP_READY_FAILED, EXIT_ERROR, strerror(-r));
	if (r < 0)
		log_error("%s: %s", o->name, strerror(-r));
	if (r == 0 && (r = sup_start(run.s)) == 0 && (r = loop_run(l)) < 0)
		log_error("%s: event loop: %s", o->name, strerror(-r));
	sup_free(run.s);
	loop_free(l);
	return r == -EBUSY ? EXIT_OK : r < 0 ? EXIT_ERROR : run.code;
}
