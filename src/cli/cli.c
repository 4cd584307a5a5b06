/* cli.c - global options, the command table, help, and shared output. */
#include "cli/cli.h"
#include "app/config.h"
#include "core/log.h"
#include "core/num.h"
#include "core/state.h"
#include "core/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DEVBRIDGE_VERSION
#define DEVBRIDGE_VERSION "0.1.0"
#endif

static const struct cli_command commands[] = {
    {"up", cmd_up, "up [NAME...] [--foreground] [--timeout SECONDS]",
     "start bridges under supervision",
     "Starts one supervisor process per named tunnel (all tunnels in the config when no\n"
     "name is given) and returns once each is connected, failed for good, or its first\n"
     "attempt failed (it then keeps retrying in the background with backoff).\n"
     "A tunnel that is already running is left alone.\n\n"
     "  --foreground       stay attached; Ctrl+C (SIGINT) or SIGTERM stops the bridges\n"
     "  --timeout SECONDS  how long to wait for the first outcome (default 30)\n"
     "  --dry-run          print the exact ssh command lines; start nothing\n\n"
     "Exit: 0 all connected; 42-46 the first attempt's reason (still retrying in the\n"
     "background); 41 it gave up (max_attempts); 47 not connected within --timeout;\n"
     "1 the state directory cannot be written (see `devbridge --help`)."},
    {"down", cmd_down, "down [NAME...]", "stop supervised bridges",
     "Stops the named bridges (all running bridges when no name is given): the\n"
     "supervisor sends ssh SIGTERM, then SIGKILL after 5 s, records bridge_stopped and\n"
     "exits.  Stopping a bridge that is not running is not an error.  An intercept\n"
     "(intercept-SVC): its process restores the Service's selector and deletes the\n"
     "agent's objects; when it is gone, down does both from the saved state."},
    {"restart", cmd_restart, "restart [NAME...] [--timeout SECONDS]",
     "stop, then start bridges again", NULL},
    {"status", cmd_status, "status [NAME...]", "show each bridge's state",
     "Columns: name, kind, state, local -> remote, uptime in that state, reconnects,\n"
     "health, last event.  A NAME is a tunnel, a Kubernetes bridge (SVC.NS.PORT), a\n"
     "Kubernetes service (SVC or NS/SVC: all its bridges), or an intercept\n"
     "(intercept-SVC).  With live Kubernetes\n"
     "bridges a header gives the session's kubeconfig, context and uptime.  With\n"
     "--json: {\"bridges\":[...], \"session\":{...}} (see README)."},
    {"logs", cmd_logs, "logs NAME [-n N] [-f]", "show a bridge's audit log",
     "  -n, --lines N   show the last N events (default 20; 0 = all)\n"
     "  -f, --follow    keep printing new events until interrupted\n"
     "With --json: {\"events\":[...]}, or one JSON object per line with -f."},
    {"check", cmd_check, "check [NAME...]", "run health checks now",
     "Runs each bridge's health check from this process and asks live supervisors\n"
     "to re-check too (a Kubernetes bridge, named as for status: a probe connection\n"
     "through its forward).  Exit 0 when all pass, 49 when any fails."},
    {"config", cmd_config, "config check", "validate the config and print the plan",
     "Loads the config (see README for the lookup order), checks every field and the\n"
     "key files, and prints what `up` would run (each tunnel's ssh command line) and\n"
     "the Kubernetes plan: bridge: targets and intercepts, profiles, services: with\n"
     "their dependencies.  Warnings go to stderr as FILE:LINE:COLUMN: warning: ...:\n"
     "forwards an ssh_config file adds (from `ssh -G`), a reverse tunnel's health\n"
     "check aimed at its remote port.  Exit 3 on any error, each printed as\n"
     "FILE:LINE:COLUMN: message."},
    {"doctor", cmd_doctor, "doctor [--fix]", "check this machine's readiness",
     "Reports: ssh client on PATH, config valid, key files readable with safe\n"
     "permissions, state directory usable; kubectl on PATH, kubeconfig readable, the\n"
     "API server answering (these count only when the config has a bridge: section);\n"
     "intercepts recorded here whose process is gone (not counted against readiness).\n"
     "  --fix   remove what dead intercept sessions left: in every namespace an\n"
     "          intercept here was in (and bridge.namespace), objects labelled\n"
     "          app.kubernetes.io/managed-by=devbridge of a session no process here\n"
     "          holds and whose agent is gone, the Service restored first when it\n"
     "          still carries that session's annotation\n"
     "Exit 0 when everything is ready, 1 if not."},
    {"targets", cmd_targets, "targets [--domain DOMAIN] | targets show ID",
     "list the OpsCatalog's targets (catalog_path), or show one",
     "Reads the catalog the config's catalog_path names (docs/catalog.md): each target\n"
     "with its domain, ssh user@host, port and tags.  `targets show ID` (ID or\n"
     "DOMAIN/ID): its fields, its file and the bridges that use it.\n\n"
     "  -d, --domain DOMAIN  only that domain's targets\n\n"
     "Exit: 0; 3 no catalog_path, or the config or catalog is invalid (`catalog\n"
     "validate` lists every problem); 57 no such target or domain (with a \"did you\n"
     "mean\")."},
    {"catalog", cmd_catalog, "catalog list | catalog validate | catalog show ID",
     "the OpsCatalog: its domains and bridges, a check of all of it, one bridge",
     "  list       the domains (owner, description, how many targets and bridges) and\n"
     "             the bridges (target, direction, ports)\n"
     "  validate   read every file and report every problem, each as\n"
     "             FILE:LINE:COLUMN: message on stderr: bad fields, an unknown target,\n"
     "             a duplicate id across domains, an actor the config does not define,\n"
     "             two bridges (or a bridge and an inline tunnel) on one port, an\n"
     "             ssh option that would run a command or load code here, such as\n"
     "             ProxyCommand (docs/catalog.md, \"Trust\")\n"
     "  show ID    one bridge as the tunnel it becomes (target, host, ports, actor,\n"
     "             health check, reconnect), and whether an inline tunnel shadows it\n\n"
     "Catalog bridges are tunnels: `up`, `down`, `status`, `logs` and `check` take\n"
     "their ids; an inline tunnel of the same name wins (`config check` warns).\n"
     "Exit: 0; 3 no catalog_path, an invalid config, or (validate, and the others)\n"
     "an invalid catalog; 48 no such bridge (with a \"did you mean\")."},
    {"host-daemon", cmd_host_daemon,
     "host-daemon [--control-port N] [--data-port N] [--bind-addr A] [--no-auth] ...",
     "run the devcontainer bridge's host daemon (foreground)",
     "  --control-port N      JSON-lines control port (default 19285)\n"
     "  --data-port N         reverse data connections (default 19286)\n"
     "  --bind-addr ADDR      where those two listen (default: 0.0.0.0 if Docker runs\n"
     "                        here, else 127.0.0.1); forwarded ports: loopback only\n"
     "  --no-docker-detect    always 127.0.0.1 unless --bind-addr\n"
     "  --no-auth             accept any Register (not recommended)\n"
     "  --auth-token TOKEN    the token (else $DEVBRIDGE_AUTH_TOKEN, $DCBRIDGE_AUTH_TOKEN,\n"
     "                        --auth-token-file, as on the container side)\n"
     "  --auth-token-file F   token file (default ~/.config/devbridge/auth-token,\n"
     "                        created 0600 with 64 random hex characters if absent)\n"
     "  --allow-privileged-ports  bind a container's ports below 1024 as they are\n"
     "                        (default: 80 is bound as 10080, 443 as 10443, ...)\n"
     "  --pending-timeout-ms N  how long a client waits for the container's data\n"
     "                        connection (default 10000)\n"
     "  --browser-cmd CMD     run CMD URL to open URLs (default xdg-open)\n"
     "  --exit-on-idle        exit when no container is registered for --idle-timeout\n"
     "  --no-exit-on-idle     (default) keep running\n"
     "  --idle-timeout S      seconds (default 60)\n"
     "  --heartbeat-ms N      Ping interval (default 30000; 3 missed Pongs drop a container)\n"
     "  --watch-socket GLOB   offer host Unix sockets matching GLOB to containers\n"
     "                        (repeatable; \"**\" spans directories; none by default)\n"
     "  --socket-scan-interval-ms N   how often to look for them (default 5000)\n"
     "  --max-socket-forwards N       at most N sockets (default 16, max 64)\n"
     "  --container-path-prefix DIR   where mirrors appear in containers (default /tmp)"},
    {"container-daemon", cmd_container_daemon,
     "container-daemon [--host-addr A] [--include-ports P] [--exclude-ports P] ...",
     "run the devcontainer bridge's container daemon (foreground, in the container)",
     "  --host-addr ADDR        the host (else $DEVBRIDGE_HOST, host.docker.internal,\n"
     "                          the default route's gateway)\n"
     "  --control-port N        (else $DEVBRIDGE_HOST_PORT, 19285)\n"
     "  --data-port N           (else $DEVBRIDGE_DATA_PORT, 19286)\n"
     "  --auth-token T | --auth-token-file F   (else $DEVBRIDGE_AUTH_TOKEN, then\n"
     "                          ~/.config/devbridge/auth-token); --no-auth for none\n"
     "  --include-ports SPEC    only these ports, e.g. \"3000-3999,8080\"\n"
     "  --exclude-ports SPEC    never these ports\n"
     "  --exclude-process RE    not ports of processes whose name matches RE\n"
     "  --devcontainer-json F   also include its forwardPorts (JSONC)\n"
     "  --scan-interval-ms N    how often to look for listeners (default 50 with\n"
     "                          netlink, 1000 with /proc/net/tcp; min 20)\n"
     "  --container-id ID       (else $DEVBRIDGE_CONTAINER_ID, /etc/hostname, $HOSTNAME)\n"
     "  --parent-pid PID        exit when PID exits\n"
     "  --control-socket PATH   for `forward`/`unforward` (default STATE_DIR/\n"
     "                          container-daemon.sock, mode 0600)\n"
     "  --heartbeat-ms N        expected host Ping interval (default 30000)"},
    {"open", cmd_open,
     "open URL [--host-addr A] [--control-port N] [--auth-token T | --auth-token-file F]",
     "open URL in the host's browser (also as devbridge-open URL)",
     "http(s) only, at most 2048 characters; localhost:PORT is rewritten to the host\n"
     "port that container port is forwarded to.  The host daemon needs the token\n"
     "(--auth-token, $DEVBRIDGE_AUTH_TOKEN, --auth-token-file, ~/.config/devbridge/\n"
     "auth-token) unless it runs --no-auth.  Exit 50 no host daemon, 51 token refused,\n"
     "53 URL refused, 54 no token here."},
    {"forward", cmd_forward, "forward PORT [--control-socket PATH]",
     "in a container: forward PORT now, whatever the filters say",
     "Asks this container's container-daemon (through its 0600 socket in the state\n"
     "directory) to forward PORT to the host even before anything listens on it or when\n"
     "--include/--exclude rules would skip it, and prints the host port.  Exit 50 when\n"
     "no container daemon runs here."},
    {"unforward", cmd_unforward, "unforward PORT [--control-socket PATH]",
     "in a container: stop forwarding PORT (until `forward PORT`)", NULL},
    {"ensure", cmd_ensure, "ensure [--control-port N] [--data-port N]",
     "make sure a host daemon runs here (start one if not)", NULL},
    {"rbac", cmd_rbac, "rbac [-n NS] [--user U | --group G | --serviceaccount NS:NAME] [--name N]",
     "print the minimum RBAC manifest for connect and intercept (YAML)",
     "Prints only YAML, for `devbridge rbac -n NS --user me | kubectl apply -f -`:\n"
     "a Role in NS (-n) or a ClusterRole (no -n) named devbridge (--name), and with a\n"
     "subject also its RoleBinding/ClusterRoleBinding.  The rules: batch/jobs, service\n"
     "accounts, roles, rolebindings and secrets create/delete (the objects of\n"
     "intercept's agent; jobs also get/list/watch, and get/patch for kubectl apply);\n"
     "services get/list/watch/update/patch (selector swap); pods\n"
     "get/list/watch; pods/portforward create; endpoints get/list/watch; and, cluster-wide,\n"
     "namespaces get."},
    {"connect", cmd_connect,
     "connect [-t [NS/]SVC:PORT[:LOCAL]]... [--kubeconfig F] [--context C] [-n NS] [-F]",
     "forward Kubernetes services to local ports (kubectl port-forward, supervised)",
     "Starts one supervisor per target, which forwards LOCAL to a Ready pod of the\n"
     "service (`kubectl port-forward pod/POD LOCAL:TARGETPORT`) and follows the\n"
     "service's endpoints: when that pod goes (deleted, not Ready, selector changed)\n"
     "the forward moves to another Ready pod at once; with none it waits (reason\n"
     "no_ready_pod).  Returns once each is connected (a TCP probe went through) or\n"
     "failed.  Without -t the targets are the config's bridge.targets (--profile NAME\n"
     "applies a profile).  The kubeconfig and the context are resolved once and given\n"
     "to every kubectl, so `kubectl config use-context` later changes nothing.\n\n"
     "  -t, --target T       [NAMESPACE/]SERVICE:PORT[:LOCAL_PORT] (repeatable);\n"
     "                       LOCAL_PORT defaults to PORT\n"
     "  --kubeconfig FILE    (else bridge.kubeconfig, $KUBECONFIG, ~/.kube/config)\n"
     "  --context NAME       (else bridge.context, the kubeconfig's current context;\n"
     "                       not empty)\n"
     "  -n, --namespace NS   for targets without one (else bridge.namespace, the\n"
     "                       context's namespace, default)\n"
     "  --timeout SECONDS    how long connect takes at most, pre-checks included\n"
     "                       (default 60)\n"
     "  --max-attempts N     kubectl runs before a target that never connected fails\n"
     "                       (default 4: retries after 1, 2, 4 s; 0 = forever)\n"
     "  --health-interval S  once connected, a probe connection through each forward\n"
     "                       every S seconds (default 30; 0 = never): a pod that went\n"
     "                       away is noticed (degraded) and kubectl renewed before a\n"
     "                       client's connection fails\n"
     "  -F, --foreground     stay attached; Ctrl+C (SIGINT) or SIGTERM stops the bridges\n"
     "  --dry-run            run the checks, print the kubectl command lines, start nothing\n\n"
     "A taken local port moves to the next free one (kubectl's own bind is the check),\n"
     "shown in the output and logged as port_shifted.  Once connected, a bridge whose\n"
     "kubectl dies (pod replaced, API blip) reconnects with backoff, forever.\n"
     "Variables BRIDGE_<SERVICE>_URL/_HOST/_PORT go to STATE_DIR/bridge.env; see env, shell.\n\n"
     "Exit: 0 all connected; 60 kubeconfig not found; 61 cluster unreachable (or no such\n"
     "context, no current context, credentials refused, no answer within --timeout);\n"
     "62 namespace not found; 63 service or port not found, or its selector matches no\n"
     "running pod; 64 port-forward failed after retries; 68 RBAC forbids; 70 UDP port;\n"
     "47 not connected within --timeout (still trying; the message says what it waits\n"
     "for); 1 kubectl missing, or a session of another context is active."},
    {"intercept", cmd_intercept,
     "intercept SVC (--steal|--mirror) [-p PORT[:LOCAL]]... [--local-port N] [--agent-image IMG] "
     "[--kubeconfig F] [--context C] [-n NS] [-F]",
     "route a Service's cluster traffic here (--steal)",
     "First removes what dead intercept sessions left in the namespace (a session\n"
     "recorded here whose process is gone; objects labelled app.kubernetes.io/\n"
     "managed-by=devbridge of a session no process here holds and whose agent is\n"
     "gone: the Service restored if it still carries that session's annotation).\n"
     "Then validates, touching nothing: the Service exists, has a selector and is not\n"
     "ExternalName (72), no port to intercept is UDP (70), it is not intercepted\n"
     "already (annotation devbridge.dev/session: 69), and you hold every right\n"
     "intercept uses (a SelfSubjectAccessReview each; 68 names each missing one).\n"
     "Named targetPorts are resolved from a Ready pod of the selector.  --dry-run\n"
     "prints the agent's ServiceAccount, Role, RoleBinding, Secret and Job, and the\n"
     "Service after the selector swap (docs/intercept.md), as YAML (one JSON document\n"
     "with --json; the Secret's token shown as REDACTED), and creates nothing.\n"
     "Otherwise it creates the agent, waits for its pod, swaps the selector and\n"
     "returns once the tunnel is up, leaving a detached process (intercept-SVC in\n"
     "`status`) that carries the Service's connections to the local ports; `devbridge\n"
     "down intercept-SVC` or `devbridge disconnect` stops it: the selector is restored\n"
     "exactly and the agent's objects deleted.  Each step goes to stderr with its\n"
     "time.  With --mirror the Service's pods keep answering and what each client\n"
     "sends is copied to the local port (its answers are thrown away).\n\n"
     "  --steal              the Service's connections come here instead\n"
     "  --mirror             its pods still serve them; a copy of each comes here\n"
     "  -p, --port P         a Service port (number or name) to intercept, optionally\n"
     "                       P:LOCAL_PORT (repeatable; default: every TCP port)\n"
     "  --local-port N       where a single port's connections go (default: the\n"
     "                       Service port)\n"
     "  --agent-image IMG    (else bridge.agent_image, ghcr.io/devbridge/agent:VERSION)\n"
     "  --kubeconfig FILE    (else bridge.kubeconfig, $KUBECONFIG, ~/.kube/config)\n"
     "  --context NAME       (else bridge.context, the kubeconfig's current context)\n"
     "  -n, --namespace NS   (else the bridge.intercepts entry's, bridge.namespace, the\n"
     "                       context's, default)\n"
     "  --timeout SECONDS    checks and the agent's start (default 60)\n"
     "  -F, --foreground     hold the tunnel in this process: Ctrl+C (or SIGTERM)\n"
     "                       restores and cleans up\n\n"
     "Without SVC, the config's only bridge.intercepts entry; an entry for SVC gives\n"
     "the port, local_port and mode the flags do not.\n\n"
     "Exit: 0 the tunnel is up (or valid, with --dry-run); 60-63 as for connect; 65\n"
     "the agent Job failed; 66 its pod not Ready in time; 67 the selector could not\n"
     "be swapped or restored; 68 rights missing; 69 already intercepted; 70 UDP port;\n"
     "71 the tunnel to the agent failed; 72 ExternalName or no selector; 2 ports that\n"
     "cannot be served as asked."},
    {"disconnect", cmd_disconnect, "disconnect [NAME...] [-y] [--dry-run]",
     "stop the Kubernetes bridges and intercepts",
     "Stops each connect bridge's supervisor and its kubectl, and each intercept (its\n"
     "process restores the Service's selector and deletes the agent's objects; when\n"
     "that process is gone, disconnect does both from the saved state, restoring only\n"
     "a Service that still carries the session's annotation), then removes what dead\n"
     "intercept sessions left in those namespaces, and rewrites session.json and\n"
     "bridge.env (audit logs are kept).  NAMEs (a bridge or intercept name, a service,\n"
     "NS/SERVICE) pick some; none: all.  Asks first on a terminal (any answer but y\n"
     "stops nothing: exit 1); elsewhere it needs -y (exit 2 without).  --dry-run\n"
     "lists what it would stop."},
    {"env", cmd_env, "env [--format sh|fish|json|dotenv]",
     "print the BRIDGE_* variables of the connected Kubernetes bridges",
     "  -f, --format F   sh (default: export X='...'), fish (set -gx X '...'), dotenv\n"
     "                   (X=...), json ({\"X\": \"...\"}; also with --json)\n\n"
     "Per bridge that has connected (not one still starting, failed or stopped; one\n"
     "reconnecting keeps its variables): BRIDGE_<SERVICE>_URL (http://127.0.0.1:PORT),\n"
     "_HOST, _PORT.  The same service in two namespaces gives\n"
     "BRIDGE_<NAMESPACE>_<SERVICE>_* for both.\n"
     "Use: eval \"$(devbridge env)\"."},
    {"shell", cmd_shell, "shell [-- CMD [ARGS...]]",
     "run $SHELL (or CMD) with the BRIDGE_* variables set",
     "Says on stderr how many variables it injected.  Exits with CMD's status\n"
     "(127 when CMD cannot be found).  Has no --json output (exit 2): stdout is CMD's."},
    {"agent", cmd_agent,
     "agent --namespace NS --service SVC --session SID --port SVCPORT:TARGETPORT ...",
     "run the intercept agent (in the agent pod)",
     "What the agent pod of `intercept` runs (docs/intercept.md).  Listens on every\n"
     "TARGETPORT, on the control port (--control-port, 4200) and on the health port\n"
     "(--health-port, 4201: GET /healthz).  The CLI authenticates on the control port\n"
     "with the token in $DEVBRIDGE_AGENT_TOKEN (from the pod's Secret) and holds a\n"
     "Yamux session; each cluster connection becomes a stream to it, headed by its\n"
     "Service port.  When the session is gone for --grace seconds (10), or on\n"
     "SIGTERM, the agent restores the Service's selector through the Kubernetes API\n"
     "(the pod's ServiceAccount; $DEVBRIDGE_SA_DIR for another credentials directory)\n"
     "and exits: 0 restored (or nothing to restore), 71 it could not.\n"
     "  --mode steal|mirror                      mirror: each connection goes to a Ready\n"
     "                                           pod of the original selector, a copy of\n"
     "                                           its bytes to the CLI (default steal)\n"
     "  --keepalive MS, --keepalive-timeout MS   Yamux keepalive (10000, 30000)\n"
     "  --bind-addr A                            listen address (0.0.0.0)"},
    /* Run by main.c (the mcp layer sits beside cli, not below it); this
     * entry is its help. */
    {"mcp", NULL, "mcp [config]", "serve MCP on stdio: every bridge operable by AI agents",
     "Speaks the Model Context Protocol (JSON-RPC 2.0, one message per line) on stdin\n"
     "and stdout until stdin closes; logs go to stderr (-v, -vv for more).  Revisions:\n"
     "2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05, through `initialize`; a\n"
     "2026-07-28 request (no initialize, the revision in _meta) is refused with\n"
     "-32022 and those four.  Tools: bridge_*, catalog_*, k8s_*, intercept_*,\n"
     "container_status; resources: bridge://status, bridge://NAME/log,\n"
     "catalog://domains, catalog://targets, with subscriptions (docs/mcp.md).\n\n"
     "  config   print the .mcp.json entry for this binary, config and state directory,\n"
     "           and the `claude mcp add` line that registers it (--json: the JSON only)\n\n"
     "Register it: `devbridge mcp config` and paste the entry into .mcp.json, or run\n"
     "the `claude mcp add` line it prints."},
    {"__supervise", cmd_supervise, "__supervise NAME", NULL, NULL},
    {"__k8s-forward", cmd_k8s_forward, "__k8s-forward NAME ...", NULL, NULL},
    {"__intercept", cmd_intercept_hold, "__intercept NAME", NULL, NULL},
};

