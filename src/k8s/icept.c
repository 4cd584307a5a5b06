/* icept.c - see icept.h. */
#include "k8s/icept.h"

#include "core/errcode.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/relay.h"
#include "core/spawn.h"
#include "core/util.h"
#include "k8s/agent.h"
#include "k8s/mirror.h"
#include "proto/yamux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RETRY_FIRST_MS	500
#define RETRY_MAX_MS	2000
#define HELLO_TIMEOUT_S 5
#define GIVE_UP_AFTER	20 /* failed tries in a row: the agent is gone */
#define LINE_MAX_	1024

struct icept;

/* A stream until its header has come: then a relay to the local port. */
struct istream {
	struct istream *prev, *next;
	struct icept *ic;
	struct yamux_stream *st;
	unsigned char hdr[AGENT_HDR_LEN];
	size_t got;
	struct relay *r;
};

struct icept {
	struct loop *loop;
	const struct icept_opts *o;
	/* kubectl port-forward */
	struct loop_child child;
	pid_t pid;
	int out_fd, err_fd;
	char out_line[LINE_MAX_], err_line[LINE_MAX_];
	size_t out_len, err_len;
	int last_reason;
	char last_message[256];
	/* the session */
	struct yamux_session *sess;
	struct istream *streams;
	struct loop_timer retry;
	uint32_t retry_ms;
	unsigned failures;
	bool stopping, ready_sent;
	int code;
	uint64_t n_streams;
};

static void start_pf(struct icept *ic);

static void istream_free(struct istream *is)
{
	LIST_UNLINK(is->ic->streams, is);
	if (is->r)
		relay_free(is->r);
	else if (is->st)
		yamux_stream_close(is->st);
	free(is);
}

static void on_relay_done(struct relay *r, void *data)
{
	istream_free(data);
}

