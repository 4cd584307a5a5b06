/* portforward.c - see portforward.h. */
#include "k8s/portforward.h"
#include "core/errcode.h"
#include "core/log.h"
#include "core/util.h"
#include "core/backoff.h"
#include "core/loop.h"
#include "core/spawn.h"
#include "k8s/endpoints.h"
#include "k8s/kubectl.h"
#include "k8s/session.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- what kubectl says --- */

static bool has(const char *line, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; n <= len && i + n <= len; i++)
		if (memcmp(line + i, needle, n) == 0)
			return true;
	return false;
}

static bool starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(line, prefix, n) == 0;
}

/* "Forwarding from 127.0.0.1:9000 -> 8080" or "Forwarding from [::1]:9000 -> 8080". */
static bool forwarding_port(const char *line, size_t len, int *port)
{
	static const char pre[] = "Forwarding from ";
	if (!starts(line, len, pre))
		return false;
	size_t i = sizeof pre - 1, colon = 0;
	for (; i < len && line[i] != ' '; i++)
		if (line[i] == ':')
			colon = i;
	if (!colon || i + 4 > len || memcmp(line + i, " -> ", 4) != 0)
		return false;
	long p = 0;
	size_t k = colon + 1;
	if (k == i)
		return false;
	for (; k < i; k++) {
		if (line[k] < '0' || line[k] > '9')
			return false;
		p = p * 10 + (line[k] - '0');
		if (p > 65535)
			return false;
	}
	if (p < 1)
		return false;
	*port = (int)p;
	return true;
}

enum sup_line k8s_pf_classify(const char *line, size_t len, bool is_stdout, int *ret_reason,
			      int *ret_port)
{
	int port;
	*ret_reason = K8S_R_NONE;
	if (is_stdout) {
		if (forwarding_port(line, len, &port)) {
			if (ret_port)
				*ret_port = port;
			return SUP_LINE_READY;
		}
		return SUP_LINE_NOISE; /* "Handling connection for 9000" */
	}
	/* stderr.  The most specific first: a refused pod port also says
	 * "connection refused", like an unreachable API server. */
	int r = K8S_R_NONE;
	/* One client connection that went wrong is not the forward's
	 * failure ("error copying from local connection to remote stream:
	 * ... connection reset by peer"). */
	if (has(line, len, "error copying from"))
		return SUP_LINE_MESSAGE;
	if (has(line, len, "an error occurred forwarding") ||
	    has(line, len, "error forwarding port"))
		r = K8S_R_TARGET;
	else if (has(line, len, "Unable to listen on port") ||
		 has(line, len, "unable to listen on any of the requested ports") ||
		 has(line, len, "address already in use"))
		r = K8S_R_PORT_TAKEN;
	else if (has(line, len, "lost connection to pod"))
		r = K8S_R_LOST;
	else if (has(line, len, "orbidden"))
		r = K8S_R_FORBIDDEN;
	else if (has(line, len, "Unauthorized") || has(line, len, "must be logged in"))
		r = K8S_R_UNAUTHORIZED;
	else if (has(line, len, "pod is not running") ||
		 has(line, len, "timed out waiting for the condition") ||
		 has(line, len, "no pods") || has(line, len, "pods not found"))
		r = K8S_R_NO_POD;
	else if (has(line, len, "NotFound") || has(line, len, "not found") ||
		 has(line, len, "does not have a service port") ||
		 has(line, len, "does not have a named port"))
		r = K8S_R_NOT_FOUND;
	else if (has(line, len, "error dialing backend"))
		r = K8S_R_BACKEND;
	else if (has(line, len, "Unable to connect to the server") ||
		 has(line, len, "connection refused") || has(line, len, "no such host") ||
		 has(line, len, "i/o timeout") || has(line, len, "TLS handshake timeout"))
		r = K8S_R_UNREACHABLE;
	if (r) {
		*ret_reason = r;
		return SUP_LINE_REASON;
	}
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return SUP_LINE_MESSAGE;
	return SUP_LINE_NOISE;
}

