/* Unit tests for core/supervisor: a fake driver whose child is a real short
 * /bin/sh, on a loop of the test's own.  Transitions, backoff and its reset
 * after the stable period, max_attempts, the uncounted reconnect (SIGHUP's),
 * sup_stop with SIGTERM then SIGKILL, the health check, the driver's hold,
 * the lock, the state file and the audit log; sup_free from the
 * supervisor's own callbacks.  Every wait is on a loop condition with a
 * deadline, never a sleep. */
#include "core/audit.h"
#include "core/errcode.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/supervisor.h"
#include "core/util.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- the fake driver --- */

enum { R_NONE = 0, R_BOOM, R_OTHER, R_NOT_FOUND, R_STALLED };

#define MAX_SCRIPTS 8
#define MAX_SEEN    64

struct fake {
	/* the child: scripts[min(runs, n_scripts - 1)] */
	const char *scripts[MAX_SCRIPTS];
	int n_scripts;
	int built, runs;  /* argvs built; runs started */
	int hold_runs;	  /* build_argv holds (-EAGAIN) this many times first */
	const char *prog; /* argv[0] instead of /bin/sh */
	char *argv[4];
	int starts, finishes;

	/* what the test saw */
	struct sup *s;
	enum sup_state seen[MAX_SEEN];
	int n_seen;
	int finished_code;
	bool finished;
	/* at each move to reconnecting: the state file's attempt and delay */
	json_int_t attempt_at[MAX_SEEN];
	double delay_at[MAX_SEEN];
	int n_reconnecting;
	const char *dir, *name;
	bool free_on_state; /* sup_free from on_state when connected */
	bool free_on_finished;
	pid_t freed_child;
};

static int fake_build(struct sup *s, char ***ret)
{
	struct fake *f = sup_ctx(s);
	/* sup_start builds one argv for the audit line before the first run:
	 * that one and the first run's both get scripts[0]. */
	bool audit = f->built++ == 0;
	if (f->hold_runs > 0) {
		f->hold_runs--;
		sup_hold(s, R_BOOM, "waiting for the test");
		return -EAGAIN;
	}
	if (!audit)
		f->runs++;
	int r = f->runs > 0 ? f->runs - 1 : 0;
	int i = r < f->n_scripts ? r : f->n_scripts - 1;
	f->argv[0] = (char *)(f->prog ? f->prog : "/bin/sh");
	f->argv[1] = "-c";
	f->argv[2] = (char *)f->scripts[i];
	f->argv[3] = NULL;
	*ret = f->argv;
	return 0;
}

static void fake_free_argv(char **argv)
{
	(void)argv; /* the fake's own array */
}

static enum sup_line fake_classify(struct sup *s, const char *line, size_t len, bool is_stdout,
				   int *reason)
{
	if (len == 5 && memcmp(line, "READY", 5) == 0)
		return SUP_LINE_READY;
	if (len > 7 && memcmp(line, "REASON ", 7) == 0) {
		*reason = R_BOOM;
		return SUP_LINE_REASON;
	}
	return SUP_LINE_NOISE;
}

static const char *fake_reason_name(int r)
{
	static const char *const n[] = {"", "boom", "other", "not_found", "stalled"};
	return r >= 0 && r <= R_STALLED ? n[r] : "?";
}

static const char *fake_reason_text(int r)
{
	return r == R_BOOM ? "it went boom" : "it ended";
}

static enum errcode fake_reason_exit(int r)
{
	return r == R_BOOM ? EXIT_AUTH_FAILED : EXIT_PROTOCOL; /* 51, 52 */
}

static void fake_describe(struct sup *s, char *local, size_t ln, char *remote, size_t rn)
{
	snprintf(local, ln, "127.0.0.1:1");
	snprintf(remote, rn, "far:2");
}

static int fake_start(struct sup *s)
{
	((struct fake *)sup_ctx(s))->starts++;
	return 0;
}

static void fake_finished(struct sup *s)
{
	((struct fake *)sup_ctx(s))->finishes++;
}

static const struct sup_driver fake_driver = {
    .kind = "fake",
    .program = "sh",
    .reason_not_found = R_NOT_FOUND,
    .reason_other = R_OTHER,
    .exit_not_found = 53,
    .reason_stalled = R_STALLED,
    .build_argv = fake_build,
    .free_argv = fake_free_argv,
    .classify = fake_classify,
    .reason_name = fake_reason_name,
    .reason_text = fake_reason_text,
    .reason_exit = fake_reason_exit,
    .describe = fake_describe,
    .start = fake_start,
    .finished = fake_finished,
};

