/* agent.c - the intercept agent (agent.h, docs/intercept.md).
 *
 * One loop: listeners on the target ports, the control port and the
 * health port; connections still saying hello (or asking /healthz), each
 * with a 5 s deadline; the Yamux sessions (the current one and any being
 * replaced); one relay per cluster connection, fd <-> stream.  The
 * restore at the end is a few blocking HTTPS calls: the agent is exiting,
 * and nothing else needs the loop by then. */
#include "k8s/agent.h"
#include "k8s/intercept.h"

#include "core/list.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/relay.h"
#include "core/util.h"
#include "core/work.h"
#include "k8s/kapi.h"
#include "k8s/mirror.h"
#include "proto/yamux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_PREFIX	 "DEVBRIDGE-AGENT/1 "
#define CONN_DEADLINE_MS 5000
#define MAX_CONNS	 256 /* hellos and health checks at once */
#define API_TIMEOUT_MS	 10000
#define RESTORE_TRIES	 5
#define PODS_REFRESH_MS	 2000 /* --mode mirror: the Ready original pods, this often */
#define PODS_SOON_MS	 500  /* at the earliest again, when a connection found none */
#define QUERY_MAX	 1024

/* --- pure parts --- */

int agent_parse_hello(const char *buf, size_t len, const char **tok, size_t *tok_len)
{
	size_t plen = sizeof HELLO_PREFIX - 1;
	size_t cmp = len < plen ? len : plen;
	if (memcmp(buf, HELLO_PREFIX, cmp) != 0)
		return -EPROTO;
	const char *nl = memchr(buf, '\n', len < AGENT_HELLO_MAX ? len : AGENT_HELLO_MAX);
	if (!nl)
		return len >= AGENT_HELLO_MAX ? -EPROTO : 0;
	if ((size_t)(nl - buf) < plen)
		return -EPROTO;
	const char *t = buf + plen, *end = nl;
	if (end > t && end[-1] == '\r')
		end--;
	if (end == t || (size_t)(end - t) > AGENT_TOKEN_MAX)
		return -EPROTO;
	for (const char *p = t; p < end; p++)
		if (*p <= ' ' || *p > '~')
			return -EPROTO;
	*tok = t;
	*tok_len = (size_t)(end - t);
	return (int)(nl - buf) + 1;
}

int agent_parse_http_head(const char *buf, size_t len, const char **method, size_t *method_len,
			  const char **path, size_t *path_len)
{
	size_t lim = len < AGENT_HTTP_HEAD_MAX ? len : AGENT_HTTP_HEAD_MAX;
	size_t end = 0;
	for (size_t i = 0; i + 1 < lim; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n') {
			end = i + 2;
			break;
		}
		if (i + 3 < lim && !memcmp(buf + i, "\r\n\r\n", 4)) {
			end = i + 4;
			break;
		}
	}
	if (!end)
		return len >= AGENT_HTTP_HEAD_MAX ? -EPROTO : 0;
	/* METHOD SP PATH SP HTTP/1.x */
	size_t i = 0;
	while (i < end && buf[i] >= 'A' && buf[i] <= 'Z')
		i++;
	if (i == 0 || i > 16 || i >= end || buf[i] != ' ')
		return -EPROTO;
	*method = buf;
	*method_len = i;
	size_t p = ++i;
	while (i < end && buf[i] > ' ' && buf[i] <= '~')
		i++;
	if (i == p || buf[p] != '/' || i >= end || buf[i] != ' ')
		return -EPROTO;
	*path = buf + p;
	*path_len = i - p;
	i++;
	if (end - i < 8 || memcmp(buf + i, "HTTP/1.", 7) != 0)
		return -EPROTO;
	return (int)end;
}

