/* test_errcode.c - the error vocabulary: numbers and names are an API (the
 * --json envelope's code and name), so they are pinned here one by one;
 * the help paragraph lists every code the table has. */
#include "core/errcode.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

/* What the JSON API has promised since before the table existed. */
static const struct {
	int code;
	const char *name;
} pinned[] = {
    {0, "ok"},
    {1, "error"},
    {2, "usage"},
    {3, "invalid_config"},
    {40, "ssh_not_found"},
    {41, "tunnel_failed"},
    {42, "remote_forward_failed"},
    {43, "ssh_auth_failed"},
    {44, "host_unreachable"},
    {45, "local_port_in_use"},
    {46, "host_key_failed"},
    {47, "timeout"},
    {48, "unknown_bridge"},
    {49, "health_failing"},
    {50, "host_daemon_unreachable"},
    {51, "auth_failed"},
    {52, "protocol_error"},
    {53, "url_rejected"},
    {54, "no_auth_token"},
    {55, "port_in_use"},
    {56, "ensure_failed"},
    {57, "not_in_catalog"},
    {60, "kubeconfig_not_found"},
    {61, "context_unreachable"},
    {62, "namespace_not_found"},
    {63, "service_not_found"},
    {64, "port_forward_failed"},
    {65, "agent_deploy_failed"},
    {66, "agent_health_failed"},
    {67, "selector_patch_failed"},
    {68, "rbac_insufficient"},
    {69, "intercept_active"},
    {70, "unsupported_protocol"},
    {71, "tunnel_failed"},
    {72, "service_not_interceptable"},
};

#define N_PINNED (sizeof pinned / sizeof pinned[0])

static void test_pinned_names(void)
{
	for (size_t i = 0; i < N_PINNED; i++) {
		ASSERT_STR_EQ(errcode_name(pinned[i].code), pinned[i].name);
		ASSERT(errcode_help(pinned[i].code));
	}
	/* ... and nothing else is in the table. */
	size_t n = 0;
#define COUNT(e, num, name, help, flags) n++;
	ERRCODE_TABLE(COUNT)
#undef COUNT
	ASSERT_EQ(n, N_PINNED);
}

static void test_enum_values(void)
{
	ASSERT_EQ(EXIT_OK, 0);
	ASSERT_EQ(EXIT_CONFIG, 3);
	ASSERT_EQ(EXIT_SSH_AUTH, 43);
	ASSERT_EQ(EXIT_ENSURE_FAILED, 56);
	ASSERT_EQ(EXIT_K8S_KUBECONFIG_NOT_FOUND, 60);
	ASSERT_EQ(EXIT_K8S_NOT_INTERCEPTABLE, 72);
	/* The enum is the table: each row's enumerator has the row's number. */
#define SAME(e, num, name, help, flags) ASSERT_EQ(e, num);
	ERRCODE_TABLE(SAME)
#undef SAME
}

static void test_unknown(void)
{
	ASSERT_STR_EQ(errcode_name(4), "error");
	ASSERT_STR_EQ(errcode_name(-1), "error");
	ASSERT_STR_EQ(errcode_name(255), "error");
	ASSERT(!errcode_help(58));
	ASSERT(!errcode_reserved(58));
}

/* Intercept is in: no code is reserved for later any more. */
static void test_reserved(void)
{
	for (size_t i = 0; i < N_PINNED; i++)
		ASSERT(!errcode_reserved(pinned[i].code));
}

/* Every code in the paragraph, the help text following its number
 * (possibly across a line break); no line wider than asked. */
static void test_usage(void)
{
	char buf[4096], flat[4096], want[160];
	size_t len = errcode_usage(buf, sizeof buf, 79);

	ASSERT_EQ(len, strlen(buf));
	ASSERT(len > 0 && buf[len - 1] == '\n');
	ASSERT_EQ(strncmp(buf, "Exit codes: 0 ok, 1 error,", 26), 0);
	for (const char *l = buf; *l;) {
		size_t w = strcspn(l, "\n");
		ASSERT_LE(w, 79);
		l += w + (l[w] ? 1 : 0);
	}
	for (size_t i = 0; i <= len; i++)
		flat[i] = buf[i] == '\n' ? ' ' : buf[i];
	for (size_t i = 0; i < N_PINNED; i++) {
		int c = pinned[i].code;
		if (errcode_reserved(c))
			continue;
		snprintf(want, sizeof want, " %d %s", c, errcode_help(c));
		ASSERT_STR_CONTAINS(flat, want);
	}
	ASSERT(!strstr(flat, "reserved"));
}

/* A number stays with the word after it: no line ends in one. */
static void test_usage_numbers_kept(void)
{
	static const size_t widths[] = {20, 40, 79, 100};
	char buf[4096];

	for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++) {
		errcode_usage(buf, sizeof buf, widths[k]);
		for (char *l = buf; *l;) {
			size_t w = strcspn(l, "\n"), s = w;
			while (s > 0 && l[s - 1] != ' ')
				s--;
			ASSERT(!isdigit((unsigned char)l[w - 1]) || !isdigit((unsigned char)l[s]));
			l += w + (l[w] ? 1 : 0);
		}
	}
}

/* snprintf's contract: the whole length, a cut and terminated copy. */
static void test_usage_cut(void)
{
	char small[12];
	size_t full = errcode_usage(NULL, 0, 79);

	ASSERT_GT(full, 200);
	ASSERT_EQ(errcode_usage(small, sizeof small, 79), full);
	ASSERT_STR_EQ(small, "Exit codes:");
	ASSERT_EQ(errcode_usage(small, 1, 79), full);
	ASSERT_EQ(small[0], '\0');
}

/* A message over ERR_MESSAGE_MAX is cut between characters: it goes into
 * JSON, and jansson refuses a string that is not valid UTF-8. */
static void test_err_set_cut(void)
{
	char name[ERR_MESSAGE_MAX];
	size_t n = 0;
	while (n + 2 < sizeof name) {
		name[n++] = '\xc3'; /* é */
		name[n++] = '\xa9';
	}
	name[n] = '\0';
	for (int pre = 0; pre < 3; pre++) { /* the cut on a lead byte, or not */
		struct err e;
		ASSERT_EQ(err_set(&e, 48, "%.*sno bridge named '%s'", pre, "ab", name), 48);
		size_t len = strlen(e.message);
		ASSERT_LE(len, ERR_MESSAGE_MAX - 1);
		ASSERT_GE(len, ERR_MESSAGE_MAX - 2);
		ASSERT((unsigned char)e.message[len - 1] == 0xa9);
	}
	struct err e;
	err_set(&e, 1, "short: %s", "\xc3\xa9");
	ASSERT_STR_EQ(e.message, "short: \xc3\xa9");
}

int main(void)
{
	RUN(test_pinned_names);
	RUN(test_enum_values);
	RUN(test_unknown);
	RUN(test_reserved);
	RUN(test_usage);
	RUN(test_usage_numbers_kept);
	RUN(test_usage_cut);
	RUN(test_err_set_cut);
	return 0;
}