static void print_usage(FILE *f)
{
	fprintf(f, "usage: devbridge [OPTIONS] COMMAND [ARGS]\n\n"
		   "Supervised bridges to where your code runs: SSH tunnels, devcontainers and\n"
		   "Kubernetes services.  `devbridge COMMAND --help` shows a command's options.\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (!commands[i].summary)
			continue;
		if (strcmp(commands[i].name, "up") == 0)
			fprintf(f, "\nSSH tunnels (the config's tunnels:):\n");
		else if (strcmp(commands[i].name, "host-daemon") == 0)
			fprintf(f, "\nDevcontainers:\n");
		else if (strcmp(commands[i].name, "rbac") == 0)
			fprintf(f, "\nKubernetes:\n");
		else if (strcmp(commands[i].name, "mcp") == 0)
			fprintf(f, "\nAI agents:\n");
		fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
	}
	fprintf(
	    f,
	    "\nGlobal options (anywhere on the line):\n"
	    "  --config PATH     config file (else $DEVBRIDGE_CONFIG, $BRIDGE_CONFIG,\n"
	    "                    ./devbridge.yaml, ./devx.yaml, ~/.config/devbridge/config.yaml,\n"
	    "                    ~/.config/bridge/tunnels.yaml)\n"
	    "  --state-dir DIR   runtime state (else $DEVBRIDGE_STATE_DIR, $BRIDGE_STATE_DIR,\n"
	    "                    $XDG_STATE_HOME/devbridge, ~/.local/state/devbridge)\n"
	    "  --profile NAME    config profile\n"
	    "  --json            one JSON document on stdout, errors included\n"
	    "  -y, --yes         do not ask for confirmation\n"
	    "  --dry-run         show what would be done; change nothing\n"
	    "  -v                more detail on stderr (repeat for debug)\n"
	    "  --no-color        no colour in tables\n"
	    "  -h, --help        help (`devbridge COMMAND --help` for a command)\n"
	    "  --version         print the version\n\n");
	char codes[2048];
	errcode_usage(codes, sizeof codes, 79);
	fputs(codes, f);
}

