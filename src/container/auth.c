/* auth.c - see auth.h. */
#include "container/auth.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *auth_default_path(void)
{
	const char *home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	return strdup_printf("%s/.config/devbridge/auth-token", home);
}

static bool token_shape_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 16 || n > 256)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] > '~')
			return false;
	return true;
}

static int read_token(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		close(fd);
		return -EPERM;
	}
	char tmp[512];
	ssize_t r = read(fd, tmp, sizeof tmp - 1);
	close(fd);
	if (r < 0)
		return -errno;
	tmp[r] = '\0';
	tmp[strcspn(tmp, "\r\n")] = '\0';
	if (!token_shape_ok(tmp) || strlen(tmp) + 1 > n)
		return -EINVAL;
	memcpy(buf, tmp, strlen(tmp) + 1);
	explicit_bzero(tmp, sizeof tmp);
	return 0;
}

/* The flag or the environment, in resolution order: the value, or NULL. */
static const char *given_token(const char *flag, const char **ret_source)
{
	static const char *const vars[] = {"DEVBRIDGE_AUTH_TOKEN", "DCBRIDGE_AUTH_TOKEN"};
	if (flag && *flag) {
		*ret_source = "--auth-token";
		return flag;
	}
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i]);
		if (v && *v) {
			*ret_source = vars[i];
			return v;
		}
	}
	return NULL;
}

static int copy_token(const char *v, char *buf, size_t n)
{
	if (!token_shape_ok(v) || strlen(v) + 1 > n)
		return -EINVAL;
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

int auth_resolve(const char *flag, const char *file, char *buf, size_t n)
{
	const char *src;
	const char *v = given_token(flag, &src);
	if (v)
		return copy_token(v, buf, n);
	if (file && *file)
		return read_token(file, buf, n);
	char *def = auth_default_path();
	if (!def)
		return -ENOENT;
	int r = read_token(def, buf, n);
	free(def);
	return r;
}

int auth_resolve_host(const char *flag, const char *file, char *buf, size_t n,
		      const char **ret_source)
{
	const char *v = given_token(flag, ret_source);
	if (v)
		return copy_token(v, buf, n);
	*ret_source = file && *file ? "--auth-token-file" : "~/.config/devbridge/auth-token";
	return auth_load_or_create(file && *file ? file : NULL, buf, n);
}

int auth_load_or_create(const char *path, char *buf, size_t n)
{
	char *def = NULL;
	if (!path) {
		def = auth_default_path();
		if (!def)
			return -ENOENT;
		path = def;
	}
	int r = read_token(path, buf, n);
	if (r != -ENOENT) {
		free(def);
		return r;
	}
	unsigned char raw[AUTH_TOKEN_LEN / 2];
	char hex[AUTH_TOKEN_LEN + 2];
	if ((r = random_bytes(raw, sizeof raw)) < 0 || n < AUTH_TOKEN_LEN + 1) {
		free(def);
		return r < 0 ? r : -EINVAL;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof raw);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir_p(dir, 0700);
	}
	hex[AUTH_TOKEN_LEN] = '\n';
	hex[AUTH_TOKEN_LEN + 1] = '\0';
	r = write_file_atomic(path, hex, AUTH_TOKEN_LEN + 1, 0600);
	hex[AUTH_TOKEN_LEN] = '\0';
	if (r == 0)
		memcpy(buf, hex, AUTH_TOKEN_LEN + 1);
	explicit_bzero(hex, sizeof hex);
	free(def);
	return r;
}

bool auth_check(const char *expected, const char *given)
{
	if (!expected || !given)
		return false;
	return const_time_eq(expected, strlen(expected), given, strlen(given));
}
