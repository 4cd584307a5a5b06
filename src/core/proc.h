/* proc.h - what the kernel says about a child process's progress, for the
 * supervisor's stall watch: a process that is stopped (SIGSTOP, a
 * debugger) or has not been scheduled for a long time cannot be moving
 * its tunnel's traffic or answering its keepalives, and it prints
 * nothing that would say so.
 *
 * The parsers are pure (and fuzzed); proc_sample reads the files
 * (proc_linux.c). */
#ifndef DEVBRIDGE_CORE_PROC_H
#define DEVBRIDGE_CORE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_sample {
	char state;	/* /proc/PID/stat's state letter: R, S, D, T, t, Z, ... */
	bool have_runs; /* `runs` is known (the kernel keeps scheduler stats) */
	uint64_t runs;	/* times the process has been given a CPU, ever */
};

/* True for the states in which a process cannot run until someone
 * resumes it: stopped by a signal (T) or by a tracer (t). */
bool proc_state_stopped(char state);

/* The state letter of a /proc/PID/stat text: the field after the last ')'
 * (the command name in parentheses may itself hold spaces and ')').
 * 0 or -EINVAL. */
int proc_parse_stat_state(const char *buf, size_t len, char *ret);

/* The third field of /proc/PID/schedstat (run time, wait time,
 * timeslices): how often the process has run.  0 or -EINVAL. */
int proc_parse_schedstat_runs(const char *buf, size_t len, uint64_t *ret);

/* Sample `pid` now.  -ESRCH when it is gone, else 0 (have_runs false when
 * schedstat is not available). */
int proc_sample(pid_t pid, struct proc_sample *ret);

#endif