static int parse_u16(const char *s, size_t n, uint16_t *ret)
{
	unsigned v = 0;
	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int agent_parse_port(const char *s, struct agent_port *ret)
{
	const char *colon = strchr(s, ':');
	if (!colon)
		return parse_u16(s, strlen(s), &ret->service) < 0 ? -EINVAL
								  : (ret->target = ret->service, 0);
	if (parse_u16(s, (size_t)(colon - s), &ret->service) < 0 ||
	    parse_u16(colon + 1, strlen(colon + 1), &ret->target) < 0)
		return -EINVAL;
	return 0;
}

int agent_restore_body(const char *service_json, const char *session, char **ret, char *why,
		       size_t why_len)
{
	*ret = NULL;
	json_t *root = json_loads(service_json, JSON_REJECT_DUPLICATES, NULL);
	json_t *back = NULL;
	int rc = -EINVAL;
	if (!json_is_object(root) || !json_is_object(json_object_get(root, "metadata")) ||
	    !json_is_object(json_object_get(root, "spec"))) {
		snprintf(why, why_len, "not a Service object");
		goto out;
	}
	/* the CLI's restore, exactly (k8s/intercept.c) */
	int r = icpt_restored_service(root, session, &back);
	if (r == -ENOENT) {
		const char *sess = json_string_value(json_object_get(
		    json_object_get(json_object_get(root, "metadata"), "annotations"),
		    ICPT_ANN_SESSION));
		if (sess)
			snprintf(why, why_len, "the Service belongs to session %.32s now", sess);
		else
			snprintf(why, why_len, "the Service carries no session annotation");
		rc = 1;
	} else if (r == -EINVAL) {
		snprintf(why, why_len, "annotation %s is not a selector (a JSON object of strings)",
			 ICPT_ANN_ORIGINAL);
	} else if (r < 0 || !(*ret = json_dumps(back, JSON_COMPACT))) {
		snprintf(why, why_len, "out of memory");
		rc = -ENOMEM;
	} else {
		rc = 0;
	}
out:
	json_decref(back);
	json_decref(root);
	return rc;
}

static int pct_append(char *buf, size_t len, size_t *at, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
			     ch == '~';
		if (*at + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			buf[(*at)++] = (char)ch;
		} else {
			buf[(*at)++] = '%';
			buf[(*at)++] = hex[ch >> 4];
			buf[(*at)++] = hex[ch & 15];
		}
	}
	buf[*at] = 0;
	return 0;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

int agent_selector_query(const char *service_json, char *buf, size_t len)
{
	json_error_t je;
	int rc = -EINVAL;
	json_t *root = json_loads(service_json, JSON_REJECT_DUPLICATES, &je);
	json_t *ann = json_object_get(json_object_get(root, "metadata"), "annotations");
	const char *orig = json_string_value(json_object_get(ann, ICPT_ANN_ORIGINAL));
	json_t *sel = orig ? json_loads(orig, JSON_REJECT_DUPLICATES, &je) : NULL;
	/* not swapped yet (the CLI swaps once we are Ready): the selector is
	 * still the original */
	json_t *cur = json_object_get(json_object_get(root, "spec"), "selector");
	if (!orig && !json_object_get(ann, ICPT_ANN_SESSION) && json_is_object(cur) &&
	    !json_object_get(cur, ICPT_LABEL_POD))
		sel = json_incref(cur);
	size_t n = json_is_object(sel) ? json_object_size(sel) : 0;
	const char **keys = n ? calloc(n, sizeof *keys) : NULL;
	size_t i = 0, at = 0;
	const char *k;
	json_t *v;
	if (!keys || len < sizeof "labelSelector=")
		goto out;
	json_object_foreach(sel, k, v)
	{
		if (!json_is_string(v) || !*k)
			goto out;
		keys[i++] = k;
	}
	qsort(keys, n, sizeof *keys, cmp_str);
	at = (size_t)snprintf(buf, len, "labelSelector=");
	for (i = 0; i < n; i++) {
		if ((i && (rc = pct_append(buf, len, &at, ",")) < 0) ||
		    (rc = pct_append(buf, len, &at, keys[i])) < 0 ||
		    (rc = pct_append(buf, len, &at, "=")) < 0 ||
		    (rc = pct_append(buf, len, &at,
				     json_string_value(json_object_get(sel, keys[i])))) < 0)
			goto out;
	}
	rc = 0;
out:
	free(keys);
	json_decref(sel);
	json_decref(root);
	return rc;
}

static bool is_ip(const char *s)
{
	unsigned char a[16];
	return s && strlen(s) < AGENT_IP_MAX &&
	       (inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1);
}

static bool pod_ready(json_t *pod)
{
	json_t *meta = json_object_get(pod, "metadata");
	json_t *st = json_object_get(pod, "status");
	const char *phase = json_string_value(json_object_get(st, "phase"));
	if (!json_is_object(pod) || json_object_get(meta, "deletionTimestamp") || !phase ||
	    strcmp(phase, "Running") != 0)
		return false;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(st, "conditions"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *v = json_string_value(json_object_get(c, "status"));
		if (t && v && !strcmp(t, "Ready"))
			return !strcmp(v, "True");
	}
	return false;
}

int agent_ready_pods(const char *list_json, char (*ips)[AGENT_IP_MAX], size_t max, size_t *n)
{
	json_error_t je;
	json_t *root = json_loads(list_json, 0, &je);
	json_t *items = json_object_get(root, "items");
	*n = 0;
	if (!json_is_array(items)) {
		json_decref(root);
		return -EINVAL;
	}
	size_t i;
	json_t *pod;
	json_array_foreach(items, i, pod)
	{
		const char *ip =
		    json_string_value(json_object_get(json_object_get(pod, "status"), "podIP"));
		if (*n < max && pod_ready(pod) && is_ip(ip))
			snprintf(ips[(*n)++], AGENT_IP_MAX, "%s", ip);
	}
	json_decref(root);
	return 0;
}

/* --- the running agent --- */

struct agent;

enum conn_kind { CONN_HELLO, CONN_HEALTH };

struct aconn {
	struct aconn *prev, *next;
	struct agent *a;
	enum conn_kind kind;
	int fd;
	char buf[AGENT_HTTP_HEAD_MAX];
	size_t len;
	char peer[64];
	struct loop_timer deadline;
};

struct asess {
	struct asess *prev, *next;
	struct agent *a;
	struct yamux_session *s;
	char peer[64];
};

struct afwd {
	struct afwd *prev, *next;
	struct agent *a;
	struct relay *r;
};

/* One refresh of the original pods, on a thread (core/work.h): it has
 * copies of all it needs, since an agent that exits abandons it. */
struct pods_job {
	struct agent *a; /* read on the loop thread only, in done */
	struct kapi k;
	char svc_path[600], pods_path[600];
	char query[QUERY_MAX];
	bool have_query;
	char ips[AGENT_PODS_MAX][AGENT_IP_MAX];
	size_t n;
	bool ok;
	char why[300];
};

struct agent {
	struct loop *loop;
	const struct agent_opts *o;
	int lfd[AGENT_MAX_PORTS];
	int ctl_fd, health_fd;
	struct aconn *conns;
	unsigned n_conns;
	struct asess *sessions; /* the current one is `current` */
	struct asess *current;
	struct afwd *fwds;
	struct loop_timer grace;
	bool ever_connected;
	int code;
	uint64_t streams;
	/* --mode mirror */
	struct kapi kapi;
	bool have_kapi, have_query;
	char query[QUERY_MAX];
	char pods[AGENT_PODS_MAX][AGENT_IP_MAX];
	size_t n_pods, next_pod;
	bool pods_failing;
	struct work *pods_work;
	struct loop_timer pods_timer;
	uint64_t pods_done_ms;
};

/* One JSON object per line on stderr: ts, event, then the fields given as
 * key, value (strings) pairs, NULL-terminated. */
static void alog(const char *event, ...)
{
	json_t *o = json_object();
	if (!o)
		return;
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "event", json_string(event));
	va_list ap;
	va_start(ap, event);
	const char *k;
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		json_object_set_new(o, k, v ? json_string(v) : json_null());
	}
	va_end(ap);
	char *line = json_dumps(o, JSON_COMPACT);
	if (line)
		fprintf(stderr, "%s\n", line);
	free(line);
	json_decref(o);
}

