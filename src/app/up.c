/* up.c - SSH tunnels: `up` (a supervisor per tunnel, its first outcome
 * waited for), its dry run, and `__supervise`.  See app.h. */
#include "app/app.h"
#include "core/errcode.h"
#include "app/config.h"
#include "core/spawn.h"
#include "core/state.h"
#include "ssh/ssh_argv.h"
#include "ssh/supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The tunnels named, with their key and config files checked. */
static int selected(const struct app *a, int n, char **names, const struct cfg_tunnel ***ret,
		    size_t *ret_n, struct err *e)
{
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	int r = app_select_tunnels(a, n, names, &sel, &nsel, e);
	if (r)
		return r;
	if (nsel == 0) {
		free(sel);
		return err_set(e, EXIT_CONFIG, "%s defines no tunnels", a->config_path);
	}
	*ret = sel;
	*ret_n = nsel;
	return 0;
}

int app_up_check(const struct app *a, int n, char **names, struct cfg_diags *d, struct err *e)
{
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	int r = app_select_tunnels(a, n, names, &sel, &nsel, e);

	for (size_t i = 0; r == 0 && i < nsel; i++) {
		int c = cfg_check_files(a->cfg, sel[i], d);
		if (c < 0)
			r = d->n ? app_config_error(d, NULL, e)
				 : err_set(e, EXIT_CONFIG, "%s", strerror(-c));
	}
	free(sel);
	return r;
}

int app_up_plan(const struct app *a, int n, char **names, json_t **ret_plan, struct err *e)
{
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	int r = selected(a, n, names, &sel, &nsel, e);
	if (r)
		return r;
	json_t *plan = json_array();
	for (size_t i = 0; i < nsel; i++) {
		char **av = NULL;
		if (ssh_argv_build(sel[i], &av) < 0)
			continue;
		json_t *argv = json_array();
		for (char **p = av; *p; p++)
			json_array_append_new(argv, json_string(*p));
		json_array_append_new(plan,
				      json_pack("{s:s, s:o}", "name", sel[i]->name, "argv", argv));
		ssh_argv_free(av);
	}
	free(sel);
	*ret_plan = plan;
	return 0;
}

static int start_supervisor(const struct app *a, struct app_started *s, bool foreground)
{
	char *args[] = {NULL, /* this executable */
			"__supervise",
			(char *)s->name,
			"--config",
			(char *)a->config_path,
			"--state-dir",
			(char *)a->state_dir,
			a->verbose >= 2 ? "-vv" : "-v",
			NULL};
	return app_spawn_supervisor(a, s, args, foreground);
}

int app_up(const struct app *a, int n, char **names, int timeout_s, bool foreground,
	   json_t **ret_rows, struct app_started **ret_started, size_t *ret_n, struct err *e)
{
	const struct cfg_tunnel **sel = NULL;
	size_t nsel = 0;
	int r = selected(a, n, names, &sel, &nsel, e);
	if (r)
		return r;
	char *ssh = spawn_which("ssh");
	if (!ssh) {
		free(sel);
		return err_set(e, EXIT_SSH_NOT_FOUND,
			       "ssh not found on PATH: install the OpenSSH client "
			       "(apt-get install openssh-client)");
	}
	free(ssh);
	struct app_started *v = calloc(nsel, sizeof *v);
	if (!v) {
		free(sel);
		return err_set(e, EXIT_ERROR, "out of memory");
	}
	for (size_t i = 0; i < nsel; i++) {
		v[i].t = sel[i];
		v[i].name = sel[i]->name;
		v[i].fd = -1;
		pid_t live = state_probe(a->state_dir, sel[i]->name);
		if (live) {
			v[i].done = true;
			v[i].result = "already_running";
			v[i].pid = live;
			snprintf(v[i].message, sizeof v[i].message, "already running (pid %ld)",
				 (long)live);
			continue;
		}
		r = start_supervisor(a, &v[i], foreground);
		if (r < 0) {
			v[i].done = true;
			v[i].result = "failed";
			v[i].code = EXIT_ERROR;
			snprintf(v[i].message, sizeof v[i].message, "cannot start supervisor: %s",
				 strerror(-r));
		}
	}
	free(sel);
	app_wait_ready(v, nsel, timeout_s);

	int code = EXIT_OK;
	json_t *rows = json_array();
	for (size_t i = 0; i < nsel; i++) {
		struct app_started *s = &v[i];
		if (s->fd >= 0) {
			close(s->fd);
			s->fd = -1;
		}
		if (strcmp(s->result, "already_running") == 0 && !*s->message)
			snprintf(s->message, sizeof s->message, "already running");
		if (code == EXIT_OK && s->code != 0)
			code = s->code;
		json_t *row = app_status_row(a, s->t->name, s->t);
		json_object_set_new(row, "result", json_string(s->result));
		json_object_set_new(row, "code", json_integer(s->code));
		json_object_set_new(row, "message", json_string(s->message));
		json_array_append_new(rows, row);
	}
	*ret_rows = rows;
	if (ret_started) {
		*ret_started = v;
		*ret_n = nsel;
	} else {
		free(v);
	}
	if (code)
		err_set(e, code, "not every bridge connected");
	return code;
}

int app_supervise_tunnel(const struct app *a, const char *name, int ready_fd, struct err *e)
{
	const struct cfg_tunnel *t = cfg_find_tunnel(a->cfg, name);
	if (!t)
		return err_set(e, EXIT_UNKNOWN_BRIDGE, "no bridge named '%s'", name);
	return ssh_supervise(cfg_find_actor(a->cfg, t->actor), t, a->state_dir, ready_fd);
}
