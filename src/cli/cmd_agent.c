/* cmd_agent.c - `devbridge agent`: the intercept agent, as the agent pod
 * runs it (k8s/agent.h, docs/intercept.md). */
#include "cli/cli.h"
#include "core/errcode.h"
#include "core/num.h"
#include "core/util.h"
#include "k8s/agent.h"
#include "k8s/intercept.h"

#include <stdlib.h>
#include <string.h>

static int parse_num(struct cli *c, const char *flag, const char *v, unsigned long max,
		     unsigned long *ret)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 0;
	if (!v || !*v || *end || n > max)
		return cli_error(c, EXIT_USAGE, "%s: not a number up to %lu: %s", flag, max,
				 v ? v : "");
	*ret = n;
	return 0;
}

int cmd_agent(struct cli *c)
{
	const char *ns = NULL, *svc = NULL, *sid = NULL, *mode = NULL, *cport = NULL, *hport = NULL,
		   *grace = NULL, *ka = NULL, *kat = NULL, *bind = NULL;
	const char *ports[AGENT_MAX_PORTS];
	size_t n_ports = 0;
	const struct cli_opt opts[] = {
	    {"--namespace", 'n', true, &ns, NULL},
	    {"--service", 0, true, &svc, NULL},
	    {"--session", 0, true, &sid, NULL},
	    {"--port", 'p', true, NULL, NULL, ports, &n_ports, ARRAY_SIZE(ports)},
	    {"--mode", 0, true, &mode, NULL},
	    {"--control-port", 0, true, &cport, NULL},
	    {"--health-port", 0, true, &hport, NULL},
	    {"--bind-addr", 0, true, &bind, NULL},
	    {"--grace", 0, true, &grace, NULL},
	    {"--keepalive", 0, true, &ka, NULL},
	    {"--keepalive-timeout", 0, true, &kat, NULL},
	};
	if (cli_scan_opts(c, opts, ARRAY_SIZE(opts)) < 0)
		return EXIT_USAGE;
	if (c->argc != 0)
		return cli_error(c, EXIT_USAGE, "agent takes no arguments");
	struct agent_opts o = {
	    .namespace = ns,
	    .service = svc,
	    .session = sid,
	    .control_port = ICPT_CONTROL_PORT,
	    .health_port = ICPT_HEALTH_PORT,
	    .bind_addr = bind,
	    .grace_s = 10,
	    .keepalive_ms = 10000,
	    .keepalive_timeout_ms = 30000,
	    .token = getenv("DEVBRIDGE_AGENT_TOKEN"),
	};
	if (!ns || !svc || !sid || !n_ports)
		return cli_error(c, EXIT_USAGE,
				 "agent: --namespace, --service, --session and "
				 "at least one --port SVCPORT:TARGETPORT are needed");
	if (strlen(sid) != ICPT_SID_LEN || strspn(sid, "0123456789abcdef") != ICPT_SID_LEN)
		return cli_error(c, EXIT_USAGE, "--session: %d lowercase hex characters",
				 ICPT_SID_LEN);
	for (size_t i = 0; i < n_ports; i++)
		if (agent_parse_port(ports[i], &o.ports[i]) < 0)
			return cli_error(c, EXIT_USAGE,
					 "--port %s: want SVCPORT:TARGETPORT (1-65535)", ports[i]);
	o.n_ports = n_ports;
	if (mode && strcmp(mode, "steal") && strcmp(mode, "mirror"))
		return cli_error(c, EXIT_USAGE, "--mode: steal or mirror, not %s", mode);
	o.mirror = mode && !strcmp(mode, "mirror");
	unsigned long v = 0;
	int r;
	if (cport && (r = parse_num(c, "--control-port", cport, 65535, &v)))
		return r;
	if (cport)
		o.control_port = (uint16_t)v;
	if (hport && (r = parse_num(c, "--health-port", hport, 65535, &v)))
		return r;
	if (hport)
		o.health_port = (uint16_t)v;
	if (grace && (r = parse_num(c, "--grace", grace, 3600, &v)))
		return r;
	if (grace)
		o.grace_s = (unsigned)v;
	if (ka && (r = parse_num(c, "--keepalive", ka, 3600000, &v)))
		return r;
	if (ka)
		o.keepalive_ms = (uint32_t)v;
	if (kat && (r = parse_num(c, "--keepalive-timeout", kat, 3600000, &v)))
		return r;
	if (kat)
		o.keepalive_timeout_ms = (uint32_t)v;
	if (!o.token || strlen(o.token) < AGENT_TOKEN_MIN || strlen(o.token) > AGENT_TOKEN_MAX)
		return cli_error(c, EXIT_NO_TOKEN,
				 "DEVBRIDGE_AGENT_TOKEN: not set, or not %d-%d characters",
				 AGENT_TOKEN_MIN, AGENT_TOKEN_MAX);
	/* Keep a copy and scrub the environment's: /proc/PID/environ shows
	 * the process's initial environment, which is where getenv points. */
	char token[AGENT_TOKEN_MAX + 1];
	char *env_tok = getenv("DEVBRIDGE_AGENT_TOKEN");
	snprintf(token, sizeof token, "%s", env_tok);
	explicit_bzero(env_tok, strlen(env_tok));
	unsetenv("DEVBRIDGE_AGENT_TOKEN");
	o.token = token;
	r = agent_run(&o);
	explicit_bzero(token, sizeof token);
	return r == 0 ? 0 : r == 2 ? EXIT_USAGE : EXIT_K8S_TUNNEL_FAILED;
}
