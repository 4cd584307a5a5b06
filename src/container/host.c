/* host.c - the host daemon; see host.h.
 *
 * Objects and who owns them:
 *   struct host      the daemon: listeners, lists below, timers
 *   struct hconn     one control connection (a container once registered)
 *   struct fwd       one forwarded port of a container: its host listeners
 *   struct pending   a client accepted on a forward, waiting for the
 *                    container's data connection (10 s)
 *   struct dconn     a data connection waiting for its ConnectReady line
 *   struct rnode     a paired client <-> data relay
 *   struct hbrowser  a browser started for OpenUrl, watched until it exits
 * A container going away takes its forwards and pending clients with it;
 * relays already paired keep running until either side closes. */
#include "container/host.h"
#include "core/errcode.h"
#include "container/auth.h"
#include "container/browser.h"
#include "container/ctl.h"
#include "core/audit.h"
#include "core/log.h"
#include "core/net.h"
#include "core/list.h"
#include "core/loop.h"
#include "core/relay.h"
#include "core/state.h"
#include "core/util.h"
#include "core/work.h"
#include "proto/dbr.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define AUDIT_NAME "host-daemon"
/* Container-made conn_ids (Unix socket connections) start with this. */
#define SOCKET_CONN_PREFIX "s-"

struct host;

struct fwd {
	struct hconn *c;
	uint16_t port, host_port;
	int fd4, fd6;
	char process[DBR_PROCESS_MAX + 1];
	int32_t pid;
	char since[40];
	struct fwd *next;
};

struct hconn {
	struct host *h;
	struct ctl_conn *ctl;
	struct hconn *prev, *next;
	bool registered;
	int version;
	uint64_t accepted; /* monotonic ms: the oldest unregistered is evicted */
	char id[DBR_ID_MAX + 1];
	char hostname[DBR_ID_MAX + 1];
	/* Shown in status and the audit log: the hostname, made distinct
	 * ("dev-2") when another live daemon registered the same one. */
	char name[DBR_ID_MAX + 1];
	char instance[DBR_CONN_ID_MAX + 1]; /* the daemon process; "" = a seed container */
	char peer[INET6_ADDRSTRLEN];
	char since[40];
	struct fwd *fwds;
	size_t n_fwds;
	int missed;
	struct loop_timer reg_timer;
};

struct pending {
	struct host *h;
	struct pending *prev, *next;
	char conn_id[DBR_CONN_ID_MAX + 1];
	struct fwd *f;		  /* TCP: the forward the client came in on */
	struct hconn *sock_owner; /* Unix socket: the container that asked */
	int client_fd;
	struct loop_timer timer;
};

struct dconn {
	struct host *h;
	struct dconn *prev, *next;
	int fd;
	uint64_t accepted;
	char buf[512];
	size_t len;
	size_t line; /* length of the ConnectReady line once read */
	char conn_id[DBR_CONN_ID_MAX + 1];
	bool parked; /* ConnectReady came before its SocketConnectRequest */
	struct loop_timer timer;
};

/* A host Unix socket offered to containers. */
struct hsock {
	struct hsock *next;
	char id[DBR_SOCKET_ID_MAX + 1];
	char host_path[DBR_PATH_MAX + 1];
	char container_path[DBR_PATH_MAX + 1];
	bool present;
};

struct rnode {
	struct host *h;
	struct rnode *prev, *next;
	struct relay *r;
};

/* At most BROWSER_RATE_MAX are started a second; each is reaped by its own
 * watch (nothing in the daemon reaps with waitpid(-1)). */
struct hbrowser {
	struct host *h;
	struct hbrowser *prev, *next;
	struct loop_child w;
};

struct host {
	const struct host_opts *o;
	struct loop *loop;
	int ctl_lfd, data_lfd;
	uint16_t ctl_port, data_port;
	struct hconn *conns;
	size_t n_containers, n_unregistered;
	struct pending *pending;
	size_t n_pending;
	struct dconn *dconns;
	size_t n_dconns;
	struct rnode *relays;
	size_t n_relays;
	struct hbrowser *browsers;
	struct hsock *socks;
	size_t n_socks;
	unsigned sock_seq;
	struct browser_rate rate;
	struct loop_timer hb_timer, idle_timer, drain_timer, sock_timer;
	struct work *sock_work;		  /* a socket scan in progress */
	uint64_t n_evicted, evict_logged; /* unregistered connections evicted */
	bool stopping;
	int exit_code;
};

static void hconn_drop(struct hconn *c, const char *why);
static void maybe_idle(struct host *h);
static void handle_socket_connect(struct hconn *c, const struct dbr_msg *m);
static void send_socket_msg(struct hconn *c, enum dbr_type t, const struct hsock *k);

/* --- state file and audit --- */

/* `who` is "container:NAME" for a registered container, "peer:ADDRESS"
 * for anything else: the audit log names who really asked. */
static void host_audit_as(struct host *h, const char *who, const char *ev, const char *detail)
{
	if (!h->o->state_dir)
		return;
	audit_append(h->o->state_dir, AUDIT_NAME, ev, who, "automation", detail);
	/* audit_append names the file and the "tunnel" field alike; the
	 * container is in the actor. */
}

static void host_audit(struct host *h, const struct hconn *c, const char *ev, const char *detail)
{
	char actor[DBR_ID_MAX + 16];
	if (c->registered)
		snprintf(actor, sizeof actor, "container:%s", c->name);
	else
		snprintf(actor, sizeof actor, "peer:%s", c->peer);
	host_audit_as(h, actor, ev, detail);
}

/* Why a forward's host port differs from its container port. */
static const char *fwd_remap_reason(const struct fwd *f)
{
	if (f->host_port == f->port)
		return NULL;
	return f->port < 1024 && f->host_port >= 1024 ? "privileged" : "in_use";
}

/* ForwardInfo objects (the wire's: exactly its fields), plus with
 * `for_state` the members only the state file and status show. */
static json_t *forwards_json(const struct hconn *c, bool for_state)
{
	json_t *a = json_array();
	for (const struct fwd *f = c->fwds; f; f = f->next) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:i, s:i, s:s, s:o, s:o, s:s}", "container_id", c->id, "hostname",
		    c->hostname, "port", f->port, "host_port", f->host_port, "protocol", "Tcp",
		    "process_name", f->process[0] ? json_string(f->process) : json_null(), "pid",
		    f->pid >= 0 ? json_integer(f->pid) : json_null(), "since", f->since);
		const char *why = fwd_remap_reason(f);
		if (o && for_state)
			json_object_set_new(o, "remapped", why ? json_string(why) : json_null());
		json_array_append_new(a, o);
	}
	return a;
}