void cli_print_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	fflush(stdout);
}

int cli_error_json(struct cli *c, int code, json_t *extra, const char *message)
{
	if (!c->json) {
		fprintf(stderr, "devbridge: %s\n", message);
		json_decref(extra);
		return code;
	}
	json_t *doc = extra ? extra : json_object();
	json_object_set_new(doc, "error",
			    json_pack("{s:i, s:s, s:s}", "code", code, "name", errcode_name(code),
				      "message", message));
	cli_print_json(doc);
	return code;
}

int cli_error(struct cli *c, int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return cli_error_json(c, code, NULL, msg);
}

int cli_json_result(struct cli *c, int code, json_t *doc, const char *message)
{
	if (code)
		return cli_error_json(c, code, doc, message);
	cli_print_json(doc);
	return EXIT_OK;
}

bool cli_color(const struct cli *c)
{
	if (c->no_color || c->json || getenv("NO_COLOR"))
		return false;
	const char *term = getenv("TERM");
	return isatty(STDOUT_FILENO) && term && strcmp(term, "dumb") != 0;
}

/* --- parsing --- */

static int take_value(int argc, char **argv, int *i, const char *name, const char **ret)
{
	size_t n = strlen(name);
	if (argv[*i][n] == '=') {
		*ret = argv[*i] + n + 1;
		return 0;
	}
	if (*i + 1 >= argc) {
		fprintf(stderr, "devbridge: %s needs a value\n", name);
		return -1;
	}
	*ret = argv[++*i];
	return 0;
}

