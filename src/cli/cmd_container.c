/* cmd_container.c - the devcontainer bridge commands: host-daemon,
 * container-daemon, open (and devbridge-open), ensure; plus the container
 * rows of `status`. */
#include "cli/cli.h"
#include "container/auth.h"
#include "container/browser.h"
#include "container/cdaemon.h"
#include "container/filter.h"
#include "container/host.h"
#include "app/config.h"
#include "core/log.h"
#include "core/num.h"
#include "core/spawn.h"
#include "core/state.h"
#include "core/util.h"
#include "proto/dbr.h"
#include "proto/jsonl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse_port(struct cli *c, const char *opt, const char *v, uint16_t *ret, bool zero_ok)
{
	uint64_t p;
	if (parse_uint_range(v, strlen(v), zero_ok ? 0 : 1, 65535, NUM_LEADING_ZEROS, &p) < 0) {
		cli_error(c, EXIT_USAGE, "%s: expected a port 1-65535, got '%s'", opt, v);
		return -1;
	}
	*ret = (uint16_t)p;
	return 0;
}

static uint16_t env_port(const char *a, const char *b, uint16_t dflt)
{
	const char *v = getenv(a), *name = a;
	if (!v || !*v) {
		v = b ? getenv(b) : NULL;
		name = b;
	}
	uint64_t p;
	if (!v || !*v)
		return dflt;
	if (parse_uint_range(v, strlen(v), 1, 65535, NUM_LEADING_ZEROS, &p) < 0) {
		log_warn("ignoring %s='%s': expected a port 1-65535; using %u", name, v, dflt);
		return dflt;
	}
	return (uint16_t)p;
}

/* --- host-daemon --- */