static void conn_free(struct aconn *c)
{
	struct agent *a = c->a;
	loop_timer_stop(a->loop, &c->deadline);
	if (c->fd >= 0) {
		loop_del_fd(a->loop, c->fd);
		close(c->fd);
	}
	LIST_UNLINK(a->conns, c);
	a->n_conns--;
	free(c);
}

static void send_all(int fd, const char *s)
{
	/* a line on a fresh socket: the kernel takes it at once */
	(void)send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void grace_expired(struct loop *loop, void *data);

static void on_session_closed(struct yamux_session *s, int err, void *data)
{
	struct asess *as = data;
	struct agent *a = as->a;
	alog("session_lost", "peer", as->peer, "error", err ? strerror(err) : "closed", NULL);
	bool was_current = a->current == as;
	LIST_UNLINK(a->sessions, as);
	yamux_session_free(s);
	free(as);
	if (was_current) {
		a->current = NULL;
		char g[16];
		snprintf(g, sizeof g, "%u", a->o->grace_s);
		alog("grace", "seconds", g, NULL);
		loop_timer_start(a->loop, &a->grace, (uint64_t)a->o->grace_s * 1000, grace_expired,
				 a);
	}
}

/* The agent opens the streams; the CLI opening one is not in the
 * protocol. */
static void on_session_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	yamux_stream_close(st);
}