static void write_state(struct host *h)
{
	if (!h->o->state_dir)
		return;
	json_t *cs = json_array();
	for (struct hconn *c = h->conns; c; c = c->next) {
		if (!c->registered)
			continue;
		json_array_append_new(
		    cs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "container_id", c->id, "name",
				  c->name, "hostname", c->hostname, "peer", c->peer, "since",
				  c->since, "forwards", forwards_json(c, true)));
	}
	char since[40];
	now_iso8601(since, sizeof since);
	json_t *socks = json_array();
	for (const struct hsock *k = h->socks; k; k = k->next)
		json_array_append_new(socks,
				      json_pack("{s:s, s:s, s:s}", "socket_id", k->id, "host_path",
						k->host_path, "container_path", k->container_path));
	/* Written when containers, forwards or sockets change; live
	 * connection counts would be stale here, so they are not. */
	json_t *o =
	    json_pack("{s:s, s:s, s:I, s:i, s:i, s:s, s:o, s:o}", "name", AUDIT_NAME, "kind",
		      "host", "pid", (json_int_t)getpid(), "control_port", h->ctl_port, "data_port",
		      h->data_port, "updated", since, "containers", cs, "socket_forwards", socks);
	state_write(h->o->state_dir, AUDIT_NAME, o);
	json_decref(o);
}

/* --- relays --- */

static void on_relay_done(struct relay *r, void *data)
{
	struct rnode *n = data;
	struct host *h = n->h;
	LIST_UNLINK(h->relays, n);
	h->n_relays--;
	relay_free(r);
	free(n);
	if (h->n_relays == 0) {
#ifdef __GLIBC__
		/* After a burst of connections, give the heap back. */
		malloc_trim(0);
#endif
		if (h->stopping)
			loop_stop(h->loop);
	}
}

static void start_relay(struct host *h, int data_fd, int client_fd, const char *pre, size_t plen)
{
	struct rnode *n = calloc(1, sizeof *n);
	if (!n) {
		close(data_fd);
		close(client_fd);
		return;
	}
	n->h = h;
	int r = relay_new(h->loop, data_fd, client_fd, NULL, on_relay_done, n, &n->r);
	if (r < 0) {
		log_warn("relay: %s", strerror(-r));
		close(data_fd);
		close(client_fd);
		free(n);
		return;
	}
	if (plen)
		relay_preload_a(n->r, pre, plen);
	LIST_PUSH(h->relays, n);
	h->n_relays++;
}

/* --- pending client connections --- */

static void pending_free(struct pending *p, bool close_client)
{
	struct host *h = p->h;
	LIST_UNLINK(h->pending, p);
	h->n_pending--;
	loop_timer_stop(h->loop, &p->timer);
	if (close_client && p->client_fd >= 0)
		close(p->client_fd);
	free(p);
}

static void on_pending_timeout(struct loop *l, void *data)
{
	struct pending *p = data;
	log_info("connection %s: no data connection from the container within %u ms", p->conn_id,
		 p->h->o->pending_timeout_ms);
	pending_free(p, true);
}

static void on_fwd_accept(struct loop *l, int fd, unsigned events, void *data)
{
	struct fwd *f = data;
	struct host *h = f->c->h;
	for (int i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		if (h->n_pending >= HOST_MAX_PENDING) {
			log_warn("too many pending connections (%d); refusing one on port %u",
				 HOST_MAX_PENDING, f->host_port);
			close(cfd);
			continue;
		}
		struct pending *p = calloc(1, sizeof *p);
		if (!p) {
			close(cfd);
			continue;
		}
		p->h = h;
		p->f = f;
		p->client_fd = cfd;
		net_uuid_v4(p->conn_id, sizeof p->conn_id);
		LIST_PUSH(h->pending, p);
		h->n_pending++;
		loop_timer_start(l, &p->timer, h->o->pending_timeout_ms, on_pending_timeout, p);
		struct dbr_msg m;
		dbr_msg_init(&m, DBR_CONNECT_REQUEST);
		m.port = f->port;
		snprintf(m.conn_id, sizeof m.conn_id, "%s", p->conn_id);
		/* The listener belongs to this forward: route to its container.
		 * A failed send frees nothing but p: the container goes later. */
		int r = ctl_send(f->c->ctl, &m);
		dbr_msg_clear(&m);
		if (r < 0) {
			pending_free(p, true);
			return;
		}
	}
}

/* --- forwards --- */

static void fwd_close(struct host *h, struct fwd *f)
{
	if (f->fd4 >= 0) {
		loop_del_fd(h->loop, f->fd4);
		close(f->fd4);
	}
	if (f->fd6 >= 0) {
		loop_del_fd(h->loop, f->fd6);
		close(f->fd6);
	}
	/* Clients still waiting for this forward get closed. */
	for (struct pending *p = h->pending, *next; p; p = next) {
		next = p->next;
		if (p->f == f)
			pending_free(p, true);
	}
	free(f);
}

/* Bind 127.0.0.1:port (and [::1]:port when possible); on a conflict try
 * the next ports.  Forwarded ports never bind anything but loopback, never
 * the daemon's own ports, and a container port below 1024 (22, 80, 443:
 * the host's own services' ports) only with allow_privileged_ports; else
 * it lands HOST_PRIVILEGED_OFFSET higher. */
static int fwd_bind(struct host *h, struct fwd *f)
{
	uint32_t port = f->port;
	if (port < 1024 && !h->o->allow_privileged_ports)
		port += HOST_PRIVILEGED_OFFSET;
	for (int i = 0; i < HOST_REMAP_TRIES && port <= 65535; i++, port++) {
		if (port == h->ctl_port || port == h->data_port)
			continue;
		int fd4 = net_listen_tcp("127.0.0.1", (uint16_t)port, NULL);
		if (fd4 == -EACCES && port < 1024) {
			port += HOST_PRIVILEGED_OFFSET - 1; /* not root after all */
			continue;
		}
		if (fd4 == -EADDRINUSE || fd4 == -EACCES)
			continue;
		if (fd4 < 0)
			return fd4;
		int fd6 = net_listen_tcp("::1", (uint16_t)port, NULL);
		if (fd6 == -EADDRINUSE) {
			/* Someone holds [::1]:port: a client resolving localhost
			 * to ::1 would reach them, not us.  Next port. */
			close(fd4);
			continue;
		}
		f->fd4 = fd4;
		f->fd6 = fd6 >= 0 ? fd6 : -1;
		f->host_port = (uint16_t)port;
		return 0;
	}
	return -EADDRINUSE;
}

static struct fwd *fwd_find(struct hconn *c, uint16_t port)
{
	for (struct fwd *f = c->fwds; f; f = f->next)
		if (f->port == port)
			return f;
	return NULL;
}

/* ForwardAck for `port`: f's host port on success, else `error` (told only
 * to devbridge containers, whose parser takes the extra fields). */
