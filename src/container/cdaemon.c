/* cdaemon.c - the container daemon; see cdaemon.h. */
#include "container/cdaemon.h"
#include "core/errcode.h"
#include "container/ctl.h"
#include "container/filter.h"
#include "container/scan.h"
#include "core/backoff.h"
#include "core/log.h"
#include "core/net.h"
#include "core/list.h"
#include "core/loop.h"
#include "core/relay.h"
#include "core/util.h"
#include "core/work.h"
#include "proto/dbr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define CD_MAX_FORWARDS 128
#define CD_MAX_JOBS	1024

enum cd_state { CD_IDLE, CD_CONNECTING, CD_REGISTERING, CD_READY };

struct cd_fwd {
	uint16_t port;
	uint16_t host_port; /* 0 until acked */
	bool present;	    /* seen in the latest scan */
};

struct cd;
struct lconn;

/* A ConnectRequest being served: local connect, then data connect. */
struct job {
	struct cd *cd;
	struct job *prev, *next;
	char conn_id[DBR_CONN_ID_MAX + 1];
	uint16_t port;
	int local_fd, data_fd;
	int phase; /* 0 local connecting, 1 data connecting */
	bool tried_v6;
	struct loop_timer timer;
};

struct rn {
	struct cd *cd;
	struct rn *prev, *next;
	struct relay *r;
};

/* A mirror of a host Unix socket: a listener at container_path (0600). */
struct mirror {
	struct cd *cd;
	struct mirror *next;
	char id[DBR_SOCKET_ID_MAX + 1];
	char path[DBR_PATH_MAX + 1];
	int fd;
};

#define CD_MAX_MIRRORS 64

struct cd {
	const struct cd_opts *o;
	struct loop *loop;
	enum cd_state state;
	int conn_fd; /* control socket while connecting */
	struct ctl_conn *ctl;
	struct sockaddr_storage host;
	socklen_t host_len;
	char host_str[INET6_ADDRSTRLEN];
	struct backoff bo;
	struct loop_timer retry_timer, connect_timer, scan_timer, hb_timer;
	uint64_t last_rx;
	struct cd_fwd fwds[CD_MAX_FORWARDS];
	size_t n_fwds;
	struct job *jobs;
	size_t n_jobs;
	struct rn *relays;
	struct mirror *mirrors;
	size_t n_mirrors;
	unsigned scan_ms;
	int pidfd;
	int exit_code;
	bool warned_auth;
	char instance[40];	/* this process, told to the host in Register */
	struct work *resolving; /* the host name being looked up */
	/* `devbridge forward/unforward` through the local control socket. */
	int local_lfd;
	struct lconn *lconns; /* its clients */
	uint16_t pinned[CD_MAX_FORWARDS];
	size_t n_pinned;
	uint16_t suppressed[CD_MAX_FORWARDS];
	size_t n_suppressed;
	/* Listeners the filter refused, so their owner is not looked up on
	 * every scan (scan_owner walks /proc: ~1 ms). */
	struct {
		uint16_t port;
		unsigned long inode;
	} rejected[64];
	size_t n_rejected;
};

static bool port_in(const uint16_t *v, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == port)
			return true;
	return false;
}

static void port_del(uint16_t *v, size_t *n, uint16_t port)
{
	for (size_t i = 0; i < *n; i++)
		if (v[i] == port)
			v[i--] = v[--*n];
}

static void connect_host(struct cd *cd);
static void scan_now(struct cd *cd);

static void on_retry(struct loop *l, void *data)
{
	connect_host(data);
}

/* --- host and id resolution --- */

