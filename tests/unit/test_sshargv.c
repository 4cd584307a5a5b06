/* Unit tests for ssh/ssh_argv: the exact argv, option precedence, and the
 * classification of ssh's stderr lines (from real OpenSSH 9.2 output). */
#include "core/errcode.h"
#include "app/config.h"
#include "ssh/ssh_argv.h"
#include "test.h"

#include <errno.h>

static struct cfg_tunnel base(void)
{
	static struct cfg_kv opts[] = {{.key = "UserKnownHostsFile", .value = "/tmp/kh"},
				       {.key = "ControlMaster", .value = "auto"}};
	struct cfg_tunnel t = {.name = "web",
			       .host = "example.test",
			       .ssh_port = 2222,
			       .ssh_user = "ubuntu",
			       .ssh_key = "/keys/id",
			       .remote_port = 18000,
			       .local_port = 8000,
			       .remote_host = "127.0.0.1",
			       .server_alive_interval = 15,
			       .server_alive_count_max = 3,
			       .ssh_options = opts,
			       .n_ssh_options = 2};
	return t;
}

static int index_of(char **av, const char *s)
{
	for (int i = 0; av[i]; i++)
		if (strcmp(av[i], s) == 0)
			return i;
	return -1;
}

static void test_reverse_argv(void)
{
	struct cfg_tunnel t = base();
	char **av;
	ASSERT_EQ(ssh_argv_build(&t, &av), 0);
	ASSERT_STR_EQ(av[0], "ssh");
	ASSERT_GE(index_of(av, "-N"), 1);
	ASSERT_GE(index_of(av, "ExitOnForwardFailure=yes"), 1);
	ASSERT_GE(index_of(av, "BatchMode=yes"), 1);
	ASSERT_GE(index_of(av, "ServerAliveInterval=15"), 1);
	ASSERT_GE(index_of(av, "ServerAliveCountMax=3"), 1);
	ASSERT_GE(index_of(av, "ControlPath=none"), 1);
	int ours = index_of(av, "ControlMaster=no"), theirs = index_of(av, "ControlMaster=auto");
	/* ssh keeps the first value: ours must come first */
	ASSERT_GE(ours, 1);
	ASSERT_LT(ours, theirs);
	int r = index_of(av, "-R");
	ASSERT_GE(r, 1);
	ASSERT_STR_EQ(av[r + 1], "18000:127.0.0.1:8000");
	int dd = index_of(av, "--");
	ASSERT_STR_EQ(av[dd + 1], "example.test");
	ASSERT(av[dd + 2] == NULL);
	ASSERT_STR_EQ(av[index_of(av, "-p") + 1], "2222");
	ASSERT_STR_EQ(av[index_of(av, "-l") + 1], "ubuntu");
	ASSERT_STR_EQ(av[index_of(av, "-i") + 1], "/keys/id");
	char *line = ssh_argv_format(av);
	ASSERT_STR_CONTAINS(line, "ssh -N -v -o ExitOnForwardFailure=yes");
	free(line);
	ssh_argv_free(av);
}

static void test_local_argv_ipv6(void)
{
	struct cfg_tunnel t = base();
	t.direction = TUNNEL_LOCAL;
	t.remote_host = "::1";
	t.host = "-oProxyCommand=evil";
	char **av;
	ASSERT_EQ(ssh_argv_build(&t, &av), 0);
	int l = index_of(av, "-L");
	ASSERT_STR_EQ(av[l + 1], "127.0.0.1:8000:[::1]:18000");
	/* a host that looks like an option stays an argument after "--" */
	ASSERT_EQ(index_of(av, "--") + 1, index_of(av, "-oProxyCommand=evil"));
	char *line = ssh_argv_format(av);
	ASSERT_STR_CONTAINS(line, "'127.0.0.1:8000:[::1]:18000'");
	free(line);
	ssh_argv_free(av);
}

static enum ssh_line cls(const char *s, int local, enum ssh_reason *r)
{
	*r = SSH_R_NONE;
	return ssh_classify_line(s, strlen(s), local, 43333, r);
}

