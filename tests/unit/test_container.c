/* Unit tests for container/auth and container/browser: token files and
 * their resolution order, URL validation, localhost rewriting, the 5/s
 * rate limit. */
#include "container/auth.h"
#include "container/browser.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static void test_token_create_and_resolve(void)
{
	char path[300], tok[300], again[300];
	snprintf(path, sizeof path, "%s/cfg/devbridge/auth-token", tmp);
	ASSERT_EQ(auth_load_or_create(path, tok, sizeof tok), 0);
	ASSERT_EQ(strlen(tok), AUTH_TOKEN_LEN);
	for (size_t i = 0; i < AUTH_TOKEN_LEN; i++)
		ASSERT(strchr("0123456789abcdef", tok[i]) != NULL);
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	/* the second load reads the same token */
	ASSERT_EQ(auth_load_or_create(path, again, sizeof again), 0);
	ASSERT_STR_EQ(again, tok);
	/* resolution: flag > env > file */
	unsetenv("DEVBRIDGE_AUTH_TOKEN");
	unsetenv("DCBRIDGE_AUTH_TOKEN");
	ASSERT_EQ(auth_resolve(NULL, path, again, sizeof again), 0);
	ASSERT_STR_EQ(again, tok);
	setenv("DCBRIDGE_AUTH_TOKEN", "legacy-token-0123456789", 1);
	ASSERT_EQ(auth_resolve(NULL, path, again, sizeof again), 0);
	ASSERT_STR_EQ(again, "legacy-token-0123456789");
	setenv("DEVBRIDGE_AUTH_TOKEN", "env-token-0123456789abc", 1);
	ASSERT_EQ(auth_resolve(NULL, path, again, sizeof again), 0);
	ASSERT_STR_EQ(again, "env-token-0123456789abc");
	ASSERT_EQ(auth_resolve("flag-token-0123456789ab", path, again, sizeof again), 0);
	ASSERT_STR_EQ(again, "flag-token-0123456789ab");
	unsetenv("DEVBRIDGE_AUTH_TOKEN");
	unsetenv("DCBRIDGE_AUTH_TOKEN");
	/* a token file others can read is refused */
	ASSERT_EQ(chmod(path, 0644), 0);
	ASSERT_EQ(auth_resolve(NULL, path, again, sizeof again), -EPERM);
	/* too short or with spaces: malformed */
	ASSERT_EQ(auth_resolve("short", NULL, again, sizeof again), -EINVAL);
	ASSERT_EQ(auth_resolve("has a space in it 0123456", NULL, again, sizeof again), -EINVAL);
	ASSERT(auth_check(tok, tok));
	ASSERT(!auth_check(tok, ""));
	ASSERT(!auth_check(tok, NULL));
}

static void test_validate(void)
{
	char err[128];
	ASSERT_EQ(browser_validate("http://localhost:8080/x", err, sizeof err), 0);
	ASSERT_EQ(browser_validate("HTTPS://example.test/", err, sizeof err), 0);
	ASSERT_EQ(browser_validate("ftp://x", err, sizeof err), -EINVAL);
	ASSERT_STR_CONTAINS(err, "http");
	ASSERT_EQ(browser_validate("javascript:alert(1)", err, sizeof err), -EINVAL);
	ASSERT_EQ(browser_validate("http://a b", err, sizeof err), -EINVAL);
	ASSERT_EQ(browser_validate("http://x\n", err, sizeof err), -EINVAL);
	ASSERT_EQ(browser_validate("http://", err, sizeof err), -EINVAL);
	ASSERT_EQ(browser_validate("http://-oProxy", err, sizeof err), -EINVAL);
	char big[BROWSER_URL_MAX + 10];
	memset(big, 'a', sizeof big);
	memcpy(big, "http://", 7);
	big[BROWSER_URL_MAX] = '\0';
	ASSERT_EQ(browser_validate(big, err, sizeof err), 0);
	big[BROWSER_URL_MAX] = 'a';
	big[BROWSER_URL_MAX + 1] = '\0';
	ASSERT_EQ(browser_validate(big, err, sizeof err), -EINVAL);
}

static uint16_t map(void *data, uint16_t port)
{
	(void)data;
	return port == 8080 ? 8081 : 0;
}

static void test_rewrite(void)
{
	char out[256];
	ASSERT_EQ(browser_rewrite("http://localhost:8080/cb?code=1", map, NULL, out, sizeof out),
		  1);
	ASSERT_STR_EQ(out, "http://localhost:8081/cb?code=1");
	ASSERT_EQ(browser_rewrite("https://127.0.0.1:8080", map, NULL, out, sizeof out), 1);
	ASSERT_STR_EQ(out, "https://127.0.0.1:8081");
	/* other hosts, other ports, and look-alikes are left alone */
	ASSERT_EQ(browser_rewrite("http://example.test:8080/", map, NULL, out, sizeof out), 0);
	ASSERT_STR_EQ(out, "http://example.test:8080/");
	ASSERT_EQ(browser_rewrite("http://localhost:9090/", map, NULL, out, sizeof out), 0);
	ASSERT_EQ(browser_rewrite("http://localhost:80800/", map, NULL, out, sizeof out), 0);
	ASSERT_EQ(browser_rewrite("http://localhost:8080x/", map, NULL, out, sizeof out), 0);
	ASSERT_EQ(browser_rewrite("http://localhost:8080", map, NULL, out, 10), -ENAMETOOLONG);
}

static void test_rate(void)
{
	struct browser_rate r = {0};
	uint64_t t = 100000;
	for (int i = 0; i < BROWSER_RATE_MAX; i++)
		ASSERT(browser_rate_allow(&r, t + (uint64_t)i));
	ASSERT(!browser_rate_allow(&r, t + 10));
	ASSERT(!browser_rate_allow(&r, t + 999));
	/* one second after the first, one more is allowed */
	ASSERT(browser_rate_allow(&r, t + 1000));
	ASSERT(!browser_rate_allow(&r, t + 1000));
}

int main(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/devbridge-test-container-XXXXXX");
	ASSERT(mkdtemp(tmp));
	RUN(test_token_create_and_resolve);
	RUN(test_validate);
	RUN(test_rewrite);
	RUN(test_rate);
	return 0;
}