static void send_forward_ack(struct hconn *c, uint16_t port, const struct fwd *f, const char *error)
{
	struct dbr_msg ack;
	dbr_msg_init(&ack, DBR_FORWARD_ACK);
	ack.port = port;
	ack.success = f != NULL;
	ack.host_port = f ? f->host_port : 0;
	if (c->version >= 2) {
		const char *why = f ? fwd_remap_reason(f) : NULL;
		snprintf(ack.remapped, sizeof ack.remapped, "%s", why ? why : "");
		snprintf(ack.error, sizeof ack.error, "%s", f || !error ? "" : error);
	}
	ctl_send(c->ctl, &ack);
	dbr_msg_clear(&ack);
}

static void handle_forward(struct hconn *c, const struct dbr_msg *m)
{
	struct host *h = c->h;
	struct fwd *f = fwd_find(c, m->port);
	if (f) {
		send_forward_ack(c, m->port, f, NULL);
		return;
	}
	if (c->n_fwds >= HOST_MAX_FORWARDS) {
		log_warn("container %s: forward limit (%d) reached; refusing port %u", c->name,
			 HOST_MAX_FORWARDS, m->port);
		send_forward_ack(c, m->port, NULL, "forward limit (128) reached");
		return;
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		send_forward_ack(c, m->port, NULL, "out of memory");
		return;
	}
	f->c = c;
	f->port = m->port;
	f->fd4 = f->fd6 = -1;
	f->pid = m->pid;
	snprintf(f->process, sizeof f->process, "%s", m->process_name);
	text_sanitize(f->process);
	now_iso8601(f->since, sizeof f->since);
	int r = fwd_bind(h, f);
	if (r == 0)
		r = loop_add_fd(h->loop, f->fd4, LOOP_READ, on_fwd_accept, f);
	if (r == 0 && f->fd6 >= 0)
		r = loop_add_fd(h->loop, f->fd6, LOOP_READ, on_fwd_accept, f);
	if (r < 0) {
		log_warn("container %s: cannot forward port %u: %s", c->name, m->port,
			 strerror(-r));
		fwd_close(h, f);
		send_forward_ack(c, m->port, NULL, strerror(-r));
		return;
	}
	f->next = c->fwds;
	c->fwds = f;
	c->n_fwds++;
	/* f stays valid whatever the send does: a send never frees. */
	send_forward_ack(c, m->port, f, NULL);
	const char *why = fwd_remap_reason(f);
	char d[512];
	snprintf(d, sizeof d, "container port %u -> 127.0.0.1:%u%s%s%s%s", f->port, f->host_port,
		 f->process[0] ? " (" : "", f->process, f->process[0] ? ")" : "",
		 !why			     ? ""
		 : strcmp(why, "privileged") ? "; remapped: port in use"
					     : "; remapped: privileged port (host-daemon "
					       "--allow-privileged-ports binds it as is)");
	if (why)
		log_info("container %s: port %u remapped to %u (%s)", c->name, f->port,
			 f->host_port, strcmp(why, "privileged") ? "in use" : "privileged port");
	host_audit(h, c, "port_forwarded", d);
	write_state(h);
}

static void handle_unforward(struct hconn *c, uint16_t port)
{
	for (struct fwd **pp = &c->fwds; *pp; pp = &(*pp)->next) {
		struct fwd *f = *pp;
		if (f->port != port)
			continue;
		*pp = f->next;
		c->n_fwds--;
		char d[128];
		snprintf(d, sizeof d, "container port %u (host port %u)", f->port, f->host_port);
		fwd_close(c->h, f);
		host_audit(c->h, c, "port_unforwarded", d);
		write_state(c->h);
		return;
	}
}

/* --- URLs --- */

struct map_ctx {
	struct host *h;
	struct hconn *c;
};

static uint16_t map_port(void *data, uint16_t port)
{
	struct map_ctx *m = data;
	if (m->c) {
		struct fwd *f = fwd_find(m->c, port);
		return f ? f->host_port : 0;
	}
	/* Unregistered client (`devbridge open`): only an unambiguous owner. */
	struct fwd *found = NULL;
	for (struct hconn *c = m->h->conns; c; c = c->next) {
		struct fwd *f = c->registered ? fwd_find(c, port) : NULL;
		if (f && found)
			return 0;
		if (f)
			found = f;
	}
	return found ? found->host_port : 0;
}

/* The container an unregistered client belongs to, by its address: each
 * container (network namespace) connects from its own address. */
static struct hconn *container_by_peer(struct host *h, const char *peer)
{
	struct hconn *found = NULL;
	for (struct hconn *c = h->conns; c; c = c->next) {
		if (!c->registered || strcmp(c->peer, peer) != 0)
			continue;
		if (found)
			return NULL; /* several containers behind one address */
		found = c;
	}
	return found;
}

/* Is this connection allowed to act?  A registered container proved the
 * token when it registered; anything else proves it with each request. */
static bool authorized(const struct hconn *c, const char *token)
{
	return c->h->o->no_auth || c->registered || auth_check(c->h->o->token, token);
}

static void refuse_auth(struct hconn *c, const char *what, const char *token)
{
	char d[768];
	snprintf(d, sizeof d, "%s from %s %s", what, c->peer,
		 token && token[0] ? "with a wrong token" : "without a token");
	log_warn("%s", d);
	host_audit(c->h, c, "auth_failed", d);
}

static void on_browser_exit(struct loop *l, pid_t pid, int status, void *data)
{
	struct hbrowser *b = data;
	LIST_UNLINK(b->h->browsers, b);
	free(b);
}

