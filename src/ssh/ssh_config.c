/* ssh_config.c - see ssh_config.h. */
#include "ssh/ssh_config.h"
#include "core/state.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TUN(m) AT(struct cfg_tunnel, m)
#define HEA(m) AT(struct cfg_health, m)
#define ACT(m) AT(struct cfg_actor, m)

/* Enum names, in the order of ssh_config.h's enums. */
static const char *const dir_names[] = {"reverse", "local", NULL};
static const char *const class_names[] = {"human", "automation", NULL};

/* ---- tunnels ---------------------------------------------------------- */

/* Options the supervisor sets itself (SPEC §5; ssh_argv.c puts them first,
 * so a value here would be silently ignored) or that would take ssh out
 * of its hands: a user's "ControlMaster auto" makes ssh exit 0 at once,
 * ForkAfterAuthentication puts it in the background, forwards belong to
 * the tunnel's own fields, -v is what tells the supervisor the forward is
 * up. */
/* clang-format off */
static const char *const managed_opts[] = {
	"BatchMode", "ExitOnForwardFailure", "ServerAliveInterval", "ServerAliveCountMax",
	"ControlMaster", "ControlPath", "ControlPersist",
	"RemoteForward", "LocalForward", "DynamicForward", "ClearAllForwardings", "Tunnel",
	"PermitLocalCommand", "LocalCommand", "IdentitiesOnly", "LogLevel",
	"ForkAfterAuthentication", "SessionType", "StdinNull", "RequestTTY", "RemoteCommand",
};

/* Options that say what one of the tunnel's own fields says: given here
 * they would win over the field (they come before -p, -l, -i and the host
 * on the command line) while `config check` shows the field. */
static const struct {
	const char *opt, *field;
} field_opts[] = {
	{"Port", "ssh_port"}, {"User", "ssh_user"}, {"Hostname", "host"},
	{"IdentityFile", "ssh_key"},
};

/* Keywords ssh refuses on the command line ("not supported as a
 * command-line option"): every attempt would fail. */
static const char *const file_only_opts[] = {"Host", "Match", "Include"};

/* Options that make ssh run a command or load code on this machine
 * (ssh_config(5)), or hand this machine's agent or display to the host,
 * refused in files other people write: a catalog's target would do it as
 * every user who starts one of its bridges.  What it does, and where it
 * belongs instead (NULL: OWN). */
#define OWN "set it in a tunnel of your own config or in ~/.ssh/config, which you control"
static const struct {
	const char *opt, *does, *instead;
} exec_opts[] = {
	{"ProxyCommand", "runs a command to connect",
	 OWN ", or use ProxyJump (allowed: it runs only ssh)"},
	{"KnownHostsCommand", "runs a command to read host keys", NULL},
	{"LocalCommand", "runs a command after connecting",
	 "devbridge runs none anywhere (PermitLocalCommand no)"},
	{"PermitLocalCommand", "lets LocalCommand run a command",
	 "devbridge runs none anywhere (PermitLocalCommand no)"},
	{"XAuthLocation", "names the program ssh runs for X11 forwarding", NULL},
	{"PKCS11Provider", "loads a shared library into ssh", NULL},
	{"SmartcardDevice", "loads a shared library into ssh (PKCS11Provider's old name)", NULL},
	{"SecurityKeyProvider", "loads a shared library into ssh", NULL},
	{"Match", "can run a command (Match exec)",
	 "put it in ~/.ssh/config, which you control"},
	{"Include", "reads ssh config files, which can run commands",
	 "put it in ~/.ssh/config, which you control"},
	/* ssh -N opens no session, so none is forwarded today; a catalog
	 * still has no business asking for the user's keys or display */
	{"ForwardAgent", "hands your ssh agent (your keys) to the host", NULL},
	{"ForwardX11", "hands your X display to the host", NULL},
	{"ForwardX11Trusted", "hands your X display to the host, untrusted checks off", NULL},
};
/* clang-format on */