static const struct {
	const char *name, *text;
} reasons[] = {
    [K8S_R_NONE] = {"", ""},
    [K8S_R_PORT_TAKEN] = {"local_port_in_use",
			  "the local port cannot be bound (in use, or not permitted)"},
    [K8S_R_TARGET] = {"target_refused", "the pod refused the connection to its port"},
    [K8S_R_LOST] = {"lost_connection", "lost the connection to the pod"},
    [K8S_R_NOT_FOUND] = {"not_found", "the service or its port was not found"},
    [K8S_R_NO_POD] = {"no_running_pod", "no running pod behind the service"},
    [K8S_R_FORBIDDEN] = {"forbidden", "the cluster refused (RBAC)"},
    [K8S_R_UNAUTHORIZED] = {"unauthorized", "the cluster refused the credentials"},
    [K8S_R_UNREACHABLE] = {"unreachable", "the API server is unreachable"},
    [K8S_R_BACKEND] = {"node_unreachable", "the API server could not reach the pod's node"},
    [K8S_R_NOT_FOUND_PROG] = {"kubectl_not_found", "kubectl could not be run"},
    [K8S_R_OTHER] = {"port_forward_failed", "kubectl port-forward ended"},
    [K8S_R_NO_READY_POD] = {"no_ready_pod", "no Ready pod behind the service"},
    [K8S_R_POD_GONE] = {"pod_gone",
			"the pod left the service's endpoints (deleted, not Ready, or no longer "
			"selected)"},
};

const char *k8s_reason_name(int r)
{
	return r >= 0 && (size_t)r < ARRAY_SIZE(reasons) ? reasons[r].name : "unknown";
}

const char *k8s_reason_text(int r)
{
	return r >= 0 && (size_t)r < ARRAY_SIZE(reasons) ? reasons[r].text : "unknown";
}

/* --- the kubectl command lines --- */

#define ARGV_MAX 24

/* kubectl, the cluster flags, --namespace NS: the common start. */
static int argv_start(const struct k8s_fwd *f, char **v, size_t *n)
{
	const char *kc = kctl_kubeconfig_flag(f->kubeconfig);
	const char *words[] = {f->kubectl ? f->kubectl : "kubectl",
			       kc ? "--kubeconfig" : NULL,
			       kc,
			       f->context ? "--context" : NULL,
			       f->context,
			       "--namespace",
			       f->namespace};
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		if (!words[i])
			continue;
		if (!(v[(*n)++] = strdup(words[i])))
			return -ENOMEM;
	}
	return 0;
}