/* Run the browser on `url`, watched until it exits. */
static int open_browser(struct host *h, const char *url)
{
	struct hbrowser *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	pid_t pid;
	int r = browser_open(h->o->browser_cmd, url, &pid);
	if (r == 0) {
		r = loop_child_watch(h->loop, &b->w, pid, on_browser_exit, b);
		if (r < 0) {
			/* Unwatched it would stay a zombie: do not leave it. */
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	if (r < 0) {
		free(b);
		return r;
	}
	b->h = h;
	LIST_PUSH(h->browsers, b);
	return 0;
}

static void handle_open_url(struct hconn *c, const struct dbr_msg *m)
{
	struct host *h = c->h;
	struct dbr_msg ack;
	dbr_msg_init(&ack, DBR_OPEN_URL_ACK);
	char err[256] = "", url[BROWSER_URL_MAX + 16];
	/* Only a devbridge client sends a token, and only it takes "error". */
	bool tell = m->auth_token[0] != '\0';
	/* The container whose ports localhost:PORT means: the registered one
	 * asking, else the one container connecting from this address. */
	struct map_ctx mc = {.h = h, .c = c->registered ? c : container_by_peer(h, c->peer)};
	if (!authorized(c, m->auth_token)) {
		refuse_auth(c, "OpenUrl", m->auth_token);
		snprintf(err, sizeof err, "authentication failed");
	} else if (browser_validate(m->url, err, sizeof err) < 0) {
		log_warn("OpenUrl refused: %s", err);
	} else if (!browser_rate_allow(&h->rate, now_mono_ms())) {
		snprintf(err, sizeof err, "more than %d URLs a second", BROWSER_RATE_MAX);
		log_warn("OpenUrl refused: %s", err);
	} else if (browser_rewrite(m->url, map_port, &mc, url, sizeof url) >= 0) {
		int r = open_browser(h, url);
		ack.success = r == 0;
		if (r < 0) {
			snprintf(err, sizeof err, "cannot run the browser: %s", strerror(-r));
			log_warn("%s", err);
		}
		/* Log scheme, host and path only: a query may carry an OAuth code. */
		char shown[BROWSER_URL_MAX + 16];
		snprintf(shown, sizeof shown, "%.*s", (int)strcspn(url, "?#"), url);
		/* Who asked: the container (registered, or the one registered
		 * container at the client's address), else the address. */
		if (mc.c)
			host_audit(h, mc.c, "url_opened", shown);
		else
			host_audit(h, c, "url_opened", shown);
	} else {
		snprintf(err, sizeof err, "the URL cannot be rewritten");
	}
	if (tell && !ack.success)
		snprintf(ack.error, sizeof ack.error, "%s", err);
	ctl_send(c->ctl, &ack);
	dbr_msg_clear(&ack);
}

/* --- control connections --- */

static void send_register_ack(struct hconn *c, bool ok, const char *error)
{
	struct dbr_msg ack;
	dbr_msg_init(&ack, DBR_REGISTER_ACK);
	ack.success = ok;
	/* A seed (version 1) container rejects unknown fields: answer in its
	 * own dialect. */
	if (c->version >= 2)
		ack.version = DBR_PROTOCOL_VERSION;
	if (error && c->version >= 2)
		snprintf(ack.error, sizeof ack.error, "%s", error);
	if (ok && c->version >= 2)
		snprintf(ack.name, sizeof ack.name, "%s", c->name);
	ctl_send(c->ctl, &ack);
	dbr_msg_clear(&ack);
}

static void on_reg_timeout(struct loop *l, void *data)
{
	struct hconn *c = data;
	if (!c->registered)
		hconn_drop(c, "not registered within 5 s");
}

/* The same daemon again (a reconnect): same container_id and the same
 * instance; for a seed container, which sends none, the same address. */
static bool same_daemon(const struct hconn *o, const struct hconn *c, const char *instance)
{
	if (o->instance[0] && instance[0])
		return strcmp(o->instance, instance) == 0;
	return strcmp(o->peer, c->peer) == 0;
}

static bool name_taken(const struct host *h, const struct hconn *self, const char *name)
{
	for (const struct hconn *o = h->conns; o; o = o->next)
		if (o != self && o->registered && strcmp(o->name, name) == 0)
			return true;
	return false;
}

/* The hostname, or hostname-2, -3 ... when another live container shows it. */
static void pick_name(struct host *h, struct hconn *c)
{
	snprintf(c->name, sizeof c->name, "%s", c->hostname);
	for (unsigned k = 2; name_taken(h, c, c->name) && k < 10000; k++) {
		char sfx[12];
		int n = snprintf(sfx, sizeof sfx, "-%u", k);
		size_t keep = strlen(c->hostname);
		if (keep + (size_t)n > DBR_ID_MAX)
			keep = DBR_ID_MAX - (size_t)n;
		snprintf(c->name, sizeof c->name, "%.*s%s", (int)keep, c->hostname, sfx);
	}
}

static void handle_register(struct hconn *c, const struct dbr_msg *m)
{
	struct host *h = c->h;
	c->version = m->version ? m->version : 1;
	if (c->registered) {
		log_warn("container %s: second Register on one connection; ignored", c->name);
		return;
	}
	if (c->version > DBR_PROTOCOL_VERSION) {
		char e[128];
		snprintf(e, sizeof e, "protocol version %d not supported (this host speaks %d)",
			 c->version, DBR_PROTOCOL_VERSION);
		send_register_ack(c, false, e);
		hconn_drop(c, e);
		return;
	}
	if (!h->o->no_auth && !auth_check(h->o->token, m->auth_token)) {
		char what[2 * DBR_ID_MAX + 64];
		snprintf(what, sizeof what, "Register (container_id %s, hostname %s)",
			 m->container_id, m->hostname);
		refuse_auth(c, what, m->auth_token);
		send_register_ack(c, false, "authentication failed");
		hconn_drop(c, "authentication failed");
		return;
	}
	/* A reconnect of the same daemon replaces its old session; another
	 * live daemon with the same id keeps its own (a distinct name below):
	 * two containers with one hostname must not take turns forever. */
	for (struct hconn *o = h->conns, *next; o; o = next) {
		next = o->next;
		if (o != c && o->registered && strcmp(o->id, m->container_id) == 0 &&
		    same_daemon(o, c, m->instance))
			hconn_drop(o, "replaced by a new registration of the same daemon");
	}
	if (h->n_containers >= HOST_MAX_CONTAINERS) {
		send_register_ack(c, false, "too many containers");
		hconn_drop(c, "container limit reached");
		return;
	}
	snprintf(c->id, sizeof c->id, "%s", m->container_id);
	snprintf(c->hostname, sizeof c->hostname, "%s", m->hostname);
	snprintf(c->instance, sizeof c->instance, "%s", m->instance);
	pick_name(h, c);
	c->registered = true;
	h->n_unregistered--;
	h->n_containers++;
	now_iso8601(c->since, sizeof c->since);
	loop_timer_stop(h->loop, &c->reg_timer);
	loop_timer_stop(h->loop, &h->idle_timer);
	send_register_ack(c, true, NULL);
	for (struct hsock *k = h->socks; k; k = k->next)
		send_socket_msg(c, DBR_SOCKET_FORWARD, k);
	char d[1024];
	snprintf(d, sizeof d, "container %s (%s) from %s, protocol %d%s%s", c->id, c->hostname,
		 c->peer, c->version, strcmp(c->name, c->hostname) ? ", shown as " : "",
		 strcmp(c->name, c->hostname) ? c->name : "");
	if (strcmp(c->name, c->hostname))
		log_info("container %s from %s: hostname %s is taken by another live container; "
			 "shown as %s",
			 c->id, c->peer, c->hostname, c->name);
	host_audit(h, c, "container_registered", d);
	write_state(h);
}

static void handle_list(struct hconn *c, const struct dbr_msg *m)
{
	struct host *h = c->h;
	if (!authorized(c, m->auth_token)) {
		refuse_auth(c, "ListRequest", m->auth_token);
		send_register_ack(c, false, "authentication failed");
		hconn_drop(c, "authentication failed");
		return;
	}
	struct dbr_msg r;
	dbr_msg_init(&r, DBR_LIST_RESPONSE);
	r.forwards = json_array();
	r.socket_forwards = json_array();
	for (struct hconn *o = h->conns; o; o = o->next)
		if (o->registered) {
			json_t *fw = forwards_json(o, false);
			json_array_extend(r.forwards, fw);
			json_decref(fw);
		}
	ctl_send(c->ctl, &r);
	dbr_msg_clear(&r);
}

static void on_ctl_msg(struct ctl_conn *ctl, const struct dbr_msg *m, void *data)
{
	struct hconn *c = data;
	c->missed = 0;
	switch (m->type) {
	case DBR_PING: {
		struct dbr_msg pong;
		dbr_msg_init(&pong, DBR_PONG);
		ctl_send(ctl, &pong);
		dbr_msg_clear(&pong);
		return;
	}
	case DBR_PONG:
		return;
	case DBR_REGISTER:
		handle_register(c, m);
		return;
	case DBR_OPEN_URL:
		handle_open_url(c, m);
		return;
	case DBR_LIST_REQUEST:
		handle_list(c, m);
		return;
	default:
		break;
	}
	if (!c->registered) {
		log_warn("%s: %s before Register; closing", c->peer, dbr_type_name(m->type));
		hconn_drop(c, "message before Register");
		return;
	}
	switch (m->type) {
	case DBR_FORWARD:
		handle_forward(c, m);
		break;
	case DBR_UNFORWARD:
		handle_unforward(c, m->port);
		break;
	case DBR_SOCKET_CONNECT_REQUEST:
		handle_socket_connect(c, m);
		break;
	case DBR_CONNECT_FAILED:
		for (struct pending *p = c->h->pending; p; p = p->next) {
			if (p->f && p->f->c == c && strcmp(p->conn_id, m->conn_id) == 0) {
				char e[DBR_ERROR_MAX + 1];
				snprintf(e, sizeof e, "%s", m->error);
				text_sanitize(e);
				log_info("container %s: connection %s failed: %s", c->name,
					 p->conn_id, e);
				pending_free(p, true);
				break;
			}
		}
		break;
	default:
		log_warn("container %s: unexpected %s; ignored", c->name, dbr_type_name(m->type));
		break;
	}
}

/* A rejected line gets the refusal its type has in the protocol, so the
 * sender hears at once instead of waiting for its own timeout. */
static void on_ctl_bad(struct ctl_conn *ctl, const char *line, size_t len, const char *why,
		       void *data)
{
	struct hconn *c = data;
	log_warn("%s%s%s: rejected a control line: %s", c->peer, c->registered ? " container " : "",
		 c->registered ? c->name : "", why);
	struct dbr_sniff sn;
	if (dbr_sniff(line, len, &sn) < 0)
		return;
	char e[300];
	snprintf(e, sizeof e, "rejected %s: %s", dbr_type_name(sn.type), why);
	switch (sn.type) {
	case DBR_REGISTER:
		if (c->registered)
			return;
		if (sn.has_version && c->version < 2)
			c->version = 2; /* a devbridge peer: it takes "error" */
		send_register_ack(c, false, e);
		hconn_drop(c, e);
		return;
	case DBR_LIST_REQUEST:
		send_register_ack(c, false, e);
		return;
	case DBR_FORWARD:
		if (c->registered)
			send_forward_ack(c, sn.port > 0 ? (uint16_t)sn.port : 0, NULL, e);
		return;
	case DBR_OPEN_URL: {
		struct dbr_msg ack;
		dbr_msg_init(&ack, DBR_OPEN_URL_ACK);
		ctl_send(ctl, &ack);
		dbr_msg_clear(&ack);
		return;
	}
	default:
		return; /* no reply exists for it in the protocol */
	}
}

static void on_ctl_closed(struct ctl_conn *ctl, int err, void *data)
{
	struct hconn *c = data;
	hconn_drop(c, err == ENOBUFS ? "it does not read its control connection (1 MiB queued)"
		      : err	     ? strerror(err)
				     : "connection closed");
}

static const struct ctl_ops host_ctl_ops = {
    .msg = on_ctl_msg,
    .bad = on_ctl_bad,
    .closed = on_ctl_closed,
};

static void hconn_drop(struct hconn *c, const char *why)
{
	struct host *h = c->h;
	LIST_UNLINK(h->conns, c);
	loop_timer_stop(h->loop, &c->reg_timer);
	if (c->registered) {
		h->n_containers--;
		char d[768];
		snprintf(d, sizeof d, "container %s disconnected (%s); %zu forward%s removed",
			 c->name, why, c->n_fwds, c->n_fwds == 1 ? "" : "s");
		while (c->fwds) {
			struct fwd *f = c->fwds;
			c->fwds = f->next;
			char u[128];
			snprintf(u, sizeof u, "container port %u (host port %u): container gone",
				 f->port, f->host_port);
			host_audit(h, c, "port_unforwarded", u);
			fwd_close(h, f);
		}
		for (struct pending *p = h->pending, *next; p; p = next) {
			next = p->next;
			if (p->sock_owner == c)
				pending_free(p, true);
		}
		log_info("%s", d);
		write_state(h);
	} else {
		h->n_unregistered--;
	}
	ctl_conn_free(c->ctl);
	free(c);
	maybe_idle(h);
}

/* The unregistered connection that has waited longest. */
static struct hconn *oldest_unregistered(struct host *h)
{
	struct hconn *old = NULL;
	for (struct hconn *c = h->conns; c; c = c->next)
		if (!c->registered && (!old || c->accepted < old->accepted))
			old = c;
	return old;
}

static void on_ctl_accept(struct loop *l, int fd, unsigned events, void *data)
{
	struct host *h = data;
	for (int i = 0; i < 32; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		/* A full budget makes room: whoever idles longest goes, so a
		 * flood of silent connections cannot lock registrations out. */
		if (h->n_unregistered >= HOST_MAX_UNREGISTERED) {
			struct hconn *old = oldest_unregistered(h);
			uint64_t now = now_mono_ms();
			h->n_evicted++;
			if (now >= h->evict_logged + 10000) {
				log_warn(
				    "%d unregistered connections: evicted: too many unregistered "
				    "connections (%llu so far; the oldest goes first)",
				    HOST_MAX_UNREGISTERED, (unsigned long long)h->n_evicted);
				h->evict_logged = now;
			}
			if (old)
				hconn_drop(old, "evicted: too many unregistered connections");
		}
		struct hconn *c = calloc(1, sizeof *c);
		if (!c) {
			close(cfd);
			continue;
		}
		c->h = h;
		c->accepted = now_mono_ms();
		net_peer_name(cfd, c->peer, sizeof c->peer);
		if (ctl_conn_new(l, cfd, &host_ctl_ops, c, &c->ctl) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		LIST_PUSH(h->conns, c);
		h->n_unregistered++;
		loop_timer_start(l, &c->reg_timer, HOST_REGISTER_TIMEOUT_MS, on_reg_timeout, c);
	}
}

/* --- data connections --- */

static void dconn_free(struct dconn *d, bool close_fd)
{
	struct host *h = d->h;
	LIST_UNLINK(h->dconns, d);
	h->n_dconns--;
	loop_timer_stop(h->loop, &d->timer);
	loop_del_fd(h->loop, d->fd);
	if (close_fd)
		close(d->fd);
	free(d);
}

/* Pair a data connection whose ConnectReady line was read with its
 * pending client.  Returns true when paired (d is then gone). */
static bool dconn_pair(struct dconn *d)
{
	struct host *h = d->h;
	struct pending *p = NULL;
	for (struct pending *q = h->pending; q; q = q->next) {
		/* conn_id is the capability that pairs the two sides. */
		if (const_time_eq(q->conn_id, strlen(q->conn_id), d->conn_id, strlen(d->conn_id))) {
			p = q;
			break;
		}
	}
	if (!p)
		return false;
	int client = p->client_fd, dfd = d->fd;
	char pre[sizeof d->buf];
	size_t plen = d->len - d->line - 1;
	memcpy(pre, d->buf + d->line + 1, plen);
	p->client_fd = -1;
	pending_free(p, false);
	dconn_free(d, false);
	start_relay(h, dfd, client, pre, plen);
	return true;
}

static void on_dconn_timeout(struct loop *l, void *data)
{
	struct dconn *d = data;
	dconn_free(d, true);
}

static void on_dconn_read(struct loop *l, int fd, unsigned events, void *data)
{
	struct dconn *d = data;
	struct host *h = d->h;
	ssize_t r = read(fd, d->buf + d->len, sizeof d->buf - d->len);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		dconn_free(d, true);
		return;
	}
	d->len += (size_t)r;
	char *nl = memchr(d->buf, '\n', d->len);
	if (!nl) {
		if (d->len == sizeof d->buf)
			dconn_free(d, true); /* no handshake line fits: not a peer */
		return;
	}
	struct dbr_msg m;
	char err[128];
	size_t line = (size_t)(nl - d->buf);
	int pr = dbr_parse(d->buf, line, &m, err, sizeof err);
	if (pr < 0 || m.type != DBR_CONNECT_READY) {
		if (pr == 0) {
			snprintf(err, sizeof err, "got %s", dbr_type_name(m.type));
			dbr_msg_clear(&m);
		}
		log_warn("data connection: expected ConnectReady: %s", err);
		dconn_free(d, true);
		return;
	}
	d->line = line;
	snprintf(d->conn_id, sizeof d->conn_id, "%s", m.conn_id);
	dbr_msg_clear(&m);
	if (dconn_pair(d))
		return;
	if (strncmp(d->conn_id, SOCKET_CONN_PREFIX, strlen(SOCKET_CONN_PREFIX)) == 0) {
		/* A socket connection's data may overtake its
		 * SocketConnectRequest on the control channel: wait for it. */
		loop_del_fd(h->loop, d->fd);
		d->parked = true;
		return;
	}
	log_info("data connection for an unknown or expired conn_id; closed");
	dconn_free(d, true);
}

static void on_data_accept(struct loop *l, int fd, unsigned events, void *data)
{
	struct host *h = data;
	for (int i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return;
		/* Before its ConnectReady a data connection is anybody's: the
		 * one idling longest makes room, as on the control port. */
		if (h->n_dconns >= HOST_MAX_PENDING) {
			struct dconn *old = NULL;
			for (struct dconn *q = h->dconns; q; q = q->next)
				if (!q->parked && (!old || q->accepted < old->accepted))
					old = q;
			if (!old) {
				close(cfd);
				continue;
			}
			dconn_free(old, true);
		}
		struct dconn *d = calloc(1, sizeof *d);
		if (!d) {
			close(cfd);
			continue;
		}
		d->h = h;
		d->fd = cfd;
		d->accepted = now_mono_ms();
		if (loop_add_fd(l, cfd, LOOP_READ, on_dconn_read, d) < 0) {
			close(cfd);
			free(d);
			continue;
		}
		LIST_PUSH(h->dconns, d);
		h->n_dconns++;
		loop_timer_start(l, &d->timer, h->o->pending_timeout_ms, on_dconn_timeout, d);
	}
}

/* --- Unix sockets host -> containers --- */

static void send_socket_msg(struct hconn *c, enum dbr_type t, const struct hsock *k)
{
	struct dbr_msg m;
	dbr_msg_init(&m, t);
	snprintf(m.socket_id, sizeof m.socket_id, "%s", k->id);
	if (t == DBR_SOCKET_FORWARD) {
		snprintf(m.host_path, sizeof m.host_path, "%s", k->host_path);
		snprintf(m.container_path, sizeof m.container_path, "%s", k->container_path);
	}
	ctl_send(c->ctl, &m);
	dbr_msg_clear(&m);
}

static void announce_socket(struct host *h, enum dbr_type t, const struct hsock *k)
{
	for (struct hconn *c = h->conns, *next; c; c = next) {
		next = c->next; /* ctl_send may drop a peer that does not read */
		if (c->registered)
			send_socket_msg(c, t, k);
	}
}

static struct hsock *sock_by_path(struct host *h, const char *path)
{
	for (struct hsock *k = h->socks; k; k = k->next)
		if (strcmp(k->host_path, path) == 0)
			return k;
	return NULL;
}

static bool container_path_taken(struct host *h, const char *path)
{
	for (struct hsock *k = h->socks; k; k = k->next)
		if (strcmp(k->container_path, path) == 0)
			return true;
	return false;
}

/* A socket the scan found: offered to containers when new, within the cap. */
static void sock_consider(struct host *h, const char *path)
{
	struct hsock *k = sock_by_path(h, path);
	if (k) {
		k->present = true;
		return;
	}
	unsigned cap = h->o->max_sockets;
	if (cap > HOST_MAX_SOCKETS)
		cap = HOST_MAX_SOCKETS;
	if (h->n_socks >= cap)
		return;
	k = calloc(1, sizeof *k);
	if (!k)
		return;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *prefix = h->o->container_path_prefix ? h->o->container_path_prefix : "/tmp";
	snprintf(k->id, sizeof k->id, "sock-%u", ++h->sock_seq);
	snprintf(k->host_path, sizeof k->host_path, "%s", path);
	int w = snprintf(k->container_path, sizeof k->container_path, "%s/%s", prefix, base);
	if (w > 0 && container_path_taken(h, k->container_path))
		w = snprintf(k->container_path, sizeof k->container_path, "%s/%s-%s", prefix, k->id,
			     base);
	if (w < 0 || (size_t)w >= sizeof k->container_path) {
		free(k);
		return;
	}
	k->present = true;
	k->next = h->socks;
	h->socks = k;
	h->n_socks++;
	log_info("offering host socket %s as %s in containers", k->host_path, k->container_path);
	announce_socket(h, DBR_SOCKET_FORWARD, k);
	write_state(h);
}

/* The scan walks directories (globs, "**" recursively): slow on a big or
 * remote file system, so it runs on a worker thread (core/work) with its
 * own copy of the patterns, and the loop applies what it found. */
#define SOCK_SCAN_MAX 1024 /* candidates a scan reports */

struct sock_job {
	struct host *host; /* for the loop side only */
	char **patterns;
	size_t n_patterns;
	char **paths; /* sockets found: lstat'd, short enough for sun_path */
	size_t n_paths;
};

static void sock_job_free(void *arg)
{
	struct sock_job *j = arg;
	for (size_t i = 0; i < j->n_patterns; i++)
		free(j->patterns[i]);
	for (size_t i = 0; i < j->n_paths; i++)
		free(j->paths[i]);
	free(j->patterns);
	free(j->paths);
	free(j);
}

/* A candidate path: a socket (never through a symlink), short enough. */
static void sock_found(struct sock_job *j, const char *path)
{
	struct stat st;
	if (j->n_paths >= SOCK_SCAN_MAX || strlen(path) > DBR_PATH_MAX - 1 ||
	    lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	char *p = strdup(path);
	if (p)
		j->paths[j->n_paths++] = p;
}

/* "**" in a pattern matches any number of directories: walk from the
 * fixed prefix and fnmatch whole paths (FNM_PATHNAME off lets * cross /). */
static void sock_walk(struct sock_job *j, const char *dir, const char *pattern, const char *alt,
		      int depth)
{
	if (depth > 8)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		char p[PATH_MAX];
		if ((size_t)snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") ? dir : "",
				     de->d_name) >= sizeof p)
			continue;
		if (de->d_type == DT_DIR)
			sock_walk(j, p, pattern, alt, depth + 1);
		else if (fnmatch(pattern, p, 0) == 0 || fnmatch(alt, p, 0) == 0)
			sock_found(j, p);
	}
	closedir(d);
}

static void sock_job_run(void *arg)
{
	struct sock_job *j = arg;
	for (size_t i = 0; i < j->n_patterns; i++) {
		const char *pat = j->patterns[i];
		if (strstr(pat, "**")) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%.*s", (int)strcspn(pat, "*?["), pat);
			char *slash = strrchr(dir, '/');
			if (!slash)
				continue;
			slash[slash == dir ? 1 : 0] = '\0';
			/* A "**" component also matches no directory, as in shells. */
			char alt[PATH_MAX];
			const char *ss = strstr(pat, "/**/");
			if (ss)
				snprintf(alt, sizeof alt, "%.*s%s", (int)(ss - pat), pat, ss + 3);
			else
				snprintf(alt, sizeof alt, "%s", pat);
			sock_walk(j, dir, pat, alt, 0);
			continue;
		}
		glob_t g;
		if (glob(pat, GLOB_NOSORT, NULL, &g) == 0)
			for (size_t k = 0; k < g.gl_pathc; k++)
				sock_found(j, g.gl_pathv[k]);
		globfree(&g);
	}
}

static void sock_schedule(struct host *h);

static void on_sock_scanned(struct loop *l, void *arg)
{
	struct sock_job *j = arg;
	struct host *h = j->host;
	h->sock_work = NULL;
	for (struct hsock *k = h->socks; k; k = k->next)
		k->present = false;
	for (size_t i = 0; i < j->n_paths; i++)
		sock_consider(h, j->paths[i]);
	sock_job_free(j);
	for (struct hsock **pp = &h->socks; *pp;) {
		struct hsock *k = *pp;
		if (k->present) {
			pp = &k->next;
			continue;
		}
		*pp = k->next;
		h->n_socks--;
		log_info("host socket %s is gone", k->host_path);
		announce_socket(h, DBR_SOCKET_UNFORWARD, k);
		free(k);
		write_state(h);
	}
	sock_schedule(h);
}

static void on_sock_timer(struct loop *l, void *data)
{
	struct host *h = data;
	struct sock_job *j = calloc(1, sizeof *j);
	size_t n = h->o->n_watch_paths;
	if (j) {
		j->host = h;
		j->patterns = calloc(n, sizeof *j->patterns);
		j->paths = calloc(SOCK_SCAN_MAX, sizeof *j->paths);
	}
	bool ok = j && j->patterns && j->paths;
	for (size_t i = 0; ok && i < n; i++, j->n_patterns++)
		ok = (j->patterns[i] = strdup(h->o->watch_paths[i])) != NULL;
	int r = ok ? work_start(l, sock_job_run, on_sock_scanned, j, &h->sock_work) : -ENOMEM;
	if (r < 0) {
		log_warn("socket scan: %s; trying again later", strerror(-r));
		if (j)
			sock_job_free(j);
		sock_schedule(h);
	}
}

static void sock_schedule(struct host *h)
{
	loop_timer_start(h->loop, &h->sock_timer,
			 h->o->socket_scan_ms ? h->o->socket_scan_ms : 5000, on_sock_timer, h);
}

static void handle_socket_connect(struct hconn *c, const struct dbr_msg *m)
{
	struct host *h = c->h;
	struct hsock *k = NULL;
	for (struct hsock *q = h->socks; q; q = q->next)
		if (strcmp(q->id, m->socket_id) == 0)
			k = q;
	int fd = -1;
	if (k && h->n_pending < HOST_MAX_PENDING &&
	    strncmp(m->conn_id, SOCKET_CONN_PREFIX, strlen(SOCKET_CONN_PREFIX)) == 0) {
		/* The path comes from our own table, never from the message. */
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		/* sock_consider kept host_path under sizeof sun_path. */
		memcpy(sun.sun_path, k->host_path, strnlen(k->host_path, sizeof sun.sun_path - 1));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
			log_warn("container %s: connect to host socket %s: %s", c->name,
				 k->host_path, strerror(errno));
			close(fd);
			fd = -1;
		}
	} else {
		log_warn("container %s: SocketConnectRequest for unknown socket '%s'", c->name,
			 m->socket_id);
	}
	if (fd < 0) {
		/* Close its data connection if it already arrived. */
		for (struct dconn *d = h->dconns; d; d = d->next) {
			if (d->parked && strcmp(d->conn_id, m->conn_id) == 0) {
				dconn_free(d, true);
				break;
			}
		}
		return;
	}
	struct pending *p = calloc(1, sizeof *p);
	if (!p) {
		close(fd);
		return;
	}
	p->h = h;
	p->sock_owner = c;
	p->client_fd = fd;
	snprintf(p->conn_id, sizeof p->conn_id, "%s", m->conn_id);
	LIST_PUSH(h->pending, p);
	h->n_pending++;
	loop_timer_start(h->loop, &p->timer, h->o->pending_timeout_ms, on_pending_timeout, p);
	for (struct dconn *d = h->dconns; d; d = d->next) {
		if (d->parked && strcmp(d->conn_id, p->conn_id) == 0) {
			dconn_pair(d);
			break;
		}
	}
}