static int dial_local(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* loopback: accepted or refused at once */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* The header is in: find the local port, accept, relay. */
static void istream_route(struct istream *is)
{
	struct icept *ic = is->ic;
	struct relay_ep *sep = yamux_stream_ep(is->st);
	sep->ops->read_stop(sep);
	uint16_t port = (uint16_t)(is->hdr[2] << 8 | is->hdr[3]);
	const struct icept_map *m = NULL;
	for (size_t i = 0;
	     i < ic->o->n_maps && is->hdr[0] == AGENT_HDR_MAGIC && is->hdr[1] == AGENT_HDR_VERSION;
	     i++)
		if (ic->o->maps[i].service == port)
			m = &ic->o->maps[i];
	if (!m) {
		log_warn("intercept: a stream for Service port %u, which is not intercepted", port);
		istream_free(is);
		return;
	}
	int fd = dial_local(m->local);
	if (fd < 0) {
		log_warn("intercept: 127.0.0.1:%u: %s (the cluster's connection is reset)",
			 m->local, strerror(-fd));
		istream_free(is);
		return;
	}
	struct relay_ep *fe;
	if (yamux_stream_accept(is->st) < 0 || relay_ep_fd_new(ic->loop, fd, &fe) < 0) {
		close(fd);
		istream_free(is);
		return;
	}
	/* mirror: the stream's side of the relay takes the local answers and
	 * drops them; it owns the stream from here on */
	struct relay_ep *other = sep;
	if (ic->o->mirror && mirror_sink_new(sep, &other) < 0) {
		fe->ops->close(fe);
		istream_free(is);
		return;
	}
	if (relay_new_ep(ic->loop, fe, other, NULL, on_relay_done, is, &is->r) < 0) {
		fe->ops->close(fe);
		if (other != sep) {
			other->ops->close(other); /* and the stream with it */
			is->st = NULL;
		}
		istream_free(is);
		return;
	}
	ic->n_streams++;
}

static void hdr_alloc(struct relay_ep *ep, size_t suggested, void **ret, size_t *ret_len)
{
	struct istream *is = ep->data;
	*ret = is->hdr + is->got;
	*ret_len = sizeof is->hdr - is->got;
}

static void hdr_read(struct relay_ep *ep, size_t n)
{
	struct istream *is = ep->data;
	if (n == 0) {
		istream_free(is); /* EOF before a header */
		return;
	}
	is->got += n;
	if (is->got == sizeof is->hdr)
		istream_route(is);
}

static void hdr_writable(struct relay_ep *ep)
{
}

static void hdr_error(struct relay_ep *ep, int err)
{
	istream_free(ep->data);
}

static const struct relay_ep_cb hdr_cb = {hdr_alloc, hdr_read, hdr_writable, hdr_error};

static void on_accept(struct yamux_session *s, struct yamux_stream *st, void *data)
{
	struct icept *ic = data;
	struct istream *is = calloc(1, sizeof *is);
	if (!is) {
		yamux_stream_close(st);
		return;
	}
	is->ic = ic;
	is->st = st;
	LIST_PUSH(ic->streams, is);
	struct relay_ep *ep = yamux_stream_ep(st);
	ep->cb = &hdr_cb;
	ep->data = is;
	if (ep->ops->read_start(ep) < 0)
		istream_free(is);
}

static void retry_later(struct icept *ic);

static void on_closed(struct yamux_session *s, int err, void *data)
{
	struct icept *ic = data;
	yamux_session_free(s);
	ic->sess = NULL;
	if (ic->stopping)
		return;
	log_warn("intercept: the session to the agent ended (%s); reconnecting",
		 err ? strerror(err) : "closed");
	if (ic->pid > 0)
		kill(ic->pid, SIGTERM); /* a fresh port-forward */
	else
		retry_later(ic);
}

static const struct yamux_session_cb session_cb = {on_accept, on_closed, NULL};

/* Through the port-forward to the control port: the hello, then Yamux. */
static int connect_agent(struct icept *ic, int port)
{
	int fd = dial_local((uint16_t)port);
	if (fd < 0) {
		snprintf(ic->last_message, sizeof ic->last_message, "127.0.0.1:%d: %s", port,
			 strerror(-fd));
		return fd;
	}
	char line[AGENT_HELLO_MAX], reply[64];
	snprintf(line, sizeof line, "DEVBRIDGE-AGENT/1 %s\n", ic->o->token);
	struct timeval tv = {HELLO_TIMEOUT_S, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	size_t n = 0;
	bool sent = send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line);
	explicit_bzero(line, sizeof line);
	while (sent && n < sizeof reply - 1) {
		ssize_t r = recv(fd, reply + n, 1, 0); /* to the newline only: Yamux follows */
		if (r <= 0)
			break;
		if (reply[n++] == '\n')
			break;
	}
	reply[n] = 0;
	char want[32];
	snprintf(want, sizeof want, "OK %s\n", ic->o->session);
	if (strcmp(reply, want) != 0) {
		snprintf(ic->last_message, sizeof ic->last_message, "the agent answered %s",
			 !n			      ? "nothing"
			 : !strcmp(reply, "DENIED\n") ? "DENIED (a wrong token)"
						      : "something else");
		close(fd);
		return -EACCES;
	}
	struct yamux_opts yo = {
	    .keepalive_ms = ic->o->keepalive_ms ? ic->o->keepalive_ms : 10000,
	    .keepalive_timeout_ms =
		ic->o->keepalive_timeout_ms ? ic->o->keepalive_timeout_ms : 30000,
	};
	int err = yamux_session_new(ic->loop, fd, true, &yo, &session_cb, ic, &ic->sess);
	if (err < 0) {
		close(fd);
		return err;
	}
	ic->failures = 0;
	ic->retry_ms = RETRY_FIRST_MS;
	log_info("intercept: connected to the agent (pod %s)", ic->o->fwd.pod);
	if (!ic->ready_sent && ic->o->on_ready)
		ic->o->on_ready(ic->o->data);
	ic->ready_sent = true;
	return 0;
}

static void pf_line(struct icept *ic, const char *line, size_t len, bool is_stdout)
{
	int reason = 0, port = 0;
	enum sup_line k = k8s_pf_classify(line, len, is_stdout, &reason, &port);
	if (k == SUP_LINE_READY && port > 0 && !ic->sess) {
		if (connect_agent(ic, port) < 0) {
			log_warn("intercept: %s", ic->last_message);
			if (ic->pid > 0)
				kill(ic->pid, SIGTERM);
		}
	} else if (k == SUP_LINE_REASON) {
		ic->last_reason = reason;
		snprintf(ic->last_message, sizeof ic->last_message, "%.*s", (int)len, line);
	}
}

static void pf_read(struct icept *ic, int fd, char *buf, size_t *len, bool is_stdout)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof tmp);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		loop_del_fd(ic->loop, fd);
		close(fd);
		if (is_stdout)
			ic->out_fd = -1;
		else
			ic->err_fd = -1;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (tmp[i] == '\n') {
			pf_line(ic, buf, *len, is_stdout);
			*len = 0;
		} else if (*len < LINE_MAX_ - 1) {
			buf[(*len)++] = tmp[i];
		}
	}
}

static void on_pf_out(struct loop *loop, int fd, unsigned events, void *data)
{
	struct icept *ic = data;
	pf_read(ic, fd, ic->out_line, &ic->out_len, true);
}