/* --- state file, audit log --- */

static json_t *state_of(struct fake *f)
{
	json_t *o = NULL;
	ASSERT_EQ(state_read(f->dir, f->name, &o), 0);
	return o;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "(none)";
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The audit events, space-separated, e.g. "bridge_started bridge_connected". */
static void events_of(struct fake *f, char *buf, size_t n)
{
	json_t *a = NULL;
	buf[0] = '\0';
	ASSERT_EQ(audit_tail(f->dir, f->name, 0, &a), 0);
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e)
	{
		size_t len = strlen(buf);
		snprintf(buf + len, n - len, "%s%s", len ? " " : "", jstr(e, "event"));
	}
	json_decref(a);
}

static int count_events(struct fake *f, const char *ev)
{
	char buf[8192];
	events_of(f, buf, sizeof buf);
	int c = 0;
	for (const char *p = buf; (p = strstr(p, ev)); p += strlen(ev))
		c++;
	return c;
}

/* --- callbacks --- */

static void on_state(struct sup *s, enum sup_state st, void *data)
{
	struct fake *f = data;
	ASSERT(s == f->s);
	ASSERT_EQ(sup_get_state(s), st);
	/* Every transition is reported; seen[] keeps the changes. */
	ASSERT_LT(f->n_seen, MAX_SEEN);
	if (!f->n_seen || f->seen[f->n_seen - 1] != st)
		f->seen[f->n_seen++] = st;
	ASSERT_LT(f->n_reconnecting, MAX_SEEN);
	if (st == SUP_RECONNECTING) {
		/* Written before on_state runs. */
		json_t *o = state_of(f);
		ASSERT_STR_EQ(jstr(o, "state"), "reconnecting");
		f->attempt_at[f->n_reconnecting] = jint(o, "attempt");
		json_t *d = json_object_get(o, "next_retry_seconds");
		f->delay_at[f->n_reconnecting] = d ? json_real_value(d) : -1;
		f->n_reconnecting++;
		json_decref(o);
	}
	if (st == SUP_CONNECTED && f->free_on_state) {
		json_t *o = state_of(f);
		f->freed_child = (pid_t)jint(o, "sh_pid");
		json_decref(o);
		sup_free(s); /* marked: freed when this callback's way in returns */
		f->s = NULL;
	}
}

static void on_finished(struct sup *s, int code, void *data)
{
	struct fake *f = data;
	ASSERT(!f->finished); /* once */
	f->finished = true;
	f->finished_code = code;
	if (f->free_on_finished) {
		sup_free(s);
		f->s = NULL;
	}
}

/* --- running the loop until something happens --- */

struct waiter {
	bool (*cond)(struct fake *);
	struct fake *f;
	bool timed_out;
	struct loop_timer t;
};

static void waiter_check(struct loop *l, void *data)
{
	struct waiter *w = data;
	if (w->cond(w->f))
		loop_stop(l);
}

static void waiter_deadline(struct loop *l, void *data)
{
	struct waiter *w = data;
	w->timed_out = true;
	loop_stop(l);
}

#define run_until(l, cond, f, ms) run_until_(l, cond, #cond, f, ms, __LINE__)

static void run_until_(struct loop *l, bool (*cond)(struct fake *), const char *what,
		       struct fake *f, unsigned ms, int line)
{
	struct waiter w = {.cond = cond, .f = f};
	if (cond(f))
		return;
	loop_set_before_sleep(l, waiter_check, &w);
	loop_timer_start(l, &w.t, ms, waiter_deadline, &w);
	ASSERT_EQ(loop_run(l), 0);
	loop_set_before_sleep(l, NULL, NULL);
	loop_timer_stop(l, &w.t);
	if (w.timed_out && !cond(f))
		TEST_FAIL_("line %d: %s not met within %u ms", line, what, ms);
}

static enum sup_state last(struct fake *f)
{
	return f->n_seen ? f->seen[f->n_seen - 1] : SUP_STOPPED;
}

static bool is_connected(struct fake *f)
{
	return last(f) == SUP_CONNECTED;
}

static bool is_reconnecting(struct fake *f)
{
	return last(f) == SUP_RECONNECTING;
}