/* --- heartbeat, idle, signals --- */

static void on_heartbeat(struct loop *l, void *data)
{
	struct host *h = data;
	for (struct hconn *c = h->conns, *next; c; c = next) {
		next = c->next;
		if (!c->registered)
			continue;
		if (c->missed >= HOST_MISSED_PONGS) {
			hconn_drop(c, "no Pong to 3 Pings");
			continue;
		}
		c->missed++;
		struct dbr_msg ping;
		dbr_msg_init(&ping, DBR_PING);
		ctl_send(c->ctl, &ping);
		dbr_msg_clear(&ping);
	}
	loop_timer_start(l, &h->hb_timer, h->o->heartbeat_ms, on_heartbeat, h);
}

static void on_idle(struct loop *l, void *data)
{
	struct host *h = data;
	if (h->n_containers == 0 && h->n_relays == 0) {
		log_info("no containers for %u s; exiting (--exit-on-idle)",
			 h->o->idle_timeout_ms / 1000);
		loop_stop(l);
	}
}

static void maybe_idle(struct host *h)
{
	if (!h->o->exit_on_idle || h->n_containers > 0 || loop_timer_active(&h->idle_timer) ||
	    h->stopping)
		return;
	loop_timer_start(h->loop, &h->idle_timer, h->o->idle_timeout_ms, on_idle, h);
}

