/* test_agent.c - the intercept agent's pure parts: the control port's
 * hello, the health port's request head, --port, and the body that
 * restores a Service (k8s/agent.h). */
#include "k8s/agent.h"
#include "test.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int hello(const char *s, const char **tok, size_t *tl)
{
	return agent_parse_hello(s, strlen(s), tok, tl);
}

static void test_hello(void)
{
	const char *t;
	size_t tl;
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 abc\n", &t, &tl), 22);
	ASSERT_EQ(tl, 3);
	ASSERT(!memcmp(t, "abc", 3));
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 abc\r\nyamux", &t, &tl), 23);
	ASSERT_EQ(tl, 3);
	/* incomplete: a prefix of the line, or a token without its newline */
	ASSERT_EQ(hello("", &t, &tl), 0);
	ASSERT_EQ(hello("DEVBRIDGE-AG", &t, &tl), 0);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 abc", &t, &tl), 0);
	/* not the hello: fails at the first wrong byte */
	ASSERT_EQ(hello("GET / HTTP/1.1\r\n", &t, &tl), -EPROTO);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/2 abc\n", &t, &tl), -EPROTO);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 \n", &t, &tl), -EPROTO);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 a b\n", &t, &tl), -EPROTO);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1 a\x01\n", &t, &tl), -EPROTO);
	ASSERT_EQ(hello("DEVBRIDGE-AGENT/1\n", &t, &tl), -EPROTO);
	/* too long: a token over the limit, or no newline within the limit */
	char big[AGENT_HELLO_MAX + 10];
	snprintf(big, sizeof big, "DEVBRIDGE-AGENT/1 %0*d\n", AGENT_TOKEN_MAX + 1, 0);
	ASSERT_EQ(hello(big, &t, &tl), -EPROTO);
	memset(big, 'x', sizeof big - 1);
	memcpy(big, "DEVBRIDGE-AGENT/1 ", 18);
	big[sizeof big - 1] = 0;
	ASSERT_EQ(hello(big, &t, &tl), -EPROTO);
}

static int head(const char *s, const char **m, size_t *ml, const char **p, size_t *pl)
{
	return agent_parse_http_head(s, strlen(s), m, ml, p, pl);
}

static void test_http_head(void)
{
	const char *m, *p;
	size_t ml, pl;
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	ASSERT_EQ(head(req, &m, &ml, &p, &pl), (int)strlen(req));
	ASSERT(ml == 3 && !memcmp(m, "GET", 3));
	ASSERT(pl == 8 && !memcmp(p, "/healthz", 8));
	ASSERT_EQ(head("GET / HTTP/1.0\n\n", &m, &ml, &p, &pl), 16);
	ASSERT_EQ(head("GET /healthz HTTP/1.1\r\nHost", &m, &ml, &p, &pl), 0);
	ASSERT_EQ(head("get / HTTP/1.1\r\n\r\n", &m, &ml, &p, &pl), -EPROTO);
	ASSERT_EQ(head("GET healthz HTTP/1.1\r\n\r\n", &m, &ml, &p, &pl), -EPROTO);
	ASSERT_EQ(head("GET / SPDY/3\r\n\r\n", &m, &ml, &p, &pl), -EPROTO);
	ASSERT_EQ(head("GET /\r\n\r\n", &m, &ml, &p, &pl), -EPROTO);
	char *big = malloc(AGENT_HTTP_HEAD_MAX + 1);
	ASSERT(big);
	memset(big, 'a', AGENT_HTTP_HEAD_MAX);
	big[AGENT_HTTP_HEAD_MAX] = 0;
	ASSERT_EQ(head(big, &m, &ml, &p, &pl), -EPROTO);
	free(big);
}