static bool is_degraded(struct fake *f)
{
	return last(f) == SUP_DEGRADED;
}

static bool is_finished(struct fake *f)
{
	return f->finished;
}

static bool three_reconnects(struct fake *f)
{
	return f->n_reconnecting >= 3;
}

static bool connected_twice(struct fake *f)
{
	int n = 0;
	for (int i = 0; i < f->n_seen; i++)
		n += f->seen[i] == SUP_CONNECTED;
	return n >= 2;
}

/* --- set-up --- */

struct env {
	struct loop *l;
	char dir[64];
	struct fake f;
	struct sup_opts o;
};

static void env_init(struct env *e, const char *name)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/devbridge-test-sup-XXXXXX");
	ASSERT(mkdtemp(e->dir));
	ASSERT_EQ(loop_new(&e->l), 0);
	e->f.dir = e->dir;
	e->f.name = name;
	e->o = (struct sup_opts){
	    .name = name,
	    .state_dir = e->dir,
	    .actor = "tester",
	    .actor_class = "automation",
	    .ctx = &e->f,
	    .backoff_initial = 0.05,
	    .backoff_max = 10,
	    .stable_s = 30,
	    .ready_fd = -1,
	    .kill_grace_ms = 200,
	    .on_state = on_state,
	    .on_finished = on_finished,
	    .data = &e->f,
	};
}

static void env_start(struct env *e)
{
	ASSERT_EQ(sup_new(e->l, &e->o, &fake_driver, &e->f.s), 0);
	ASSERT_EQ(sup_start(e->f.s), 0);
}

/* Stop (when still running) and free; everything the supervisor made is
 * gone from the loop and the directory is removed. */
static void env_fini(struct env *e)
{
	if (e->f.s && !e->f.finished) {
		sup_stop(e->f.s);
		run_until(e->l, is_finished, &e->f, 5000);
	}
	sup_free(e->f.s);
	e->f.s = NULL;
	loop_free(e->l);
	const char *ext[] = {"pid", "state", "log", "out"};
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		char p[128];
		snprintf(p, sizeof p, "%s/%s.%s", e->dir, e->f.name, ext[i]);
		unlink(p);
	}
	ASSERT_EQ(rmdir(e->dir), 0);
}

static pid_t child_pid(struct fake *f)
{
	json_t *o = state_of(f);
	pid_t pid = (pid_t)jint(o, "sh_pid");
	json_decref(o);
	return pid;
}

static bool gone(pid_t pid)
{
	/* Reaped (not a zombie of ours), so the pid is no child any more. */
	return waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* --- tests --- */

/* starting -> connected; the child exits -> reconnecting with a backoff
 * delay; the next run connects again.  The state file and the ready pipe
 * say so. */
static void test_connect_and_reconnect(void)
{
	struct env e;
	env_init(&e, "web");
	e.f.scripts[0] = "echo READY >&2; sleep 0.3; exit 3";
	e.f.scripts[1] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 2;
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	e.o.ready_fd = p[1];
	env_start(&e);
	ASSERT_EQ(e.f.starts, 1);
	ASSERT_EQ(e.f.seen[0], SUP_STARTING);
	ASSERT_EQ(sup_get_state(e.f.s), SUP_STARTING);
	ASSERT(sup_running(e.f.s));
	run_until(e.l, is_connected, &e.f, 5000);

	char line[256] = "";
	ASSERT_GT(read(p[0], line, sizeof line - 1), 0);
	ASSERT_STR_EQ(line, "connected 0 -\n");
	close(p[0]);

	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "name"), "web");
	ASSERT_STR_EQ(jstr(o, "kind"), "fake");
	ASSERT_STR_EQ(jstr(o, "state"), "connected");
	ASSERT_STR_EQ(jstr(o, "local"), "127.0.0.1:1");
	ASSERT_STR_EQ(jstr(o, "remote"), "far:2");
	ASSERT_STR_EQ(jstr(o, "actor"), "tester");
	ASSERT_STR_EQ(jstr(o, "last_event"), "bridge_connected");
	ASSERT_EQ(jint(o, "pid"), getpid());
	ASSERT_GT(jint(o, "sh_pid"), 0);
	ASSERT_EQ(jint(o, "reconnects"), 0);
	json_decref(o);

	run_until(e.l, is_reconnecting, &e.f, 5000);
	ASSERT_EQ(e.f.attempt_at[0], 1);
	ASSERT(e.f.delay_at[0] >= 0.05 && e.f.delay_at[0] <= 0.06);
	run_until(e.l, connected_twice, &e.f, 5000);
	o = state_of(&e.f);
	ASSERT_EQ(jint(o, "reconnects"), 1);
	json_decref(o);

	static const enum sup_state want[] = {SUP_STARTING, SUP_CONNECTED, SUP_RECONNECTING,
					      SUP_CONNECTED};
	ASSERT_EQ(e.f.n_seen, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		ASSERT_EQ(e.f.seen[i], want[i]);
	char ev[4096];
	events_of(&e.f, ev, sizeof ev);
	ASSERT_STR_EQ(ev, "bridge_started bridge_connected bridge_disconnected "
			  "bridge_reconnecting bridge_connected");
	ASSERT_EQ(e.f.finishes, 0);
	env_fini(&e);
	ASSERT_EQ(e.f.finishes, 1);
	ASSERT_EQ(e.f.finished_code, 0);
}