static bool is_opt(const char *arg, const char *name)
{
	size_t n = strlen(name);
	return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int cli_parse(struct cli *c, int argc, char **argv)
{
	c->self = argv[0];
	c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
	if (!c->argv)
		return EXIT_ERROR;
	bool version = false, rest = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (rest || a[0] != '-' || a[1] == '\0') {
			if (!c->command && !rest)
				c->command = a;
			else
				c->argv[c->argc++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			rest = true;
			c->argv[c->argc++] = argv[i];
		} else if (is_opt(a, "--config")) {
			if (take_value(argc, argv, &i, "--config", &c->config_opt) < 0)
				return EXIT_USAGE;
		} else if (is_opt(a, "--state-dir")) {
			if (take_value(argc, argv, &i, "--state-dir", &c->state_dir_opt) < 0)
				return EXIT_USAGE;
		} else if (is_opt(a, "--profile")) {
			if (take_value(argc, argv, &i, "--profile", &c->profile) < 0)
				return EXIT_USAGE;
		} else if (strcmp(a, "--json") == 0) {
			c->json = true;
		} else if (strcmp(a, "-y") == 0 || strcmp(a, "--yes") == 0) {
			c->yes = true;
		} else if (strcmp(a, "--dry-run") == 0) {
			c->dry_run = true;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			c->verbose++;
		} else if (strcmp(a, "-vv") == 0) {
			c->verbose += 2;
		} else if (strcmp(a, "--no-color") == 0) {
			c->no_color = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			c->help = true;
		} else if (strcmp(a, "--version") == 0) {
			version = true;
		} else {
			c->argv[c->argc++] = argv[i]; /* the command's own option */
		}
	}
	if (version) {
		if (c->json)
			cli_print_json(json_pack("{s:s}", "version", DEVBRIDGE_VERSION));
		else
			printf("devbridge %s\n", DEVBRIDGE_VERSION);
		exit(EXIT_OK);
	}
	log_set_level(c->verbose >= 2 ? LOG_DEBUG : c->verbose ? LOG_INFO : LOG_WARN);
	return 0;
}

int cli_parse_uint(struct cli *c, const char *opt, const char *v, unsigned lo, unsigned hi,
		   unsigned *ret)
{
	uint64_t x;
	if (parse_uint_range(v, strlen(v), lo, hi, NUM_LEADING_ZEROS, &x) < 0) {
		cli_error(c, EXIT_USAGE, "%s: expected %u-%u, got '%s'", opt, lo, hi, v);
		return -1;
	}
	*ret = (unsigned)x;
	return 0;
}

int cli_check_length(struct cli *c, const char *opt, const char *v, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	if (n <= max)
		return 0;
	return cli_error(c, EXIT_USAGE,
			 "%s: %zu bytes, at most %zu (longer values are refused, not cut)", opt, n,
			 max);
}

int cli_scan_opts(struct cli *c, const struct cli_opt *opts, size_t nopts)
{
	int out = 0;
	bool rest = false;
	for (int i = 0; i < c->argc; i++) {
		char *a = c->argv[i];
		if (rest || a[0] != '-' || a[1] == '\0') {
			c->argv[out++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			rest = true;
			continue;
		}
		const struct cli_opt *o = NULL;
		for (size_t k = 0; k < nopts && !o; k++) {
			if (opts[k].long_name && is_opt(a, opts[k].long_name))
				o = &opts[k];
			else if (opts[k].short_name && a[1] == opts[k].short_name && a[2] == '\0')
				o = &opts[k];
		}
		if (!o) {
			cli_error(c, EXIT_USAGE,
				  "%s: unknown option '%s' (see `devbridge %s --help`)", c->command,
				  a, c->command);
			return -1;
		}
		if (o->takes_value) {
			const char *v = NULL;
			if (a[1] == '-' && strchr(a, '=')) {
				v = strchr(a, '=') + 1;
			} else if (i + 1 < c->argc) {
				v = c->argv[++i];
			}
			if (v && o->list) {
				if (*o->list_n >= o->list_max) {
					cli_error(c, EXIT_USAGE, "%s: at most %zu '%s' options",
						  c->command, o->list_max, o->long_name);
					return -1;
				}
				o->list[(*o->list_n)++] = v;
			} else if (v) {
				*o->value = v;
			} else {
				cli_error(c, EXIT_USAGE, "%s: option '%s' needs a value",
					  c->command, a);
				return -1;
			}
		} else {
			*o->flag = true;
		}
	}
	c->argc = out;
	c->argv[out] = NULL;
	return out;
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int cli_run(struct cli *c)
{
	if (!c->command) {
		if (c->help) {
			print_usage(stdout);
			return EXIT_OK;
		}
		print_usage(stderr);
		return EXIT_USAGE;
	}
	const struct cli_command *cmd = find_command(c->command);
	if (!cmd) {
		const char *best = NULL;
		int bestd = 3;
		for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
			int d = edit_distance(c->command, commands[i].name, 2);
			if (commands[i].summary && d < bestd) {
				bestd = d;
				best = commands[i].name;
			}
		}
		if (best)
			return cli_error(c, EXIT_USAGE, "unknown command '%s' (did you mean '%s'?)",
					 c->command, best);
		return cli_error(c, EXIT_USAGE, "unknown command '%s' (see `devbridge --help`)",
				 c->command);
	}
	if (c->help) {
		printf("usage: devbridge %s\n\n%s.\n", cmd->usage,
		       cmd->summary ? cmd->summary : "");
		if (cmd->help)
			printf("\n%s\n", cmd->help);
		printf("\nGlobal options: --config, --state-dir, --profile, --json, -y, --dry-run, "
		       "-v, --no-color\n(see `devbridge --help`).\n");
		return EXIT_OK;
	}
	return cmd->run(c);
}

void cli_free(struct cli *c)
{
	cfg_free(c->cfg);
	free(c->config_path);
	free(c->state_dir);
	free(c->argv);
}

/* --- config and state --- */

int cli_report_diags(struct cli *c, struct cfg_diags *d)
{
	if (c->json) {
		struct err e = {0};
		json_t *arr = NULL;
		app_config_error(d, &arr, &e);
		/* The diagnostics belong to the error: {"error":{..., "diagnostics":[...]}} */
		cli_print_json(json_pack("{s:{s:i, s:s, s:s, s:o}}", "error", "code", EXIT_CONFIG,
					 "name", errcode_name(EXIT_CONFIG), "message", e.message,
					 "diagnostics", arr));
		return EXIT_CONFIG;
	}
	char line[CFG_DIAG_LINE_MAX];
	for (size_t i = 0; i < d->n; i++)
		fprintf(
		    stderr, "%s\n",
		    cfg_diag_format(line, sizeof line, d->items[i].mark, "%s", d->items[i].msg));
	if (d->dropped)
		fprintf(stderr, "(%zu more errors not shown)\n", d->dropped);
	fprintf(stderr, "devbridge: invalid configuration: %zu error%s; nothing was started\n",
		d->n + d->dropped, d->n + d->dropped == 1 ? "" : "s");
	return EXIT_CONFIG;
}

int cli_load_config(struct cli *c)
{
	if (c->cfg)
		return 0;
	int r = cfg_resolve_path(c->config_opt, &c->config_path);
	if (r < 0)
		return cli_error(
		    c, EXIT_CONFIG,
		    "no configuration found: pass --config PATH, set DEVBRIDGE_CONFIG, "
		    "or create ./devbridge.yaml or ~/.config/devbridge/config.yaml");
	/* Supervisors re-read the file from elsewhere: make it absolute. */
	if (c->config_path[0] != '/') {
		char *abs = realpath(c->config_path, NULL);
		if (abs) {
			free(c->config_path);
			c->config_path = abs;
		}
	}
	struct cfg_diags d = {0};
	struct err e = {0};
	r = app_load_config(c->config_path, c->no_catalog ? CFG_LOAD_NO_CATALOG : 0, &c->cfg, &d,
			    &e);
	if (r)
		r = d.n ? cli_report_diags(c, &d) : cli_fail(c, &e);
	cfg_diags_clear(&d);
	return r;
}

int cli_load_config_optional(struct cli *c)
{
	if (c->cfg)
		return 0;
	char *path = NULL;
	if (c->config_opt || cfg_resolve_path(NULL, &path) == 0) {
		free(path);
		return cli_load_config(c);
	}
	struct cfg_diags d = {0};
	int r = cfg_load_buf("(no config)", "", 0, &c->cfg, &d);
	cfg_diags_clear(&d);
	c->config_path = strdup(APP_NO_CONFIG);
	return r < 0 ? cli_error(c, EXIT_ERROR, "out of memory") : 0;
}

int cli_check_files(struct cli *c, const struct cfg_tunnel *only)
{
	struct cfg_diags d = {0};
	int r = cfg_check_files(c->cfg, only, &d);
	int code = 0;
	if (r < 0)
		code =
		    d.n ? cli_report_diags(c, &d) : cli_error(c, EXIT_CONFIG, "%s", strerror(-r));
	cfg_diags_clear(&d);
	return code;
}

int cli_state_dir(struct cli *c)
{
	if (c->state_dir)
		return 0;
	int r = state_dir_resolve(c->state_dir_opt, &c->state_dir);
	if (r < 0)
		return cli_error(c, EXIT_ERROR,
				 "cannot find a state directory: set --state-dir or HOME");
	r = state_dir_ensure(c->state_dir);
	if (r < 0)
		return cli_error(c, EXIT_ERROR, "state directory %s: %s", c->state_dir,
				 strerror(-r));
	return 0;
}

int cli_fail(struct cli *c, const struct err *e)
{
	return cli_error_json(c, e->code ? e->code : EXIT_ERROR, NULL,
			      e->message[0] ? e->message : "failed");
}

struct app *cli_app(struct cli *c)
{
	c->app.cfg = c->cfg;
	c->app.config_path = c->config_path ? c->config_path : APP_NO_CONFIG;
	c->app.state_dir = c->state_dir;
	c->app.verbose = c->verbose;
	c->app.dry_run = c->dry_run;
	return &c->app;
}