static void on_pf_err(struct loop *loop, int fd, unsigned events, void *data)
{
	struct icept *ic = data;
	pf_read(ic, fd, ic->err_line, &ic->err_len, false);
}

static void close_pipes(struct icept *ic)
{
	if (ic->out_fd >= 0) {
		loop_del_fd(ic->loop, ic->out_fd);
		close(ic->out_fd);
	}
	if (ic->err_fd >= 0) {
		loop_del_fd(ic->loop, ic->err_fd);
		close(ic->err_fd);
	}
	ic->out_fd = ic->err_fd = -1;
}

static void retry_fire(struct loop *loop, void *data)
{
	start_pf(data);
}

static void retry_later(struct icept *ic)
{
	if (ic->stopping)
		return;
	if (++ic->failures >= GIVE_UP_AFTER) {
		log_error("intercept: the agent cannot be reached (%s): it is gone",
			  ic->last_message[0] ? ic->last_message
					      : k8s_reason_text(ic->last_reason));
		ic->code = EXIT_K8S_TUNNEL_FAILED;
		loop_stop(ic->loop);
		return;
	}
	loop_timer_start(ic->loop, &ic->retry, ic->retry_ms, retry_fire, ic);
	ic->retry_ms = ic->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ic->retry_ms * 2;
}

static void on_pf_exit(struct loop *loop, pid_t pid, int status, void *data)
{
	struct icept *ic = data;
	ic->pid = 0;
	close_pipes(ic);
	if (ic->stopping)
		return;
	/* the forwarded connection died with it: the session ends by itself */
	if (ic->last_reason == K8S_R_NOT_FOUND || ic->last_reason == K8S_R_NO_POD)
		ic->failures += GIVE_UP_AFTER / 4; /* the pod is gone: give up sooner */
	retry_later(ic);
}

static void start_pf(struct icept *ic)
{
	char **argv = NULL;
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	ic->last_reason = 0;
	ic->out_len = ic->err_len = 0;
	if (k8s_pf_argv(&ic->o->fwd, &argv) < 0 || pipe2(po, O_CLOEXEC) < 0 ||
	    pipe2(pe, O_CLOEXEC) < 0)
		goto fail;
	struct spawn_opts so = {.argv = argv,
				.stdin_fd = -1,
				.stdout_fd = po[1],
				.stderr_fd = pe[1],
				.die_with_parent = true,
				.new_pgroup = true};
	pid_t pid;
	if (spawn_process(&so, &pid) < 0) {
		snprintf(ic->last_message, sizeof ic->last_message, "%s could not be run", argv[0]);
		goto fail;
	}
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	ic->out_fd = po[0];
	ic->err_fd = pe[0];
	fd_set_nonblock(ic->out_fd, true);
	fd_set_nonblock(ic->err_fd, true);
	if (loop_add_fd(ic->loop, ic->out_fd, LOOP_READ, on_pf_out, ic) < 0 ||
	    loop_add_fd(ic->loop, ic->err_fd, LOOP_READ, on_pf_err, ic) < 0 ||
	    loop_child_watch(ic->loop, &ic->child, pid, on_pf_exit, ic) < 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close_pipes(ic);
		goto fail_argv;
	}
	ic->pid = pid;
	k8s_pf_argv_free(argv);
	return;
fail:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
fail_argv:
	if (argv)
		k8s_pf_argv_free(argv);
	retry_later(ic);
}

static void on_signal(struct loop *loop, int signo, void *data)
{
	struct icept *ic = data;
	ic->stopping = true;
	ic->code = 0;
	loop_stop(loop);
}

int icept_run(const struct icept_opts *o)
{
	struct icept ic = {.o = o, .out_fd = -1, .err_fd = -1, .retry_ms = RETRY_FIRST_MS};
	signal(SIGPIPE, SIG_IGN);
	if (loop_new(&ic.loop) < 0)
		return EXIT_ERROR;
	static const int sigs[] = {SIGTERM, SIGINT, 0};
	if (loop_watch_signals(ic.loop, sigs, on_signal, &ic) < 0) {
		loop_free(ic.loop);
		return EXIT_ERROR;
	}
	start_pf(&ic);
	loop_run(ic.loop);
	ic.stopping = true;
	loop_timer_stop(ic.loop, &ic.retry);
	while (ic.streams)
		istream_free(ic.streams);
	if (ic.sess) {
		yamux_session_goaway(ic.sess);
		yamux_session_free(ic.sess);
	}
	if (ic.pid > 0) {
		kill(-ic.pid, SIGTERM);
		loop_child_kill_wait(ic.loop, &ic.child);
	}
	close_pipes(&ic);
	yamux_drain_flush();
	loop_free(ic.loop);
	relay_pool_flush();
	return ic.code;
}