static int argv_add(char **v, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int argv_add(char **v, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&v[*n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		v[*n] = NULL;
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

int k8s_pf_argv(const struct k8s_fwd *f, char ***ret)
{
	char **v = calloc(ARGV_MAX, sizeof *v);
	size_t n = 0;
	if (!v)
		return -ENOMEM;
	int r = argv_start(f, v, &n);
	if (r == 0)
		r = argv_add(v, &n, "port-forward");
	if (r == 0)
		r = argv_add(v, &n, "--address");
	if (r == 0)
		r = argv_add(v, &n, "127.0.0.1");
	if (r == 0)
		r = f->pod[0] ? argv_add(v, &n, "pod/%s", f->pod)
			      : argv_add(v, &n, "svc/%s", f->service);
	int to = f->pod[0] ? f->target_port : f->remote_port;
	if (r == 0)
		r = f->local_port ? argv_add(v, &n, "%d:%d", f->local_port, to)
				  : argv_add(v, &n, ":%d", to);
	if (r < 0) {
		k8s_pf_argv_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

int k8s_pf_watch_argv(const struct k8s_fwd *f, char ***ret)
{
	char **v = calloc(ARGV_MAX, sizeof *v);
	size_t n = 0;
	if (!v)
		return -ENOMEM;
	static const char *const rest[] = {
	    "get", "endpoints", NULL, "--watch", "--output-watch-events", "-o", "json"};
	int r = argv_start(f, v, &n);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(rest); i++)
		r = argv_add(v, &n, "%s", rest[i] ? rest[i] : f->service);
	if (r < 0) {
		k8s_pf_argv_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

void k8s_pf_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* --- the driver ---
 *
 * Besides the supervisor's child (kubectl port-forward), the driver runs
 * its own: the endpoints watch.  Its stdout is a stream of watch events
 * (k8s_json_next splits it, k8s_endpoints_view judges each); every event
 * is compared with the pod in use.  The watch is restarted with backoff
 * when it ends (API servers end watches after a while). */

#define WATCH_BUF_MAX	     (1u << 20) /* one event larger than this: start over */
#define WATCH_STABLE_MS	     30000	/* a watch that lived this long resets the backoff */
#define WATCH_FAILS_MAX	     3		/* watches without a verdict before runs go to svc/ */
#define SESSION_RETRY_MIN_MS 20
#define SESSION_RETRY_MAX_MS 500

struct k8s_sup {
	struct k8s_fwd *f;
	const char *state_dir;
	bool done; /* finished: nothing more is started */

	/* the endpoints watch */
	pid_t w_pid;
	struct loop_child w_child;
	int w_out, w_err;
	char *w_buf;
	size_t w_len;
	char w_line[512];
	size_t w_line_len;
	char w_msg[512]; /* the watch's last stderr line */
	uint64_t w_started_ms;
	unsigned w_events; /* verdicts from this watch */
	unsigned w_fails;  /* watches in a row that ended without one */
	struct backoff w_bo;
	struct loop_timer w_timer;
	/* what a watch said last: kept while it is restarted, dropped when
	 * none can be had (see watch_down) */
	bool have_view;
	struct k8s_ep_view view;
	/* the last build: held (nothing run), or the pod it used */
	bool held;
	char run_pod[254];
	int run_port;

	/* session files: a rewrite that found the lock taken */
	struct loop_timer sess_timer;
	unsigned sess_delay_ms;
};

static struct k8s_sup *ksup(struct sup *s)
{
	return sup_ctx(s);
}

static struct k8s_fwd *fwd(struct sup *s)
{
	return ksup(s)->f;
}

static bool following(const struct k8s_sup *k)
{
	return k->f->port_name != NULL;
}

static int build_argv(struct sup *s, char ***ret)
{
	struct k8s_sup *k = ksup(s);
	struct k8s_fwd *f = k->f;
	char d[600];
	k->held = false;
	f->pod[0] = '\0';
	f->target_port = 0;
	if (following(k) && k->have_view) {
		const struct k8s_ep_view *v = &k->view;
		if (v->deleted) {
			snprintf(d, sizeof d, "service %s/%s was deleted", f->namespace,
				 f->service);
			sup_hold(s, K8S_R_NOT_FOUND, d);
		} else if (v->pod[0]) {
			snprintf(f->pod, sizeof f->pod, "%s", v->pod);
			f->target_port = v->port;
		} else if (v->no_port) {
			snprintf(d, sizeof d, "the endpoints of svc/%s have no port%s%s%s",
				 f->service, *f->port_name ? " named '" : "", f->port_name,
				 *f->port_name ? "'" : "");
			sup_hold(s, K8S_R_NOT_FOUND, d);
		} else if (v->not_ready) {
			snprintf(d, sizeof d,
				 "waiting for a Ready pod behind svc/%s (%u pod%s not Ready)",
				 f->service, v->not_ready, v->not_ready == 1 ? "" : "s");
			sup_hold(s, K8S_R_NO_READY_POD, d);
		} else {
			snprintf(d, sizeof d,
				 "waiting for a Ready pod behind svc/%s (its selector matches no "
				 "running pod)",
				 f->service);
			sup_hold(s, K8S_R_NO_READY_POD, d);
		}
		if (!f->pod[0]) {
			k->held = true;
			return -EAGAIN;
		}
	} else if (following(k) && k->w_pid > 0) {
		/* The watch runs but has not spoken yet: its first event
		 * comes within a moment. */
		snprintf(d, sizeof d, "waiting for the endpoints of svc/%s", f->service);
		sup_hold(s, K8S_R_NONE, d);
		k->held = true;
		return -EAGAIN;
	}
	/* Else svc/: not following, or the endpoints cannot be read now. */
	snprintf(k->run_pod, sizeof k->run_pod, "%s", f->pod);
	k->run_port = f->target_port;
	return k8s_pf_argv(f, ret);
}

/* A new verdict from the watch: renew a forward whose pod left, run a
 * waiting one whose pod has come. */
static void on_view(struct sup *s, const struct k8s_ep_view *v)
{
	struct k8s_sup *k = ksup(s);
	struct k8s_fwd *f = k->f;
	bool first = !k->have_view;
	struct k8s_ep_view prev = k->view;
	k->view = *v;
	k->have_view = true;
	char why[700];
	if (sup_running(s)) {
		if (!k->run_pod[0]) {
			/* svc/ while the endpoints were unreadable: its pod is
			 * unknown, so move to one that is known to be Ready. */
			if (first && v->pod[0]) {
				snprintf(why, sizeof why,
					 "following the endpoints of svc/%s again: pod %s",
					 f->service, v->pod);
				sup_renew(s, K8S_R_NONE, why);
			}
			return;
		}
		if (strcmp(v->pod, k->run_pod) == 0 && v->port == k->run_port)
			return;
		if (v->deleted)
			snprintf(why, sizeof why, "service %s/%s was deleted", f->namespace,
				 f->service);
		else if (v->pod[0])
			snprintf(why, sizeof why, "pod %s left the endpoints of svc/%s; now pod %s",
				 k->run_pod, f->service, v->pod);
		else
			snprintf(why, sizeof why,
				 "pod %s left the endpoints of svc/%s (deleted, not Ready, or no "
				 "longer selected); no Ready pod left",
				 k->run_pod, f->service);
		sup_renew(s, v->deleted ? K8S_R_NOT_FOUND : K8S_R_POD_GONE, why);
		return;
	}
	/* Not running: waiting for the driver, or for a retry. */
	if (!v->pod[0]) {
		/* Still nothing to run; a wait whose reason changed says so. */
		if (k->held && (first || v->deleted != prev.deleted || v->no_port != prev.no_port ||
				v->not_ready != prev.not_ready)) {
			snprintf(why, sizeof why, "the endpoints of svc/%s changed", f->service);
			sup_renew(s, K8S_R_NONE, why);
		}
		return;
	}
	if (k->held || strcmp(v->pod, k->run_pod) != 0 || v->port != k->run_port) {
		snprintf(why, sizeof why, "pod %s is Ready behind svc/%s", v->pod, f->service);
		sup_renew(s, K8S_R_NONE, why);
	}
}

static void watch_consume(struct sup *s)
{
	struct k8s_sup *k = ksup(s);
	size_t off = 0;
	for (;;) {
		size_t start = 0;
		ssize_t n = k8s_json_next(k->w_buf + off, k->w_len - off, &start);
		if (n == -2)
			break;
		if (n == -1) {
			/* Not a JSON stream: drop it all; the next event
			 * starts clean. */
			log_warn("%s: endpoints watch: unreadable output, skipped", sup_name(s));
			off = k->w_len;
			break;
		}
		struct k8s_ep_view v;
		if (k8s_endpoints_view(k->w_buf + off + start, (size_t)n - start, k->f->port_name,
				       k->run_pod[0] ? k->run_pod : NULL, &v) == 0) {
			k->w_events++;
			on_view(s, &v);
		} else
			log_info("%s: endpoints watch: an event that is not Endpoints, skipped",
				 sup_name(s));
		off += (size_t)n;
	}
	memmove(k->w_buf, k->w_buf + off, k->w_len - off);
	k->w_len -= off;
	if (k->w_len >= WATCH_BUF_MAX) {
		log_warn("%s: endpoints watch: an event over %u bytes, skipped", sup_name(s),
			 WATCH_BUF_MAX);
		k->w_len = 0;
	}
}

static void watch_close_fd(struct sup *s, int *fd)
{
	if (*fd < 0)
		return;
	loop_del_fd(sup_loop(s), *fd);
	close(*fd);
	*fd = -1;
}

static void on_watch_out(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	struct k8s_sup *k = ksup(s);
	for (;;) {
		if (k->w_len == WATCH_BUF_MAX)
			watch_consume(s);
		ssize_t n = read(fd, k->w_buf + k->w_len, WATCH_BUF_MAX - k->w_len);
		if (n > 0) {
			k->w_len += (size_t)n;
			watch_consume(s);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		watch_close_fd(s, &k->w_out); /* EOF: the exit follows */
		return;
	}
}

static void on_watch_err(struct loop *l, int fd, unsigned events, void *data)
{
	struct sup *s = data;
	struct k8s_sup *k = ksup(s);
	char buf[1024];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			watch_close_fd(s, &k->w_err);
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n' && k->w_line_len < sizeof k->w_line - 1) {
				k->w_line[k->w_line_len++] = buf[i];
				continue;
			}
			if (buf[i] != '\n')
				continue;
			k->w_line[k->w_line_len] = '\0';
			k->w_line_len = 0;
			if (!k->w_line[0])
				continue;
			kctl_message(k->w_line, k->w_msg, sizeof k->w_msg);
			log_info("%s: endpoints watch: %s", sup_name(s), k->w_msg);
		}
	}
}

static void watch_start(struct sup *s);

static void on_watch_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	watch_start(s);
}

/* The watch could not start or has ended.  A watch that worked and ended
 * (API servers end watches after a while) is restarted and its last
 * verdict kept meanwhile; one that cannot give a verdict (never could, or
 * failed WATCH_FAILS_MAX times in a row without one) leaves runs to svc/
 * until it can. */
static void watch_down(struct sup *s, const char *why)
{
	struct k8s_sup *k = ksup(s);
	bool waiting = k->held;
	k->w_fails = k->w_events ? 0 : k->w_fails + 1;
	bool blind = !k->have_view || k->w_fails >= WATCH_FAILS_MAX;
	if (blind)
		k->have_view = false;
	if (k->done)
		return;
	if (now_mono_ms() - k->w_started_ms >= WATCH_STABLE_MS)
		backoff_reset(&k->w_bo);
	double delay = backoff_next(&k->w_bo);
	log_info("%s: endpoints watch ended (%s); again in %.1fs", sup_name(s), why, delay);
	loop_timer_start(sup_loop(s), &k->w_timer, (uint64_t)(delay * 1000), on_watch_timer, s);
	if (waiting && blind) {
		char d[700];
		snprintf(d, sizeof d,
			 "cannot follow the endpoints of svc/%s (%s): forwarding to svc/%s",
			 k->f->service, why, k->f->service);
		sup_renew(s, K8S_R_NONE, d);
	}
}

static void on_watch_exit(struct loop *l, pid_t pid, int status, void *data);

static void watch_start(struct sup *s)
{
	struct k8s_sup *k = ksup(s);
	char **argv = NULL;
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	int r = k8s_pf_watch_argv(k->f, &argv);
	if (r == 0 && pipe2(po, O_CLOEXEC) < 0)
		r = -errno;
	if (r == 0 && pipe2(pe, O_CLOEXEC) < 0)
		r = -errno;
	if (r == 0) {
		struct spawn_opts o = {.argv = argv,
				       .stdin_fd = -1,
				       .stdout_fd = po[1],
				       .stderr_fd = pe[1],
				       .die_with_parent = true,
				       .new_pgroup = true};
		r = spawn_process(&o, &k->w_pid);
		if (r == 0 && (r = loop_child_watch(sup_loop(s), &k->w_child, k->w_pid,
						    on_watch_exit, s)) < 0) {
			kill(-k->w_pid, SIGKILL);
			waitpid(k->w_pid, NULL, 0);
		}
	}
	k8s_pf_argv_free(argv);
	if (po[1] >= 0)
		close(po[1]);
	if (pe[1] >= 0)
		close(pe[1]);
	if (r < 0) {
		if (po[0] >= 0)
			close(po[0]);
		if (pe[0] >= 0)
			close(pe[0]);
		k->w_pid = 0;
		k->w_events = 0;
		char why[128];
		snprintf(why, sizeof why, "cannot run kubectl: %s", strerror(-r));
		k->w_started_ms = now_mono_ms();
		watch_down(s, why);
		return;
	}
	k->w_out = po[0];
	k->w_err = pe[0];
	k->w_events = 0;
	k->w_len = 0;
	k->w_line_len = 0;
	k->w_msg[0] = '\0';
	k->w_started_ms = now_mono_ms();
	fd_set_nonblock(k->w_out, true);
	fd_set_nonblock(k->w_err, true);
	r = loop_add_fd(sup_loop(s), k->w_out, LOOP_READ, on_watch_out, s);
	if (r == 0)
		r = loop_add_fd(sup_loop(s), k->w_err, LOOP_READ, on_watch_err, s);
	if (r < 0) {
		/* A watch whose output cannot be read says nothing: end it,
		 * its exit restarts it with backoff. */
		log_warn("%s: endpoints watch: cannot read kubectl's output: %s", sup_name(s),
			 strerror(-r));
		watch_close_fd(s, &k->w_out);
		watch_close_fd(s, &k->w_err);
		kill(-k->w_pid, SIGKILL);
		return;
	}
	log_debug("%s: endpoints watch: kubectl pid %ld", sup_name(s), (long)k->w_pid);
}

/* The driver is leaving: the watch goes at once, with its whole group
 * (nothing of it stays), and no restart is due. */
static void watch_stop(struct k8s_sup *k, struct sup *s)
{
	if (k->w_pid > 0) {
		kill(-k->w_pid, SIGKILL);
		loop_child_kill_wait(sup_loop(s), &k->w_child);
		k->w_pid = 0;
	}
	watch_close_fd(s, &k->w_out);
	watch_close_fd(s, &k->w_err);
	loop_timer_stop(sup_loop(s), &k->w_timer);
}

static int drv_start(struct sup *s)
{
	struct k8s_sup *k = ksup(s);
	if (!following(k))
		return 0;
	if (!(k->w_buf = malloc(WATCH_BUF_MAX)))
		return -ENOMEM;
	backoff_init(&k->w_bo, 1, 30);
	watch_start(s);
	return 0;
}

static void on_watch_exit(struct loop *l, pid_t pid, int status, void *data)
{
	struct sup *s = data;
	struct k8s_sup *k = ksup(s);
	k->w_pid = 0;
	/* What it still wrote comes first. */
	if (k->w_out >= 0)
		on_watch_out(sup_loop(s), k->w_out, LOOP_READ, s);
	if (k->w_err >= 0)
		on_watch_err(sup_loop(s), k->w_err, LOOP_READ, s);
	watch_close_fd(s, &k->w_out);
	watch_close_fd(s, &k->w_err);
	char why[600];
	if (k->w_msg[0])
		snprintf(why, sizeof why, "%s", k->w_msg);
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
	watch_down(s, why);
}

static enum sup_line classify(struct sup *s, const char *line, size_t len, bool is_stdout,
			      int *reason)
{
	int port = 0;
	enum sup_line k = k8s_pf_classify(line, len, is_stdout, reason, &port);
	if (k == SUP_LINE_READY && port)
		fwd(s)->local_port = port; /* the one kubectl bound (":PORT" picks) */
	/* kubectl cannot tell a deleted pod from a refused port ("error
	 * forwarding port"): the endpoints can. */
	struct k8s_sup *ks = ksup(s);
	if (k == SUP_LINE_REASON && (*reason == K8S_R_TARGET || *reason == K8S_R_LOST ||
				     *reason == K8S_R_NOT_FOUND || *reason == K8S_R_NO_POD)) {
		if (ks->run_pod[0] && ks->have_view && strcmp(ks->view.pod, ks->run_pod) != 0)
			*reason = K8S_R_POD_GONE;
	}
	return k;
}

static enum errcode reason_exit(int r)
{
	if (r == K8S_R_NOT_FOUND_PROG)
		return EXIT_ERROR;
	return EXIT_K8S_PORT_FORWARD_FAILED;
}

/* kubectl could not bind: ask for the next port, then for any port. */
static bool retry_now(struct sup *s, int reason)
{
	struct k8s_fwd *f = fwd(s);
	if (reason != K8S_R_PORT_TAKEN || f->local_port == 0)
		return false;
	int was = f->local_port;
	f->shifts++;
	int next = f->requested_port + (int)f->shifts;
	f->local_port = f->shifts > K8S_MAX_SHIFTS || next > 65535 ? 0 : next;
	char d[160];
	if (f->local_port)
		snprintf(d, sizeof d, "127.0.0.1:%d is in use; trying %d", was, f->local_port);
	else
		snprintf(d, sizeof d,
			 "127.0.0.1:%d is in use; %u ports tried, asking for any free port", was,
			 f->shifts);
	sup_event(s, "port_shifted", d);
	return true;
}

static int probe_port(struct sup *s)
{
	return fwd(s)->local_port;
}

static void describe(struct sup *s, char *local, size_t ln, char *remote, size_t rn)
{
	const struct k8s_fwd *f = fwd(s);
	if (f->local_port)
		snprintf(local, ln, "127.0.0.1:%d", f->local_port);
	else
		snprintf(local, ln, "127.0.0.1:*");
	snprintf(remote, rn, "%s/svc/%s:%d", f->namespace, f->service, f->remote_port);
}

static void state_extra(struct sup *s, json_t *o)
{
	const struct k8s_fwd *f = fwd(s);
	bool run = sup_running(s) && f->pod[0];
	json_object_set_new(o, "service", json_string(f->service));
	json_object_set_new(o, "namespace", json_string(f->namespace));
	json_object_set_new(o, "remote_port", json_integer(f->remote_port));
	json_object_set_new(o, "local_port", json_integer(f->local_port));
	json_object_set_new(o, "requested_port", json_integer(f->requested_port));
	json_object_set_new(o, "pod", run ? json_string(f->pod) : json_null());
	json_object_set_new(o, "target_port", run ? json_integer(f->target_port) : json_null());
	json_object_set_new(o, "kubeconfig",
			    f->kubeconfig ? json_string(f->kubeconfig) : json_null());
	json_object_set_new(o, "context", f->context ? json_string(f->context) : json_null());
	json_object_set_new(o, "origin", json_string(f->origin ? f->origin : "standalone"));
	json_object_set_new(o, "started_at", json_string(f->started_at));
	json_object_set_new(o, "connected_at",
			    f->connected_at[0] ? json_string(f->connected_at) : json_null());
}

/* Keep session.json and bridge.env true without blocking the loop on
 * their lock: a writer that holds it (another supervisor, connect) is
 * done in milliseconds, so try again shortly. */
static void session_update(struct sup *s);

static void on_session_timer(struct loop *l, void *data)
{
	struct sup *s = data;
	session_update(s);
}

static void session_update(struct sup *s)
{
	struct k8s_sup *k = ksup(s);
	if (loop_timer_active(&k->sess_timer))
		return; /* a retry is due anyway, and will see this change */
	int r = k8s_session_try_write(k->state_dir, sup_name(s));
	if (r == -EWOULDBLOCK) {
		k->sess_delay_ms = k->sess_delay_ms ? k->sess_delay_ms * 2 : SESSION_RETRY_MIN_MS;
		if (k->sess_delay_ms > SESSION_RETRY_MAX_MS)
			k->sess_delay_ms = SESSION_RETRY_MAX_MS;
		loop_timer_start(sup_loop(s), &k->sess_timer, k->sess_delay_ms, on_session_timer,
				 s);
		return;
	}
	k->sess_delay_ms = 0;
	if (r < 0)
		log_error("%s: cannot write the session files: %s", sup_name(s), strerror(-r));
}

/* A reconnect may have moved the local port, and the entry's state is
 * "connected" again. */
static void connected(struct sup *s)
{
	now_iso8601(fwd(s)->connected_at, sizeof fwd(s)->connected_at);
	session_update(s);
}

/* Leaving: the loop stops after this.  The driver's own child and timers
 * go; the session files are rewritten after the loop (k8s_pf_supervise). */
static void finished(struct sup *s)
{
	struct k8s_sup *k = ksup(s);
	k->done = true;
	watch_stop(k, s);
	loop_timer_stop(sup_loop(s), &k->sess_timer);
}

static const struct sup_driver k8s_driver = {
    .kind = "k8s",
    .program = "kubectl",
    .read_stdout = true,
    .reason_not_found = K8S_R_NOT_FOUND_PROG,
    .reason_other = K8S_R_OTHER,
    .exit_not_found = EXIT_ERROR,
    .build_argv = build_argv,
    .free_argv = k8s_pf_argv_free,
    .classify = classify,
    .reason_name = k8s_reason_name,
    .reason_text = k8s_reason_text,
    .reason_exit = reason_exit,
    .retry_now = retry_now,
    .probe_port = probe_port,
    .describe = describe,
    .state_extra = state_extra,
    .connected = connected,
    .finished = finished,
    .start = drv_start,
};

int k8s_pf_supervise(struct k8s_fwd *f, const char *name, const char *state_dir, int max_attempts,
		     unsigned health_interval_s, int ready_fd)
{
	struct k8s_sup k = {.f = f, .state_dir = state_dir, .w_out = -1, .w_err = -1};
	if (!f->started_at[0])
		now_iso8601(f->started_at, sizeof f->started_at);
	const char *user = getenv("USER");
	struct sup_opts o = {
	    .name = name,
	    .state_dir = state_dir,
	    .actor = user && *user ? user : "devbridge",
	    .actor_class = "human",
	    .ctx = &k,
	    .max_attempts = 0,
	    .first_max_attempts = max_attempts,
	    .ready_waits_retries = true,
	    .probe_interval_s = health_interval_s,
	    .backoff_initial = 1,
	    .backoff_max = 30,
	    .stable_s = 30,
	    .ready_fd = ready_fd,
	};
	int code = sup_run(&o, &k8s_driver);
	/* Off the loop now (the watch went in `finished`): the session files
	 * stop advertising this bridge (its lock is released, so it no longer
	 * counts as live). */
	free(k.w_buf);
	int r = k8s_session_write(state_dir, NULL);
	if (r < 0)
		log_error("%s: cannot write the session files: %s", name, strerror(-r));
	return code;
}
