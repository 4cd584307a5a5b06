/* fuzz_config.c - libFuzzer harness for the configuration loader.
 *
 * Any bytes must give either a config or diagnostics, never both, never a
 * crash, leak or unbounded time (alias bombs, deep nesting).  The checks
 * below abort so that a broken invariant counts as a finding. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/config.h"
#include "core/state.h"
#include "k8s/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_diags(const struct cfg_diags *d)
{
	if (d->n > CFG_MAX_DIAGS || (d->n && !d->file))
		abort();
	for (size_t i = 0; i < d->n; i++)
		if (!d->items[i].msg || d->items[i].mark.file != d->file ||
		    d->items[i].mark.line < 0 || d->items[i].mark.col < 0)
			abort();
}

static void check_cfg(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_tunnels; i++) {
		const struct cfg_tunnel *t = &cfg->tunnels[i];

		if (!cfg_name_valid(t->name) || cfg_find_tunnel(cfg, t->name) != t)
			abort();
		if (!t->host || !t->ssh_user || !t->ssh_key || !t->actor || !t->remote_host)
			abort();
		if (t->remote_port < 1 || t->remote_port > 65535 || t->local_port < 1 ||
		    t->local_port > 65535 || t->backoff_max < t->backoff_initial)
			abort();
		if (!cfg_find_actor(cfg, t->actor))
			abort();
		/* one namespace: no name connect or a service could take too */
		if (k8s_bridge_name_like(t->name) || state_name_reserved(t->name) ||
		    cfg_find_service(cfg, t->name))
			abort();
		for (size_t j = 0; j < t->n_ssh_options; j++)
			if (strpbrk(t->ssh_options[j].value, "\r\n"))
				abort();
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct cfg_service *v = &cfg->services[i];
		if (!cfg_name_valid(v->name) || cfg_find_service(cfg, v->name) != v ||
		    k8s_bridge_name_like(v->name) || state_name_reserved(v->name) ||
		    (v->command && v->command[v->n_command]) ||
		    (v->command_shell && v->n_command != 1))
			abort();
		for (size_t j = 0; j < v->n_depends_on; j++)
			if (!v->depends_on[j].name)
				abort();
	}
	if (cfg->bridge.context && strlen(cfg->bridge.context) > CFG_CONTEXT_MAX)
		abort();
	/* Warnings about a valid config: a pure walk, never more than kept. */
	struct cfg_diags w = {0};
	size_t n = cfg_lint(cfg, &w);
	if (n < w.n || w.n > CFG_MAX_DIAGS)
		abort();
	cfg_diags_clear(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_diags diags = {0};
	struct cfg *cfg = NULL;
	int r;

	r = cfg_load_buf("fuzz.yaml", (const char *)data, size, &cfg, &diags);
	check_diags(&diags);
	if (r == 0) {
		if (!cfg || diags.n)
			abort();
		check_cfg(cfg);
	} else if (cfg || (r == -EINVAL && !diags.n)) {
		abort();
	}
	cfg_free(cfg);
	cfg_diags_clear(&diags);
	return 0;
}
