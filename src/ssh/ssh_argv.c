/* ssh_argv.c - see ssh_argv.h. */
#include "ssh/ssh_argv.h"
#include "core/errcode.h"
#include "ssh/ssh_config.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct argv_builder {
	char **v;
	size_t n, cap;
	int err;
};

static void add(struct argv_builder *b, char *s)
{
	if (b->err)
		goto fail;
	if (!s) {
		b->err = -ENOMEM;
		return;
	}
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		char **v = realloc(b->v, cap * sizeof *v);
		if (!v) {
			b->err = -ENOMEM;
			goto fail;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
	return;
fail:
	free(s);
}

static void add_opt(struct argv_builder *b, const char *key, const char *fmt_value, long value)
{
	add(b, strdup("-o"));
	if (fmt_value)
		add(b, strdup_printf("%s=%s", key, fmt_value));
	else
		add(b, strdup_printf("%s=%ld", key, value));
}

/* IPv6 literals need brackets inside a forward spec. */
static char *host_spec(const char *h)
{
	return strchr(h, ':') ? strdup_printf("[%s]", h) : strdup(h);
}

int ssh_argv_build(const struct cfg_tunnel *t, char ***ret_argv)
{
	struct argv_builder b = {0};
	add(&b, strdup("ssh"));
	add(&b, strdup("-N"));
	/* -v: the debug lines are how we learn the forward is really up. */
	add(&b, strdup("-v"));
	add_opt(&b, "ExitOnForwardFailure", "yes", 0);
	add_opt(&b, "BatchMode", "yes", 0);
	add_opt(&b, "ServerAliveInterval", NULL, t->server_alive_interval);
	add_opt(&b, "ServerAliveCountMax", NULL, t->server_alive_count_max);
	add_opt(&b, "ControlMaster", "no", 0);
	add_opt(&b, "ControlPath", "none", 0);
	add_opt(&b, "ControlPersist", "no", 0);
	add_opt(&b, "PermitLocalCommand", "no", 0);
	add_opt(&b, "IdentitiesOnly", "yes", 0);
	/* What an ssh_config file (the tunnel's, or ~/.ssh/config) could use
	 * to take ssh out of the supervisor's hands: fork into the background
	 * (the supervisor would see exit 0 and the fork would keep the
	 * ports), run a session or read stdin, drop the tunnel's forward, or
	 * add a tun device the tunnel does not describe. */
	add_opt(&b, "ForkAfterAuthentication", "no", 0);
	add_opt(&b, "SessionType", "none", 0);
	add_opt(&b, "StdinNull", "yes", 0);
	add_opt(&b, "RequestTTY", "no", 0);
	add_opt(&b, "RemoteCommand", "none", 0);
	add_opt(&b, "ClearAllForwardings", "no", 0);
	add_opt(&b, "Tunnel", "no", 0);
	if (t->ssh_config) {
		add(&b, strdup("-F"));
		add(&b, strdup(t->ssh_config));
	}
	for (size_t i = 0; i < t->n_ssh_options; i++)
		add_opt(&b, t->ssh_options[i].key, t->ssh_options[i].value, 0);
	/* Defaults the user may override (ssh keeps the first value). */
	add_opt(&b, "ConnectTimeout", "15", 0);
	add(&b, strdup("-i"));
	add(&b, strdup(t->ssh_key));
	if (t->ssh_port) {
		add(&b, strdup("-p"));
		add(&b, strdup_printf("%d", t->ssh_port));
	}
	add(&b, strdup("-l"));
	add(&b, strdup(t->ssh_user));
	char *rh = host_spec(t->remote_host);
	if (t->direction == TUNNEL_LOCAL) {
		add(&b, strdup("-L"));
		add(&b, rh ? strdup_printf("127.0.0.1:%d:%s:%d", t->local_port, rh, t->remote_port)
			   : NULL);
	} else {
		add(&b, strdup("-R"));
		add(&b, rh ? strdup_printf("%d:%s:%d", t->remote_port, rh, t->local_port) : NULL);
	}
	free(rh);
	/* "--" so a host can never be read as an option. */
	add(&b, strdup("--"));
	add(&b, strdup(t->host));
	if (b.err) {
		ssh_argv_free(b.v);
		return b.err;
	}
	*ret_argv = b.v;
	return 0;
}

int ssh_argv_build_dump(const struct cfg_tunnel *t, char ***ret_argv)
{
	char **v;
	int r = ssh_argv_build(t, &v);
	if (r < 0)
		return r;
	/* "-v" is argv[2]: "-G" in its place prints the resolved config. */
	char *g = strdup("-G");
	if (!g) {
		ssh_argv_free(v);
		return -ENOMEM;
	}
	free(v[2]);
	v[2] = g;
	*ret_argv = v;
	return 0;
}

void ssh_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

char *ssh_argv_format(char *const *argv)
{
	return argv_format(argv);
}

static int has(const char *line, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	if (n > len)
		return 0;
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(line + i, needle, n) == 0)
			return 1;
	return 0;
}

