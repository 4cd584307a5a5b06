/* Unit tests for core/state and core/audit: lock-based liveness, atomic
 * state files with 0600, directory 0700, audit lines and tail. */
#include "core/audit.h"
#include "core/state.h"
#include "core/util.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static void setup(void)
{
	char tmpl[] = "/tmp/devbridge-test-state-XXXXXX";
	ASSERT(mkdtemp(tmpl));
	snprintf(dir, sizeof dir, "%s/state/sub", tmpl);
	ASSERT_EQ(state_dir_ensure(dir), 0);
	struct stat st;
	ASSERT_EQ(stat(dir, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0700);
	/* a too-open existing directory is tightened */
	ASSERT_EQ(chmod(dir, 0755), 0);
	ASSERT_EQ(state_dir_ensure(dir), 0);
	ASSERT_EQ(stat(dir, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0700);
}

static void test_lock_liveness(void)
{
	ASSERT_EQ(state_probe(dir, "t1"), 0);
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	pid_t child = fork();
	if (child == 0) {
		int fd = state_lock(dir, "t1", NULL);
		char c = fd >= 0 ? 'y' : 'n';
		(void)!write(p[1], &c, 1);
		pause();
		_exit(0);
	}
	char c;
	ASSERT_EQ(read(p[0], &c, 1), 1);
	ASSERT_EQ(c, 'y');
	ASSERT_EQ(state_probe(dir, "t1"), child);
	/* probing twice never takes the lock away */
	ASSERT_EQ(state_probe(dir, "t1"), child);
	pid_t holder = 0;
	ASSERT_EQ(state_lock(dir, "t1", &holder), -EBUSY);
	ASSERT_EQ(holder, child);
	char path[512];
	ASSERT_EQ(state_path(path, sizeof path, dir, "t1", "pid"), 0);
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	/* SIGKILL: the kernel drops the lock, the stale file says nothing */
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	ASSERT_EQ(state_probe(dir, "t1"), 0);
	int fd = state_lock(dir, "t1", NULL);
	ASSERT_GE(fd, 0);
	close(fd);
	close(p[0]);
	close(p[1]);
}

/* The pid file a supervisor holds: is it still there, and its note. */
static void test_lock_current_and_note(void)
{
	char path[512], note[256];
	int fd = state_lock(dir, "t5", NULL);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(state_lock_is_current(fd, dir, "t5"), 1);
	ASSERT_EQ(state_read_note(dir, "t5", note, sizeof note), 0);
	ASSERT_STR_EQ(note, "");
	ASSERT_EQ(state_lock_note(fd, "state_error: cannot write t5.state: Permission denied"), 0);
	ASSERT_EQ(state_read_note(dir, "t5", note, sizeof note), 0);
	ASSERT_STR_EQ(note, "state_error: cannot write t5.state: Permission denied");
	/* The pid stays the first line; clearing the note leaves only it. */
	char *text;
	size_t len;
	ASSERT_EQ(state_path(path, sizeof path, dir, "t5", "pid"), 0);
	ASSERT_EQ(read_file(path, 4096, &text, &len), 0);
	ASSERT_EQ(atol(text), getpid());
	free(text);
	ASSERT_EQ(state_lock_note(fd, NULL), 0);
	ASSERT_EQ(state_read_note(dir, "t5", note, sizeof note), 0);
	ASSERT_STR_EQ(note, "");
	ASSERT_EQ(read_file(path, 4096, &text, &len), 0);
	ASSERT_EQ(len, strlen(text));
	ASSERT(strchr(text, '\n') == text + len - 1);
	free(text);
	/* Removed, then replaced by another file: no longer ours. */
	ASSERT_EQ(unlink(path), 0);
	ASSERT_EQ(state_lock_is_current(fd, dir, "t5"), 0);
	ASSERT_EQ(state_probe(dir, "t5"), 0);
	int fd2 = state_lock(dir, "t5", NULL);
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(state_lock_is_current(fd, dir, "t5"), 0);
	ASSERT_EQ(state_lock_is_current(fd2, dir, "t5"), 1);
	close(fd);
	/* Closing the old file's fd keeps the lock on the new one. */
	ASSERT_EQ(state_lock_is_current(fd2, dir, "t5"), 1);
	close(fd2);
	ASSERT_EQ(state_read_note("/nonexistent-dir", "t5", note, sizeof note), -ENOENT);
}

static void test_state_roundtrip(void)
{
	json_t *o = json_pack("{s:s, s:i}", "state", "connected", "reconnects", 3);
	ASSERT_EQ(state_write(dir, "t2", o), 0);
	json_decref(o);
	json_t *r = NULL;
	ASSERT_EQ(state_read(dir, "t2", &r), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(r, "state")), "connected");
	json_decref(r);
	char path[512];
	state_path(path, sizeof path, dir, "t2", "state");
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	ASSERT_EQ(state_read(dir, "nope", &r), -ENOENT);
	ASSERT_EQ(state_parse("[1]", 3, &r), -EINVAL);
	ASSERT_EQ(state_parse("{\"a\":1,\"a\":2}", 13, &r), -EINVAL);
	ASSERT_EQ(state_parse("{", 1, &r), -EINVAL);
}

static void test_audit(void)
{
	ASSERT_EQ(audit_append(dir, "t3", "bridge_started", "ops", "human", "one"), 0);
	ASSERT_EQ(audit_append(dir, "t3", "bridge_connected", "ops", "human", "two\nlines\"q"), 0);
	ASSERT_EQ(audit_append(dir, "t3", "bridge_stopped", "ops", "human", ""), 0);
	json_t *ev = NULL;
	ASSERT_EQ(audit_tail(dir, "t3", 2, &ev), 0);
	ASSERT_EQ(json_array_size(ev), 2);
	json_t *e0 = json_array_get(ev, 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(e0, "event")), "bridge_connected");
	ASSERT_STR_EQ(json_string_value(json_object_get(e0, "detail")), "two\nlines\"q");
	const char *ts = json_string_value(json_object_get(e0, "ts"));
	ASSERT_EQ(strlen(ts), 27);
	ASSERT_EQ(ts[26], 'Z');
	double t;
	ASSERT_EQ(parse_iso8601(ts, &t), 0);
	json_decref(ev);
	ASSERT_EQ(audit_tail(dir, "t3", 0, &ev), 0);
	ASSERT_EQ(json_array_size(ev), 3);
	json_decref(ev);
	char path[512];
	state_path(path, sizeof path, dir, "t3", "log");
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	ASSERT_EQ(audit_parse_line("{\"x\":1}", 7, &ev), -EINVAL);
	ASSERT_EQ(audit_tail(dir, "none", 5, &ev), -ENOENT);
}

