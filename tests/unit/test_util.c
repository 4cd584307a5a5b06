/* Unit tests for core/util and core/spawn. */
#include "core/spawn.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_iso8601(void)
{
	struct timespec ts = {.tv_sec = 1773325381, .tv_nsec = 456789000};
	char buf[40];
	fmt_iso8601(buf, sizeof buf, &ts);
	ASSERT_STR_EQ(buf, "2026-03-12T14:23:01.456789Z");
	double t;
	ASSERT_EQ(parse_iso8601(buf, &t), 0);
	ASSERT(t > 1773325381.45 && t < 1773325381.46);
	ASSERT_EQ(parse_iso8601("2026-03-12T14:23:01", &t), 0);
	ASSERT_EQ(parse_iso8601("garbage", &t), -EINVAL);
	ASSERT_EQ(parse_iso8601("2026-03-12T14:23:01Zx", &t), -EINVAL);
}

static void test_duration(void)
{
	char b[32];
	fmt_duration(b, sizeof b, 12);
	ASSERT_STR_EQ(b, "12s");
	fmt_duration(b, sizeof b, 250);
	ASSERT_STR_EQ(b, "4m10s");
	fmt_duration(b, sizeof b, 7500);
	ASSERT_STR_EQ(b, "2h5m");
	fmt_duration(b, sizeof b, 90000);
	ASSERT_STR_EQ(b, "1d1h");
}

static void test_shell_quote(void)
{
	char *q = shell_quote("plain-arg_1=x:y/z");
	ASSERT_STR_EQ(q, "plain-arg_1=x:y/z");
	free(q);
	q = shell_quote("it's here");
	ASSERT_STR_EQ(q, "'it'\\''s here'");
	free(q);
	q = shell_quote("");
	ASSERT_STR_EQ(q, "''");
	free(q);
}

static void test_const_time_eq(void)
{
	ASSERT(const_time_eq("abc", 3, "abc", 3));
	ASSERT(!const_time_eq("abc", 3, "abd", 3));
	ASSERT(!const_time_eq("abc", 3, "abcd", 4));
}

static void test_utf8_trunc(void)
{
	ASSERT_EQ(utf8_trunc("abc", 10), 3);
	ASSERT_EQ(utf8_trunc("abc", 2), 2);
	ASSERT_EQ(utf8_trunc("abc", 0), 0);
	ASSERT_EQ(utf8_trunc("a\xc3\xa9", 2), 1); /* "aé" cut inside the é */
	ASSERT_EQ(utf8_trunc("a\xc3\xa9", 3), 3);
	ASSERT_EQ(utf8_trunc("\xe2\x82\xac", 1), 0); /* € */
	ASSERT_EQ(utf8_trunc("\xe2\x82\xac", 2), 0);
	ASSERT_EQ(utf8_trunc("\xe2\x82\xac", 3), 3);
	for (size_t k = 1; k < 4; k++)
		ASSERT_EQ(utf8_trunc("\xf0\x9f\x98\x80!", k), 0); /* U+1F600 */
	ASSERT_EQ(utf8_trunc("\xf0\x9f\x98\x80!", 4), 4);
	/* Reads no further than max: a buffer without a NUL. */
	const char raw[3] = {'x', '\xc3', '\xa9'};
	ASSERT_EQ(utf8_trunc(raw, 2), 1);
	ASSERT_EQ(utf8_trunc(raw, 3), 3);
	/* Every cut of mixed text ends on a character boundary, at most 3
	 * bytes short of the limit. */
	const char *mixed = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
			    "bc\xc3\xa9";
	for (size_t max = 0; max <= strlen(mixed) + 1; max++) {
		size_t n = utf8_trunc(mixed, max);
		ASSERT_LE(n, max);
		ASSERT_GE(n + 3, max < strlen(mixed) ? max : strlen(mixed));
		ASSERT((mixed[n] & 0xc0) != 0x80);
	}
}

static void test_atomic_write(void)
{
	char tmpl[] = "/tmp/devbridge-test-util-XXXXXX";
	ASSERT(mkdtemp(tmpl));
	char p[256];
	snprintf(p, sizeof p, "%s/a/b/c", tmpl);
	ASSERT_EQ(mkdir_p(p, 0700), 0);
	snprintf(p, sizeof p, "%s/a/f", tmpl);
	ASSERT_EQ(write_file_atomic(p, "hello", 5, 0600), 0);
	struct stat st;
	ASSERT_EQ(stat(p, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	char *buf;
	size_t len;
	ASSERT_EQ(read_file(p, 100, &buf, &len), 0);
	ASSERT_EQ(len, 5);
	ASSERT_STR_EQ(buf, "hello");
	free(buf);
	ASSERT_EQ(read_file(p, 3, &buf, &len), -EFBIG);
}

static void test_spawn(void)
{
	char *argv[] = {"sh", "-c", "exit 7", NULL};
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	pid_t pid;
	ASSERT_EQ(spawn_process(&o, &pid), 0);
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 7);
	char *bad[] = {"/nonexistent/devbridge-no-such-program", NULL};
	o.argv = bad;
	ASSERT_EQ(spawn_process(&o, &pid), -ENOENT);
	char *w = spawn_which("sh");
	ASSERT(w != NULL);
	free(w);
	ASSERT(spawn_which("devbridge-no-such-program-xyz") == NULL);
}

static void test_spawn_no_fd_leak(void)
{
	/* An fd without CLOEXEC must still not reach the child. */
	int fd = open("/dev/null", O_RDONLY);
	ASSERT_GE(fd, 3);
	char cmd[64];
	snprintf(cmd, sizeof cmd, "test -e /proc/self/fd/%d && exit 1; exit 0", fd);
	char *argv[] = {"sh", "-c", cmd, NULL};
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	pid_t pid;
	ASSERT_EQ(spawn_process(&o, &pid), 0);
	int st;
	waitpid(pid, &st, 0);
	ASSERT_EQ(WEXITSTATUS(st), 0);
	close(fd);
}

int main(void)
{
	RUN(test_iso8601);
	RUN(test_duration);
	RUN(test_shell_quote);
	RUN(test_const_time_eq);
	RUN(test_utf8_trunc);
	RUN(test_atomic_write);
	RUN(test_spawn);
	RUN(test_spawn_no_fd_leak);
	return 0;
}