static bool opt_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* With `shared` (a file others write), exec_opts are refused too. */
static void load_options(struct schema_loader *l, yaml_node_t *map, void *base, bool shared)
{
	struct cfg_tunnel *t = base;
	char e[SCHEMA_ESC_BUF];

	if (schema_is_null(map))
		return;
	if (map->type != YAML_MAPPING_NODE) {
		schema_type_error(l, map, "a mapping of ssh option names to values");
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *key = schema_map_key(l, map, p), *v = NULL;
		yaml_node_t *kn = schema_node(l, p->key), *vn = schema_node(l, p->value);
		bool bad = false;
		size_t old;

		if (!key)
			continue;
		if (!opt_name_ok(key)) {
			schema_pdiag(l, kn->start_mark,
				     "invalid ssh option name '%s': use letters and digits",
				     schema_esc(e, key));
			continue;
		}
		for (size_t i = 0; shared && i < ARRAY_SIZE(exec_opts); i++)
			if (strcasecmp(key, exec_opts[i].opt) == 0) {
				schema_diag(
				    l, kn->start_mark,
				    "%s.%s: refused in a catalog: %s %s, and a catalog is data "
				    "anyone who can push to it writes, never code run as you; %s",
				    schema_path(l), key, exec_opts[i].opt, exec_opts[i].does,
				    exec_opts[i].instead ? exec_opts[i].instead : OWN);
				bad = true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(managed_opts) && !bad; i++)
			if (strcasecmp(key, managed_opts[i]) == 0) {
				schema_diag(
				    l, kn->start_mark,
				    "%s.%s is managed by devbridge and cannot be overridden",
				    schema_path(l), key);
				bad = true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(field_opts); i++)
			if (strcasecmp(key, field_opts[i].opt) == 0) {
				char tun[SCHEMA_ESC_BUF + 16];
				size_t plen = strlen(schema_path(l));
				size_t cut = plen > 12 ? plen - 12 : 0; /* ".ssh_options" */
				/* "tunnels.x." (none in a catalog target's file) */
				snprintf(tun, sizeof tun, "%.*s%s", (int)cut, schema_path(l),
					 cut ? "." : "");
				schema_diag(l, kn->start_mark,
					    "%s.%s would override the tunnel's own field: set %s%s "
					    "instead",
					    schema_path(l), key, tun, field_opts[i].field);
				bad = true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(file_only_opts) && !bad; i++)
			if (strcasecmp(key, file_only_opts[i]) == 0) {
				schema_diag(
				    l, kn->start_mark,
				    "%s.%s: ssh does not accept '%s' on the command line; put it "
				    "in the file named by ssh_config",
				    schema_path(l), key, file_only_opts[i]);
				bad = true;
			}
		/* ssh's option names are case-insensitive and the first
		 * setting wins: "proxyjump" after "ProxyJump" would be
		 * silently ignored. */
		for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p && !bad;
		     q++) {
			const yaml_node_t *k2 = schema_node(l, q->key);
			if (k2->type == YAML_SCALAR_NODE && strcasecmp(schema_sval(k2), key) == 0) {
				schema_pdiag(
				    l, kn->start_mark,
				    "duplicate ssh option '%s' (first at line %zu as '%s')", key,
				    k2->start_mark.line + 1, schema_esc(e, schema_sval(k2)));
				bad = true;
			}
		}
		if (bad)
			continue;
		old = schema_path_push(l, key);
		if (schema_get_str(l, vn, 0, &v) < 0) {
			bad = true;
		} else if (strpbrk(v, "\r\n")) {
			schema_pdiag(l, vn->start_mark, "value must not contain a newline");
			bad = true;
		}
		schema_path_pop(l, old);
		if (bad || !t)
			continue;

		struct cfg_kv *kv =
		    realloc(t->ssh_options, (t->n_ssh_options + 1) * sizeof *t->ssh_options);
		if (!kv) {
			schema_oom(l);
			return;
		}
		t->ssh_options = kv;
		kv += t->n_ssh_options++;
		*kv = (struct cfg_kv){strdup(key), strdup(v), schema_mark(l, vn->start_mark)};
		if (!kv->key || !kv->value) {
			schema_oom(l);
			return;
		}
	}
}

static void load_ssh_options(struct schema_loader *l, yaml_node_t *map, void *base)
{
	load_options(l, map, base, false);
}

void ssh_load_shared_options(struct schema_loader *l, yaml_node_t *map, void *base)
{
	load_options(l, map, base, true);
}