static void on_drain_timeout(struct loop *l, void *data)
{
	struct host *h = data;
	log_info("drain: %zu connections still open after %d s; closing them", h->n_relays,
		 HOST_DRAIN_MS / 1000);
	loop_stop(l);
}

static void on_signal(struct loop *l, int signo, void *data)
{
	struct host *h = data;
	if (h->stopping)
		return;
	h->stopping = true;
	log_info("%s: stopping; draining %zu connections", strsignal(signo), h->n_relays);
	/* Stop accepting; tell containers by closing their control channel. */
	loop_del_fd(l, h->ctl_lfd);
	loop_del_fd(l, h->data_lfd);
	while (h->conns)
		hconn_drop(h->conns, "host daemon stopping");
	while (h->dconns)
		dconn_free(h->dconns, true);
	if (h->n_relays == 0)
		loop_stop(l);
	else
		loop_timer_start(l, &h->drain_timer, HOST_DRAIN_MS, on_drain_timeout, h);
}

int host_run(const struct host_opts *o)
{
	struct host h = {.o = o, .ctl_lfd = -1, .data_lfd = -1};
	int lock = -1, r;
	if (o->state_dir) {
		pid_t holder = 0;
		lock = state_lock(o->state_dir, AUDIT_NAME, &holder);
		if (lock == -EBUSY) {
			log_error("a host daemon is already running (pid %ld)", (long)holder);
			return EXIT_PORT_IN_USE;
		}
		if (lock < 0) {
			log_error("cannot lock %s/%s.pid: %s", o->state_dir, AUDIT_NAME,
				  strerror(-lock));
			return EXIT_ERROR;
		}
	}
	const char *addr = o->bind_addr ? o->bind_addr : "127.0.0.1";
	h.ctl_lfd = net_listen_tcp(addr, o->control_port, &h.ctl_port);
	if (h.ctl_lfd >= 0)
		h.data_lfd = net_listen_tcp(addr, o->data_port, &h.data_port);
	if (h.ctl_lfd < 0 || h.data_lfd < 0) {
		int e = h.ctl_lfd < 0 ? h.ctl_lfd : h.data_lfd;
		log_error("cannot listen on %s:%u/%u: %s", addr, o->control_port, o->data_port,
			  strerror(-e));
		if (h.ctl_lfd >= 0)
			close(h.ctl_lfd);
		if (lock >= 0)
			close(lock);
		return e == -EADDRINUSE ? EXIT_PORT_IN_USE : EXIT_ERROR;
	}
	static const int sigs[] = {SIGTERM, SIGINT, 0};
	signal(SIGPIPE, SIG_IGN);
	r = loop_new(&h.loop);
	if (r == 0)
		r = loop_watch_signals(h.loop, sigs, on_signal, &h);
	if (r == 0)
		r = loop_add_fd(h.loop, h.ctl_lfd, LOOP_READ, on_ctl_accept, &h);
	if (r == 0)
		r = loop_add_fd(h.loop, h.data_lfd, LOOP_READ, on_data_accept, &h);
	if (r < 0) {
		log_error("event loop: %s", strerror(-r));
		h.exit_code = EXIT_ERROR;
		goto out;
	}
	loop_timer_start(h.loop, &h.hb_timer, o->heartbeat_ms, on_heartbeat, &h);
	if (o->n_watch_paths > 0)
		on_sock_timer(h.loop, &h);
	maybe_idle(&h);
	write_state(&h);
	log_info("host daemon pid %ld: control %s:%u, data %s:%u, auth %s", (long)getpid(), addr,
		 h.ctl_port, addr, h.data_port, o->no_auth ? "off" : "token");
	if (o->ready_fd >= 0) {
		char line[64];
		int n = snprintf(line, sizeof line, "ready %u %u\n", h.ctl_port, h.data_port);
		(void)write_all(o->ready_fd, line, (size_t)n);
		close(o->ready_fd);
	}
	r = loop_run(h.loop);
	if (r < 0)
		h.exit_code = EXIT_ERROR;
out:
	while (h.conns)
		hconn_drop(h.conns, "host daemon exiting");
	while (h.dconns)
		dconn_free(h.dconns, true);
	while (h.pending)
		pending_free(h.pending, true);
	while (h.relays) {
		struct rnode *n = h.relays;
		LIST_UNLINK(h.relays, n);
		relay_free(n->r);
		free(n);
	}
	/* A browser still running outlives the daemon, as before: init reaps it. */
	while (h.browsers) {
		struct hbrowser *b = h.browsers;
		LIST_UNLINK(h.browsers, b);
		loop_child_unwatch(h.loop, &b->w);
		free(b);
	}
	loop_timer_stop(h.loop, &h.hb_timer);
	loop_timer_stop(h.loop, &h.idle_timer);
	loop_timer_stop(h.loop, &h.drain_timer);
	loop_timer_stop(h.loop, &h.sock_timer);
	work_abandon(h.sock_work, sock_job_free);
	while (h.socks) {
		struct hsock *k = h.socks;
		h.socks = k->next;
		free(k);
	}
	close(h.ctl_lfd);
	close(h.data_lfd);
	if (o->state_dir) {
		json_t *st = json_pack("{s:s, s:s, s:s}", "name", AUDIT_NAME, "kind", "host",
				       "state", "stopped");
		state_write(o->state_dir, AUDIT_NAME, st);
		json_decref(st);
	}
	loop_free(h.loop);
	if (lock >= 0)
		close(lock);
	return h.exit_code;
}