static int gateway_from_route(char *buf, size_t n)
{
	FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return -errno;
	char line[512];
	int r = -ENOENT;
	while (fgets(line, sizeof line, f)) {
		char ifname[64];
		unsigned long dest, gw;
		if (sscanf(line, "%63s %lx %lx", ifname, &dest, &gw) == 3 && dest == 0 && gw != 0) {
			struct in_addr a = {.s_addr = (in_addr_t)gw};
			inet_ntop(AF_INET, &a, buf, (socklen_t)n);
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

static int numeric(const char *name, char *buf, size_t n)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(name, NULL, &hints, &res) != 0 || !res)
		return -ENOENT;
	void *a = res->ai_family == AF_INET6
		      ? (void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
		      : (void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
	inet_ntop(res->ai_family, a, buf, (socklen_t)n);
	freeaddrinfo(res);
	return 0;
}

int cd_resolve_host(const char *flag, char *buf, size_t n)
{
	const char *v = flag;
	if (!v || !*v)
		v = getenv("DEVBRIDGE_HOST");
	if (!v || !*v)
		v = getenv("DCBRIDGE_HOST");
	if (v && *v)
		return numeric(v, buf, n);
	if (numeric("host.docker.internal", buf, n) == 0)
		return 0;
	return gateway_from_route(buf, n);
}

void cd_clean_id(char *s)
{
	for (char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			*p = '-';
}

void cd_container_id(char *buf, size_t n)
{
	const char *v = getenv("DEVBRIDGE_CONTAINER_ID");
	buf[0] = '\0';
	if (v && *v) {
		snprintf(buf, n, "%s", v);
	} else {
		FILE *f = fopen("/etc/hostname", "re");
		if (f) {
			if (fgets(buf, (int)n, f))
				buf[strcspn(buf, "\r\n")] = '\0';
			fclose(f);
		}
		if (!buf[0] && (v = getenv("HOSTNAME")) && *v)
			snprintf(buf, n, "%s", v);
		if (!buf[0] && gethostname(buf, n) < 0)
			buf[0] = '\0';
	}
	if (!buf[0])
		snprintf(buf, n, "container");
	buf[n > 256 ? 256 : n - 1] = '\0';
	cd_clean_id(buf);
}

/* --- relays and connection jobs --- */

static void on_relay_done(struct relay *r, void *data)
{
	struct rn *n = data;
	LIST_UNLINK(n->cd->relays, n);
	relay_free(r);
	free(n);
}

static void job_free(struct job *j)
{
	struct cd *cd = j->cd;
	LIST_UNLINK(cd->jobs, j);
	cd->n_jobs--;
	loop_timer_stop(cd->loop, &j->timer);
	if (j->local_fd >= 0) {
		loop_del_fd(cd->loop, j->local_fd);
		close(j->local_fd);
	}
	if (j->data_fd >= 0) {
		loop_del_fd(cd->loop, j->data_fd);
		close(j->data_fd);
	}
	free(j);
}

static void job_fail(struct job *j, const char *why)
{
	struct cd *cd = j->cd;
	if (cd->ctl && cd->state == CD_READY) {
		struct dbr_msg m;
		dbr_msg_init(&m, DBR_CONNECT_FAILED);
		snprintf(m.conn_id, sizeof m.conn_id, "%s", j->conn_id);
		snprintf(m.error, sizeof m.error, "%s", why);
		ctl_send(cd->ctl, &m);
		dbr_msg_clear(&m);
	}
	log_info("connection %s to port %u failed: %s", j->conn_id, j->port, why);
	job_free(j);
}

static void on_job_timeout(struct loop *l, void *data)
{
	struct job *j = data;
	job_fail(j, "timed out");
}

static void job_step(struct loop *l, int fd, unsigned events, void *data);
static void job_start_data(struct job *j);

static int job_connect_local(struct job *j)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (!j->tried_v6) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(j->port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof *s4;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(j->port);
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof *s6;
	}
	int fd = net_connect_nb((struct sockaddr *)&ss, sl);
	if (fd < 0)
		return fd;
	j->local_fd = fd;
	return loop_add_fd(j->cd->loop, fd, LOOP_WRITE, job_step, j);
}

/* Phase 1: open the reverse data connection to the host. */
static void job_start_data(struct job *j)
{
	struct cd *cd = j->cd;
	j->phase = 1;
	struct sockaddr_storage hs = cd->host;
	if (hs.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&hs)->sin6_port = htons(cd->o->data_port);
	else
		((struct sockaddr_in *)&hs)->sin_port = htons(cd->o->data_port);
	int dfd = net_connect_nb((struct sockaddr *)&hs, cd->host_len);
	if (dfd < 0 || loop_add_fd(cd->loop, dfd, LOOP_WRITE, job_step, j) < 0) {
		if (dfd >= 0)
			close(dfd);
		job_fail(j, "cannot reach the host's data port");
		return;
	}
	j->data_fd = dfd;
}

static void job_step(struct loop *l, int fd, unsigned events, void *data)
{
	struct job *j = data;
	struct cd *cd = j->cd;
	int err = net_so_error(fd);
	loop_del_fd(l, fd);
	if (j->phase == 0) {
		if (err) {
			close(j->local_fd);
			j->local_fd = -1;
			if (!j->tried_v6) {
				j->tried_v6 = true;
				if (job_connect_local(j) == 0)
					return;
			}
			char why[128];
			snprintf(why, sizeof why, "connect to localhost:%u: %s", j->port,
				 strerror(err));
			job_fail(j, why);
			return;
		}
		job_start_data(j);
		return;
	}
	if (err) {
		char why[128];
		snprintf(why, sizeof why, "connect to host data port: %s", strerror(err));
		job_fail(j, why);
		return;
	}
	struct dbr_msg m;
	dbr_msg_init(&m, DBR_CONNECT_READY);
	snprintf(m.conn_id, sizeof m.conn_id, "%s", j->conn_id);
	size_t len;
	char *line = dbr_format(&m, &len);
	dbr_msg_clear(&m);
	/* A fresh socket's send buffer takes one short line. */
	if (!line || write(j->data_fd, line, len) != (ssize_t)len) {
		free(line);
		job_fail(j, "cannot send ConnectReady");
		return;
	}
	free(line);
	struct rn *n = calloc(1, sizeof *n);
	int local = j->local_fd, dfd = j->data_fd;
	j->local_fd = j->data_fd = -1;
	job_free(j);
	if (!n || relay_new(l, local, dfd, NULL, on_relay_done, n, &n->r) < 0) {
		free(n);
		close(local);
		close(dfd);
		return;
	}
	n->cd = cd;
	LIST_PUSH(cd->relays, n);
}

static void handle_connect_request(struct cd *cd, const struct dbr_msg *m)
{
	if (cd->n_jobs >= CD_MAX_JOBS) {
		struct dbr_msg f;
		dbr_msg_init(&f, DBR_CONNECT_FAILED);
		snprintf(f.conn_id, sizeof f.conn_id, "%s", m->conn_id);
		snprintf(f.error, sizeof f.error, "too many connections in progress");
		ctl_send(cd->ctl, &f);
		dbr_msg_clear(&f);
		return;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->cd = cd;
	j->port = m->port;
	j->local_fd = j->data_fd = -1;
	snprintf(j->conn_id, sizeof j->conn_id, "%s", m->conn_id);
	LIST_PUSH(cd->jobs, j);
	cd->n_jobs++;
	loop_timer_start(cd->loop, &j->timer, CD_CONNECT_TIMEOUT_MS, on_job_timeout, j);
	int r = job_connect_local(j);
	if (r < 0) {
		char why[128];
		snprintf(why, sizeof why, "connect to localhost:%u: %s", j->port, strerror(-r));
		job_fail(j, why);
	}
}

/* --- Unix socket mirrors --- */

static void mirror_free(struct cd *cd, struct mirror *m)
{
	loop_del_fd(cd->loop, m->fd);
	close(m->fd);
	unlink(m->path);
	free(m);
}

static void mirrors_clear(struct cd *cd)
{
	while (cd->mirrors) {
		struct mirror *m = cd->mirrors;
		cd->mirrors = m->next;
		mirror_free(cd, m);
	}
	cd->n_mirrors = 0;
}

static void socket_unforward(struct cd *cd, const char *id)
{
	for (struct mirror **pp = &cd->mirrors; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) != 0)
			continue;
		struct mirror *m = *pp;
		*pp = m->next;
		cd->n_mirrors--;
		log_info("host socket %s withdrawn; removed %s", id, m->path);
		mirror_free(cd, m);
		return;
	}
}

static void on_mirror_accept(struct loop *l, int fd, unsigned events, void *data)
{
	struct mirror *m = data;
	struct cd *cd = m->cd;
	for (int i = 0; i < 32; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		if (cd->state != CD_READY || cd->n_jobs >= CD_MAX_JOBS) {
			close(cfd);
			continue;
		}
		struct job *j = calloc(1, sizeof *j);
		if (!j) {
			close(cfd);
			continue;
		}
		j->cd = cd;
		j->local_fd = cfd;
		j->data_fd = -1;
		/* Container-made ids carry a prefix the host recognises. */
		char uuid[40];
		net_uuid_v4(uuid, sizeof uuid);
		snprintf(j->conn_id, sizeof j->conn_id, "s-%s", uuid);
		LIST_PUSH(cd->jobs, j);
		cd->n_jobs++;
		loop_timer_start(l, &j->timer, CD_CONNECT_TIMEOUT_MS, on_job_timeout, j);
		struct dbr_msg req;
		dbr_msg_init(&req, DBR_SOCKET_CONNECT_REQUEST);
		snprintf(req.socket_id, sizeof req.socket_id, "%s", m->id);
		snprintf(req.conn_id, sizeof req.conn_id, "%s", j->conn_id);
		int r = ctl_send(cd->ctl, &req);
		dbr_msg_clear(&req);
		if (r < 0) {
			job_free(j); /* the control channel is going: so is this client */
			continue;
		}
		job_start_data(j);
	}
}

static void socket_forward(struct cd *cd, const struct dbr_msg *msg)
{
	const char *path = msg->container_path;
	if (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_warn("refusing socket mirror at '%s': not an absolute path that fits sun_path",
			 path);
		return;
	}
	socket_unforward(cd, msg->socket_id); /* a repeat replaces */
	if (cd->n_mirrors >= CD_MAX_MIRRORS) {
		log_warn("refusing socket mirror %s: at most %d", path, CD_MAX_MIRRORS);
		return;
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		/* Replace a stale socket, never anything else. */
		if (!S_ISSOCK(st.st_mode)) {
			log_warn("refusing socket mirror %s: a non-socket file is there", path);
			return;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memcpy(sun.sun_path, path, strlen(path));
	/* 0600 from the first instant: no window in which others can connect. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
		log_warn("socket mirror %s: %s", path, strerror(errno));
		close(fd);
		if (r == 0)
			unlink(path);
		return;
	}
	struct mirror *m = calloc(1, sizeof *m);
	if (!m || loop_add_fd(cd->loop, fd, LOOP_READ, on_mirror_accept, m) < 0) {
		free(m);
		close(fd);
		unlink(path);
		return;
	}
	m->cd = cd;
	m->fd = fd;
	snprintf(m->id, sizeof m->id, "%s", msg->socket_id);
	snprintf(m->path, sizeof m->path, "%s", path);
	m->next = cd->mirrors;
	cd->mirrors = m;
	cd->n_mirrors++;
	log_info("host socket %s mirrored at %s", msg->host_path, path);
}

/* --- the control channel --- */

static void disconnect(struct cd *cd, const char *why)
{
	if (cd->ctl) {
		ctl_conn_free(cd->ctl);
		cd->ctl = NULL;
	}
	if (cd->conn_fd >= 0) {
		loop_del_fd(cd->loop, cd->conn_fd);
		close(cd->conn_fd);
		cd->conn_fd = -1;
	}
	loop_timer_stop(cd->loop, &cd->connect_timer);
	if (cd->state != CD_IDLE)
		log_info("host %s: %s", cd->host_str, why);
	cd->state = CD_IDLE;
	/* Forwards die with the control channel on the host; re-announce all
	 * after the next RegisterAck. */
	cd->n_fwds = 0;
	mirrors_clear(cd);
	double d = backoff_next(&cd->bo);
	loop_timer_stop(cd->loop, &cd->retry_timer);
	loop_timer_start(cd->loop, &cd->retry_timer, (uint64_t)(d * 1000), on_retry, cd);
}

static void on_msg(struct ctl_conn *ctl, const struct dbr_msg *m, void *data)
{
	struct cd *cd = data;
	cd->last_rx = now_mono_ms();
	switch (m->type) {
	case DBR_REGISTER_ACK:
		if (!m->success) {
			const char *why = m->error[0] ? m->error : "registration refused";
			if (!cd->warned_auth || log_get_level() >= LOG_INFO)
				log_error("host %s refused registration: %s", cd->host_str, why);
			cd->warned_auth = true;
			disconnect(cd, why);
			return;
		}
		if (m->version && m->version != DBR_PROTOCOL_VERSION)
			log_warn("host speaks protocol %d, we speak %d", m->version,
				 DBR_PROTOCOL_VERSION);
		cd->state = CD_READY;
		cd->warned_auth = false;
		backoff_reset(&cd->bo);
		if (m->name[0] && strcmp(m->name, cd->o->hostname) != 0)
			log_info("registered with host %s as %s (another live container has "
				 "hostname %s)",
				 cd->host_str, m->name, cd->o->hostname);
		else
			log_info("registered with host %s", cd->host_str);
		scan_now(cd);
		break;
	case DBR_FORWARD_ACK:
		for (size_t i = 0; i < cd->n_fwds; i++) {
			if (cd->fwds[i].port != m->port)
				continue;
			cd->fwds[i].host_port = m->success ? m->host_port : 0;
			if (!m->success)
				log_warn("host could not forward port %u%s%s", m->port,
					 m->error[0] ? ": " : "", m->error);
			else
				log_info("port %u forwarded to host port %u%s%s%s", m->port,
					 m->host_port, m->remapped[0] ? " (remapped: " : "",
					 m->remapped, m->remapped[0] ? ")" : "");
		}
		break;
	case DBR_CONNECT_REQUEST:
		if (cd->state == CD_READY)
			handle_connect_request(cd, m);
		break;
	case DBR_SOCKET_FORWARD:
		if (cd->state == CD_READY)
			socket_forward(cd, m);
		break;
	case DBR_SOCKET_UNFORWARD:
		socket_unforward(cd, m->socket_id);
		break;
	case DBR_PING: {
		struct dbr_msg pong;
		dbr_msg_init(&pong, DBR_PONG);
		ctl_send(ctl, &pong);
		dbr_msg_clear(&pong);
		break;
	}
	case DBR_PONG:
		break;
	default:
		log_debug("ignoring %s from the host", dbr_type_name(m->type));
		break;
	}
}

static void on_bad(struct ctl_conn *ctl, const char *line, size_t len, const char *why, void *data)
{
	log_warn("host sent a bad control line: %s", why);
}

static void on_closed(struct ctl_conn *ctl, int err, void *data)
{
	disconnect(data, err ? strerror(err) : "control connection closed");
}

static const struct ctl_ops cd_ops = {.msg = on_msg, .bad = on_bad, .closed = on_closed};

static void on_connected(struct loop *l, int fd, unsigned events, void *data)
{
	struct cd *cd = data;
	int err = net_so_error(fd);
	loop_del_fd(l, fd);
	loop_timer_stop(l, &cd->connect_timer);
	if (err) {
		cd->conn_fd = -1;
		close(fd);
		log_debug("connect to %s:%u: %s", cd->host_str, cd->o->control_port, strerror(err));
		cd->state = CD_CONNECTING;
		disconnect(cd, strerror(err));
		return;
	}
	cd->conn_fd = -1;
	if (ctl_conn_new(l, fd, &cd_ops, cd, &cd->ctl) < 0) {
		close(fd);
		disconnect(cd, "out of memory");
		return;
	}
	cd->state = CD_REGISTERING;
	cd->last_rx = now_mono_ms();
	struct dbr_msg m;
	dbr_msg_init(&m, DBR_REGISTER);
	m.version = DBR_PROTOCOL_VERSION;
	snprintf(m.container_id, sizeof m.container_id, "%s", cd->o->container_id);
	snprintf(m.hostname, sizeof m.hostname, "%s", cd->o->hostname);
	snprintf(m.auth_token, sizeof m.auth_token, "%s", cd->o->token ? cd->o->token : "");
	snprintf(m.instance, sizeof m.instance, "%s", cd->instance);
	ctl_send(cd->ctl, &m);
	explicit_bzero(m.auth_token, sizeof m.auth_token);
	dbr_msg_clear(&m);
}

static void on_connect_timeout(struct loop *l, void *data)
{
	struct cd *cd = data;
	disconnect(cd, "connect timed out");
}

static void connect_to(struct cd *cd, const char *addr)
{
	snprintf(cd->host_str, sizeof cd->host_str, "%s", addr);
	memset(&cd->host, 0, sizeof cd->host);
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&cd->host;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(cd->o->control_port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		cd->host_len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&cd->host;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(cd->o->control_port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		cd->host_len = sizeof *s4;
	}
	int fd = net_connect_nb((struct sockaddr *)&cd->host, cd->host_len);
	if (fd < 0) {
		disconnect(cd, strerror(-fd));
		return;
	}
	cd->conn_fd = fd;
	int r = loop_add_fd(cd->loop, fd, LOOP_WRITE, on_connected, cd);
	if (r < 0) {
		/* This attempt fails; the next comes after the backoff. */
		disconnect(cd, strerror(-r));
		return;
	}
	loop_timer_start(cd->loop, &cd->connect_timer, CD_CONNECT_TIMEOUT_MS, on_connect_timeout,
			 cd);
}

/* The host is looked up again on every attempt (host.docker.internal may
 * move), on a worker thread: a resolver that takes seconds to answer must
 * not stall the relays that share this loop. */
struct resolve_job {
	struct cd *cd; /* loop side only */
	char *flag;
	char addr[INET6_ADDRSTRLEN];
	int r;
};

static void resolve_job_free(void *arg)
{
	struct resolve_job *j = arg;
	free(j->flag);
	free(j);
}

static void resolve_run(void *arg)
{
	struct resolve_job *j = arg;
	j->r = cd_resolve_host(j->flag, j->addr, sizeof j->addr);
}

static void on_resolved(struct loop *l, void *arg)
{
	struct resolve_job *j = arg;
	struct cd *cd = j->cd;
	cd->resolving = NULL;
	if (j->r < 0) {
		log_warn("cannot find the host: set --host-addr or DEVBRIDGE_HOST");
		disconnect(cd, "host not found");
	} else {
		connect_to(cd, j->addr);
	}
	resolve_job_free(j);
}

static void connect_host(struct cd *cd)
{
	cd->state = CD_CONNECTING;
	if (cd->resolving)
		return;
	struct resolve_job *j = calloc(1, sizeof *j);
	int r = j ? 0 : -ENOMEM;
	if (r == 0) {
		j->cd = cd;
		if (cd->o->host_addr && !(j->flag = strdup(cd->o->host_addr)))
			r = -ENOMEM;
	}
	if (r == 0)
		r = work_start(cd->loop, resolve_run, on_resolved, j, &cd->resolving);
	if (r < 0) {
		if (j)
			resolve_job_free(j);
		disconnect(cd, strerror(-r));
	}
}

/* --- scanning --- */

static void send_port(struct cd *cd, enum dbr_type t, uint16_t port, unsigned long inode)
{
	struct dbr_msg m;
	dbr_msg_init(&m, t);
	m.port = port;
	if (t == DBR_FORWARD && inode) {
		pid_t pid;
		char comm[64];
		if (scan_owner(inode, &pid, comm, sizeof comm) == 0) {
			m.pid = pid;
			snprintf(m.process_name, sizeof m.process_name, "%s", comm);
		}
	}
	ctl_send(cd->ctl, &m);
	dbr_msg_clear(&m);
}

static void scan_now(struct cd *cd)
{
	if (cd->state != CD_READY || !cd->ctl)
		return;
	static struct scan_listener ls[SCAN_MAX_LISTENERS];
	size_t n = 0;
	if (scan_listeners(ls, SCAN_MAX_LISTENERS, &n) < 0)
		return;
	for (size_t i = 0; i < cd->n_fwds; i++)
		cd->fwds[i].present = port_in(cd->pinned, cd->n_pinned, cd->fwds[i].port);
	size_t n_rej = 0;
	__typeof__(cd->rejected) rej;
	for (size_t i = 0; i < n; i++) {
		uint16_t port = ls[i].port;
		if (port == cd->o->control_port || port == cd->o->data_port ||
		    port_in(cd->suppressed, cd->n_suppressed, port))
			continue;
		size_t k;
		for (k = 0; k < cd->n_fwds && cd->fwds[k].port != port; k++)
			;
		if (k < cd->n_fwds) {
			cd->fwds[k].present = true;
			continue;
		}
		bool pinned = port_in(cd->pinned, cd->n_pinned, port);
		if (cd->o->filter && !pinned) {
			bool known = false;
			for (size_t r = 0; r < cd->n_rejected && !known; r++)
				known = cd->rejected[r].port == port &&
					cd->rejected[r].inode == ls[i].inode;
			bool ok = !known && port_filter_allows(cd->o->filter, port, "");
			if (ok) {
				char comm[64] = "";
				pid_t pid;
				if (ls[i].inode)
					scan_owner(ls[i].inode, &pid, comm, sizeof comm);
				ok = port_filter_allows(cd->o->filter, port, comm);
			}
			if (!ok) {
				if (n_rej < ARRAY_SIZE(rej)) {
					rej[n_rej].port = port;
					rej[n_rej].inode = ls[i].inode;
					n_rej++;
				}
				continue;
			}
		}
		if (cd->n_fwds >= CD_MAX_FORWARDS)
			break;
		cd->fwds[cd->n_fwds++] = (struct cd_fwd){.port = port, .present = true};
		send_port(cd, DBR_FORWARD, port, ls[i].inode);
	}
	memcpy(cd->rejected, rej, n_rej * sizeof rej[0]);
	cd->n_rejected = n_rej;
	/* Pinned ports are forwarded even before anything listens. */
	for (size_t i = 0; i < cd->n_pinned && cd->n_fwds < CD_MAX_FORWARDS; i++) {
		size_t k;
		for (k = 0; k < cd->n_fwds && cd->fwds[k].port != cd->pinned[i]; k++)
			;
		if (k < cd->n_fwds)
			continue;
		cd->fwds[cd->n_fwds++] = (struct cd_fwd){.port = cd->pinned[i], .present = true};
		send_port(cd, DBR_FORWARD, cd->pinned[i], 0);
	}
	for (size_t i = 0; i < cd->n_fwds;) {
		if (cd->fwds[i].present) {
			i++;
			continue;
		}
		send_port(cd, DBR_UNFORWARD, cd->fwds[i].port, 0);
		cd->fwds[i] = cd->fwds[--cd->n_fwds];
	}
}

/* --- the local control socket: `devbridge forward/unforward PORT` --- */

struct lconn {
	struct cd *cd;
	struct lconn *prev, *next;
	struct ctl_conn *ctl;
};

static void lconn_free(struct lconn *lc)
{
	LIST_UNLINK(lc->cd->lconns, lc);
	ctl_conn_free(lc->ctl);
	free(lc);
}

static uint16_t host_port_of(struct cd *cd, uint16_t port)
{
	for (size_t i = 0; i < cd->n_fwds; i++)
		if (cd->fwds[i].port == port)
			return cd->fwds[i].host_port;
	return 0;
}

static void on_local_msg(struct ctl_conn *ctl, const struct dbr_msg *m, void *data)
{
	struct lconn *lc = data;
	struct cd *cd = lc->cd;
	struct dbr_msg r;
	switch (m->type) {
	case DBR_FORWARD:
		port_del(cd->suppressed, &cd->n_suppressed, m->port);
		if (!port_in(cd->pinned, cd->n_pinned, m->port) && cd->n_pinned < CD_MAX_FORWARDS)
			cd->pinned[cd->n_pinned++] = m->port;
		scan_now(cd);
		dbr_msg_init(&r, DBR_FORWARD_ACK);
		r.port = m->port;
		r.success = port_in(cd->pinned, cd->n_pinned, m->port);
		r.host_port = host_port_of(cd, m->port);
		break;
	case DBR_UNFORWARD:
		port_del(cd->pinned, &cd->n_pinned, m->port);
		if (!port_in(cd->suppressed, cd->n_suppressed, m->port) &&
		    cd->n_suppressed < CD_MAX_FORWARDS)
			cd->suppressed[cd->n_suppressed++] = m->port;
		for (size_t i = 0; i < cd->n_fwds; i++) {
			if (cd->fwds[i].port != m->port)
				continue;
			if (cd->ctl)
				send_port(cd, DBR_UNFORWARD, m->port, 0);
			cd->fwds[i] = cd->fwds[--cd->n_fwds];
			break;
		}
		dbr_msg_init(&r, DBR_FORWARD_ACK);
		r.port = m->port;
		r.success = true;
		break;
	case DBR_LIST_REQUEST:
		dbr_msg_init(&r, DBR_LIST_RESPONSE);
		r.forwards = json_array();
		r.socket_forwards = json_array();
		for (size_t i = 0; i < cd->n_fwds; i++)
			json_array_append_new(
			    r.forwards,
			    json_pack("{s:s, s:s, s:i, s:i, s:s, s:n, s:n, s:s}", "container_id",
				      cd->o->container_id, "hostname", cd->o->hostname, "port",
				      cd->fwds[i].port, "host_port", cd->fwds[i].host_port,
				      "protocol", "Tcp", "process_name", "pid", "since", ""));
		for (struct mirror *mi = cd->mirrors; mi; mi = mi->next)
			json_array_append_new(r.socket_forwards,
					      json_pack("{s:s, s:s, s:s}", "socket_id", mi->id,
							"host_path", "", "container_path",
							mi->path));
		break;
	case DBR_PING:
		dbr_msg_init(&r, DBR_PONG);
		break;
	default:
		return;
	}
	ctl_send(ctl, &r);
	dbr_msg_clear(&r);
}

static void on_local_bad(struct ctl_conn *ctl, const char *line, size_t len, const char *why,
			 void *data)
{
	log_warn("local control: %s", why);
}

static void on_local_closed(struct ctl_conn *ctl, int err, void *data)
{
	lconn_free(data);
}

static const struct ctl_ops local_ops = {
    .msg = on_local_msg, .bad = on_local_bad, .closed = on_local_closed};

static void on_local_accept(struct loop *l, int fd, unsigned events, void *data)
{
	struct cd *cd = data;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		struct lconn *lc = calloc(1, sizeof *lc);
		if (!lc || ctl_conn_new(l, cfd, &local_ops, lc, &lc->ctl) < 0) {
			free(lc);
			close(cfd);
			continue;
		}
		lc->cd = cd;
		LIST_PUSH(cd->lconns, lc);
	}
}

/* The socket is 0600 in a 0700 state directory: only this user may steer
 * the daemon. */
static int local_listen(struct cd *cd, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path)
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path));
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* a stale socket of an earlier daemon */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (r < 0 || listen(fd, 16) < 0 ||
	    loop_add_fd(cd->loop, fd, LOOP_READ, on_local_accept, cd) < 0) {
		r = -errno;
		close(fd);
		return r ? r : -EIO;
	}
	return fd;
}

static void on_scan(struct loop *l, void *data)
{
	struct cd *cd = data;
	scan_now(cd);
	loop_timer_start(l, &cd->scan_timer, cd->scan_ms, on_scan, cd);
}

static void on_hb(struct loop *l, void *data)
{
	struct cd *cd = data;
	if (cd->ctl && cd->state >= CD_REGISTERING &&
	    now_mono_ms() - cd->last_rx > 3ull * cd->o->heartbeat_ms + 1000)
		disconnect(cd, "host silent for 3 heartbeats");
	loop_timer_start(l, &cd->hb_timer, cd->o->heartbeat_ms, on_hb, cd);
}

static void on_parent(struct loop *l, int fd, unsigned events, void *data)
{
	log_info("parent process %ld exited; exiting", (long)((struct cd *)data)->o->parent_pid);
	loop_del_fd(l, fd);
	loop_stop(l);
}

static void on_signal(struct loop *l, int signo, void *data)
{
	log_info("%s: exiting", strsignal(signo));
	loop_stop(l);
}

int cd_run(const struct cd_opts *o)
{
	struct cd cd = {.o = o, .conn_fd = -1, .pidfd = -1};
	static const int sigs[] = {SIGTERM, SIGINT, 0};
	signal(SIGPIPE, SIG_IGN);
	int r = loop_new(&cd.loop);
	if (r == 0)
		r = loop_watch_signals(cd.loop, sigs, on_signal, &cd);
	if (r < 0) {
		log_error("event loop: %s", strerror(-r));
		loop_free(cd.loop);
		return EXIT_ERROR;
	}
	if (o->parent_pid > 0) {
		/* The seed documents parent monitoring without doing it. */
		cd.pidfd = (int)syscall(SYS_pidfd_open, o->parent_pid, 0);
		if (cd.pidfd < 0) {
			log_error("parent pid %ld: %s", (long)o->parent_pid, strerror(errno));
			loop_free(cd.loop);
			return EXIT_ERROR;
		}
		r = loop_add_fd(cd.loop, cd.pidfd, LOOP_READ, on_parent, &cd);
		if (r < 0) {
			log_error("parent pid %ld: cannot watch it: %s", (long)o->parent_pid,
				  strerror(-r));
			close(cd.pidfd);
			loop_free(cd.loop);
			return EXIT_ERROR;
		}
	}
	backoff_init(&cd.bo, CD_BACKOFF_INITIAL_S, CD_BACKOFF_MAX_S);
	net_uuid_v4(cd.instance, sizeof cd.instance);
	unsigned scan_ms = o->scan_ms;
	if (!scan_ms) {
		/* Poll fast only where polling is cheap. */
		static struct scan_listener probe[SCAN_MAX_LISTENERS];
		size_t n = 0;
		scan_ms = scan_listeners_netlink(probe, SCAN_MAX_LISTENERS, &n) == 0
			      ? CD_DEFAULT_SCAN_MS
			      : CD_PROC_SCAN_MS;
		if (scan_ms == CD_PROC_SCAN_MS)
			log_warn(
			    "netlink sock_diag unavailable; scanning /proc/net/tcp every %u ms",
			    scan_ms);
	}
	cd.scan_ms = scan_ms;
	log_info(
	    "container daemon: id %s, host %s, control port %u, data port %u, scan every %u ms",
	    o->container_id, o->host_addr ? o->host_addr : "(auto)", o->control_port, o->data_port,
	    scan_ms);
	cd.local_lfd = -1;
	if (o->control_socket) {
		cd.local_lfd = local_listen(&cd, o->control_socket);
		/* Forwarding is the job; `forward`/`unforward` are extras. */
		if (cd.local_lfd < 0)
			log_warn("control socket %s: %s; `devbridge forward/unforward` will not "
				 "reach this daemon (use --control-socket)",
				 o->control_socket, strerror(-cd.local_lfd));
	}
	connect_host(&cd);
	loop_timer_start(cd.loop, &cd.scan_timer, scan_ms, on_scan, &cd);
	loop_timer_start(cd.loop, &cd.hb_timer, o->heartbeat_ms, on_hb, &cd);
	loop_run(cd.loop);

	mirrors_clear(&cd);
	while (cd.lconns)
		lconn_free(cd.lconns);
	if (cd.local_lfd >= 0) {
		loop_del_fd(cd.loop, cd.local_lfd);
		close(cd.local_lfd);
		unlink(o->control_socket);
	}
	while (cd.jobs)
		job_free(cd.jobs);
	while (cd.relays) {
		struct rn *n = cd.relays;
		LIST_UNLINK(cd.relays, n);
		relay_free(n->r);
		free(n);
	}
	ctl_conn_free(cd.ctl);
	work_abandon(cd.resolving, resolve_job_free);
	if (cd.conn_fd >= 0)
		close(cd.conn_fd);
	if (cd.pidfd >= 0)
		close(cd.pidfd);
	loop_timer_stop(cd.loop, &cd.retry_timer);
	loop_timer_stop(cd.loop, &cd.connect_timer);
	loop_timer_stop(cd.loop, &cd.scan_timer);
	loop_timer_stop(cd.loop, &cd.hb_timer);
	loop_free(cd.loop);
	return cd.exit_code;
}