static const struct yamux_session_cb session_cb = {on_session_accept, on_session_closed, NULL};

/* A good hello: the rest of the connection is the new session. */
static void hello_ok(struct aconn *c, size_t used)
{
	struct agent *a = c->a;
	struct asess *as = calloc(1, sizeof *as);
	char ok[64];
	snprintf(ok, sizeof ok, "OK %s\n", a->o->session);
	if (!as) {
		conn_free(c);
		return;
	}
	as->a = a;
	snprintf(as->peer, sizeof as->peer, "%s", c->peer);
	struct yamux_opts yo = {
	    .keepalive_ms = a->o->keepalive_ms,
	    .keepalive_timeout_ms = a->o->keepalive_timeout_ms,
	};
	int fd = c->fd;
	loop_del_fd(a->loop, fd);
	c->fd = -1;
	send_all(fd, ok);
	int err = yamux_session_new(a->loop, fd, false, &yo, &session_cb, as, &as->s);
	if (err == 0 && c->len > used)
		err = yamux_session_preload(as->s, c->buf + used, c->len - used);
	if (err < 0) {
		if (as->s)
			yamux_session_free(as->s);
		else
			close(fd);
		free(as);
		conn_free(c);
		return;
	}
	conn_free(c);
	LIST_PUSH(a->sessions, as);
	struct asess *old = a->current;
	a->current = as;
	loop_timer_stop(a->loop, &a->grace);
	a->ever_connected = true;
	alog("session", "peer", as->peer, "replaces", old ? old->peer : NULL, NULL);
	if (old)
		yamux_session_close(old->s); /* its streams end; closed frees it */
}

static void health_answer(struct aconn *c, const char *method, size_t ml, const char *path,
			  size_t pl)
{
	const char *resp;
	if (ml == 3 && !memcmp(method, "GET", 3) && pl == 8 && !memcmp(path, "/healthz", 8))
		resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		       "Connection: close\r\n\r\nok\n";
	else
		resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	send_all(c->fd, resp);
	conn_free(c);
}

static void on_conn(struct loop *loop, int fd, unsigned events, void *data)
{
	struct aconn *c = data;
	size_t room = (c->kind == CONN_HELLO ? AGENT_HELLO_MAX : sizeof c->buf) - c->len;
	ssize_t n = room ? recv(fd, c->buf + c->len, room, MSG_DONTWAIT) : 0;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	c->len += (size_t)n;
	if (c->kind == CONN_HEALTH) {
		const char *m, *p;
		size_t ml, pl;
		int r = agent_parse_http_head(c->buf, c->len, &m, &ml, &p, &pl);
		if (r > 0) {
			health_answer(c, m, ml, p, pl);
		} else if (r < 0) {
			send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
				     "Connection: close\r\n\r\n");
			conn_free(c);
		}
		return;
	}
	const char *tok;
	size_t tl;
	int r = agent_parse_hello(c->buf, c->len, &tok, &tl);
	if (r == 0)
		return;
	if (r > 0 && const_time_eq(tok, tl, c->a->o->token, strlen(c->a->o->token))) {
		hello_ok(c, (size_t)r);
		return;
	}
	alog("auth_failed", "peer", c->peer, "reason",
	     r < 0 ? "not a DEVBRIDGE-AGENT/1 hello" : "wrong token", NULL);
	send_all(fd, "DENIED\n");
	conn_free(c);
}