static int starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(line, prefix, n) == 0;
}

enum ssh_line ssh_classify_line(const char *line, size_t len, int local, int remote_port,
				enum ssh_reason *ret_reason)
{
	/* ssh logs "remote forward success for: listen 18000, connect
	 * 127.0.0.1:8000" for each -R (ours has no bind address). */
	char ready[64] = "remote forward success for:";
	if (remote_port > 0)
		snprintf(ready, sizeof ready, "remote forward success for: listen %d, connect ",
			 remote_port);
	static const struct {
		const char *needle;
		enum ssh_reason reason;
	} reasons[] = {
	    {"remote port forwarding failed", SSH_R_REMOTE_FORWARD},
	    {"Could not request local forwarding", SSH_R_LOCAL_PORT},
	    {"Address already in use", SSH_R_LOCAL_PORT},
	    {"Permission denied", SSH_R_AUTH},
	    {"Too many authentication failures", SSH_R_AUTH},
	    {"Host key verification failed", SSH_R_HOST_KEY},
	    {"REMOTE HOST IDENTIFICATION HAS CHANGED", SSH_R_HOST_KEY},
	    {"host key is known for", SSH_R_HOST_KEY},
	    {"Could not resolve hostname", SSH_R_UNREACHABLE},
	    {"Connection refused", SSH_R_UNREACHABLE},
	    {"Connection timed out", SSH_R_UNREACHABLE},
	    {"No route to host", SSH_R_UNREACHABLE},
	    {"Network is unreachable", SSH_R_UNREACHABLE},
	    {"Timeout, server", SSH_R_TIMEOUT},
	    {"Connection closed by", SSH_R_CLOSED},
	    {"Connection reset by", SSH_R_CLOSED},
	    {"Broken pipe", SSH_R_CLOSED},
	    {"Connection to ", SSH_R_CLOSED},
	};
	if (starts(line, len, "debug")) {
		/* "Local forwarding listening on" is logged before the bind, so a
		 * local forward is only up once ssh enters its session loop
		 * (with ExitOnForwardFailure it exits before that on failure). */
		if (local ? has(line, len, "Entering interactive session") : has(line, len, ready))
			return SSH_LINE_READY;
		return SSH_LINE_NOISE;
	}
	if (len == 0 || starts(line, len, "Transferred: ") ||
	    starts(line, len, "Bytes per second") || starts(line, len, "OpenSSH_") ||
	    starts(line, len, "Authenticated to "))
		return SSH_LINE_NOISE;
	for (size_t i = 0; i < ARRAY_SIZE(reasons); i++) {
		if (has(line, len, reasons[i].needle)) {
			*ret_reason = reasons[i].reason;
			return SSH_LINE_REASON;
		}
	}
	return SSH_LINE_MESSAGE;
}

