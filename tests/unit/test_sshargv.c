/* Unit tests for ssh/ssh_argv: the exact argv, option precedence, and the
 * classification of ssh's stderr lines (from real OpenSSH 9.2 output). */
#include "cli/exitcodes.h"
#include "core/config.h"
#include "ssh/ssh_argv.h"
#include "test.h"

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
	return ssh_classify_line(s, strlen(s), local, r);
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
	ASSERT_STR_CONTAINS(ssh_reason_text(SSH_R_REMOTE_FORWARD), "remote port forwarding failed");
}

int main(void)
{
	RUN(test_reverse_argv);
	RUN(test_local_argv_ipv6);
	RUN(test_classify);
	return 0;
}