static void conn_deadline(struct loop *loop, void *data)
{
	struct aconn *c = data;
	if (c->kind == CONN_HELLO)
		alog("auth_failed", "peer", c->peer, "reason", "no hello within 5 s", NULL);
	conn_free(c);
}

static void accept_conn(struct agent *a, int lfd, enum conn_kind kind)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (a->n_conns >= MAX_CONNS) {
		close(fd); /* a flood: the oldest keep their place */
		return;
	}
	struct aconn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->a = a;
	c->kind = kind;
	c->fd = fd;
	net_peer_name(fd, c->peer, sizeof c->peer);
	if (loop_add_fd(a->loop, fd, LOOP_READ, on_conn, c) < 0) {
		close(fd);
		free(c);
		return;
	}
	LIST_PUSH(a->conns, c);
	a->n_conns++;
	loop_timer_start(a->loop, &c->deadline, CONN_DEADLINE_MS, conn_deadline, c);
}

static void on_ctl_listen(struct loop *loop, int fd, unsigned events, void *data)
{
	accept_conn(data, fd, CONN_HELLO);
}

static void on_health_listen(struct loop *loop, int fd, unsigned events, void *data)
{
	accept_conn(data, fd, CONN_HEALTH);
}

static void fwd_done(struct relay *r, void *data)
{
	struct afwd *f = data;
	LIST_UNLINK(f->a->fwds, f);
	relay_free(r);
	free(f);
}

/* --- --mode mirror: the original pods --- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* On the worker thread (or at start, before the loop runs): the selector
 * once, then the pods. */
static void pods_fetch(void *arg)
{
	struct pods_job *j = arg;
	long st = 0;
	char *resp = NULL;
	j->ok = false;
	if (!j->have_query) {
		if (kapi_request(&j->k, "GET", j->svc_path, NULL, API_TIMEOUT_MS, &st, &resp,
				 j->why, sizeof j->why) < 0)
			return;
		if (st != 200) {
			snprintf(j->why, sizeof j->why, "GET the Service: status %ld", st);
			free(resp);
			return;
		}
		int r = agent_selector_query(resp, j->query, sizeof j->query);
		free(resp);
		resp = NULL;
		if (r < 0) {
			snprintf(j->why, sizeof j->why, "the Service has no usable %s annotation",
				 ICPT_ANN_ORIGINAL);
			return;
		}
		j->have_query = true;
	}
	char path[sizeof j->pods_path + QUERY_MAX + 2];
	snprintf(path, sizeof path, "%s?%s", j->pods_path, j->query);
	if (kapi_request(&j->k, "GET", path, NULL, API_TIMEOUT_MS, &st, &resp, j->why,
			 sizeof j->why) < 0)
		return;
	if (st != 200 || agent_ready_pods(resp, j->ips, AGENT_PODS_MAX, &j->n) < 0)
		snprintf(j->why, sizeof j->why, "list pods: status %ld", st);
	else
		j->ok = true;
	free(resp);
}

static void pods_job_free(void *arg)
{
	struct pods_job *j = arg;
	kapi_free(&j->k);
	free(j);
}

static struct pods_job *pods_job_new(struct agent *a)
{
	struct pods_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->a = a;
	j->k = a->kapi;
	j->k.token = strdup(a->kapi.token);
	if (!j->k.token) {
		free(j);
		return NULL;
	}
	snprintf(j->svc_path, sizeof j->svc_path, "/api/v1/namespaces/%s/services/%s",
		 a->o->namespace, a->o->service);
	snprintf(j->pods_path, sizeof j->pods_path, "/api/v1/namespaces/%s/pods", a->o->namespace);
	j->have_query = a->have_query;
	memcpy(j->query, a->query, sizeof j->query);
	return j;
}

static void pods_apply(struct agent *a, const struct pods_job *j)
{
	a->pods_done_ms = mono_ms();
	if (!j->ok) {
		if (!a->pods_failing)
			alog("pods_failed", "reason", j->why, NULL);
		a->pods_failing = true;
		return; /* the last list stays: better a pod that was Ready than none */
	}
	if (j->have_query && !a->have_query) {
		memcpy(a->query, j->query, sizeof a->query);
		a->have_query = true;
	}
	bool same = j->n == a->n_pods;
	for (size_t i = 0; same && i < j->n; i++)
		same = !strcmp(a->pods[i], j->ips[i]);
	if (!same || a->pods_failing) {
		char n[16];
		snprintf(n, sizeof n, "%zu", j->n);
		alog("pods", "ready", n, "first", j->n ? j->ips[0] : NULL, NULL);
	}
	a->pods_failing = false;
	memcpy(a->pods, j->ips, sizeof a->pods);
	a->n_pods = j->n;
}