/* health_check.tcp: a port on 127.0.0.1, or "host:port". */
static void load_health_tcp(struct schema_loader *l, yaml_node_t *n, void *base)
{
	static const char what[] = "a port 1-65535 or \"host:port\"";
	struct cfg_health *h = base;
	char *host = NULL, *colon;
	long long port;

	if (schema_is_plain(n) &&
	    schema_parse_int(schema_sval(n), n->data.scalar.length, 0, LLONG_MAX, &port)) {
		if (port < 1 || port > 65535) {
			schema_type_error(l, n, what);
			return;
		}
		host = strdup("127.0.0.1");
	} else {
		if (n->type != YAML_SCALAR_NODE || schema_has_nul(n) ||
		    !(colon = strrchr(schema_sval(n), ':')) || colon == schema_sval(n) ||
		    !schema_parse_int(colon + 1, strlen(colon + 1), 1, 65535, &port)) {
			schema_type_error(l, n, what);
			return;
		}
		host = strndup(schema_sval(n), (size_t)(colon - schema_sval(n)));
		size_t hl = host ? strlen(host) : 0;
		if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* "[::1]:80" */
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		if (host && (!*host || !schema_word_ok(host))) {
			free(host);
			schema_type_error(l, n, what);
			return;
		}
	}
	if (!host) {
		schema_oom(l);
		return;
	}
	if (!h) {
		free(host);
		return;
	}
	free(h->tcp_host);
	h->tcp_host = host;
	h->tcp_port = (int)port;
	h->mark = schema_mark(l, n->start_mark);
}

static void health_post(struct schema_loader *l, const struct schema *s,
			const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	const struct schema_seen *url = schema_seen(s, seen, "url"),
				 *tcp = schema_seen(s, seen, "tcp");
	struct cfg_health *h = base;

	if (url->key && tcp->key)
		schema_pdiag(l, tcp->key->start_mark, "'url' and 'tcp' are mutually exclusive");
	else if (!url->key && !tcp->key)
		schema_pdiag(l, at, "expected 'url' or 'tcp'");
	if (h)
		h->kind = url->key ? HEALTH_HTTP : tcp->key ? HEALTH_TCP : HEALTH_NONE;
}

static void reconnect_post(struct schema_loader *l, const struct schema *s,
			   const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	const struct schema_seen *max = schema_seen(s, seen, "backoff_max");
	struct cfg_tunnel *t = base;

	(void)at;
	if (!t || t->backoff_max >= t->backoff_initial)
		return;
	/* Only backoff_initial given, above the default maximum: the user
	 * meant a constant delay, not an error. */
	if (!max->key)
		t->backoff_max = t->backoff_initial;
	else
		schema_pdiag(l, max->val->start_mark,
			     "backoff_max (%g) must be >= backoff_initial (%g)", t->backoff_max,
			     t->backoff_initial);
}

/* host: "user@h" or "ssh://user@h:port" would carry a user (and port)
 * past ssh_user and ssh_port: ssh reads them from the destination. */
static void tunnel_post(struct schema_loader *l, const struct schema *s,
			const struct schema_seen *seen, yaml_mark_t at, void *base)
{
	const struct schema_seen *h = schema_seen(s, seen, "host");
	struct cfg_tunnel *t = base;
	char e[SCHEMA_ESC_BUF];

	(void)at;
	if (t && !t->remote_host && !(t->remote_host = strdup("127.0.0.1")))
		schema_oom(l);
	if (!h->val || h->val->type != YAML_SCALAR_NODE)
		return;
	if (strncasecmp(schema_sval(h->val), "ssh://", 6) == 0)
		schema_pdiag(
		    l, h->val->start_mark,
		    "host '%s' is an ssh:// URI: give the host name only, with ssh_user and "
		    "ssh_port",
		    schema_esc(e, schema_sval(h->val)));
	else if (strchr(schema_sval(h->val), '@'))
		schema_pdiag(l, h->val->start_mark,
			     "host '%s' names a user, which would override ssh_user: give the host "
			     "name only and the user in ssh_user",
			     schema_esc(e, schema_sval(h->val)));
}