/* Backoff doubles with each failed attempt and is reset, with the attempt
 * count, once a connection lasted stable_s; without that it goes on. */
static void backoff_case(double stable_s, json_int_t want_attempt, double lo, double hi)
{
	struct env e;
	env_init(&e, "api");
	e.o.stable_s = stable_s;
	e.f.scripts[0] = "exit 3";
	e.f.scripts[1] = "exit 3";
	e.f.scripts[2] = "echo READY >&2; sleep 1; exit 3";
	e.f.scripts[3] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 4;
	env_start(&e);
	run_until(e.l, three_reconnects, &e.f, 10000);
	ASSERT_EQ(e.f.attempt_at[0], 1);
	ASSERT_EQ(e.f.attempt_at[1], 2);
	ASSERT(e.f.delay_at[0] >= 0.05 && e.f.delay_at[0] <= 0.06);
	ASSERT(e.f.delay_at[1] >= 0.08 && e.f.delay_at[1] <= 0.12);
	ASSERT_EQ(e.f.attempt_at[2], want_attempt);
	if (!(e.f.delay_at[2] >= lo && e.f.delay_at[2] <= hi))
		TEST_FAIL_("stable %.1f: delay %.3f not in [%.3f, %.3f]", stable_s, e.f.delay_at[2],
			   lo, hi);
	env_fini(&e);
}

static void test_backoff_reset_after_stable(void)
{
	/* stable 0.1 s: the third run (up 1 s) resets it: attempt 1, ~initial */
	backoff_case(0.1, 1, 0.05, 0.06);
	/* stable 30 s: it does not: attempt 3, ~4 x initial */
	backoff_case(30, 3, 0.16, 0.24);
}

/* max_attempts failed runs in a row: failed, with the driver's exit code
 * for the reason the runs gave; the ready pipe said "retrying" first. */
static void test_max_attempts(void)
{
	struct env e;
	env_init(&e, "db");
	e.o.max_attempts = 3;
	e.f.scripts[0] = "echo 'REASON it broke' >&2; exit 3";
	e.f.n_scripts = 1;
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	e.o.ready_fd = p[1];
	env_start(&e);
	run_until(e.l, is_finished, &e.f, 10000);
	ASSERT_EQ(e.f.finished_code, 51);
	ASSERT_EQ(e.f.runs, 3);
	ASSERT_EQ(last(&e.f), SUP_FAILED);
	ASSERT_EQ(sup_get_state(e.f.s), SUP_FAILED);
	ASSERT(!sup_running(e.f.s));
	ASSERT_EQ(e.f.finishes, 1);

	char line[512] = "";
	ASSERT_GT(read(p[0], line, sizeof line - 1), 0);
	ASSERT_STR_CONTAINS(line, "retrying 51 it went boom: REASON it broke");
	close(p[0]);

	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "state"), "failed");
	ASSERT_STR_EQ(jstr(o, "reason"), "boom");
	ASSERT_STR_CONTAINS(jstr(o, "detail"), "gave up after 3 attempts");
	ASSERT(json_is_null(json_object_get(o, "sh_pid")));
	json_decref(o);
	char ev[4096];
	events_of(&e.f, ev, sizeof ev);
	ASSERT_STR_EQ(ev, "bridge_started bridge_reconnecting bridge_reconnecting bridge_failed");
	/* Finished: a stop now does nothing. */
	sup_stop(e.f.s);
	env_fini(&e);
}