static void pods_refresh(struct agent *a);

static void pods_timer_fire(struct loop *loop, void *data)
{
	pods_refresh(data);
}

static void pods_done(struct loop *loop, void *arg)
{
	struct pods_job *j = arg;
	struct agent *a = j->a;
	a->pods_work = NULL; /* the loop frees the handle */
	pods_apply(a, j);
	pods_job_free(j);
	loop_timer_start(a->loop, &a->pods_timer, PODS_REFRESH_MS, pods_timer_fire, a);
}

static void pods_refresh(struct agent *a)
{
	loop_timer_stop(a->loop, &a->pods_timer);
	if (a->pods_work)
		return;
	struct pods_job *j = pods_job_new(a);
	if (!j || work_start(a->loop, pods_fetch, pods_done, j, &a->pods_work) < 0) {
		if (j)
			pods_job_free(j);
		a->pods_work = NULL;
		loop_timer_start(a->loop, &a->pods_timer, PODS_REFRESH_MS, pods_timer_fire, a);
		return;
	}
}

static void on_mirror_dropped(void *data, int err)
{
	alog("mirror_dropped", "reason", strerror(err), NULL);
}

static int pod_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		*sl = sizeof *v4;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		*sl = sizeof *v6;
		return 0;
	}
	return -EINVAL;
}

/* A mirrored connection: relayed to an original pod, its client's bytes
 * copied to a stream to the CLI when there is a session (and best
 * effort: the tee drops the copy rather than wait for it). */
static void mirror_conn(struct agent *a, int fd, size_t i)
{
	if (a->n_pods == 0) {
		close(fd);
		alog("no_ready_pod", "service", a->o->service, NULL);
		if (!a->pods_work && mono_ms() - a->pods_done_ms >= PODS_SOON_MS)
			pods_refresh(a);
		return;
	}
	const char *ip = a->pods[a->next_pod++ % a->n_pods];
	struct sockaddr_storage ss;
	socklen_t sl;
	int pfd = pod_addr(ip, a->o->ports[i].target, &ss, &sl) < 0
		      ? -EINVAL
		      : net_connect_nb((struct sockaddr *)&ss, sl);
	struct relay_ep *ce = NULL, *pe = NULL, *front;
	if (pfd < 0 || relay_ep_fd_new(a->loop, fd, &ce) < 0) {
		if (pfd >= 0)
			close(pfd);
		close(fd);
		return;
	}
	/* a connect still under way: the fd endpoint's writes wait for it,
	 * and a refusal is its error */
	if (relay_ep_fd_new(a->loop, pfd, &pe) < 0) {
		close(pfd);
		ce->ops->close(ce);
		return;
	}
	front = ce;
	struct yamux_stream *st = NULL;
	if (a->current && yamux_open(a->current->s, &st) == 0) {
		uint16_t sp = a->o->ports[i].service;
		unsigned char hdr[AGENT_HDR_LEN] = {AGENT_HDR_MAGIC, AGENT_HDR_VERSION,
						    (unsigned char)(sp >> 8), (unsigned char)sp};
		struct mirror_tee_opts mo = {.dropped = on_mirror_dropped, .data = a};
		if (mirror_tee_new(a->loop, ce, yamux_stream_ep(st), hdr, sizeof hdr, &mo, &front) <
		    0) {
			yamux_stream_close(st);
			front = ce;
		}
	}
	struct afwd *f = calloc(1, sizeof *f);
	if (!f || relay_new_ep(a->loop, front, pe, NULL, fwd_done, f, &f->r) < 0) {
		free(f);
		front->ops->close(front);
		pe->ops->close(pe);
		return;
	}
	f->a = a;
	LIST_PUSH(a->fwds, f);
	a->streams++;
}

/* A cluster connection on target port i: a stream to the CLI, headed by
 * the Service port. */