void ssh_tunnel_init(struct schema_loader *l, const yaml_node_t *key, void *tunnel)
{
	struct cfg_tunnel *t = tunnel;
	char e[SCHEMA_ESC_BUF];

	if (!cfg_name_valid(schema_sval(key)))
		schema_diag(
		    l, key->start_mark,
		    "invalid tunnel name '%s': use letters, digits, '.', '_', '-' (at most 64)",
		    schema_esc(e, schema_sval(key)));
	else if (state_name_reserved(schema_sval(key)))
		/* Their files in the state directory belong to the daemons. */
		schema_diag(l, key->start_mark,
			    "tunnel name '%s' is reserved for devbridge's daemons",
			    schema_sval(key));
	if (!t)
		return;
	/* Zeroed by the engine, which has set the mark. */
	ssh_tunnel_defaults(t);
	if (!(t->name = strdup(schema_sval(key))))
		schema_oom(l);
}

void ssh_tunnel_defaults(struct cfg_tunnel *t)
{
	*t = (struct cfg_tunnel){
	    .mark = t->mark,
	    .direction = TUNNEL_REVERSE,
	    .health = {.kind = HEALTH_NONE, .interval_s = 30, .timeout_s = 5},
	    .max_attempts = 0,
	    .backoff_initial = 5,
	    .backoff_max = 60,
	    .stable_s = 30,
	    .server_alive_interval = 15,
	    .server_alive_count_max = 3,
	};
}

/* Where ssh connects, and how: the rest says what it forwards. */
static const char *const connection_keys[] = {
    "host",
    "ssh_user",
    "ssh_port",
    "ssh_key",
    "ssh_config",
    "ssh_options",
    "server_alive_interval",
    "server_alive_count_max",
};

bool ssh_tunnel_key_connects(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(connection_keys); i++)
		if (strcmp(key, connection_keys[i]) == 0)
			return true;
	return false;
}

