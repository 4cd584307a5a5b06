/* Unit tests for core/proc: the parsers of /proc/PID/stat and schedstat,
 * and a real sample of a child stopped with SIGSTOP. */
#include "core/proc.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int st(const char *s, char *c)
{
	return proc_parse_stat_state(s, strlen(s), c);
}

static void test_parse_stat(void)
{
	char c = 0;
	ASSERT_EQ(st("4243 (ssh) S 4242 4242 4242 0 -1 4194560 917", &c), 0);
	ASSERT_EQ(c, 'S');
	/* The command name may hold spaces and ')'. */
	ASSERT_EQ(st("1 (a) b) T 0 1\n", &c), 0);
	ASSERT_EQ(c, 'T');
	ASSERT_EQ(st("1 (x) t\n", &c), 0);
	ASSERT_EQ(c, 't');
	ASSERT_EQ(st("1 (x) t", &c), 0);
	ASSERT_EQ(st("1 (x)", &c), -EINVAL);
	ASSERT_EQ(st("1 (x) ", &c), -EINVAL);
	ASSERT_EQ(st("1 (x)S", &c), -EINVAL);
	ASSERT_EQ(st("1 (x) SS 1", &c), -EINVAL);
	ASSERT_EQ(st("garbage", &c), -EINVAL);
	ASSERT_EQ(st("", &c), -EINVAL);
	ASSERT(proc_state_stopped('T') && proc_state_stopped('t'));
	ASSERT(!proc_state_stopped('S') && !proc_state_stopped('R') && !proc_state_stopped('D'));
}

static void test_parse_schedstat(void)
{
	uint64_t v = 0;
	ASSERT_EQ(proc_parse_schedstat_runs("5013917 361523 17\n", 18, &v), 0);
	ASSERT_EQ(v, 17);
	ASSERT_EQ(proc_parse_schedstat_runs("1 2 0", 5, &v), 0);
	ASSERT_EQ(v, 0);
	ASSERT_EQ(proc_parse_schedstat_runs("1 2\n", 4, &v), -EINVAL);
	ASSERT_EQ(proc_parse_schedstat_runs("1 2 x\n", 6, &v), -EINVAL);
	ASSERT_EQ(proc_parse_schedstat_runs("1 2 3x\n", 7, &v), -EINVAL);
	ASSERT_EQ(proc_parse_schedstat_runs("", 0, &v), -EINVAL);
}

static void test_sample_stopped_child(void)
{
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	struct proc_sample s;
	ASSERT_EQ(kill(pid, SIGSTOP), 0);
	int status;
	ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
	ASSERT(WIFSTOPPED(status));
	ASSERT_EQ(proc_sample(pid, &s), 0);
	ASSERT_EQ(s.state, 'T');
	ASSERT(proc_state_stopped(s.state));
	uint64_t runs = s.runs;
	ASSERT_EQ(proc_sample(pid, &s), 0);
	/* A stopped process is not scheduled. */
	if (s.have_runs)
		ASSERT_EQ(s.runs, runs);
	ASSERT_EQ(kill(pid, SIGCONT), 0);
	ASSERT_EQ(kill(pid, SIGKILL), 0);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(proc_sample(pid, &s), -ESRCH);
	ASSERT_EQ(proc_sample(getpid(), &s), 0);
	ASSERT_EQ(s.state, 'R');
}

int main(void)
{
	RUN(test_parse_stat);
	RUN(test_parse_schedstat);
	RUN(test_sample_stopped_child);
	return 0;
}