static void on_target(struct loop *loop, int lfd, unsigned events, void *data)
{
	struct agent *a = data;
	size_t i = 0;
	while (i < a->o->n_ports && a->lfd[i] != lfd)
		i++;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 || i == a->o->n_ports) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (a->o->mirror) {
		mirror_conn(a, fd, i);
		return;
	}
	struct yamux_stream *st = NULL;
	struct relay_ep *fe = NULL;
	struct afwd *f = NULL;
	if (!a->current || yamux_open(a->current->s, &st) < 0) {
		close(fd); /* nobody to send it to */
		return;
	}
	if (!(f = calloc(1, sizeof *f)) || relay_ep_fd_new(a->loop, fd, &fe) < 0) {
		free(f);
		close(fd);
		yamux_stream_close(st);
		return;
	}
	f->a = a;
	if (relay_new_ep(a->loop, fe, yamux_stream_ep(st), NULL, fwd_done, f, &f->r) < 0) {
		fe->ops->close(fe);
		yamux_stream_close(st);
		free(f);
		return;
	}
	uint16_t sp = a->o->ports[i].service;
	unsigned char hdr[AGENT_HDR_LEN] = {AGENT_HDR_MAGIC, AGENT_HDR_VERSION,
					    (unsigned char)(sp >> 8), (unsigned char)sp};
	if (relay_preload_a(f->r, hdr, sizeof hdr) < 0) {
		relay_free(f->r);
		free(f);
		return;
	}
	LIST_PUSH(a->fwds, f);
	a->streams++;
}

/* --- the restore --- */

static int restore(const struct agent_opts *o)
{
	struct kapi k;
	char why[512], path[600];
	int err = kapi_incluster(&k, why, sizeof why);
	if (err < 0) {
		alog("restore_failed", "reason", why, NULL);
		return 1;
	}
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/services/%s", o->namespace, o->service);
	int code = 1;
	for (int attempt = 0; attempt < RESTORE_TRIES; attempt++) {
		long st = 0;
		char *resp = NULL, *body = NULL;
		if (kapi_request(&k, "GET", path, NULL, API_TIMEOUT_MS, &st, &resp, why,
				 sizeof why) < 0) {
			alog("restore_failed", "reason", why, NULL);
			break;
		}
		if (st == 404) {
			free(resp);
			alog("nothing_to_restore", "reason", "the Service is gone", NULL);
			code = 0;
			break;
		}
		if (st != 200) {
			char s[16];
			snprintf(s, sizeof s, "%ld", st);
			alog("restore_failed", "reason", "GET the Service", "status", s, NULL);
			free(resp);
			break;
		}
		int r = agent_restore_body(resp, o->session, &body, why, sizeof why);
		free(resp);
		if (r == 1) {
			alog("nothing_to_restore", "reason", why, NULL);
			code = 0;
			break;
		}
		if (r < 0) {
			alog("restore_failed", "reason", why, NULL);
			break;
		}
		r = kapi_request(&k, "PUT", path, body, API_TIMEOUT_MS, &st, &resp, why,
				 sizeof why);
		free(body);
		free(resp);
		if (r < 0) {
			alog("restore_failed", "reason", why, NULL);
			break;
		}
		if (st == 200) {
			alog("restored", "namespace", o->namespace, "service", o->service, NULL);
			code = 0;
			break;
		}
		if (st != 409) {
			char s[16];
			snprintf(s, sizeof s, "%ld", st);
			alog("restore_failed", "reason", "PUT the Service", "status", s, NULL);
			break;
		}
		/* 409: changed since we read it; read it again */
	}
	kapi_free(&k);
	return code;
}

static void finish(struct agent *a, const char *why)
{
	alog("restoring", "reason", why, NULL);
	a->code = restore(a->o);
	loop_stop(a->loop);
}

static void grace_expired(struct loop *loop, void *data)
{
	finish(data, "no session within the grace period");
}

