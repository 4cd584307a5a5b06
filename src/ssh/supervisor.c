/* supervisor.c - the SSH driver of the generic supervisor (core/supervisor):
 * `ssh -N -v` with the tunnel's argv; the "-v" debug lines on stderr tell
 * when the forward is up and, when ssh exits, why. */
#include "ssh/supervisor.h"
#include "core/errcode.h"
#include "ssh/ssh_config.h"
#include "core/supervisor.h"
#include "ssh/ssh_argv.h"

#include <stdio.h>

static const struct cfg_tunnel *tunnel(struct sup *s)
{
	return sup_ctx(s);
}

static int build_argv(struct sup *s, char ***ret)
{
	return ssh_argv_build(tunnel(s), ret);
}

static enum sup_line classify(struct sup *s, const char *line, size_t len, bool is_stdout,
			      int *reason)
{
	enum ssh_reason r = SSH_R_NONE;
	const struct cfg_tunnel *t = tunnel(s);
	enum ssh_line k =
	    ssh_classify_line(line, len, t->direction == TUNNEL_LOCAL, t->remote_port, &r);
	*reason = (int)r;
	switch (k) {
	case SSH_LINE_READY:
		return SUP_LINE_READY;
	case SSH_LINE_REASON:
		return SUP_LINE_REASON;
	case SSH_LINE_MESSAGE:
		return SUP_LINE_MESSAGE;
	case SSH_LINE_NOISE:
		break;
	}
	return SUP_LINE_NOISE;
}

static const char *reason_name(int r)
{
	return ssh_reason_name((enum ssh_reason)r);
}

static const char *reason_text(int r)
{
	return ssh_reason_text((enum ssh_reason)r);
}

static enum errcode reason_exit(int r)
{
	return ssh_reason_exit_code((enum ssh_reason)r);
}

static void describe(struct sup *s, char *local, size_t ln, char *remote, size_t rn)
{
	const struct cfg_tunnel *t = tunnel(s);
	if (t->direction == TUNNEL_LOCAL) {
		snprintf(local, ln, "127.0.0.1:%d", t->local_port);
		snprintf(remote, rn, "%s:%d@%s", t->remote_host, t->remote_port, t->host);
	} else {
		snprintf(local, ln, "%s:%d", t->remote_host, t->local_port);
		snprintf(remote, rn, "%s:%d", t->host, t->remote_port);
	}
}

static void state_extra(struct sup *s, json_t *o)
{
	json_object_set_new(
	    o, "direction",
	    json_string(tunnel(s)->direction == TUNNEL_LOCAL ? "local" : "reverse"));
}

static const struct sup_driver ssh_driver = {
    .kind = "ssh",
    .program = "ssh",
    .reason_not_found = SSH_R_NOT_FOUND,
    .reason_other = SSH_R_OTHER,
    .exit_not_found = EXIT_SSH_NOT_FOUND,
    .reason_stalled = SSH_R_STALLED,
    /* README: 41 with a failed state means it gave up, whatever the last
     * attempt's reason (which status still shows). */
    .exit_gave_up = EXIT_TUNNEL_FAILED,
    .build_argv = build_argv,
    .free_argv = ssh_argv_free,
    .classify = classify,
    .reason_name = reason_name,
    .reason_text = reason_text,
    .reason_exit = reason_exit,
    .describe = describe,
    .state_extra = state_extra,
};

int ssh_supervise(const struct cfg_actor *a, const struct cfg_tunnel *t, const char *state_dir,
		  int ready_fd)
{
	struct sup_opts o = {
	    .name = t->name,
	    .state_dir = state_dir,
	    .actor = t->actor,
	    .actor_class = a ? (a->cls == ACTOR_HUMAN ? "human" : "automation") : "automation",
	    .ctx = (void *)t,
	    .health = &t->health,
	    .max_attempts = t->max_attempts,
	    .backoff_initial = t->backoff_initial,
	    .backoff_max = t->backoff_max,
	    .stable_s = t->stable_s,
	    .ready_fd = ready_fd,
	    /* The ServerAlive window: how long ssh itself gives a silent
	     * server.  A stopped ssh cannot count it, so the supervisor does. */
	    .stall_ms =
		(unsigned)t->server_alive_interval * (unsigned)t->server_alive_count_max * 1000u,
	};
	return sup_run(&o, &ssh_driver);
}