static void test_classify(void)
{
	enum ssh_reason r;
	ASSERT_EQ(
	    cls("debug1: remote forward success for: listen 43333, connect 127.0.0.1:8000", 0, &r),
	    SSH_LINE_READY);
	ASSERT_EQ(
	    cls("debug1: remote forward success for: listen 43333, connect 127.0.0.1:8000", 1, &r),
	    SSH_LINE_NOISE);
	ASSERT_EQ(cls("debug1: Local forwarding listening on 127.0.0.1 port 43334.", 1, &r),
		  SSH_LINE_NOISE);
	/* Another forward's success (one an ssh_config file added) is not
	 * ours: the tunnel is not up yet. */
	ASSERT_EQ(
	    cls("debug1: remote forward success for: listen 19999, connect 127.0.0.1:22", 0, &r),
	    SSH_LINE_NOISE);
	ASSERT_EQ(
	    cls("debug1: remote forward success for: listen 433330, connect 127.0.0.1:22", 0, &r),
	    SSH_LINE_NOISE);
	ASSERT_EQ(cls("debug1: remote forward success for: listen 127.0.0.1:43333, connect "
		      "127.0.0.1:22",
		      0, &r),
		  SSH_LINE_NOISE);
	ASSERT_EQ(cls("debug1: Entering interactive session.", 1, &r), SSH_LINE_READY);
	ASSERT_EQ(cls("debug1: Entering interactive session.", 0, &r), SSH_LINE_NOISE);
	ASSERT_EQ(cls("debug1: Local forwarding listening on ::1 port 43334.", 1, &r),
		  SSH_LINE_NOISE);
	ASSERT_EQ(cls("Warning: remote port forwarding failed for listen port 43333", 0, &r),
		  SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_REMOTE_FORWARD);
	ASSERT_EQ(ssh_reason_exit_code(r), EXIT_REMOTE_FORWARD);
	ASSERT_EQ(cls("Error: remote port forwarding failed for listen port 43333", 0, &r),
		  SSH_LINE_REASON);
	ASSERT_EQ(cls("bind [127.0.0.1]:43333: Address already in use", 1, &r), SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_LOCAL_PORT);
	ASSERT_EQ(cls("root@127.0.0.1: Permission denied (publickey).", 0, &r), SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_AUTH);
	ASSERT_EQ(cls("Host key verification failed.", 0, &r), SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_HOST_KEY);
	ASSERT_EQ(cls("ssh: connect to host 127.0.0.1 port 42223: Connection refused", 0, &r),
		  SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_UNREACHABLE);
	ASSERT_EQ(cls("Timeout, server 127.0.0.1 not responding.", 0, &r), SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_TIMEOUT);
	ASSERT_EQ(cls("Connection closed by 127.0.0.1 port 42222", 0, &r), SSH_LINE_REASON);
	ASSERT_EQ(r, SSH_R_CLOSED);
	ASSERT_EQ(cls("Transferred: sent 3412, received 3116 bytes, in 2.8 seconds", 0, &r),
		  SSH_LINE_NOISE);
	ASSERT_EQ(cls("something unexpected", 0, &r), SSH_LINE_MESSAGE);
	ASSERT_EQ(cls("", 0, &r), SSH_LINE_NOISE);
	ASSERT_STR_EQ(ssh_reason_name(SSH_R_REMOTE_FORWARD), "remote_forward_failed");
	ASSERT_STR_EQ(ssh_reason_name(SSH_R_STALLED), "ssh_stalled");
	ASSERT_EQ(ssh_reason_exit_code(SSH_R_STALLED), EXIT_TUNNEL_FAILED);
	ASSERT_STR_CONTAINS(ssh_reason_text(SSH_R_REMOTE_FORWARD), "remote port forwarding failed");
}

/* The options that keep ssh in the supervisor's hands come before -F and
 * ssh_options: ssh keeps the first value, so no config file can undo them. */
static void test_owned_options_first(void)
{
	static const char *const owned[] = {"ForkAfterAuthentication=no",
					    "SessionType=none",
					    "StdinNull=yes",
					    "RequestTTY=no",
					    "RemoteCommand=none",
					    "ClearAllForwardings=no",
					    "Tunnel=no",
					    "PermitLocalCommand=no",
					    "ControlMaster=no",
					    "ControlPath=none",
					    "ControlPersist=no",
					    "ExitOnForwardFailure=yes",
					    "BatchMode=yes",
					    "IdentitiesOnly=yes"};
	struct cfg_tunnel t = base();
	t.ssh_config = "/etc/hostile_config";
	char **av;
	ASSERT_EQ(ssh_argv_build(&t, &av), 0);
	int f = index_of(av, "-F"), theirs = index_of(av, "UserKnownHostsFile=/tmp/kh");
	ASSERT_GE(f, 1);
	ASSERT_LT(f, theirs);
	for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
		int k = index_of(av, owned[i]);
		if (k < 1 || k > f)
			TEST_FAIL_("%s at %d, -F at %d", owned[i], k, f);
		ASSERT_STR_EQ(av[k - 1], "-o");
	}
	ssh_argv_free(av);
}

/* Every option the argv sets before ssh_options must be refused in
 * ssh_options (it would be silently ignored: ssh keeps the first value). */