static void on_signal(struct loop *loop, int signo, void *data)
{
	finish(data, signo == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int listen_on(struct agent *a, uint16_t port, loop_fd_cb cb, int *ret)
{
	int fd = net_listen_tcp(a->o->bind_addr ? a->o->bind_addr : "0.0.0.0", port, NULL);
	if (fd < 0) {
		fprintf(stderr, "devbridge agent: listen on port %u: %s\n", port, strerror(-fd));
		return -1;
	}
	if (loop_add_fd(a->loop, fd, LOOP_READ, cb, a) < 0) {
		close(fd);
		return -1;
	}
	*ret = fd;
	return 0;
}

int agent_run(const struct agent_opts *o)
{
	if (!o->namespace || !o->service || !o->session || !o->n_ports || !o->token ||
	    strlen(o->token) < AGENT_TOKEN_MIN || strlen(o->token) > AGENT_TOKEN_MAX) {
		fprintf(stderr,
			"devbridge agent: --namespace, --service, --session, --port and "
			"DEVBRIDGE_AGENT_TOKEN (%d-%d characters) are required\n",
			AGENT_TOKEN_MIN, AGENT_TOKEN_MAX);
		return 2;
	}
	struct agent a = {.o = o, .ctl_fd = -1, .health_fd = -1, .code = 1};
	for (size_t i = 0; i < AGENT_MAX_PORTS; i++)
		a.lfd[i] = -1;
	signal(SIGPIPE, SIG_IGN);
	if (loop_new(&a.loop) < 0)
		return 2;
	static const int sigs[] = {SIGTERM, SIGINT, 0};
	int bad = loop_watch_signals(a.loop, sigs, on_signal, &a) < 0;
	for (size_t i = 0; i < o->n_ports && !bad; i++)
		bad = listen_on(&a, o->ports[i].target, on_target, &a.lfd[i]) < 0;
	bad = bad || listen_on(&a, o->control_port, on_ctl_listen, &a.ctl_fd) < 0 ||
	      listen_on(&a, o->health_port, on_health_listen, &a.health_fd) < 0;
	if (!bad && o->mirror) {
		/* the original pods, once before the first connection */
		char why[300];
		int err = kapi_incluster(&a.kapi, why, sizeof why);
		if (err < 0) {
			fprintf(stderr, "devbridge agent: --mode mirror needs the API: %s\n", why);
			bad = 1;
		} else {
			a.have_kapi = true;
			struct pods_job *j = pods_job_new(&a);
			if (j) {
				pods_fetch(j);
				pods_apply(&a, j);
				pods_job_free(j);
			}
			loop_timer_start(a.loop, &a.pods_timer, PODS_REFRESH_MS, pods_timer_fire,
					 &a);
		}
	}
	if (!bad) {
		char ports[AGENT_MAX_PORTS * 12 + 1] = "";
		for (size_t i = 0; i < o->n_ports; i++)
			snprintf(ports + strlen(ports), sizeof ports - strlen(ports), "%s%u:%u",
				 i ? "," : "", o->ports[i].service, o->ports[i].target);
		alog("listening", "namespace", o->namespace, "service", o->service, "session",
		     o->session, "ports", ports, "mode", o->mirror ? "mirror" : "steal", NULL);
		/* A CLI that never comes is a lost session too. */
		loop_timer_start(a.loop, &a.grace, (uint64_t)o->grace_s * 1000 + 60000,
				 grace_expired, &a);
		loop_run(a.loop);
	}
	loop_timer_stop(a.loop, &a.grace);
	loop_timer_stop(a.loop, &a.pods_timer);
	if (a.pods_work)
		work_abandon(a.pods_work, pods_job_free); /* a call still under way */
	if (a.have_kapi)
		kapi_free(&a.kapi);
	while (a.fwds) {
		struct afwd *f = a.fwds;
		LIST_UNLINK(a.fwds, f);
		relay_free(f->r);
		free(f);
	}
	mirror_linger_flush();
	while (a.sessions) {
		struct asess *as = a.sessions;
		LIST_UNLINK(a.sessions, as);
		yamux_session_free(as->s);
		free(as);
	}
	while (a.conns)
		conn_free(a.conns);
	for (size_t i = 0; i < AGENT_MAX_PORTS; i++)
		if (a.lfd[i] >= 0)
			close(a.lfd[i]);
	if (a.ctl_fd >= 0)
		close(a.ctl_fd);
	if (a.health_fd >= 0)
		close(a.health_fd);
	yamux_drain_flush();
	loop_free(a.loop);
	relay_pool_flush();
	return bad ? 2 : a.code;
}