const char *ssh_reason_name(enum ssh_reason r)
{
	switch (r) {
	case SSH_R_NONE:
		return "none";
	case SSH_R_REMOTE_FORWARD:
		return "remote_forward_failed";
	case SSH_R_LOCAL_PORT:
		return "local_port_in_use";
	case SSH_R_AUTH:
		return "auth_failed";
	case SSH_R_HOST_KEY:
		return "host_key_failed";
	case SSH_R_UNREACHABLE:
		return "host_unreachable";
	case SSH_R_TIMEOUT:
		return "server_alive_timeout";
	case SSH_R_CLOSED:
		return "connection_closed";
	case SSH_R_NOT_FOUND:
		return "ssh_not_found";
	case SSH_R_STALLED:
		return "ssh_stalled";
	case SSH_R_OTHER:
		break;
	}
	return "ssh_exited";
}

const char *ssh_reason_text(enum ssh_reason r)
{
	switch (r) {
	case SSH_R_NONE:
		return "";
	case SSH_R_REMOTE_FORWARD:
		return "remote port forwarding failed: the remote port is already in use on the "
		       "host "
		       "(often a stale session; see sshd ClientAliveInterval) or forwarding is not "
		       "permitted";
	case SSH_R_LOCAL_PORT:
		return "local port already in use";
	case SSH_R_AUTH:
		return "ssh authentication failed (Permission denied)";
	case SSH_R_HOST_KEY:
		return "host key verification failed";
	case SSH_R_UNREACHABLE:
		return "host unreachable";
	case SSH_R_TIMEOUT:
		return "server stopped answering keepalives (ServerAlive timeout)";
	case SSH_R_CLOSED:
		return "connection closed by the remote host";
	case SSH_R_NOT_FOUND:
		return "ssh not found on PATH";
	case SSH_R_STALLED:
		return "ssh stopped making progress (stopped or not scheduled) and was killed";
	case SSH_R_OTHER:
		break;
	}
	return "ssh exited";
}

enum errcode ssh_reason_exit_code(enum ssh_reason r)
{
	switch (r) {
	case SSH_R_REMOTE_FORWARD:
		return EXIT_REMOTE_FORWARD;
	case SSH_R_LOCAL_PORT:
		return EXIT_LOCAL_PORT;
	case SSH_R_AUTH:
		return EXIT_SSH_AUTH;
	case SSH_R_HOST_KEY:
		return EXIT_HOST_KEY;
	case SSH_R_UNREACHABLE:
		return EXIT_UNREACHABLE;
	case SSH_R_NOT_FOUND:
		return EXIT_SSH_NOT_FOUND;
	default:
		return EXIT_TUNNEL_FAILED;
	}
}

size_t ssh_dump_extra_forwards(const char *buf, size_t len, const struct cfg_tunnel *t,
			       void (*fn)(const char *line, size_t n, void *data), void *data)
{
	/* How ssh -G prints the tunnel's own forward: every host in
	 * brackets. */
	char ours[600];
	if (t->direction == TUNNEL_LOCAL)
		snprintf(ours, sizeof ours, "localforward [127.0.0.1]:%d [%s]:%d", t->local_port,
			 t->remote_host ? t->remote_host : "", t->remote_port);
	else
		snprintf(ours, sizeof ours, "remoteforward %d [%s]:%d", t->remote_port,
			 t->remote_host ? t->remote_host : "", t->local_port);
	size_t ol = strlen(ours), n = 0;
	bool seen_ours = false;
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (l && p[l - 1] == '\r')
			l--;
		if (starts(p, l, "remoteforward ") || starts(p, l, "localforward ") ||
		    starts(p, l, "dynamicforward ")) {
			if (!seen_ours && l == ol && memcmp(p, ours, l) == 0) {
				seen_ours = true;
			} else {
				n++;
				if (fn)
					fn(p, l, data);
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}
