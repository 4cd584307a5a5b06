/* Unit tests for container/filter: port specs and their error messages,
 * exclude/include/process-regex/forwardPorts combined, and the JSONC
 * stripper (comments, trailing commas, comment markers inside strings). */
#include "container/filter.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>

static struct port_filter *new_filter(void)
{
	struct port_filter *f = NULL;
	ASSERT_EQ(port_filter_new(&f), 0);
	ASSERT(f);
	return f;
}

static void test_specs(void)
{
	struct port_filter *f = new_filter();
	char err[256] = "";
	ASSERT_EQ(port_filter_include(f, "8000-8100, 9000 9001", err, sizeof err), 0);
	ASSERT_EQ(port_filter_include(f, "  ,\t1,65535-65535,,  ", err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 8000, ""));
	ASSERT(port_filter_allows(f, 8050, ""));
	ASSERT(port_filter_allows(f, 8100, ""));
	ASSERT(!port_filter_allows(f, 7999, ""));
	ASSERT(!port_filter_allows(f, 8101, ""));
	ASSERT(port_filter_allows(f, 9000, ""));
	ASSERT(port_filter_allows(f, 9001, ""));
	ASSERT(!port_filter_allows(f, 9002, ""));
	ASSERT(port_filter_allows(f, 1, ""));
	ASSERT(port_filter_allows(f, 65535, ""));
	ASSERT(!port_filter_allows(f, 0, ""));
	port_filter_free(f);

	/* word-boundary edges of the bitmap */
	static const struct {
		const char *spec;
		unsigned a, b;
	} ranges[] = {{"1-65535", 1, 65535}, {"63-64", 63, 64},	    {"64-127", 64, 127},
		      {"65-191", 65, 191},   {"128-128", 128, 128}, {"60000-65535", 60000, 65535}};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
		f = new_filter();
		ASSERT_EQ(port_filter_include(f, ranges[i].spec, err, sizeof err), 0);
		for (unsigned p = 1; p <= 65535; p++)
			if (port_filter_allows(f, (uint16_t)p, NULL) !=
			    (p >= ranges[i].a && p <= ranges[i].b))
				TEST_FAIL_("spec %s port %u", ranges[i].spec, p);
		port_filter_free(f);
	}
}