static void test_resolve(void)
{
	char *d = NULL;
	setenv("DEVBRIDGE_STATE_DIR", "/x/dev", 1);
	setenv("BRIDGE_STATE_DIR", "/x/bridge", 1);
	ASSERT_EQ(state_dir_resolve("/opt", &d), 0);
	ASSERT_STR_EQ(d, "/opt");
	free(d);
	ASSERT_EQ(state_dir_resolve(NULL, &d), 0);
	ASSERT_STR_EQ(d, "/x/dev");
	free(d);
	unsetenv("DEVBRIDGE_STATE_DIR");
	ASSERT_EQ(state_dir_resolve(NULL, &d), 0);
	ASSERT_STR_EQ(d, "/x/bridge");
	free(d);
	unsetenv("BRIDGE_STATE_DIR");
	setenv("XDG_STATE_HOME", "/xdg", 1);
	ASSERT_EQ(state_dir_resolve(NULL, &d), 0);
	ASSERT_STR_EQ(d, "/xdg/devbridge");
	free(d);
	unsetenv("XDG_STATE_HOME");
	setenv("HOME", "/home/u", 1);
	ASSERT_EQ(state_dir_resolve(NULL, &d), 0);
	ASSERT_STR_EQ(d, "/home/u/.local/state/devbridge");
	free(d);
}

int main(void)
{
	setup();
	RUN(test_lock_liveness);
	RUN(test_lock_current_and_note);
	RUN(test_state_roundtrip);
	RUN(test_audit);
	RUN(test_resolve);
	return 0;
}