/* A program that cannot run fails at once, with the driver's code. */
static void test_program_missing(void)
{
	struct env e;
	env_init(&e, "nope");
	e.f.prog = "/nonexistent/devbridge-test-program";
	e.f.scripts[0] = "exit 0";
	e.f.n_scripts = 1;
	env_start(&e);
	/* Decided inside sup_start; on_finished still comes from the loop. */
	ASSERT_EQ(last(&e.f), SUP_FAILED);
	ASSERT(!e.f.finished);
	run_until(e.l, is_finished, &e.f, 5000);
	ASSERT_EQ(e.f.finished_code, 53);
	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "reason"), "not_found");
	ASSERT_STR_CONTAINS(jstr(o, "detail"), "cannot run sh");
	json_decref(o);
	char ev[1024];
	events_of(&e.f, ev, sizeof ev);
	ASSERT_STR_EQ(ev, "bridge_started bridge_failed");
	env_fini(&e);
}

/* sup_reconnect (SIGHUP's): the child is stopped and the next run starts
 * at once, counted as a reconnect but not as a failed attempt; while
 * waiting for a retry it runs at once. */
static void test_reconnect_now(void)
{
	struct env e;
	env_init(&e, "hup");
	e.f.scripts[0] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	env_start(&e);
	run_until(e.l, is_connected, &e.f, 5000);
	pid_t first = child_pid(&e.f);
	sup_reconnect(e.f.s);
	/* Never from inside the call. */
	ASSERT_EQ(last(&e.f), SUP_CONNECTED);
	run_until(e.l, connected_twice, &e.f, 5000);
	pid_t second = child_pid(&e.f);
	ASSERT_NE(second, first);
	ASSERT(gone(first));
	json_t *o = state_of(&e.f);
	ASSERT_EQ(jint(o, "attempt"), 0);
	ASSERT_EQ(jint(o, "reconnects"), 1);
	json_decref(o);
	ASSERT_EQ(e.f.attempt_at[0], 0);
	char ev[4096];
	events_of(&e.f, ev, sizeof ev);
	ASSERT_STR_CONTAINS(ev, "bridge_connected bridge_disconnected bridge_reconnecting "
				"bridge_connected");
	env_fini(&e);

	/* Waiting 30 s for a retry: sup_reconnect runs it now. */
	env_init(&e, "hup2");
	e.o.backoff_initial = 30;
	e.o.backoff_max = 60;
	e.f.scripts[0] = "exit 3";
	e.f.scripts[1] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 2;
	env_start(&e);
	run_until(e.l, is_reconnecting, &e.f, 5000);
	ASSERT(e.f.delay_at[0] >= 30);
	sup_reconnect(e.f.s);
	run_until(e.l, is_connected, &e.f, 5000);
	events_of(&e.f, ev, sizeof ev);
	ASSERT_STR_CONTAINS(ev, "bridge_reconnecting bridge_reconnecting bridge_connected");
	json_t *a = NULL;
	ASSERT_EQ(audit_tail(e.dir, "hup2", 3, &a), 0);
	ASSERT_STR_EQ(jstr(json_array_get(a, 1), "detail"), "SIGHUP: retrying now");
	json_decref(a);
	env_fini(&e);
}

/* sup_stop: SIGTERM, and SIGKILL after the grace for a child that ignores
 * SIGTERM; then stopped, bridge_stopped, on_finished(0), no child left. */
static void test_stop_escalates(void)
{
	struct env e;
	env_init(&e, "stubborn");
	e.f.scripts[0] = "trap '' TERM; echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	env_start(&e);
	run_until(e.l, is_connected, &e.f, 5000);
	pid_t pid = child_pid(&e.f);
	uint64_t t0 = now_mono_ms();
	sup_stop(e.f.s);
	sup_stop(e.f.s); /* once is enough */
	run_until(e.l, is_finished, &e.f, 5000);
	uint64_t took = now_mono_ms() - t0;
	ASSERT_GE(took, 200); /* it ignored SIGTERM for the whole grace */
	ASSERT_LT(took, 3000);
	ASSERT_EQ(e.f.finished_code, 0);
	ASSERT_EQ(last(&e.f), SUP_STOPPED);
	ASSERT(gone(pid));
	ASSERT_EQ(e.f.finishes, 1);
	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "state"), "stopped");
	ASSERT(json_is_null(json_object_get(o, "sh_pid")));
	json_decref(o);
	ASSERT_EQ(count_events(&e.f, "bridge_stopped"), 1);
	env_fini(&e);
}

