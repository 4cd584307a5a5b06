/* container.c - the devcontainer world as `status` shows it: a row per
 * container registered with this state directory's live host daemon.  See
 * app.h. */
#include "app/app.h"
#include "core/state.h"

#include <stdio.h>
#include <string.h>

void app_container_rows(const struct app *a, json_t *rows)
{
	pid_t pid = state_probe(a->state_dir, "host-daemon");
	json_t *st = NULL;
	if (!pid || state_read(a->state_dir, "host-daemon", &st) < 0)
		return;
	size_t i;
	json_t *ct;
	json_array_foreach(json_object_get(st, "containers"), i, ct)
	{
		char local[1024] = "", remote[1024] = "";
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(ct, "forwards"), k, f)
		{
			size_t ll = strlen(local), rl = strlen(remote);
			snprintf(local + ll, sizeof local - ll, "%s127.0.0.1:%lld", ll ? "," : "",
				 (long long)json_integer_value(json_object_get(f, "host_port")));
			snprintf(remote + rl, sizeof remote - rl, "%s%lld", rl ? "," : "",
				 (long long)json_integer_value(json_object_get(f, "port")));
		}
		const char *hn = json_string_value(json_object_get(ct, "hostname"));
		/* The name the host shows: the hostname, made distinct ("dev-2"). */
		json_t *name = json_object_get(ct, "name");
		if (!json_is_string(name))
			name = json_object_get(ct, "hostname");
		char rem[1100];
		snprintf(rem, sizeof rem, "%s:%s", hn ? hn : "?", remote[0] ? remote : "-");
		json_t *row = json_pack(
		    "{s:O, s:s, s:s, s:I, s:O, s:s, s:s, s:i, s:s, s:s, s:s, s:O, s:O}", "name",
		    name, "kind", "container", "state", "connected", "pid", (json_int_t)pid,
		    "since", json_object_get(ct, "since"), "local", local, "remote", rem,
		    "reconnects", 0, "health", "ok", "last_event", "container_registered", "reason",
		    "", "container_id", json_object_get(ct, "container_id"), "forwards",
		    json_object_get(ct, "forwards"));
		json_t *socks = json_object_get(st, "socket_forwards");
		if (row)
			json_object_set(row, "socket_forwards", socks ? socks : json_null());
		if (row)
			json_array_append_new(rows, row);
	}
	json_decref(st);
}