static int dup_opt(char **dst, const char *src)
{
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

int ssh_tunnel_copy_connection(struct cfg_tunnel *dst, const struct cfg_tunnel *src)
{
	dst->ssh_port = src->ssh_port;
	dst->ssh_key_mark = src->ssh_key_mark;
	dst->ssh_config_mark = src->ssh_config_mark;
	dst->server_alive_interval = src->server_alive_interval;
	dst->server_alive_count_max = src->server_alive_count_max;
	if (dup_opt(&dst->host, src->host) < 0 || dup_opt(&dst->ssh_user, src->ssh_user) < 0 ||
	    dup_opt(&dst->ssh_key, src->ssh_key) < 0 ||
	    dup_opt(&dst->ssh_config, src->ssh_config) < 0)
		return -ENOMEM;
	if (!src->n_ssh_options)
		return 0;
	if (!(dst->ssh_options = calloc(src->n_ssh_options, sizeof *dst->ssh_options)))
		return -ENOMEM;
	for (size_t i = 0; i < src->n_ssh_options; i++) {
		const struct cfg_kv *kv = &src->ssh_options[i];

		dst->n_ssh_options++;
		dst->ssh_options[i].mark = kv->mark;
		if (dup_opt(&dst->ssh_options[i].key, kv->key) < 0 ||
		    dup_opt(&dst->ssh_options[i].value, kv->value) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- actors ----------------------------------------------------------- */

void ssh_actor_init(struct schema_loader *l, const yaml_node_t *key, void *actor)
{
	struct cfg_actor *a = actor;

	if (!a)
		return;
	a->cls = ACTOR_HUMAN;
	if (!(a->name = strdup(schema_sval(key))))
		schema_oom(l);
}

/* ---- the tables -------------------------------------------------------- */

/* Each table lists the keys valid at one level, in the order a "did you
 * mean" or an "expected one of" names them; see struct schema_field for the
 * columns. */
/* clang-format off */
static const struct schema_field health_fields[] = {
	STR("url", F_HTTP, HEA(url), HEA(mark)),
	FUNC("tcp", load_health_tcp),
	INT("interval_seconds", 1, SCHEMA_DAY, HEA(interval_s)),
	INT("timeout_seconds", 1, SCHEMA_DAY, HEA(timeout_s)),
};
static SCHEMA(health_schema, health_fields, health_post);

static const struct schema_field reconnect_fields[] = {
	INT("max_attempts", 0, INT_MAX, TUN(max_attempts)),
	NUM("backoff_initial", TUN(backoff_initial)),
	NUM("backoff_max", TUN(backoff_max)),
	NUM("stable_seconds", TUN(stable_s)),
};
static SCHEMA(reconnect_schema, reconnect_fields, reconnect_post);

static const struct schema_field tunnel_fields[] = {
	STR("host", F_REQ | F_WORD, TUN(host), 0),
	PORT("remote_port", F_REQ, TUN(remote_port), TUN(remote_port_mark)),
	PORT("local_port", F_REQ, TUN(local_port), TUN(local_port_mark)),
	STR("ssh_user", F_REQ | F_WORD, TUN(ssh_user), 0),
	PATH("ssh_key", F_REQ, TUN(ssh_key), TUN(ssh_key_mark)),
	STR("actor", F_REQ, TUN(actor), TUN(actor_mark)),
	PORT("ssh_port", 0, TUN(ssh_port), 0),
	ENUM("direction", 0, dir_names, TUN(direction)),
	STR("remote_host", F_WORD, TUN(remote_host), 0),
	MAP("health_check", &health_schema, TUN(health)),
	MAP("reconnect", &reconnect_schema, SAME_BASE),
	INT("server_alive_interval", 1, 3600, TUN(server_alive_interval)),
	INT("server_alive_count_max", 1, 1000, TUN(server_alive_count_max)),
	PATH("ssh_config", 0, TUN(ssh_config), TUN(ssh_config_mark)),
	FUNC("ssh_options", load_ssh_options),
};
SCHEMA(ssh_tunnel_schema, tunnel_fields, tunnel_post);

static const struct schema_field actor_fields[] = {
	ENUM("class", F_REQ, class_names, ACT(cls)),
	STR("description", F_EMPTY, ACT(description), 0),
};
SCHEMA(ssh_actor_schema, actor_fields, NULL);
/* clang-format on */

/* ---- checks across entries -------------------------------------------- */

/* ssh_port 0 means "ssh's default", which is 22 unless ssh_config says
 * otherwise; treat the two as the same port rather than miss a clash. */
static int eff_ssh_port(const struct cfg_tunnel *t)
{
	return t->ssh_port ? t->ssh_port : 22;
}

enum ssh_clash ssh_tunnels_clash(const struct cfg_tunnel *t, const struct cfg_tunnel *u)
{
	if (t->direction == TUNNEL_LOCAL && u->direction == TUNNEL_LOCAL && t->local_port &&
	    t->local_port == u->local_port)
		return SSH_CLASH_LOCAL_PORT;
	if (t->direction == TUNNEL_REVERSE && u->direction == TUNNEL_REVERSE && t->host &&
	    u->host && t->remote_port && t->remote_port == u->remote_port &&
	    strcasecmp(t->host, u->host) == 0 && eff_ssh_port(t) == eff_ssh_port(u))
		return SSH_CLASH_REMOTE_PORT;
	return SSH_CLASH_NONE;
}

void ssh_config_check(struct schema_loader *l, const struct cfg_tunnel *tunnels, size_t n_tunnels,
		      const struct cfg_actor *actors, size_t n_actors)
{
	char e[SCHEMA_ESC_BUF], e2[SCHEMA_ESC_BUF], e3[SCHEMA_ESC_BUF];

	for (size_t i = 0; i < n_tunnels; i++) {
		const struct cfg_tunnel *t = &tunnels[i];

		if (t->actor && !ssh_find_actor(actors, n_actors, t->actor)) {
			const char *best = NULL;
			int bestd = INT_MAX;

			for (size_t j = 0; j < n_actors; j++)
				schema_suggest(t->actor, actors[j].name, &best, &bestd);
			if (best)
				schema_diag_at(
				    l, t->actor_mark,
				    "tunnels.%s.actor: unknown actor '%s' (did you mean '%s'?)",
				    schema_esc(e, t->name), schema_esc(e2, t->actor),
				    schema_esc(e3, best));
			else
				schema_diag_at(
				    l, t->actor_mark,
				    "tunnels.%s.actor: unknown actor '%s': define it under "
				    "'actors:'",
				    schema_esc(e, t->name), schema_esc(e2, t->actor));
		}
		for (size_t j = 0; j < i; j++) {
			const struct cfg_tunnel *u = &tunnels[j];
			enum ssh_clash c = ssh_tunnels_clash(t, u);

			if (c == SSH_CLASH_LOCAL_PORT) {
				schema_diag_at(
				    l, t->local_port_mark,
				    "tunnels.%s.local_port: port %d is already used by tunnel "
				    "'%s' (line %d)",
				    schema_esc(e, t->name), t->local_port, schema_esc(e2, u->name),
				    u->local_port_mark.line);
				break;
			}
			if (c == SSH_CLASH_REMOTE_PORT) {
				schema_diag_at(
				    l, t->remote_port_mark,
				    "tunnels.%s.remote_port: port %d on %s is already forwarded "
				    "by tunnel '%s' (line %d)",
				    schema_esc(e, t->name), t->remote_port, schema_esc(e2, t->host),
				    schema_esc(e3, u->name), u->remote_port_mark.line);
				break;
			}
		}
	}
}

/* ---- the key files -------------------------------------------------- */

static int check_tunnel_files(const struct cfg_tunnel *t, const char *file, struct cfg_diags *d,
			      size_t *bad)
{
	struct cfg_mark m = t->ssh_key_mark;
	char e[SCHEMA_ESC_BUF];
	struct stat st;
	int r = 0;

	if (!m.file)
		m.file = file;
	if (t->ssh_key) {
		mode_t mode;
		const char *k = t->ssh_key;

		if (stat(k, &st) < 0) {
			r = cfg_diag_add(d, m, "tunnels.%s.ssh_key: %s: %s", schema_esc(e, t->name),
					 k, strerror(errno));
			++*bad;
		} else if (!S_ISREG(st.st_mode)) {
			r = cfg_diag_add(d, m, "tunnels.%s.ssh_key: %s is not a regular file",
					 schema_esc(e, t->name), k);
			++*bad;
		} else if (access(k, R_OK) < 0) {
			r = cfg_diag_add(d, m, "tunnels.%s.ssh_key: %s: %s", schema_esc(e, t->name),
					 k, strerror(errno));
			++*bad;
		} else if ((mode = st.st_mode & 07777) & 077) {
			/* ssh itself refuses such a key ("UNPROTECTED PRIVATE
			 * KEY FILE"), but only in its log, after a connect. */
			r = cfg_diag_add(d, m,
					 "tunnels.%s.ssh_key: %s is %s by group or others (mode "
					 "%04o); chmod 600 it",
					 schema_esc(e, t->name), k,
					 mode & 044 ? "readable" : "accessible", (unsigned)mode);
			++*bad;
		}
	}
	if (r == 0 && t->ssh_config && access(t->ssh_config, R_OK) < 0) {
		m = t->ssh_config_mark;
		if (!m.file)
			m.file = file;
		r = cfg_diag_add(d, m, "tunnels.%s.ssh_config: %s: %s", schema_esc(e, t->name),
				 t->ssh_config, strerror(errno));
		++*bad;
	}
	return r;
}

int ssh_config_check_files(const struct cfg_tunnel *tunnels, size_t n,
			   const struct cfg_tunnel *only, const char *file, struct cfg_diags *diags)
{
	size_t bad = 0;
	int r = 0;

	if (only)
		r = check_tunnel_files(only, file, diags, &bad);
	else
		for (size_t i = 0; i < n && r == 0; i++)
			r = check_tunnel_files(&tunnels[i], file, diags, &bad);
	return r < 0 ? r : bad ? -EINVAL : 0;
}

/* ---- names, lookups, freeing ------------------------------------------ */

const struct cfg_actor *ssh_find_actor(const struct cfg_actor *actors, size_t n, const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (actors[i].name && strcmp(actors[i].name, name) == 0)
			return &actors[i];
	return NULL;
}

void ssh_tunnel_clear(struct cfg_tunnel *t)
{
	free(t->name);
	free(t->host);
	free(t->ssh_user);
	free(t->ssh_key);
	free(t->remote_host);
	free(t->actor);
	free(t->health.url);
	free(t->health.tcp_host);
	free(t->ssh_config);
	for (size_t j = 0; j < t->n_ssh_options; j++) {
		free(t->ssh_options[j].key);
		free(t->ssh_options[j].value);
	}
	free(t->ssh_options);
	memset(t, 0, sizeof *t);
}

void ssh_tunnels_free(struct cfg_tunnel *tunnels, size_t n)
{
	for (size_t i = 0; tunnels && i < n; i++)
		ssh_tunnel_clear(&tunnels[i]);
	free(tunnels);
}

void ssh_actors_free(struct cfg_actor *actors, size_t n)
{
	for (size_t i = 0; actors && i < n; i++) {
		free(actors[i].name);
		free(actors[i].description);
	}
	free(actors);
}

const char *cfg_direction_name(enum tunnel_dir d)
{
	return d == TUNNEL_LOCAL ? dir_names[1] : dir_names[0];
}

const char *cfg_class_name(enum actor_class c)
{
	return c == ACTOR_AUTOMATION ? class_names[1] : class_names[0];
}

/* "http://HOST:PORT/PATH": the host (brackets of an IPv6 literal kept),
 * the port (the scheme's default when absent) and where the path starts.
 * false when the URL has no usable authority. */
static bool url_split(const char *url, char *host, size_t hn, int *port, const char **path)
{
	size_t skip = strncasecmp(url, "http://", 7) == 0    ? 7
		      : strncasecmp(url, "https://", 8) == 0 ? 8
							     : 0;
	const char *a = url + skip, *end = a + strcspn(a, "/?#"), *at;
	long long p = skip == 7 ? 80 : 443;

	if (!skip)
		return false;
	/* user:password@ */
	while ((at = memchr(a, '@', (size_t)(end - a))))
		a = at + 1;
	const char *colon = NULL;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(end - a));
		if (!rb)
			return false;
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(a, ':', (size_t)(end - a));
	}
	const char *hend = colon ? colon : end;
	if (hend == a || (size_t)(hend - a) >= hn)
		return false;
	if (colon && !schema_parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &p))
		return false;
	memcpy(host, a, (size_t)(hend - a));
	host[hend - a] = '\0';
	*port = (int)p;
	*path = end;
	return true;
}

/* This machine, as a health check's host would name it. */
static bool is_loopback_name(const char *h)
{
	struct in_addr a;

	if (inet_pton(AF_INET, h, &a) == 1)
		return (ntohl(a.s_addr) >> 24) == 127;
	return strcasecmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 || strcmp(h, "[::1]") == 0;
}

size_t ssh_config_lint(const struct cfg_tunnel *tunnels, size_t n_tunnels, struct cfg_diags *w)
{
	size_t n = 0;
	char e[SCHEMA_ESC_BUF];

	for (size_t i = 0; tunnels && i < n_tunnels; i++) {
		const struct cfg_tunnel *t = &tunnels[i];
		const struct cfg_health *h = &t->health;
		char host[256];
		int port = 0;
		const char *path = "";

		/* A reverse tunnel's remote_port listens on the remote host;
		 * the check runs here, so 127.0.0.1:remote_port is whatever
		 * happens to listen on this machine (seed 003's own example,
		 * the mistake its notes warn about). */
		if (t->direction != TUNNEL_REVERSE || t->remote_port == t->local_port)
			continue;
		if (h->kind == HEALTH_HTTP && url_split(h->url, host, sizeof host, &port, &path) &&
		    is_loopback_name(host) && port == t->remote_port) {
			cfg_diag_add(w, h->mark,
				     "tunnels.%s.health_check.url: port %d is the tunnel's "
				     "remote_port, which listens on %s; health checks run on this "
				     "machine, where the service is local_port %d: did you mean "
				     "%.*s//%s:%d%s?",
				     schema_esc(e, t->name), port, t->host, t->local_port,
				     (int)strcspn(h->url, "/"), h->url, host, t->local_port, path);
			n++;
		} else if (h->kind == HEALTH_TCP && h->tcp_host && is_loopback_name(h->tcp_host) &&
			   h->tcp_port == t->remote_port) {
			cfg_diag_add(w, h->mark,
				     "tunnels.%s.health_check.tcp: port %d is the tunnel's "
				     "remote_port, which listens on %s; health checks run on this "
				     "machine, where the service is local_port %d: did you mean "
				     "tcp: %d?",
				     schema_esc(e, t->name), h->tcp_port, t->host, t->local_port,
				     t->local_port);
			n++;
		}
	}
	return n;
}