/* A TCP health check against a listener of the test: ok when connected,
 * degraded once it is gone (sup_check, SIGUSR1's), connected again. */
static int listen_on(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(fd, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ASSERT_EQ(listen(fd, 8), 0);
	socklen_t len = sizeof a;
	ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static bool health_ok(struct fake *f)
{
	json_t *o = state_of(f);
	bool ok = strcmp(jstr(o, "health"), "ok") == 0;
	json_decref(o);
	return ok;
}

static bool recovered(struct fake *f)
{
	return f->n_seen >= 4 && last(f) == SUP_CONNECTED;
}

static void test_health_check(void)
{
	struct env e;
	env_init(&e, "healthy");
	uint16_t port = 0;
	int lfd = listen_on(&port);
	struct cfg_health h = {.kind = HEALTH_TCP,
			       .tcp_host = "127.0.0.1",
			       .tcp_port = port,
			       .interval_s = 3600,
			       .timeout_s = 2};
	e.o.health = &h;
	e.f.scripts[0] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	env_start(&e);
	run_until(e.l, is_connected, &e.f, 5000);
	/* The first check runs at once on connecting. */
	run_until(e.l, health_ok, &e.f, 5000);
	close(lfd);
	sup_check(e.f.s);
	run_until(e.l, is_degraded, &e.f, 5000);
	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "health"), "failing");
	ASSERT_STR_EQ(jstr(o, "last_event"), "health_check_failed");
	json_decref(o);
	lfd = listen_on(&port);
	sup_check(e.f.s);
	run_until(e.l, recovered, &e.f, 5000);
	ASSERT_EQ(count_events(&e.f, "health_check_recovered"), 1);
	close(lfd);
	env_fini(&e);
}

/* The driver holds (nothing to run yet): no child, no attempt counted,
 * bridge_waiting; sup_renew runs it. */
static bool has_run(struct fake *f)
{
	return f->runs > 0;
}

static void test_driver_hold(void)
{
	struct env e;
	env_init(&e, "held");
	e.f.hold_runs = 2; /* the audit's first argv, then the first attempt */
	e.f.scripts[0] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	env_start(&e);
	ASSERT(!sup_running(e.f.s));
	json_t *o = state_of(&e.f);
	ASSERT_STR_EQ(jstr(o, "state"), "starting");
	ASSERT_STR_EQ(jstr(o, "reason"), "boom");
	ASSERT_STR_EQ(jstr(o, "last_event"), "bridge_waiting");
	json_decref(o);
	sup_renew(e.f.s, R_NONE, "the test says go");
	run_until(e.l, has_run, &e.f, 5000);
	run_until(e.l, is_connected, &e.f, 5000);
	o = state_of(&e.f);
	ASSERT_EQ(jint(o, "attempt"), 0);
	json_decref(o);
	env_fini(&e);
}

/* Another process holds NAME.pid: -EBUSY, "busy PID" on the ready pipe,
 * and nothing started.  (A record lock is per process: the holder must be
 * another one.) */
static void test_lock_busy(void)
{
	struct env e;
	env_init(&e, "twice");
	e.f.scripts[0] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	int go[2], hold[2];
	ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
	ASSERT_EQ(pipe2(hold, O_CLOEXEC), 0);
	pid_t holder = fork();
	ASSERT_GE(holder, 0);
	if (holder == 0) {
		close(hold[1]);
		pid_t h = 0;
		char c = state_lock(e.dir, "twice", &h) >= 0 ? 'y' : 'n';
		(void)!write(go[1], &c, 1);
		(void)!read(hold[0], &c, 1); /* until the parent closes it */
		_exit(0);
	}
	close(hold[0]);
	char c = 0;
	ASSERT_EQ(read(go[0], &c, 1), 1);
	ASSERT_EQ(c, 'y');
	close(go[0]);
	close(go[1]);

	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	e.o.ready_fd = p[1];
	ASSERT_EQ(sup_new(e.l, &e.o, &fake_driver, &e.f.s), 0);
	ASSERT_EQ(sup_start(e.f.s), -EBUSY);
	ASSERT_EQ(sup_start(e.f.s), -EALREADY);
	char line[64] = "", want[64];
	ASSERT_GT(read(p[0], line, sizeof line - 1), 0);
	snprintf(want, sizeof want, "busy 0 %ld\n", (long)holder);
	ASSERT_STR_EQ(line, want);
	close(p[0]);
	ASSERT_EQ(e.f.starts, 0);
	ASSERT_EQ(e.f.runs, 0);
	sup_stop(e.f.s); /* never started: nothing */
	e.f.finished = true;
	close(hold[1]);
	ASSERT_EQ(waitpid(holder, NULL, 0), holder);
	env_fini(&e);
}

