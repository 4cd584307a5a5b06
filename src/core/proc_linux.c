/* proc_linux.c - proc_sample from /proc/PID/stat and /proc/PID/schedstat. */
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static ssize_t read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		r = -errno;
	close(fd);
	return r;
}

int proc_sample(pid_t pid, struct proc_sample *ret)
{
	char path[64], buf[1024];
	struct proc_sample s = {0};

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	ssize_t n = read_small(path, buf, sizeof buf);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	if (proc_parse_stat_state(buf, (size_t)n, &s.state) < 0)
		return -EINVAL;
	snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
	n = read_small(path, buf, sizeof buf);
	s.have_runs = n > 0 && proc_parse_schedstat_runs(buf, (size_t)n, &s.runs) == 0;
	*ret = s;
	return 0;
}