static void test_bad_specs(void)
{
	static const struct {
		const char *spec, *token;
	} bad[] = {
	    {"8000-8100, abc", "\"abc\""},
	    {"0", "\"0\""},
	    {"65536", "\"65536\""},
	    {"9-8", "\"9-8\""},
	    {"1-", "\"1-\""},
	    {"-5", "\"-5\""},
	    {"80;81", "\"80;81\""},
	    {"1-2-3", "\"1-2-3\""},
	    {"+80", "\"+80\""},
	    {"99999999999", "\"99999999999\""},
	    {"80 - 90", "\"-\""},
	    {"0x50", "\"0x50\""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct port_filter *f = new_filter();
		char err[256] = "";
		ASSERT_EQ(port_filter_include(f, bad[i].spec, err, sizeof err), -EINVAL);
		ASSERT_STR_CONTAINS(err, bad[i].token);
		ASSERT_STR_CONTAINS(err, "invalid port spec");
		err[0] = '\0';
		ASSERT_EQ(port_filter_exclude(f, bad[i].spec, err, sizeof err), -EINVAL);
		ASSERT_STR_CONTAINS(err, bad[i].token);
		/* nothing applied: still no include list, nothing excluded */
		ASSERT(port_filter_allows(f, 8000, ""));
		ASSERT(port_filter_allows(f, 80, ""));
		port_filter_free(f);
	}
	/* a long token is cut in the message; NULL err is fine */
	struct port_filter *f = new_filter();
	char longspec[300], err[256];
	memset(longspec, 'x', sizeof longspec - 1);
	longspec[sizeof longspec - 1] = '\0';
	ASSERT_EQ(port_filter_include(f, longspec, err, sizeof err), -EINVAL);
	ASSERT_STR_CONTAINS(err, "xxx...\"");
	ASSERT_EQ(port_filter_include(f, "nope", NULL, 0), -EINVAL);
	char tiny[4];
	ASSERT_EQ(port_filter_include(f, "nope", tiny, sizeof tiny), -EINVAL);
	ASSERT_EQ(strlen(tiny), 3);
	ASSERT_EQ(port_filter_include_port(f, 0), -EINVAL);
	/* an empty spec names no port: still no include restriction */
	ASSERT_EQ(port_filter_include(f, "", err, sizeof err), 0);
	ASSERT_EQ(port_filter_include(f, " , ", err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 1234, ""));
	port_filter_free(f);
	port_filter_free(NULL);
}

static void test_combined(void)
{
	struct port_filter *f = new_filter();
	char err[256] = "";
	/* no rules: everything but port 0 */
	ASSERT(port_filter_allows(f, 22, "sshd"));
	ASSERT(port_filter_allows(NULL, 22, "sshd"));

	ASSERT_EQ(port_filter_exclude(f, "5432,9229", err, sizeof err), 0);
	ASSERT(!port_filter_allows(f, 5432, "postgres"));
	ASSERT(port_filter_allows(f, 3000, "node"));

	ASSERT_EQ(port_filter_exclude_process(f, "^(code-server|java)$|gopls", err, sizeof err), 0);
	ASSERT(!port_filter_allows(f, 3000, "code-server"));
	ASSERT(!port_filter_allows(f, 3000, "java"));
	ASSERT(port_filter_allows(f, 3000, "javac"));
	ASSERT(!port_filter_allows(f, 3000, "my-gopls-1")); /* unanchored */
	ASSERT(port_filter_allows(f, 3000, ""));	    /* unknown owner */
	ASSERT(port_filter_allows(f, 3000, NULL));

	/* include (spec + devcontainer forwardPorts) restricts to the union;
	 * exclude and the regex still win */
	ASSERT_EQ(port_filter_include(f, "3000-3005", err, sizeof err), 0);
	static const char dc[] = "{ \"forwardPorts\": [8080, \"db:5432\", \"9229\"] }";
	ASSERT_EQ(port_filter_devcontainer(f, dc, strlen(dc), err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 3000, "node"));
	ASSERT(port_filter_allows(f, 3005, "node"));
	ASSERT(!port_filter_allows(f, 3006, "node"));
	ASSERT(port_filter_allows(f, 8080, "node"));
	ASSERT(!port_filter_allows(f, 8081, "node"));
	ASSERT(!port_filter_allows(f, 5432, "postgres")); /* excluded wins */
	ASSERT(!port_filter_allows(f, 9229, "node"));	  /* excluded wins */
	ASSERT(!port_filter_allows(f, 8080, "java"));	  /* regex wins */
	ASSERT_EQ(port_filter_include_port(f, 4000), 0);
	ASSERT(port_filter_allows(f, 4000, "node"));

	/* a bad regex: message, old regex kept */
	err[0] = '\0';
	ASSERT_EQ(port_filter_exclude_process(f, "(unclosed", err, sizeof err), -EINVAL);
	ASSERT_STR_CONTAINS(err, "invalid process regex \"(unclosed\"");
	ASSERT(!port_filter_allows(f, 3000, "java"));
	/* a new regex replaces the old one */
	ASSERT_EQ(port_filter_exclude_process(f, "^node$", err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 3000, "java"));
	ASSERT(!port_filter_allows(f, 3000, "node"));
	/* an empty regex clears the rule rather than matching everything */
	ASSERT_EQ(port_filter_exclude_process(f, "", err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 3000, "node"));
	ASSERT_EQ(port_filter_exclude_process(f, "", err, sizeof err), 0);
	ASSERT_EQ(port_filter_exclude_process(f, "node", err, sizeof err), 0);
	ASSERT(!port_filter_allows(f, 3000, "node"));
	port_filter_free(f);

	/* forwardPorts alone restricts */
	f = new_filter();
	ASSERT_EQ(port_filter_devcontainer(f, dc, strlen(dc), err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 9229, ""));
	ASSERT(!port_filter_allows(f, 3000, ""));
	port_filter_free(f);
}

static void strip_eq(const char *in, const char *want)
{
	size_t len = strlen(in);
	char *buf = malloc(len ? len : 1);
	ASSERT(buf);
	memcpy(buf, in, len);
	size_t n = jsonc_strip(buf, len);
	ASSERT_EQ(n, strlen(want));
	if (memcmp(buf, want, n) != 0)
		TEST_FAIL_("jsonc_strip(\"%s\") = \"%.*s\", want \"%s\"", in, (int)n, buf, want);
	free(buf);
}

static void test_jsonc_strip(void)
{
	strip_eq("", "");
	strip_eq("{\"a\":1} // c", "{\"a\":1}     ");
	strip_eq("{\"a\":1 /* b\nc */}", "{\"a\":1     \n    }");
	strip_eq("[1,2,]", "[1,2 ]");
	strip_eq("{\"a\":1,\n}", "{\"a\":1 \n}");
	strip_eq("[1, // x\n /* y */ ]", "[1      \n         ]");
	strip_eq("{\"u\":\"http://x/*y*/\",}", "{\"u\":\"http://x/*y*/\" }");
	strip_eq("[\"a\\\"//b\", \"c\\\\\"//d\n]", "[\"a\\\"//b\", \"c\\\\\"   \n]");
	strip_eq("[\"/*\", \"*/\"]", "[\"/*\", \"*/\"]");
	/* not trailing: for the JSON parser to refuse */
	strip_eq("[,]", "[,]");
	strip_eq("{,}", "{,}");
	strip_eq("[1,,]", "[1,,]");
	/* unterminated comment and string; a lone slash; a final slash */
	strip_eq("[1] /* open", "[1]        ");
	strip_eq("[\"open // x", "[\"open // x");
	strip_eq("[1 / 2]", "[1 / 2]");
	strip_eq("[1]/", "[1]/");
	strip_eq("/*/ x */1", "        1");
	strip_eq("// only", "       ");
	ASSERT_EQ(jsonc_strip(NULL, 0), 0);
}

static int load(struct port_filter *f, const char *json, char *err, size_t errlen)
{
	err[0] = '\0';
	return port_filter_devcontainer(f, json, strlen(json), err, errlen);
}

static void test_devcontainer(void)
{
	static const char good[] =
	    "\xEF\xBB\xBF// devcontainer.json (JSONC)\n"
	    "{\n"
	    "  /* the image */\n"
	    "  \"name\": \"app // not a comment\",\n"
	    "  \"image\": \"mcr.microsoft.com/devcontainers/base:bookworm\", // trailing\n"
	    "  \"postCreateCommand\": \"echo \\\"/* still a string */\\\" && ls //tmp\",\n"
	    "  \"forwardPorts\": [\n"
	    "    3000, // web\n"
	    "    \"db:5432\",\n"
	    "    \"8080\",\n"
	    "    \"[::1]:9229\", /* inspector */\n"
	    "  ],\n"
	    "  \"customizations\": { \"vscode\": { \"extensions\": [\"a.b\",], }, },\n"
	    "}\n";
	struct port_filter *f = new_filter();
	char err[256];
	ASSERT_EQ(load(f, good, err, sizeof err), 0);
	static const uint16_t yes[] = {3000, 5432, 8080, 9229};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		ASSERT(port_filter_allows(f, yes[i], "node"));
	ASSERT(!port_filter_allows(f, 3001, "node"));
	port_filter_free(f);

	/* no forwardPorts, or an empty list: no restriction */
	f = new_filter();
	ASSERT_EQ(load(f, "{\"image\": \"x\"}", err, sizeof err), 0);
	ASSERT_EQ(load(f, "{\"forwardPorts\": [ /* none */ ],}", err, sizeof err), 0);
	ASSERT(port_filter_allows(f, 1234, ""));
	ASSERT_EQ(port_filter_devcontainer(f, NULL, 0, err, sizeof err), -EINVAL);
	port_filter_free(f);

	static const struct {
		const char *json, *msg;
	} bad[] = {
	    {"{\n  \"forwardPorts\": [3000\n  \"x\"]\n}", "devcontainer.json:3:"},
	    {"[3000]", "top level is not an object"},
	    {"{\"forwardPorts\": 3000}", "\"forwardPorts\" is not an array"},
	    {"{\"forwardPorts\": [3000, 70000]}", "forwardPorts[1] = 70000"},
	    {"{\"forwardPorts\": [0]}", "forwardPorts[0] = 0"},
	    {"{\"forwardPorts\": [\"db:\"]}", "forwardPorts[0] = \"db:\""},
	    {"{\"forwardPorts\": [\"db:80x\"]}", "forwardPorts[0] = \"db:80x\""},
	    {"{\"forwardPorts\": [30.5]}", "forwardPorts[0] = 30.5"},
	    {"{\"forwardPorts\": [null]}", "forwardPorts[0] = null"},
	    {"{\"forwardPorts\": [[1]]}", "forwardPorts[0] = [1]"},
	    {"{\"forwardPorts\": [1,,]}", "devcontainer.json:1:"},
	    {"{\"a\": \"x\" // unterminated string\"}", "devcontainer.json:1:"},
	    {"", "devcontainer.json:"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = new_filter();
		ASSERT_EQ(load(f, bad[i].json, err, sizeof err), -EINVAL);
		ASSERT_STR_CONTAINS(err, bad[i].msg);
		/* nothing applied, even the valid 3000 before the bad entry */
		ASSERT(port_filter_allows(f, 3001, ""));
		port_filter_free(f);
	}
	/* an embedded NUL is not the end of the document */
	f = new_filter();
	static const char nul[] = "{\"forwardPorts\": [1]}\0garbage";
	ASSERT_EQ(port_filter_devcontainer(f, nul, sizeof nul - 1, err, sizeof err), -EINVAL);
	port_filter_free(f);
}

int main(void)
{
	RUN(test_specs);
	RUN(test_bad_specs);
	RUN(test_combined);
	RUN(test_jsonc_strip);
	RUN(test_devcontainer);
	return 0;
}