/* sup_free from on_state (mid-transition) and from on_finished: marked,
 * freed when the callback's way in returns (ASan would see a use after
 * free), and the child goes with it. */
static void test_free_from_callbacks(void)
{
	struct env e;
	env_init(&e, "selffree");
	e.f.free_on_state = true;
	e.f.scripts[0] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 1;
	env_start(&e);
	run_until(e.l, is_connected, &e.f, 5000);
	ASSERT(e.f.s == NULL);
	ASSERT_EQ(e.f.finishes, 1); /* the driver released what it had */
	ASSERT(!e.f.finished);	    /* no on_finished for a free */
	/* The child was killed and reaped with it. */
	ASSERT_GT(e.f.freed_child, 0);
	ASSERT(gone(e.f.freed_child));
	env_fini(&e);

	env_init(&e, "selffree2");
	e.f.free_on_finished = true;
	e.f.scripts[0] = "exit 3";
	e.f.n_scripts = 1;
	e.o.max_attempts = 1;
	env_start(&e);
	run_until(e.l, is_finished, &e.f, 5000);
	ASSERT(e.f.s == NULL);
	ASSERT_EQ(e.f.finished_code, 52);
	env_fini(&e);
}

/* Two supervisors on one loop, and a child of the process that is no
 * supervisor's: they reap only their own, so the test reaps it itself. */
static void test_shared_loop_leaves_other_children(void)
{
	struct env e;
	env_init(&e, "one");
	e.f.scripts[0] = "echo READY >&2; sleep 0.2; exit 3";
	e.f.scripts[1] = "echo READY >&2; exec sleep 30";
	e.f.n_scripts = 2;
	char *argv[] = {"/bin/sh", "-c", "sleep 0.1; exit 7", NULL};
	struct spawn_opts so = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	pid_t other;
	ASSERT_EQ(spawn_process(&so, &other), 0);
	env_start(&e);

	struct fake f2 = {.dir = e.dir, .name = "two"};
	f2.scripts[0] = "echo READY >&2; exec sleep 30";
	f2.n_scripts = 1;
	struct sup_opts o2 = e.o;
	o2.name = "two";
	o2.ctx = o2.data = &f2;
	ASSERT_EQ(sup_new(e.l, &o2, &fake_driver, &f2.s), 0);
	ASSERT_EQ(sup_start(f2.s), 0);

	run_until(e.l, connected_twice, &e.f, 5000);
	run_until(e.l, is_connected, &f2, 5000);
	/* Both supervisors saw child exits; the other child is still ours. */
	int st = 0;
	ASSERT_EQ(waitpid(other, &st, 0), other);
	ASSERT(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 7);

	sup_stop(f2.s);
	run_until(e.l, is_finished, &f2, 5000);
	sup_free(f2.s);
	char p[128];
	const char *ext[] = {"pid", "state", "log"};
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		snprintf(p, sizeof p, "%s/two.%s", e.dir, ext[i]);
		unlink(p);
	}
	env_fini(&e);
}

int main(void)
{
	/* Quiet: the supervisor's log lines are not the test's output. */
	log_set_level(getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
	signal(SIGPIPE, SIG_IGN);
	RUN(test_connect_and_reconnect);
	RUN(test_backoff_reset_after_stable);
	RUN(test_max_attempts);
	RUN(test_program_missing);
	RUN(test_reconnect_now);
	RUN(test_stop_escalates);
	RUN(test_health_check);
	RUN(test_driver_hold);
	RUN(test_lock_busy);
	RUN(test_free_from_callbacks);
	RUN(test_shared_loop_leaves_other_children);
	return 0;
}