int cmd_host_daemon(struct cli *c);
int cmd_host_daemon(struct cli *c)
{
	const char *cport = NULL, *dport = NULL, *bind = NULL, *token = NULL, *token_file = NULL,
		   *browser = NULL, *idle = NULL, *hb = NULL, *sscan = NULL, *smax = NULL,
		   *sprefix = NULL, *pending = NULL;
	const char *watch[32];
	size_t n_watch = 0;
	bool no_docker = false, no_auth = false, eoi = false, no_eoi = false, privileged = false;
	const struct cli_opt opts[] = {
	    {"--control-port", 0, true, &cport, NULL},
	    {"--data-port", 0, true, &dport, NULL},
	    {"--bind-addr", 0, true, &bind, NULL},
	    {"--no-docker-detect", 0, false, NULL, &no_docker},
	    {"--no-auth", 0, false, NULL, &no_auth},
	    {"--auth-token", 0, true, &token, NULL},
	    {"--auth-token-file", 0, true, &token_file, NULL},
	    {"--browser-cmd", 0, true, &browser, NULL},
	    {"--exit-on-idle", 0, false, NULL, &eoi},
	    {"--no-exit-on-idle", 0, false, NULL, &no_eoi},
	    {"--idle-timeout", 0, true, &idle, NULL},
	    {"--heartbeat-ms", 0, true, &hb, NULL},
	    {"--watch-socket", 0, true, NULL, NULL, watch, &n_watch, ARRAY_SIZE(watch)},
	    {"--socket-scan-interval-ms", 0, true, &sscan, NULL},
	    {"--max-socket-forwards", 0, true, &smax, NULL},
	    {"--container-path-prefix", 0, true, &sprefix, NULL},
	    {"--allow-privileged-ports", 0, false, NULL, &privileged},
	    {"--pending-timeout-ms", 0, true, &pending, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0 || c->argc != 0)
		return c->argc ? cli_error(c, EXIT_USAGE, "host-daemon takes no arguments")
			       : EXIT_USAGE;
	/* The config's container: section fills in what flags leave unset. */
	int cr = cli_load_config_optional(c);
	if (cr)
		return cr;
	const struct cfg_container *ct = &c->cfg->container;
	if (!bind)
		bind = ct->bind_addr;
	if (!browser)
		browser = ct->browser_cmd;
	if (!sprefix)
		sprefix = ct->socket_forwarding.container_path_prefix;
	no_auth = no_auth || ct->no_auth;
	if (n_watch == 0)
		for (size_t i = 0; i < ct->socket_forwarding.n_watch_paths && n_watch < 32; i++)
			watch[n_watch++] = ct->socket_forwarding.watch_paths[i];
	/* Defaults, then the file (already range-checked by the loader), then
	 * the flags. */
	struct host_opts o = {.control_port = DBR_CONTROL_PORT,
			      .data_port = DBR_DATA_PORT,
			      .idle_timeout_ms = 60000,
			      .heartbeat_ms = HOST_DEFAULT_HEARTBEAT_MS,
			      .pending_timeout_ms = HOST_PENDING_TIMEOUT_MS,
			      .allow_privileged_ports = privileged,
			      .ready_fd = -1,
			      .no_auth = no_auth,
			      .exit_on_idle = eoi && !no_eoi,
			      .browser_cmd = browser,
			      .max_sockets = 16};
	if (ct->control_port)
		o.control_port = (uint16_t)ct->control_port;
	if (ct->data_port)
		o.data_port = (uint16_t)ct->data_port;
	if (ct->socket_forwarding.scan_interval_ms)
		o.socket_scan_ms = ct->socket_forwarding.scan_interval_ms < 100
				       ? 100
				       : (unsigned)ct->socket_forwarding.scan_interval_ms;
	if (ct->socket_forwarding.max_socket_forwards >= 0)
		o.max_sockets = (unsigned)ct->socket_forwarding.max_socket_forwards;
	unsigned u;
	if (cport && parse_port(c, "--control-port", cport, &o.control_port, true) < 0)
		return EXIT_USAGE;
	if (dport && parse_port(c, "--data-port", dport, &o.data_port, true) < 0)
		return EXIT_USAGE;
	if (idle) {
		if (cli_parse_uint(c, "--idle-timeout", idle, 1, 86400, &u) < 0)
			return EXIT_USAGE;
		o.idle_timeout_ms = u * 1000;
	}
	if (hb) {
		if (cli_parse_uint(c, "--heartbeat-ms", hb, 50, 3600000, &u) < 0)
			return EXIT_USAGE;
		o.heartbeat_ms = u;
	}
	if (pending) {
		if (cli_parse_uint(c, "--pending-timeout-ms", pending, 50, 600000, &u) < 0)
			return EXIT_USAGE;
		o.pending_timeout_ms = u;
	}
	o.watch_paths = watch;
	o.n_watch_paths = n_watch;
	o.container_path_prefix = sprefix ? sprefix : "/tmp";
	if (sprefix && (sprefix[0] != '/' || strlen(sprefix) > 64))
		return cli_error(
		    c, EXIT_USAGE,
		    "--container-path-prefix: an absolute path of at most 64 characters");
	for (size_t i = 0; i < n_watch; i++)
		if (watch[i][0] != '/')
			return cli_error(c, EXIT_USAGE,
					 "--watch-socket: '%s' is not an absolute path", watch[i]);
	if (sscan) {
		if (cli_parse_uint(c, "--socket-scan-interval-ms", sscan, 100, 3600000, &u) < 0)
			return EXIT_USAGE;
		o.socket_scan_ms = u;
	}
	if (smax) {
		if (cli_parse_uint(c, "--max-socket-forwards", smax, 0, HOST_MAX_SOCKETS, &u) < 0)
			return EXIT_USAGE;
		o.max_sockets = u;
	}
	/* Two-tier binding (seed 002): the control and data ports listen on
	 * 0.0.0.0 only when Docker runs here (containers reach the host through
	 * its gateway), else on loopback.  Forwarded ports: loopback, always. */
	struct stat st;
	if (bind)
		o.bind_addr = bind;
	else if (!no_docker && stat("/var/run/docker.sock", &st) == 0 && S_ISSOCK(st.st_mode))
		o.bind_addr = "0.0.0.0";
	else
		o.bind_addr = "127.0.0.1";
	char tok[DBR_TOKEN_MAX + 1];
	const char *tok_src = NULL;
	if (!no_auth) {
		int r = auth_resolve_host(token, token_file, tok, sizeof tok, &tok_src);
		if (r < 0)
			return cli_error(
			    c, EXIT_NO_TOKEN, "auth token from %s%s%s: %s", tok_src,
			    strcmp(tok_src, "--auth-token-file") ? "" : " ",
			    strcmp(tok_src, "--auth-token-file") ? "" : token_file,
			    r == -EPERM	   ? "readable by others; chmod 600 it"
			    : r == -EINVAL ? "not a token (16-256 printable characters, no spaces)"
					   : strerror(-r));
		o.token = tok;
	}
	int r = cli_state_dir(c);
	if (r)
		return r;
	o.state_dir = c->state_dir;
	/* `ensure` passes a ready pipe as fd 3. */
	if (getenv("DEVBRIDGE_READY_FD") && fcntl(3, F_GETFD) >= 0) {
		o.ready_fd = 3;
		fd_set_cloexec(3, true);
	}
	log_set_timestamps(1);
	log_rotate_stderr(); /* NAME.out, when that is where stderr goes */
	if (log_get_level() < LOG_INFO)
		log_set_level(LOG_INFO);
	if (tok_src)
		log_info("auth token from %s%s%s", tok_src,
			 strcmp(tok_src, "--auth-token-file") ? "" : " ",
			 strcmp(tok_src, "--auth-token-file") ? "" : token_file);
	r = host_run(&o);
	explicit_bzero(tok, sizeof tok);
	return r;
}

/* --- container-daemon --- */

int cmd_container_daemon(struct cli *c);
int cmd_container_daemon(struct cli *c)
{
	const char *host = NULL, *cport = NULL, *dport = NULL, *token = NULL, *token_file = NULL,
		   *inc = NULL, *exc = NULL, *exproc = NULL, *dcj = NULL, *scan = NULL, *cid = NULL,
		   *ppid = NULL, *hb = NULL, *csock = NULL;
	bool no_auth = false;
	const struct cli_opt opts[] = {
	    {"--host-addr", 0, true, &host, NULL},
	    {"--control-port", 0, true, &cport, NULL},
	    {"--data-port", 0, true, &dport, NULL},
	    {"--auth-token", 0, true, &token, NULL},
	    {"--auth-token-file", 0, true, &token_file, NULL},
	    {"--no-auth", 0, false, NULL, &no_auth},
	    {"--include-ports", 0, true, &inc, NULL},
	    {"--exclude-ports", 0, true, &exc, NULL},
	    {"--exclude-process", 0, true, &exproc, NULL},
	    {"--devcontainer-json", 0, true, &dcj, NULL},
	    {"--scan-interval-ms", 0, true, &scan, NULL},
	    {"--container-id", 0, true, &cid, NULL},
	    {"--control-socket", 0, true, &csock, NULL},
	    {"--parent-pid", 0, true, &ppid, NULL},
	    {"--heartbeat-ms", 0, true, &hb, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	int cr = cli_load_config_optional(c);
	if (cr)
		return cr;
	const struct cfg_container *ct = &c->cfg->container;
	if (!inc)
		inc = ct->include_ports;
	if (!exc)
		exc = ct->exclude_ports;
	if (!exproc)
		exproc = ct->exclude_process;
	no_auth = no_auth || ct->no_auth;
	/* Defaults and environment, then the file, then the flags. */
	struct cd_opts o = {
	    .host_addr = host,
	    .control_port = env_port("DEVBRIDGE_HOST_PORT", "DCBRIDGE_HOST_PORT", DBR_CONTROL_PORT),
	    .data_port = env_port("DEVBRIDGE_DATA_PORT", "DCBRIDGE_DATA_PORT", DBR_DATA_PORT),
	    .scan_ms = 0,
	    .heartbeat_ms = HOST_DEFAULT_HEARTBEAT_MS,
	};
	if (ct->control_port)
		o.control_port = (uint16_t)ct->control_port;
	if (ct->data_port)
		o.data_port = (uint16_t)ct->data_port;
	if (ct->scan_interval_ms)
		o.scan_ms = ct->scan_interval_ms < CD_MIN_SCAN_MS ? CD_MIN_SCAN_MS
								  : (unsigned)ct->scan_interval_ms;
	unsigned u;
	if (cport && parse_port(c, "--control-port", cport, &o.control_port, false) < 0)
		return EXIT_USAGE;
	if (dport && parse_port(c, "--data-port", dport, &o.data_port, false) < 0)
		return EXIT_USAGE;
	if (scan) {
		if (cli_parse_uint(c, "--scan-interval-ms", scan, CD_MIN_SCAN_MS, 3600000, &u) < 0)
			return EXIT_USAGE;
		o.scan_ms = u;
	}
	if (hb) {
		if (cli_parse_uint(c, "--heartbeat-ms", hb, 50, 3600000, &u) < 0)
			return EXIT_USAGE;
		o.heartbeat_ms = u;
	}
	if (ppid) {
		if (cli_parse_uint(c, "--parent-pid", ppid, 1, INT_MAX, &u) < 0)
			return EXIT_USAGE;
		o.parent_pid = (pid_t)u;
	}
	char tok[DBR_TOKEN_MAX + 1] = "";
	if (!no_auth) {
		int r = auth_resolve(token, token_file, tok, sizeof tok);
		if (r < 0)
			return cli_error(c, EXIT_NO_TOKEN,
					 "no usable auth token (%s): pass --auth-token, set "
					 "DEVBRIDGE_AUTH_TOKEN, or --auth-token-file",
					 r == -EPERM ? "token file readable by others"
						     : strerror(-r));
		o.token = tok;
	}
	char id[DBR_ID_MAX + 1], hn[DBR_ID_MAX + 1];
	if (cid) {
		if (!dbr_id_valid(cid))
			return cli_error(c, EXIT_USAGE,
					 "--container-id: use letters, digits, '.', '_', '-'");
		snprintf(id, sizeof id, "%s", cid);
	} else {
		cd_container_id(id, sizeof id);
	}
	if (gethostname(hn, sizeof hn) < 0 || !hn[0])
		snprintf(hn, sizeof hn, "%s", id);
	hn[sizeof hn - 1] = '\0';
	cd_clean_id(hn);
	o.container_id = id;
	o.hostname = hn;

	struct port_filter *f = NULL;
	char err[256];
	int r = port_filter_new(&f);
	if (r == 0 && inc)
		r = port_filter_include(f, inc, err, sizeof err);
	if (r == 0 && exc)
		r = port_filter_exclude(f, exc, err, sizeof err);
	if (r == 0 && exproc)
		r = port_filter_exclude_process(f, exproc, err, sizeof err);
	if (r == 0 && dcj) {
		char *buf;
		size_t len;
		r = read_file(dcj, 1024 * 1024, &buf, &len);
		if (r < 0)
			snprintf(err, sizeof err, "%s: %s", dcj, strerror(-r));
		else {
			r = port_filter_devcontainer(f, buf, len, err, sizeof err);
			free(buf);
		}
	}
	if (r < 0) {
		port_filter_free(f);
		return cli_error(c, EXIT_USAGE, "%s", err);
	}
	o.filter = f;
	char sockpath[PATH_MAX];
	if (!csock) {
		if ((r = cli_state_dir(c))) {
			port_filter_free(f);
			return r;
		}
		snprintf(sockpath, sizeof sockpath, "%s/container-daemon.sock", c->state_dir);
		csock = sockpath;
	}
	o.control_socket = csock;
	log_set_timestamps(1);
	log_rotate_stderr(); /* NAME.out, when that is where stderr goes */
	if (log_get_level() < LOG_INFO)
		log_set_level(LOG_INFO);
	r = cd_run(&o);
	port_filter_free(f);
	explicit_bzero(tok, sizeof tok);
	return r;
}

/* --- small blocking client for open / ensure --- */

static int client_connect(const char *host, uint16_t port, int timeout_ms)
{
	char ps[8];
	snprintf(ps, sizeof ps, "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		return -EHOSTUNREACH;
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : 0;
	if (r == 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
		} else {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			if (poll(&p, 1, timeout_ms) <= 0) {
				r = -ETIMEDOUT;
			} else {
				int e = 0;
				socklen_t sl = sizeof e;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl);
				r = -e;
			}
		}
	}
	freeaddrinfo(res);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

struct want {
	enum dbr_type type;
	struct dbr_msg *out;
	bool got;
};

static bool want_line(void *data, enum jsonl_event ev, const char *line, size_t len)
{
	struct want *w = data;
	struct dbr_msg m;
	char err[128];
	if (ev != JSONL_LINE || dbr_parse(line, len, &m, err, sizeof err) < 0)
		return true;
	if (m.type == w->type || (m.type == DBR_REGISTER_ACK && !m.success)) {
		*w->out = m;
		w->got = true;
		return false;
	}
	dbr_msg_clear(&m);
	return true;
}

/* Send `req`, wait up to timeout_ms for a reply of type `type` (or a
 * refusal).  0, -ETIMEDOUT, -EPIPE. */
static int client_request(int fd, const struct dbr_msg *req, enum dbr_type type,
			  struct dbr_msg *reply, int timeout_ms)
{
	size_t len;
	char *line = dbr_format(req, &len);
	if (!line)
		return -ENOMEM;
	fd_set_nonblock(fd, false);
	int r = write_all(fd, line, len);
	free(line);
	if (r < 0)
		return r;
	fd_set_nonblock(fd, true);
	struct jsonl_reader *rd;
	if ((r = jsonl_reader_new(JSONL_MAX_LINE, &rd)) < 0)
		return r;
	struct want w = {.type = type, .out = reply};
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	r = -ETIMEDOUT;
	while (!w.got) {
		uint64_t now = now_mono_ms();
		if (now >= deadline)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		int rr = jsonl_read(rd, fd, want_line, &w);
		if (w.got) {
			r = 0;
			break;
		}
		if (rr < 0 && rr != -ECANCELED) {
			r = -EPIPE;
			break;
		}
	}
	jsonl_reader_free(rd);
	return r;
}

static const char *client_host(const char *flag, char *buf, size_t n)
{
	/* On the host itself the daemon is on loopback. */
	if (cd_resolve_host(flag, buf, n) < 0)
		snprintf(buf, n, "127.0.0.1");
	return buf;
}

int cmd_open(struct cli *c);
int cmd_open(struct cli *c)
{
	const char *host = NULL, *cport = NULL, *token = NULL, *token_file = NULL;
	const struct cli_opt opts[] = {
	    {"--host-addr", 0, true, &host, NULL},
	    {"--control-port", 0, true, &cport, NULL},
	    {"--auth-token", 0, true, &token, NULL},
	    {"--auth-token-file", 0, true, &token_file, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 1)
		return cli_error(c, EXIT_USAGE, "usage: devbridge open URL");
	const char *url = c->argv[0];
	char err[256];
	if (browser_validate(url, err, sizeof err) < 0)
		return cli_error(c, EXIT_URL_REJECTED, "%s", err);
	uint16_t port = env_port("DEVBRIDGE_HOST_PORT", "DCBRIDGE_HOST_PORT", DBR_CONTROL_PORT);
	if (cport && parse_port(c, "--control-port", cport, &port, false) < 0)
		return EXIT_USAGE;
	/* The host needs the token for OpenUrl (unless it runs --no-auth):
	 * without one we still ask, and say so if it refuses. */
	struct dbr_msg req, ack = {0};
	dbr_msg_init(&req, DBR_OPEN_URL);
	int tr = auth_resolve(token, token_file, req.auth_token, sizeof req.auth_token);
	if (tr < 0 && tr != -ENOENT)
		return cli_error(c, EXIT_NO_TOKEN, "auth token: %s",
				 tr == -EPERM ? "the token file is readable by others; chmod 600 it"
					      : strerror(-tr));
	bool have_token = tr == 0;
	char addr[INET6_ADDRSTRLEN];
	client_host(host, addr, sizeof addr);
	int fd = client_connect(addr, port, 3000);
	if (fd < 0) {
		explicit_bzero(req.auth_token, sizeof req.auth_token);
		return cli_error(c, EXIT_HOST_UNREACHABLE,
				 "no host daemon at %s:%u (%s): run `devbridge ensure` on the host",
				 addr, port, strerror(-fd));
	}
	snprintf(req.url, sizeof req.url, "%s", url);
	int r = client_request(fd, &req, DBR_OPEN_URL_ACK, &ack, 3000);
	close(fd);
	explicit_bzero(req.auth_token, sizeof req.auth_token);
	dbr_msg_clear(&req);
	if (r < 0)
		return cli_error(c, EXIT_HOST_UNREACHABLE, "host daemon did not answer: %s",
				 strerror(-r));
	bool ok = ack.type == DBR_OPEN_URL_ACK && ack.success;
	char why[DBR_ERROR_MAX + 1];
	snprintf(why, sizeof why, "%s", ack.error);
	text_sanitize(why);
	dbr_msg_clear(&ack);
	if (!ok && !have_token)
		return cli_error(
		    c, EXIT_NO_TOKEN,
		    "the host refused to open the URL, and no auth token is configured "
		    "here: pass --auth-token, set DEVBRIDGE_AUTH_TOKEN, or "
		    "--auth-token-file");
	if (!ok && strcmp(why, "authentication failed") == 0)
		return cli_error(c, EXIT_AUTH_FAILED, "the host daemon refused our auth token");
	if (!ok)
		return cli_error(c, EXIT_URL_REJECTED, "the host refused to open the URL: %s",
				 why[0] ? why : "rate limit or browser failure");
	if (c->json)
		cli_print_json(json_pack("{s:b, s:s}", "opened", 1, "url", url));
	return EXIT_OK;
}

static int ping(const char *addr, uint16_t port, int timeout_ms)
{
	int fd = client_connect(addr, port, timeout_ms);
	if (fd < 0)
		return fd;
	struct dbr_msg req, pong = {0};
	dbr_msg_init(&req, DBR_PING);
	int r = client_request(fd, &req, DBR_PONG, &pong, timeout_ms);
	dbr_msg_clear(&req);
	dbr_msg_clear(&pong);
	close(fd);
	return r;
}

/* The host daemon of this state directory, if one runs: its pid and
 * ports (from its state file).  0 when none runs. */
static pid_t running_host_daemon(const char *state_dir, int *ret_cp, int *ret_dp)
{
	pid_t pid = state_probe(state_dir, "host-daemon");
	json_t *st = NULL;
	*ret_cp = *ret_dp = 0;
	if (pid > 0 && state_read(state_dir, "host-daemon", &st) == 0) {
		*ret_cp = (int)json_integer_value(json_object_get(st, "control_port"));
		*ret_dp = (int)json_integer_value(json_object_get(st, "data_port"));
		json_decref(st);
	}
	return pid;
}

static int ensure_running_elsewhere(struct cli *c, pid_t pid, int cp, int dp)
{
	char m[256];
	snprintf(m, sizeof m,
		 "a host daemon already runs (pid %ld) on control port %d, data port %d; use "
		 "`devbridge ensure --control-port %d --data-port %d`, or `devbridge down "
		 "host-daemon` first",
		 (long)pid, cp, dp, cp, dp);
	return cli_error_json(c, EXIT_PORT_IN_USE,
			      json_pack("{s:{s:I, s:i, s:i}}", "host_daemon", "pid",
					(json_int_t)pid, "control_port", cp, "data_port", dp),
			      m);
}

/* Wait for the daemon's ready line ("ready CONTROL DATA") on fd, up to
 * timeout_ms.  0, -ETIMEDOUT, or -EPIPE when it exited before. */
static int wait_host_ready(int fd, int timeout_ms)
{
	char line[64];
	size_t len = 0;
	uint64_t deadline = now_mono_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = now_mono_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, line + len, sizeof line - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		len += (size_t)n;
		line[len] = '\0';
		if (strchr(line, '\n'))
			return strncmp(line, "ready ", 6) == 0 ? 0 : -EPIPE;
		if (len == sizeof line - 1)
			return -EPIPE;
	}
}

/* The last line of a file, for an error message. */
static void last_line(const char *path, char *buf, size_t n)
{
	char *text;
	size_t len;
	buf[0] = '\0';
	if (read_file(path, 1 << 20, &text, &len) < 0)
		return;
	while (len > 0 && text[len - 1] == '\n')
		len--;
	size_t start = len;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	snprintf(buf, n, "%.*s", (int)(len - start), text + start);
	free(text);
	text_sanitize(buf);
}

int cmd_ensure(struct cli *c);
int cmd_ensure(struct cli *c)
{
	const char *cport = NULL, *dport = NULL;
	const struct cli_opt opts[] = {
	    {"--control-port", 0, true, &cport, NULL},
	    {"--data-port", 0, true, &dport, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	uint16_t port = DBR_CONTROL_PORT, data = DBR_DATA_PORT;
	if (cport && parse_port(c, "--control-port", cport, &port, false) < 0)
		return EXIT_USAGE;
	if (dport && parse_port(c, "--data-port", dport, &data, false) < 0)
		return EXIT_USAGE;
	if (ping("127.0.0.1", port, 3000) == 0) {
		if (c->json)
			cli_print_json(json_pack("{s:s, s:i}", "host_daemon", "running",
						 "control_port", port));
		else
			printf("host daemon running on 127.0.0.1:%u\n", port);
		return EXIT_OK;
	}
	int r = cli_state_dir(c);
	if (r)
		return r;
	/* One host daemon per state directory: if it runs on other ports,
	 * say which at once rather than start one that cannot run. */
	int rcp, rdp;
	pid_t running = running_host_daemon(c->state_dir, &rcp, &rdp);
	if (running > 0)
		return ensure_running_elsewhere(c, running, rcp, rdp);
	/* Something else holds the port: say so instead of spawning in vain. */
	int probe = client_connect("127.0.0.1", port, 500);
	if (probe >= 0) {
		close(probe);
		return cli_error(
		    c, EXIT_PORT_IN_USE,
		    "port %u is taken by something that is not a devbridge host daemon; "
		    "stop it or use --control-port",
		    port);
	}
	char exe[PATH_MAX], out[PATH_MAX], ps[8], ds[8];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0)
		return cli_error(c, EXIT_ENSURE_FAILED, "cannot find myself: %s", strerror(errno));
	exe[n] = '\0';
	state_path(out, sizeof out, c->state_dir, "host-daemon", "out");
	int outfd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	snprintf(ps, sizeof ps, "%u", port);
	snprintf(ds, sizeof ds, "%u", data);
	char *argv[] = {
	    exe, "host-daemon", "--state-dir", c->state_dir, "--control-port", ps, "--data-port",
	    ds,	 NULL};
	/* The daemon says "ready CONTROL DATA" on fd 3 once it listens, or
	 * closes it by exiting: no polling. */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		if (outfd >= 0)
			close(outfd);
		return cli_error(c, EXIT_ENSURE_FAILED, "pipe: %s", strerror(errno));
	}
	setenv("DEVBRIDGE_READY_FD", "3", 1);
	struct spawn_opts o = {.argv = argv,
			       .stdin_fd = -1,
			       .stdout_fd = outfd,
			       .stderr_fd = outfd,
			       .new_session = true,
			       .pass_fd = p[1]};
	pid_t pid;
	r = spawn_process(&o, &pid);
	unsetenv("DEVBRIDGE_READY_FD");
	close(p[1]);
	if (outfd >= 0)
		close(outfd);
	if (r < 0) {
		close(p[0]);
		return cli_error(c, EXIT_ENSURE_FAILED, "cannot start the host daemon: %s",
				 strerror(-r));
	}
	r = wait_host_ready(p[0], 5000);
	close(p[0]);
	if (r == 0) {
		if (c->json)
			cli_print_json(json_pack("{s:s, s:i, s:i}", "host_daemon", "started", "pid",
						 (int)pid, "control_port", port));
		else
			printf("started host daemon (pid %ld) on 127.0.0.1:%u\n", (long)pid, port);
		return EXIT_OK;
	}
	/* It exited (or hangs: then it is left to run and said so). */
	int status = 0;
	if (r == -EPIPE && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == EXIT_PORT_IN_USE) {
		running = running_host_daemon(c->state_dir, &rcp, &rdp);
		if (running > 0) /* lost a race with another `ensure` */
			return ensure_running_elsewhere(c, running, rcp, rdp);
		char why[512];
		last_line(out, why, sizeof why);
		return cli_error(c, EXIT_PORT_IN_USE, "the host daemon could not listen: %s",
				 why[0] ? why : "port in use");
	}
	char why[512];
	last_line(out, why, sizeof why);
	return cli_error(c, EXIT_ENSURE_FAILED,
			 r == -ETIMEDOUT
			     ? "the host daemon (pid %ld) did not get ready within 5 s; "
			       "see %s%s%s"
			     : "the host daemon (pid %ld) exited; see %s%s%s",
			 (long)pid, out, why[0] ? ": " : "", why);
}

/* --- forward / unforward: ask the local container daemon --- */

static int local_connect(struct cli *c, const char *opt, char *path, size_t n)
{
	if (opt) {
		snprintf(path, n, "%s", opt);
	} else {
		int r = cli_state_dir(c);
		if (r)
			return -r;
		snprintf(path, n, "%s/container-daemon.sock", c->state_dir);
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		cli_error(c, EXIT_USAGE, "%s: path too long", path);
		return -EXIT_USAGE;
	}
	memcpy(sun.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		cli_error(c, EXIT_HOST_UNREACHABLE,
			  "no container daemon at %s (%s): is `devbridge container-daemon` running "
			  "in this container?",
			  path, strerror(e));
		return -EXIT_HOST_UNREACHABLE;
	}
	return fd;
}

static int forward_cmd(struct cli *c, bool add)
{
	const char *csock = NULL;
	const struct cli_opt opts[] = {{"--control-socket", 0, true, &csock, NULL}};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 1)
		return cli_error(c, EXIT_USAGE, "usage: devbridge %s PORT", c->command);
	uint16_t port;
	if (parse_port(c, "PORT", c->argv[0], &port, false) < 0)
		return EXIT_USAGE;
	char path[PATH_MAX];
	int fd = local_connect(c, csock, path, sizeof path);
	if (fd < 0)
		return -fd;
	struct dbr_msg req, ack = {0};
	dbr_msg_init(&req, add ? DBR_FORWARD : DBR_UNFORWARD);
	req.port = port;
	int r = client_request(fd, &req, DBR_FORWARD_ACK, &ack, 3000);
	dbr_msg_clear(&req);
	uint16_t host_port = ack.host_port;
	bool ok = r == 0 && ack.success;
	dbr_msg_clear(&ack);
	/* The host's answer may still be on its way: ask until it shows. */
	uint64_t deadline = now_mono_ms() + 3000;
	while (add && ok && host_port == 0 && now_mono_ms() < deadline) {
		struct dbr_msg lr, resp = {0};
		dbr_msg_init(&lr, DBR_LIST_REQUEST);
		if (client_request(fd, &lr, DBR_LIST_RESPONSE, &resp, 1000) == 0) {
			size_t i;
			json_t *f;
			json_array_foreach(resp.forwards, i, f)
			{
				if (json_integer_value(json_object_get(f, "port")) == port)
					host_port = (uint16_t)json_integer_value(
					    json_object_get(f, "host_port"));
			}
		}
		dbr_msg_clear(&lr);
		dbr_msg_clear(&resp);
		if (host_port == 0) {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	close(fd);
	if (r < 0)
		return cli_error(c, EXIT_HOST_UNREACHABLE,
				 "the container daemon did not answer: %s", strerror(-r));
	if (!ok)
		return cli_error(c, EXIT_ERROR, "the container daemon refused port %u", port);
	if (c->json) {
		cli_print_json(json_pack("{s:i, s:b, s:o}", "port", port, "forwarded", add,
					 "host_port",
					 host_port ? json_integer(host_port) : json_null()));
		return EXIT_OK;
	}
	if (!add)
		printf("port %u: no longer forwarded (and not forwarded again automatically until "
		       "`devbridge forward %u`)\n",
		       port, port);
	else if (host_port)
		printf("port %u: forwarded to the host's 127.0.0.1:%u\n", port, host_port);
	else
		printf("port %u: pinned; forwarded as soon as the host daemon answers\n", port);
	return EXIT_OK;
}

int cmd_forward(struct cli *c);
int cmd_forward(struct cli *c)
{
	return forward_cmd(c, true);
}

int cmd_unforward(struct cli *c);
int cmd_unforward(struct cli *c)
{
	return forward_cmd(c, false);
}