static void test_port(void)
{
	struct agent_port p;
	ASSERT_EQ(agent_parse_port("80:8080", &p), 0);
	ASSERT(p.service == 80 && p.target == 8080);
	ASSERT_EQ(agent_parse_port("443", &p), 0);
	ASSERT(p.service == 443 && p.target == 443);
	const char *bad[] = {"",	 ":",	"80:",	 ":80",	 "0:80",
			     "80:65536", "x:1", "1:2:3", "-1:2", "123456:1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ASSERT_EQ(agent_parse_port(bad[i], &p), -EINVAL);
}

#define SVC(ann, sel)                                                                              \
	"{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\","              \
	"\"resourceVersion\":\"42\"" ann "},\"spec\":{\"selector\":" sel                           \
	",\"ports\":[{\"port\":80}]}}"

static void test_restore_body(void)
{
	char *out = NULL, why[200];
	const char *svc = SVC(",\"annotations\":{\"owner\":\"a\",\"devbridge.dev/session\":"
			      "\"0123456789\",\"devbridge.dev/mode\":\"steal\","
			      "\"devbridge.dev/original-selector\":\"{\\\"app\\\":\\\"web\\\"}\"}",
			      "{\"devbridge.dev/intercept\":\"0123456789\"}");
	ASSERT_EQ(agent_restore_body(svc, "0123456789", &out, why, sizeof why), 0);
	json_t *j = json_loads(out, 0, NULL);
	ASSERT(j);
	json_t *sel = json_object_get(json_object_get(j, "spec"), "selector");
	ASSERT_EQ(json_object_size(sel), 1);
	ASSERT(!strcmp(json_string_value(json_object_get(sel, "app")), "web"));
	json_t *meta = json_object_get(j, "metadata");
	json_t *ann = json_object_get(meta, "annotations");
	ASSERT_EQ(json_object_size(ann), 1); /* only the owner's */
	ASSERT(!strcmp(json_string_value(json_object_get(meta, "resourceVersion")), "42"));
	ASSERT(json_object_get(json_object_get(j, "spec"), "ports"));
	json_decref(j);
	free(out);

	/* only our annotations: the object loses "annotations" */
	svc = SVC(
	    ",\"annotations\":{\"devbridge.dev/session\":\"0123456789\","
	    "\"devbridge.dev/original-selector\":\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":\\\"2\\\"}\"}",
	    "{}");
	ASSERT_EQ(agent_restore_body(svc, "0123456789", &out, why, sizeof why), 0);
	j = json_loads(out, 0, NULL);
	ASSERT(!json_object_get(json_object_get(j, "metadata"), "annotations"));
	ASSERT_EQ(json_object_size(json_object_get(json_object_get(j, "spec"), "selector")), 2);
	json_decref(j);
	free(out);

	/* nothing to restore */
	ASSERT_EQ(agent_restore_body(SVC("", "{\"a\":\"1\"}"), "0123456789", &out, why, sizeof why),
		  1);
	ASSERT(strstr(why, "no session"));
	svc = SVC(",\"annotations\":{\"devbridge.dev/session\":\"abcdefabcd\"}", "{}");
	ASSERT_EQ(agent_restore_body(svc, "0123456789", &out, why, sizeof why), 1);
	ASSERT(strstr(why, "abcdefabcd"));
	ASSERT(!out);

	/* broken */
	const char *bad[] = {
	    "",
	    "[]",
	    "{\"metadata\":{}}",
	    SVC(",\"annotations\":{\"devbridge.dev/session\":\"0123456789\"}", "{}"),
	    SVC(",\"annotations\":{\"devbridge.dev/session\":\"0123456789\","
		"\"devbridge.dev/original-selector\":\"{}\"}",
		"{}"),
	    SVC(",\"annotations\":{\"devbridge.dev/session\":\"0123456789\","
		"\"devbridge.dev/original-selector\":\"{\\\"a\\\":1}\"}",
		"{}"),
	    SVC(",\"annotations\":{\"devbridge.dev/session\":\"0123456789\","
		"\"devbridge.dev/original-selector\":\"not json\"}",
		"{}"),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = 0;
		ASSERT_EQ(agent_restore_body(bad[i], "0123456789", &out, why, sizeof why), -EINVAL);
		ASSERT(why[0]);
		ASSERT(!out);
	}
}

#define ANN_SVC(sel)                                                                               \
	"{\"metadata\":{\"annotations\":{\"devbridge.dev/original-selector\":" sel "}},"           \
	"\"spec\":{}}"

static void test_selector_query(void)
{
	char q[256];
	/* sorted keys, the separators and anything unusual percent-encoded */
	ASSERT_EQ(
	    agent_selector_query(ANN_SVC("\"{\\\"tier\\\":\\\"be\\\",\\\"app\\\":\\\"web\\\"}\""),
				 q, sizeof q),
	    0);
	ASSERT_STR_EQ(q, "labelSelector=app%3Dweb%2Ctier%3Dbe");
	ASSERT_EQ(agent_selector_query(
		      ANN_SVC("\"{\\\"app.kubernetes.io/name\\\":\\\"a b&c\\\"}\""), q, sizeof q),
		  0);
	ASSERT_STR_EQ(q, "labelSelector=app.kubernetes.io%2Fname%3Da%20b%26c");
	/* too long for the buffer */
	ASSERT_EQ(agent_selector_query(ANN_SVC("\"{\\\"app\\\":\\\"web\\\"}\""), q, 20),
		  -ENAMETOOLONG);
	/* before the swap: the selector itself, unless it is already ours */
	ASSERT_EQ(agent_selector_query("{\"metadata\":{},\"spec\":{\"selector\":{\"app\":\"w\"}}}",
				       q, sizeof q),
		  0);
	ASSERT_STR_EQ(q, "labelSelector=app%3Dw");
	static const char *const bad[] = {
	    "not json",
	    "{}",
	    "{\"metadata\":{}}",
	    "{\"metadata\":{},\"spec\":{\"selector\":{\"devbridge.dev/intercept\":\"x\"}}}",
	    "{\"metadata\":{\"annotations\":{\"devbridge.dev/session\":\"x\"}},"
	    "\"spec\":{\"selector\":{\"app\":\"w\"}}}",
	    "{\"metadata\":{},\"spec\":{\"selector\":{}}}",
	    ANN_SVC("\"{}\""),
	    ANN_SVC("\"{\\\"a\\\":1}\""),
	    ANN_SVC("\"[]\""),
	    ANN_SVC("\"not json\""),
	    ANN_SVC("{\"app\":\"web\"}"),
	    ANN_SVC("\"{\\\"\\\":\\\"x\\\"}\""),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ASSERT_EQ(agent_selector_query(bad[i], q, sizeof q), -EINVAL);
}

#define POD(ip, phase, ready, extra)                                                               \
	"{\"metadata\":{\"name\":\"p\"" extra "},\"status\":{\"phase\":\"" phase                   \
	"\",\"podIP\":\"" ip "\",\"conditions\":[{\"type\":\"Initialized\",\"status\":\"True\"},"  \
	"{\"type\":\"Ready\",\"status\":\"" ready "\"}]}}"

static void test_ready_pods(void)
{
	char ips[3][AGENT_IP_MAX];
	size_t n = 99;
	const char *list = "{\"kind\":\"PodList\",\"items\":[" POD("10.0.0.1", "Running", "True", "") "," POD(
	    "10.0.0.2", "Running", "False",
	    "") "," POD("10.0.0.3", "Pending", "True",
			"") "," POD("10.0.0.4", "Running", "True",
				    ",\"deletionTimestamp\":\"2024-01-01T00:00:"
				    "00Z\"") "," POD("not-an-ip", "Running", "True",
						     "") "," POD("fd00::5", "Running", "True",
								 "") ",{\"status\":"
								     "{\"phase\":"
								     "\"Running\","
								     "\"podIP\":"
								     "\"10.0.0.6\"}"
								     "}"
								     "," POD(
									 "10.0.0.7", "Running",
									 "True",
									 "") "," POD("10.0.0.8",
										     "Running",
										     "True",
										     "") "," POD("1"
												 "0"
												 "."
												 "0"
												 "."
												 "0"
												 "."
												 "9",
												 "R"
												 "u"
												 "n"
												 "n"
												 "i"
												 "n"
												 "g",
												 "T"
												 "r"
												 "u"
												 "e",
												 "") "]}";
	ASSERT_EQ(agent_ready_pods(list, ips, 3, &n), 0);
	ASSERT_EQ(n, 3); /* at most max */
	ASSERT_STR_EQ(ips[0], "10.0.0.1");
	ASSERT_STR_EQ(ips[1], "fd00::5");
	ASSERT_STR_EQ(ips[2], "10.0.0.7");
	ASSERT_EQ(agent_ready_pods("{\"items\":[]}", ips, 3, &n), 0);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(agent_ready_pods("{\"items\":{}}", ips, 3, &n), -EINVAL);
	ASSERT_EQ(agent_ready_pods("nope", ips, 3, &n), -EINVAL);
}

int main(void)
{
	test_hello();
	test_http_head();
	test_port();
	test_restore_body();
	test_selector_query();
	test_ready_pods();
	printf("ok - agent\n");
	return 0;
}