static void test_owned_options_refused_in_config(void)
{
	struct cfg_tunnel t = base();
	t.n_ssh_options = 0;
	char **av;
	ASSERT_EQ(ssh_argv_build(&t, &av), 0);
	int checked = 0;
	for (int i = 1; av[i] && strcmp(av[i], "-i") != 0; i++) {
		if (strcmp(av[i], "-o") != 0 || strncmp(av[i + 1], "ConnectTimeout=", 15) == 0)
			continue;
		char key[64], yaml[512];
		snprintf(key, sizeof key, "%.*s", (int)strcspn(av[i + 1], "="), av[i + 1]);
		snprintf(yaml, sizeof yaml,
			 "tunnels:\n  t:\n    host: h\n    remote_port: 1\n    local_port: 2\n"
			 "    ssh_user: u\n    ssh_key: /k\n    actor: a\n"
			 "    ssh_options: {%s: x}\nactors: {a: {class: human}}\n",
			 key);
		struct cfg_diags d = {0};
		struct cfg *cfg = NULL;
		if (cfg_load_buf("x.yaml", yaml, strlen(yaml), &cfg, &d) != -EINVAL)
			TEST_FAIL_("ssh_options.%s was accepted", key);
		ASSERT_EQ(d.n, 1);
		ASSERT_STR_CONTAINS(d.items[0].msg, "is managed by devbridge");
		cfg_diags_clear(&d);
		checked++;
	}
	ASSERT_GE(checked, 16);
	ssh_argv_free(av);
}

static void test_dump_argv(void)
{
	struct cfg_tunnel t = base();
	char **av;
	ASSERT_EQ(ssh_argv_build_dump(&t, &av), 0);
	ASSERT_STR_EQ(av[0], "ssh");
	ASSERT_EQ(index_of(av, "-G"), 2);
	ASSERT_EQ(index_of(av, "-v"), -1);
	ASSERT_STR_EQ(av[index_of(av, "-R") + 1], "18000:127.0.0.1:8000");
	ssh_argv_free(av);
}

static void collect(const char *line, size_t n, void *data)
{
	char *out = data;
	strncat(out, line, n);
	strcat(out, "|");
}

/* From a real `ssh -G` (OpenSSH 9.2) with a hostile ssh_config file. */
static void test_dump_extra_forwards(void)
{
	static const char dump[] = "user root\n"
				   "port 2222\n"
				   "clearallforwardings no\n"
				   "dynamicforward 19997\n"
				   "localforward [127.0.0.1]:19998 [127.0.0.1]:22\n"
				   "remoteforward 18000 [127.0.0.1]:8000\n"
				   "remoteforward 19999 [127.0.0.1]:22\n"
				   "forwardagent no\n";
	struct cfg_tunnel t = base();
	char out[512] = "";
	ASSERT_EQ(ssh_dump_extra_forwards(dump, strlen(dump), &t, collect, out), 3);
	ASSERT_STR_EQ(out, "dynamicforward 19997|localforward [127.0.0.1]:19998 "
			   "[127.0.0.1]:22|remoteforward 19999 [127.0.0.1]:22|");
	/* Only the tunnel's own: nothing extra. */
	static const char mine[] = "remoteforward 18000 [127.0.0.1]:8000\r\nuser x";
	ASSERT_EQ(ssh_dump_extra_forwards(mine, strlen(mine), &t, NULL, NULL), 0);
	/* The same forward twice: the second one is a config file's. */
	static const char twice[] = "remoteforward 18000 [127.0.0.1]:8000\n"
				    "remoteforward 18000 [127.0.0.1]:8000";
	ASSERT_EQ(ssh_dump_extra_forwards(twice, strlen(twice), &t, NULL, NULL), 1);
	t.direction = TUNNEL_LOCAL;
	t.remote_host = "::1";
	static const char local[] = "localforward [127.0.0.1]:8000 [::1]:18000\n"
				    "remoteforward 18000 [127.0.0.1]:8000\n";
	out[0] = '\0';
	ASSERT_EQ(ssh_dump_extra_forwards(local, strlen(local), &t, collect, out), 1);
	ASSERT_STR_EQ(out, "remoteforward 18000 [127.0.0.1]:8000|");
	ASSERT_EQ(ssh_dump_extra_forwards("", 0, &t, NULL, NULL), 0);
}

int main(void)
{
	RUN(test_reverse_argv);
	RUN(test_local_argv_ipv6);
	RUN(test_classify);
	RUN(test_owned_options_first);
	RUN(test_owned_options_refused_in_config);
	RUN(test_dump_argv);
	RUN(test_dump_extra_forwards);
	return 0;
}
