/* Unit tests for k8s/intercept: the verdicts on a Service (72, 70, 69 and
 * the port choices), named targetPorts from a pod, the objects of
 * docs/intercept.md, the selector swap and its restore. */
#include "core/util.h"
#include "k8s/intercept.h"
#include "test.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	if (!j)
		TEST_FAIL_("bad test JSON: %s: %s", e.text, s);
	return j;
}

#define SVC_HEAD                                                                                   \
	"{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"web\","              \
	"\"namespace\":\"default\",\"resourceVersion\":\"42\"},\"spec\":"

static const char *web =
    SVC_HEAD "{\"selector\":{\"app\":\"web\",\"tier\":\"front\"},\"ports\":["
	     "{\"name\":\"http\",\"port\":80,\"targetPort\":\"web\",\"protocol\":\"TCP\"},"
	     "{\"name\":\"admin\",\"port\":9000,\"targetPort\":9001},"
	     "{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\",\"targetPort\":53}]},"
	     "\"status\":{\"loadBalancer\":{}}}";

static enum icpt_verdict check(const char *svc, const char *const *specs, size_t n, int local,
			       struct icpt_found *f, char *detail, size_t dn)
{
	struct icpt_spec sp[8];
	char err[200];
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(icpt_spec_parse(specs[i], &sp[i], err, sizeof err), 0);
	json_t *j = parse(svc);
	enum icpt_verdict v = icpt_check_service(j, sp, n, local, f, detail, dn);
	json_decref(j);
	return v;
}

static void test_spec_parse(void)
{
	struct icpt_spec s;
	char err[200];
	ASSERT_EQ(icpt_spec_parse("8080", &s, err, sizeof err), 0);
	ASSERT_STR_EQ(s.port, "8080");
	ASSERT_EQ(s.local, 0);
	ASSERT_EQ(icpt_spec_parse("http:18080", &s, err, sizeof err), 0);
	ASSERT_STR_EQ(s.port, "http");
	ASSERT_EQ(s.local, 18080);
	ASSERT_EQ(icpt_spec_parse("80:8080", &s, err, sizeof err), 0);
	ASSERT_EQ(s.local, 8080);
	static const char *const bad[] = {"",	 ":80",	 "0",	 "65536",  "Http", "a_b",
					  "80:", "80:0", "80:x", "80:1:2", "x\x1b"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		ASSERT_EQ(icpt_spec_parse(bad[i], &s, err, sizeof err), -EINVAL);
		ASSERT(err[0]);
		ASSERT(!strchr(err, '\x1b'));
	}
}

static void test_not_interceptable(void)
{
	struct icpt_found f;
	char d[400];
	ASSERT_EQ(check(SVC_HEAD "{\"type\":\"ExternalName\",\"externalName\":\"db.example.com\"}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_NOT_INTERCEPTABLE);
	ASSERT_STR_CONTAINS(d, "ExternalName (db.example.com)");
	ASSERT_EQ(check(SVC_HEAD "{\"ports\":[{\"port\":80}]}}", NULL, 0, 0, &f, d, sizeof d),
		  ICPT_NOT_INTERCEPTABLE);
	ASSERT_STR_CONTAINS(d, "no pod selector");
	ASSERT_EQ(check(SVC_HEAD "{\"selector\":{},\"ports\":[{\"port\":80}]}}", NULL, 0, 0, &f, d,
			sizeof d),
		  ICPT_NOT_INTERCEPTABLE);
	/* 72 comes before 70 and 69 */
	ASSERT_EQ(check("{\"kind\":\"Service\",\"metadata\":{\"annotations\":{"
			"\"devbridge.dev/session\":\"x\"}},\"spec\":{\"ports\":[{\"port\":53,"
			"\"protocol\":\"UDP\"}]}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_NOT_INTERCEPTABLE);
	ASSERT_EQ(check("[1]", NULL, 0, 0, &f, d, sizeof d), ICPT_BAD_JSON);
	ASSERT_EQ(check("{\"kind\":\"Pod\",\"spec\":{}}", NULL, 0, 0, &f, d, sizeof d),
		  ICPT_BAD_JSON);
}

static void test_ports_default_every_tcp_port(void)
{
	struct icpt_found f;
	char d[400];
	ASSERT_EQ(check(web, NULL, 0, 0, &f, d, sizeof d), ICPT_OK);
	ASSERT_EQ(f.n_ports, 2);
	ASSERT_EQ(f.ports[0].port, 80);
	ASSERT_STR_EQ(f.ports[0].name, "http");
	ASSERT_STR_EQ(f.ports[0].target_name, "web");
	ASSERT_EQ(f.ports[0].target, 0);
	ASSERT_EQ(f.ports[0].local, 80);
	ASSERT_EQ(f.ports[1].port, 9000);
	ASSERT_EQ(f.ports[1].target, 9001);
	ASSERT_EQ(f.ports[1].local, 9000);
	ASSERT(f.named_targets);
	/* the UDP port is left out, and said so */
	json_t *svc = parse(web), *w = json_array();
	icpt_port_warnings(svc, &f, w);
	ASSERT_EQ(json_array_size(w), 1);
	ASSERT_STR_CONTAINS(json_string_value(json_array_get(w, 0)), "port 53/UDP (dns)");
	json_decref(w);
	json_decref(svc);
	/* no targetPort: the port itself */
	ASSERT_EQ(check(SVC_HEAD "{\"selector\":{\"a\":\"b\"},\"ports\":[{\"port\":81}]}}", NULL, 0,
			0, &f, d, sizeof d),
		  ICPT_OK);
	ASSERT_EQ(f.ports[0].target, 81);
	ASSERT(!f.named_targets);
}

static void test_ports_chosen(void)
{
	struct icpt_found f;
	char d[400];
	const char *by_name[] = {"admin"};
	ASSERT_EQ(check(web, by_name, 1, 19000, &f, d, sizeof d), ICPT_OK);
	ASSERT_EQ(f.n_ports, 1);
	ASSERT_EQ(f.ports[0].port, 9000);
	ASSERT_EQ(f.ports[0].local, 19000);
	const char *mapped[] = {"80:18080", "9000:19000"};
	ASSERT_EQ(check(web, mapped, 2, 0, &f, d, sizeof d), ICPT_OK);
	ASSERT_EQ(f.ports[0].local, 18080);
	ASSERT_EQ(f.ports[1].local, 19000);
	const char *none[] = {"8443"};
	ASSERT_EQ(check(web, none, 1, 0, &f, d, sizeof d), ICPT_NO_PORT);
	ASSERT_STR_CONTAINS(d,
			    "no port 8443 (ports: 80/TCP (http), 9000/TCP (admin), 53/UDP (dns))");
	const char *twice[] = {"80", "http"};
	ASSERT_EQ(check(web, twice, 2, 0, &f, d, sizeof d), ICPT_USAGE);
	/* --local-port needs one port */
	ASSERT_EQ(check(web, NULL, 0, 8080, &f, d, sizeof d), ICPT_USAGE);
	ASSERT_STR_CONTAINS(d, "--local-port needs a single port");
	const char *both[] = {"80:1234"};
	ASSERT_EQ(check(web, both, 1, 8080, &f, d, sizeof d), ICPT_USAGE);
	const char *clash[] = {"80:7000", "9000:7000"};
	ASSERT_EQ(check(web, clash, 2, 0, &f, d, sizeof d), ICPT_USAGE);
	ASSERT_STR_CONTAINS(d, "local port 7000");
}

static void test_udp(void)
{
	struct icpt_found f;
	char d[400];
	const char *dns[] = {"dns"};
	ASSERT_EQ(check(web, dns, 1, 0, &f, d, sizeof d), ICPT_UDP);
	ASSERT_STR_CONTAINS(d, "port 53 is UDP");
	ASSERT_EQ(check(SVC_HEAD "{\"selector\":{\"a\":\"b\"},\"ports\":[{\"port\":53,"
				 "\"protocol\":\"UDP\"},{\"port\":54,\"protocol\":\"SCTP\"}]}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_UDP);
	ASSERT_STR_CONTAINS(d, "no TCP port");
}

static void test_active(void)
{
	struct icpt_found f;
	char d[400];
	ASSERT_EQ(check("{\"kind\":\"Service\",\"metadata\":{\"annotations\":{"
			"\"devbridge.dev/session\":\"abc\\u001b[31m\"}},\"spec\":{\"selector\":{"
			"\"a\":\"b\"},\"ports\":[{\"port\":80}]}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_ACTIVE);
	ASSERT_STR_CONTAINS(d, "already intercepted");
	ASSERT(!strchr(d, '\x1b'));
	ASSERT_STR_EQ(f.session, "abc?[31m");
}

static const char *pods =
    "{\"items\":["
    "{\"metadata\":{\"name\":\"web-going\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},"
    "\"spec\":{\"containers\":[{\"ports\":[{\"name\":\"web\",\"containerPort\":1}]}]},"
    "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}},"
    "{\"metadata\":{\"name\":\"web-starting\"},\"status\":{\"conditions\":[{\"type\":\"Ready\","
    "\"status\":\"False\"}]}},"
    "{\"metadata\":{\"name\":\"web-1\"},\"spec\":{\"containers\":[{\"name\":\"side\"},"
    "{\"name\":\"app\",\"ports\":[{\"name\":\"web\",\"containerPort\":8080,\"protocol\":\"UDP\"},"
    "{\"name\":\"web\",\"containerPort\":8081},{\"name\":\"metrics\",\"containerPort\":9090}]}]},"
    "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}]}";

static void test_named_targets(void)
{
	struct icpt_found f;
	char d[400];
	ASSERT_EQ(check(web, NULL, 0, 0, &f, d, sizeof d), ICPT_OK);
	json_t *list = parse(pods);
	const json_t *pod = icpt_ready_pod(list);
	ASSERT(pod);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(pod, "metadata"), "name")),
		      "web-1");
	ASSERT_EQ(icpt_resolve_targets(&f, pod, d, sizeof d), 0);
	ASSERT_EQ(f.ports[0].target, 8081); /* the TCP one */
	ASSERT_STR_EQ(f.ports[0].target_name, "web");
	ASSERT_EQ(f.ports[1].target, 9001);
	ASSERT_EQ(icpt_check_targets(&f, d, sizeof d), 0);
	/* a name the pod lacks */
	ASSERT_EQ(check(SVC_HEAD "{\"selector\":{\"a\":\"b\"},\"ports\":[{\"port\":80,"
				 "\"targetPort\":\"grpc\"}]}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_OK);
	ASSERT_EQ(icpt_resolve_targets(&f, pod, d, sizeof d), -ENOENT);
	ASSERT_STR_CONTAINS(d, "named 'grpc', which pod web-1 does not have");
	json_decref(list);
	list = parse("{\"items\":[]}");
	ASSERT(!icpt_ready_pod(list));
	json_decref(list);
	ASSERT(!icpt_ready_pod(NULL));
}

static void test_targets(void)
{
	struct icpt_found f;
	char d[400];
	ASSERT_EQ(check(SVC_HEAD "{\"selector\":{\"a\":\"b\"},\"ports\":[{\"port\":80,"
				 "\"targetPort\":8080},{\"port\":81,\"targetPort\":8080}]}}",
			NULL, 0, 0, &f, d, sizeof d),
		  ICPT_OK);
	ASSERT_EQ(icpt_check_targets(&f, d, sizeof d), -EINVAL);
	ASSERT_STR_CONTAINS(d, "ports 80 and 81 both target port 8080");
	/* the agent's own ports move out of the way */
	struct icpt_port p[2] = {{.port = 1, .target = 4200}, {.port = 2, .target = 4202}};
	int control, health;
	icpt_agent_ports(p, 2, &control, &health);
	ASSERT_EQ(control, 4201);
	ASSERT_EQ(health, 4203);
	icpt_agent_ports(p, 0, &control, &health);
	ASSERT_EQ(control, ICPT_CONTROL_PORT);
	ASSERT_EQ(health, ICPT_HEALTH_PORT);
}

static void test_selector_string(void)
{
	char buf[64];
	json_t *svc = parse(web);
	ASSERT_EQ(icpt_selector_string(svc, buf, sizeof buf), 0);
	ASSERT_STR_EQ(buf, "app=web,tier=front");
	ASSERT_EQ(icpt_selector_string(svc, buf, 10), -EINVAL); /* never cut */
	json_decref(svc);
	svc = parse("{\"spec\":{\"selector\":{\"a\":\"b,c=d\"}}}");
	ASSERT_EQ(icpt_selector_string(svc, buf, sizeof buf), -EINVAL);
	json_decref(svc);
	svc = parse("{\"spec\":{\"selector\":{\"app.kubernetes.io/name\":\"x\",\"e\":\"\"}}}");
	ASSERT_EQ(icpt_selector_string(svc, buf, sizeof buf), 0);
	ASSERT_STR_EQ(buf, "app.kubernetes.io/name=x,e=");
	json_decref(svc);
}

static const char *sid = "0123456789";
static const char *token = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static json_t *objects(enum intercept_mode mode, struct icpt_port *ports, size_t n)
{
	struct icpt_params p = {.namespace = "team",
				.service = "web",
				.sid = sid,
				.token = token,
				.image = "reg/agent:1",
				.mode = mode,
				.ports = ports,
				.n_ports = n};
	json_t *o = icpt_objects(&p);
	ASSERT(o);
	ASSERT_EQ(json_array_size(o), 5);
	return o;
}

static const char *path_str(const json_t *o, const char *path)
{
	char key[64];
	const json_t *cur = o;
	while (*path && cur) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof key, "%.*s", (int)n, path);
		if (key[0] >= '0' && key[0] <= '9')
			cur = json_array_get(cur, (size_t)atoi(key));
		else
			cur = json_object_get(cur, key);
		path += n + (path[n] == '.');
	}
	if (json_is_string(cur))
		return json_string_value(cur);
	static char num[32];
	if (json_is_integer(cur)) {
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(cur));
		return num;
	}
	if (json_is_boolean(cur))
		return json_is_true(cur) ? "true" : "false";
	return NULL;
}

static void test_objects(void)
{
	struct icpt_port ports[] = {
	    {.port = 80, .name = "http", .target = 8080, .target_name = "web", .local = 80},
	    {.port = 9000, .name = "a-very-long-port-name", .target = 9001, .local = 19000},
	    {.port = 7000, .name = "control", .target = 7001, .local = 7000},
	};
	json_t *o = objects(INTERCEPT_STEAL, ports, 3);
	static const char *const kinds[] = {"ServiceAccount", "Role", "RoleBinding", "Secret",
					    "Job"};
	for (size_t i = 0; i < 5; i++) {
		json_t *x = json_array_get(o, i);
		ASSERT_STR_EQ(path_str(x, "kind"), kinds[i]);
		ASSERT_STR_EQ(path_str(x, "metadata.name"), "devbridge-agent-0123456789");
		ASSERT_STR_EQ(path_str(x, "metadata.namespace"), "team");
		json_t *l = json_object_get(json_object_get(x, "metadata"), "labels");
		ASSERT_STR_EQ(json_string_value(json_object_get(l, ICPT_LABEL_MANAGED)),
			      "devbridge");
		ASSERT_STR_EQ(json_string_value(json_object_get(l, ICPT_LABEL_SESSION)), sid);
		ASSERT_EQ(json_object_size(l), 2);
	}
	json_t *sa = json_array_get(o, 0), *role = json_array_get(o, 1), *rb = json_array_get(o, 2),
	       *secret = json_array_get(o, 3), *job = json_array_get(o, 4);
	ASSERT_STR_EQ(path_str(sa, "automountServiceAccountToken"), "true");
	/* Role: the one Service only; no pods with steal */
	ASSERT_EQ(json_array_size(json_object_get(role, "rules")), 1);
	ASSERT_STR_EQ(path_str(role, "rules.0.resources.0"), "services");
	ASSERT_STR_EQ(path_str(role, "rules.0.resourceNames.0"), "web");
	ASSERT_EQ(json_array_size(json_object_get(json_array_get(json_object_get(role, "rules"), 0),
						  "resourceNames")),
		  1);
	ASSERT_STR_EQ(path_str(role, "rules.0.verbs.0"), "get");
	ASSERT_STR_EQ(path_str(role, "rules.0.verbs.1"), "update");
	ASSERT_STR_EQ(path_str(role, "rules.0.verbs.2"), "patch");
	ASSERT_STR_EQ(path_str(rb, "subjects.0.kind"), "ServiceAccount");
	ASSERT_STR_EQ(path_str(rb, "subjects.0.name"), "devbridge-agent-0123456789");
	ASSERT_STR_EQ(path_str(rb, "subjects.0.namespace"), "team");
	ASSERT_STR_EQ(path_str(rb, "roleRef.kind"), "Role");
	ASSERT_STR_EQ(path_str(rb, "roleRef.name"), "devbridge-agent-0123456789");
	ASSERT_STR_EQ(path_str(secret, "type"), "Opaque");
	ASSERT_STR_EQ(path_str(secret, "data.token"),
		      "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmYwMDExMjIzMzQ0NTU2Njc3ODg5OWFh"
		      "YmJjY2RkZWVmZg==");
	/* Job */
	ASSERT_STR_EQ(path_str(job, "apiVersion"), "batch/v1");
	ASSERT_STR_EQ(path_str(job, "spec.backoffLimit"), "0");
	ASSERT_STR_EQ(path_str(job, "spec.activeDeadlineSeconds"), "14400");
	ASSERT_STR_EQ(path_str(job, "spec.ttlSecondsAfterFinished"), "60");
	json_t *tl = json_object_get(
	    json_object_get(json_object_get(json_object_get(job, "spec"), "template"), "metadata"),
	    "labels");
	ASSERT_EQ(json_object_size(tl), 3);
	ASSERT_STR_EQ(json_string_value(json_object_get(tl, ICPT_LABEL_POD)), sid);
	ASSERT_STR_EQ(path_str(job, "spec.template.spec.restartPolicy"), "Never");
	ASSERT_STR_EQ(path_str(job, "spec.template.spec.serviceAccountName"),
		      "devbridge-agent-0123456789");
	ASSERT_STR_EQ(path_str(job, "spec.template.spec.securityContext.runAsNonRoot"), "true");
	ASSERT_STR_EQ(path_str(job, "spec.template.spec.securityContext.runAsUser"), "65532");
	ASSERT_STR_EQ(path_str(job, "spec.template.spec.securityContext.seccompProfile.type"),
		      "RuntimeDefault");
	const char *c = "spec.template.spec.containers.0.";
	char k[200];
#define C(x) (snprintf(k, sizeof k, "%s%s", c, x), path_str(job, k))
	ASSERT_EQ(
	    json_array_size(json_object_get(
		json_object_get(json_object_get(json_object_get(job, "spec"), "template"), "spec"),
		"containers")),
	    1);
	ASSERT_STR_EQ(C("name"), "agent");
	ASSERT_STR_EQ(C("image"), "reg/agent:1");
	ASSERT_STR_EQ(C("securityContext.allowPrivilegeEscalation"), "false");
	ASSERT_STR_EQ(C("securityContext.readOnlyRootFilesystem"), "true");
	ASSERT_STR_EQ(C("securityContext.capabilities.drop.0"), "ALL");
	ASSERT_STR_EQ(C("readinessProbe.httpGet.path"), "/healthz");
	ASSERT_STR_EQ(C("readinessProbe.httpGet.port"), "4201");
	ASSERT_STR_EQ(C("env.0.name"), "DEVBRIDGE_AGENT_TOKEN");
	ASSERT_STR_EQ(C("env.0.valueFrom.secretKeyRef.name"), "devbridge-agent-0123456789");
	ASSERT_STR_EQ(C("env.0.valueFrom.secretKeyRef.key"), "token");
	ASSERT(!C("env.0.value")); /* never the token itself */
	/* ports: the named targetPort's name; a Service port name too long
	 * for a container port left out; "control" taken by a target */
	ASSERT_STR_EQ(C("ports.0.name"), "web");
	ASSERT_STR_EQ(C("ports.0.containerPort"), "8080");
	ASSERT(!C("ports.1.name"));
	ASSERT_STR_EQ(C("ports.1.containerPort"), "9001");
	ASSERT_STR_EQ(C("ports.2.name"), "control");
	ASSERT_STR_EQ(C("ports.2.containerPort"), "7001");
	ASSERT_STR_EQ(C("ports.3.name"), "db-control");
	ASSERT_STR_EQ(C("ports.3.containerPort"), "4200");
	ASSERT_STR_EQ(C("ports.4.name"), "health");
	ASSERT_STR_EQ(C("ports.4.containerPort"), "4201");
	/* the command line of docs/intercept.md */
	char *cmd = json_dumps(
	    json_object_get(
		json_array_get(
		    json_object_get(
			json_object_get(json_object_get(json_object_get(job, "spec"), "template"),
					"spec"),
			"containers"),
		    0),
		"command"),
	    JSON_COMPACT);
	ASSERT_STR_EQ(cmd,
		      "[\"devbridge\",\"agent\",\"--namespace\",\"team\",\"--service\",\"web\","
		      "\"--session\",\"0123456789\",\"--port\",\"80:8080\",\"--port\","
		      "\"9000:9001\",\"--port\",\"7000:7001\",\"--mode\",\"steal\"]");
	free(cmd);
	json_decref(o);
#undef C

	/* mirror: pods get/list for the agent; ports clear of 4200 moved */
	struct icpt_port p2[] = {{.port = 4200, .target = 4200, .local = 4200}};
	o = objects(INTERCEPT_MIRROR, p2, 1);
	role = json_array_get(o, 1);
	ASSERT_EQ(json_array_size(json_object_get(role, "rules")), 2);
	ASSERT_STR_EQ(path_str(role, "rules.1.resources.0"), "pods");
	ASSERT_STR_EQ(path_str(role, "rules.1.verbs.0"), "get");
	ASSERT_STR_EQ(path_str(role, "rules.1.verbs.1"), "list");
	struct icpt_params pp = {.namespace = "team",
				 .service = "web",
				 .sid = sid,
				 .token = token,
				 .image = "i",
				 .mode = INTERCEPT_MIRROR,
				 .ports = p2,
				 .n_ports = 1};
	json_t *argv = icpt_agent_command(&pp);
	cmd = json_dumps(argv, JSON_COMPACT);
	json_decref(argv);
	ASSERT_STR_CONTAINS(cmd, "\"--mode\",\"mirror\",\"--control-port\",\"4201\","
				 "\"--health-port\",\"4202\"]");
	free(cmd);
	json_decref(o);
}

static void test_swap_and_restore(void)
{
	json_t *svc = parse(web);
	json_t *s = icpt_swapped_service(svc, sid, INTERCEPT_MIRROR);
	ASSERT(s);
	ASSERT(!json_object_get(s, "status"));
	json_t *sel = json_object_get(json_object_get(s, "spec"), "selector");
	ASSERT_EQ(json_object_size(sel), 1);
	ASSERT_STR_EQ(json_string_value(json_object_get(sel, ICPT_LABEL_POD)), sid);
	ASSERT_STR_EQ(path_str(s, "metadata.resourceVersion"), "42");
	json_t *ann = json_object_get(json_object_get(s, "metadata"), "annotations");
	ASSERT_STR_EQ(json_string_value(json_object_get(ann, ICPT_ANN_SESSION)), sid);
	ASSERT_STR_EQ(json_string_value(json_object_get(ann, ICPT_ANN_ORIGINAL)),
		      "{\"app\":\"web\",\"tier\":\"front\"}");
	ASSERT_STR_EQ(json_string_value(json_object_get(ann, ICPT_ANN_MODE)), "mirror");
	/* the original is not touched */
	ASSERT_EQ(json_object_size(json_object_get(json_object_get(svc, "spec"), "selector")), 2);

	json_t *back = NULL;
	ASSERT_EQ(icpt_restored_service(s, "9999999999", &back), -ENOENT);
	ASSERT_EQ(icpt_restored_service(svc, sid, &back), -ENOENT);
	ASSERT_EQ(icpt_restored_service(s, sid, &back), 0);
	json_object_del(svc, "status");
	ASSERT(json_equal(back, svc)); /* exactly as it was */
	json_decref(back);

	/* annotations of its own are kept */
	json_t *svc2 = parse(SVC_HEAD "{\"selector\":{\"a\":\"b\"}}}");
	json_object_set_new(json_object_get(svc2, "metadata"), "annotations",
			    json_pack("{s:s}", "team", "x"));
	json_t *s2 = icpt_swapped_service(svc2, sid, INTERCEPT_STEAL);
	ASSERT_EQ(icpt_restored_service(s2, sid, &back), 0);
	ASSERT(json_equal(back, svc2));
	json_decref(back);
	/* a broken original-selector annotation is refused */
	json_object_set_new(json_object_get(json_object_get(s2, "metadata"), "annotations"),
			    ICPT_ANN_ORIGINAL, json_string("{\"a\":1}"));
	ASSERT_EQ(icpt_restored_service(s2, sid, &back), -EINVAL);
	json_object_set_new(json_object_get(json_object_get(s2, "metadata"), "annotations"),
			    ICPT_ANN_ORIGINAL, json_string("{}"));
	ASSERT_EQ(icpt_restored_service(s2, sid, &back), -EINVAL);
	json_decref(s2);
	json_decref(svc2);
	json_decref(s);
	/* no selector: nothing to swap */
	svc2 = parse(SVC_HEAD "{}}");
	ASSERT(!icpt_swapped_service(svc2, sid, INTERCEPT_STEAL));
	json_decref(svc2);
	json_decref(svc);
}

static void test_rights(void)
{
	size_t n;
	const struct icpt_right *r = icpt_rights(&n);
	/* docs/intercept.md, "The CLI's order", step 1 */
	static const char *const want[] = {
	    "create jobs.batch",
	    "delete jobs.batch",
	    "get jobs.batch",
	    "list jobs.batch",
	    "create serviceaccounts",
	    "delete serviceaccounts",
	    "create roles.rbac.authorization.k8s.io",
	    "delete roles.rbac.authorization.k8s.io",
	    "create rolebindings.rbac.authorization.k8s.io",
	    "delete rolebindings.rbac.authorization.k8s.io",
	    "create secrets",
	    "delete secrets",
	    "get services/web",
	    "update services/web",
	    "patch services/web",
	    "get pods",
	    "list pods",
	    "create pods/portforward",
	};
	ASSERT_EQ(n, sizeof want / sizeof want[0]);
	char buf[160];
	for (size_t i = 0; i < n; i++) {
		icpt_right_str(&r[i], "web", buf, sizeof buf);
		ASSERT_STR_EQ(buf, want[i]);
	}
}

static void test_can_i(void)
{
	size_t n;
	const struct icpt_right *r = icpt_rights(&n);
	char res[160];
	const char *args[ICPT_CAN_I_ARGS];
	bool seen_named = false, seen_sub = false;
	for (size_t i = 0; i < n; i++) {
		icpt_can_i_args(&r[i], "web", "shop", res, sizeof res, args);
		ASSERT_STR_EQ(args[0], "auth");
		ASSERT_STR_EQ(args[1], "can-i");
		ASSERT_STR_EQ(args[2], r[i].verb);
		ASSERT(args[3] == res);
		ASSERT_STR_EQ(args[4], "--namespace");
		ASSERT_STR_EQ(args[5], "shop");
		if (r[i].named && strcmp(r[i].verb, "update") == 0) {
			ASSERT_STR_EQ(res, "services/web");
			/* no Service: about every one */
			icpt_can_i_args(&r[i], NULL, "shop", res, sizeof res, args);
			ASSERT_STR_EQ(res, "services");
			seen_named = true;
		}
		if (r[i].subresource) {
			ASSERT_STR_EQ(res, "pods");
			ASSERT_STR_EQ(args[6], "--subresource");
			ASSERT_STR_EQ(args[7], "portforward");
			ASSERT(args[8] == NULL);
			seen_sub = true;
		} else {
			ASSERT(args[6] == NULL);
		}
		if (strcmp(r[i].resource, "jobs") == 0)
			ASSERT_STR_EQ(res, "jobs.batch");
	}
	ASSERT(seen_named && seen_sub);
	ASSERT_EQ(icpt_can_i_answer(0, "yes\n"), 1);
	ASSERT_EQ(icpt_can_i_answer(1, "no\n"), 0);
	ASSERT_EQ(icpt_can_i_answer(1, "no - RBAC: ...\n"), 0);
	ASSERT_EQ(icpt_can_i_answer(1, ""), -1);
	ASSERT_EQ(icpt_can_i_answer(1, NULL), -1);
	ASSERT_EQ(icpt_can_i_answer(1, "yes\n"), -1); /* "yes" with a failure: not an answer */
}

static const char *mesh_warning(json_t *w, const char *mesh)
{
	size_t i;
	json_t *v;
	json_array_foreach(w, i, v)
	{
		const char *s = json_string_value(v);
		char head[64];
		snprintf(head, sizeof head, "service mesh %s (", mesh);
		if (s && strncmp(s, head, strlen(head)) == 0)
			return s;
	}
	return NULL;
}

static void test_mesh_warnings(void)
{
	/* none: nothing said */
	json_t *w = json_array();
	json_t *ns = parse("{\"metadata\":{\"name\":\"shop\",\"labels\":{\"istio-injection\":"
			   "\"disabled\"},\"annotations\":{\"linkerd.io/inject\":\"disabled\"}}}");
	json_t *pl = parse("{\"items\":[{\"metadata\":{\"name\":\"web-1\",\"annotations\":{"
			   "\"sidecar.istio.io/inject\":\"false\"}},\"spec\":{\"containers\":[{"
			   "\"name\":\"app\"}]}}]}");
	icpt_mesh_warnings(ns, pl, w);
	icpt_mesh_warnings(NULL, NULL, w);
	ASSERT_EQ(json_array_size(w), 0);
	json_decref(ns);
	json_decref(pl);

	/* Istio by the namespace label and the sidecar; one warning per mesh */
	ns = parse(
	    "{\"metadata\":{\"name\":\"shop\",\"labels\":{\"istio-injection\":\"enabled\"}}}");
	pl =
	    parse("{\"items\":["
		  "{\"metadata\":{\"name\":\"web-1\"},\"spec\":{\"containers\":[{\"name\":\"app\"},"
		  "{\"name\":\"istio-proxy\"}]}},"
		  "{\"metadata\":{\"name\":\"web-2\"},\"spec\":{\"initContainers\":[{\"name\":"
		  "\"istio-proxy\"}],\"containers\":[{\"name\":\"app\"}]}},"
		  "{\"metadata\":{\"name\":\"web-3\"},\"spec\":{\"containers\":[{\"name\":"
		  "\"istio-proxy\"}]}}]}");
	icpt_mesh_warnings(ns, pl, w);
	ASSERT_EQ(json_array_size(w), 1);
	const char *s = mesh_warning(w, "Istio");
	ASSERT(s);
	ASSERT_STR_CONTAINS(s, "namespace shop has label istio-injection=enabled; pod web-1 has "
			       "container istio-proxy; pod web-2 has container istio-proxy; ...)");
	ASSERT(!strstr(s, "web-3")); /* three pieces of evidence are enough */
	ASSERT_STR_CONTAINS(s, "goes on anyway");
	ASSERT_STR_CONTAINS(s, "inject a istio-proxy sidecar into the agent's pod");
	ASSERT_STR_CONTAINS(s, "mTLS");
	ASSERT_STR_CONTAINS(s, "encrypted");
	json_decref(ns);
	json_decref(pl);
	json_decref(w);

	/* Linkerd by annotation (namespace) and pod label; Istio by revision
	 * and the pod's annotation: both said */
	w = json_array();
	ns = parse("{\"metadata\":{\"name\":\"ld\",\"annotations\":{\"linkerd.io/inject\":"
		   "\"enabled\"},\"labels\":{\"istio.io/rev\":\"canary\"}}}");
	pl = parse("{\"items\":[{\"metadata\":{\"name\":\"web-1\",\"labels\":{"
		   "\"sidecar.istio.io/inject\":\"true\"}},\"spec\":{\"containers\":[{\"name\":"
		   "\"linkerd-proxy\"}]}}]}");
	icpt_mesh_warnings(ns, pl, w);
	ASSERT_EQ(json_array_size(w), 2);
	s = mesh_warning(w, "Istio");
	ASSERT(s);
	ASSERT_STR_CONTAINS(s, "(namespace ld has label istio.io/rev=canary; pod web-1 has label "
			       "sidecar.istio.io/inject=true)");
	s = mesh_warning(w, "Linkerd");
	ASSERT(s);
	ASSERT_STR_CONTAINS(s, "(namespace ld has annotation linkerd.io/inject=enabled; pod web-1 "
			       "has container linkerd-proxy)");
	ASSERT_STR_CONTAINS(s, "linkerd-proxy sidecar");
	json_decref(ns);
	json_decref(pl);
	json_decref(w);

	/* a peer's text is cleaned */
	w = json_array();
	pl = parse("{\"items\":[{\"metadata\":{\"name\":\"a\\u001b[31mb\",\"labels\":{"
		   "\"linkerd.io/inject\":\"ingress\"}}}]}");
	icpt_mesh_warnings(NULL, pl, w);
	ASSERT_EQ(json_array_size(w), 1);
	ASSERT(!strchr(json_string_value(json_array_get(w, 0)), 0x1b));
	json_decref(pl);
	json_decref(w);
}

static void test_pod_security(void)
{
	char b[64];
	json_t *ns = parse("{\"metadata\":{\"labels\":{\"pod-security.kubernetes.io/enforce\":"
			   "\"restricted\",\"pod-security.kubernetes.io/warn\":\"baseline\"}}}");
	icpt_pod_security(ns, b, sizeof b);
	ASSERT_STR_EQ(b, "restricted");
	json_decref(ns);
	ns = parse("{\"metadata\":{\"labels\":{\"x\":\"y\"}}}");
	icpt_pod_security(ns, b, sizeof b);
	ASSERT_STR_EQ(b, "");
	icpt_pod_security(NULL, b, sizeof b);
	ASSERT_STR_EQ(b, "");
	json_decref(ns);
}

static void test_ids(void)
{
	char a[ICPT_SID_LEN + 1], b[ICPT_TOKEN_LEN + 1];
	ASSERT_EQ(random_hex(a, ICPT_SID_LEN), 0);
	ASSERT_EQ(random_hex(b, ICPT_TOKEN_LEN), 0);
	ASSERT(icpt_hex_ok(a, ICPT_SID_LEN));
	ASSERT(icpt_hex_ok(b, ICPT_TOKEN_LEN));
	ASSERT(!icpt_hex_ok("0123456789A", 11));
	ASSERT(!icpt_hex_ok("012", 4));
	char c[ICPT_SID_LEN + 1];
	ASSERT_EQ(random_hex(c, ICPT_SID_LEN), 0);
	ASSERT(strcmp(a, c) != 0); /* 40 random bits twice */
	char odd[8];
	ASSERT_EQ(random_hex(odd, 7), 0);
	ASSERT(icpt_hex_ok(odd, 7));
	char name[64];
	icpt_object_name(name, sizeof name, a);
	ASSERT_EQ(strncmp(name, "devbridge-agent-", 16), 0);
	ASSERT_EQ(strlen(name), 26);
	ASSERT_STR_CONTAINS(icpt_default_image(), "ghcr.io/devbridge/agent:");
}

/* The rights as one List of SelfSubjectAccessReviews, and its answers. */
static void test_ssar_list(void)
{
	size_t nr;
	const struct icpt_right *rt = icpt_rights(&nr);
	json_t *l = icpt_ssar_list("web", "default");
	ASSERT(l);
	json_t *items = json_object_get(l, "items");
	ASSERT_EQ(json_array_size(items), nr);
	for (size_t i = 0; i < nr; i++) {
		json_t *ra = json_object_get(json_object_get(json_array_get(items, i), "spec"),
					     "resourceAttributes");
		ASSERT(!strcmp(json_string_value(json_object_get(ra, "verb")), rt[i].verb));
		ASSERT(!strcmp(json_string_value(json_object_get(ra, "namespace")), "default"));
		ASSERT_EQ(json_object_get(ra, "name") != NULL, rt[i].named);
		ASSERT_EQ(json_object_get(ra, "subresource") != NULL, rt[i].subresource != NULL);
	}
	/* kubectl's answer: a List of the reviews with a status */
	for (size_t i = 0; i < nr; i++)
		json_object_set_new(json_array_get(items, i), "status",
				    json_pack("{s:b}", "allowed", i != 2));
	char *out = json_dumps(l, 0);
	int ans[64];
	ASSERT_EQ(icpt_ssar_answers(out, ans, nr), 0);
	for (size_t i = 0; i < nr; i++)
		ASSERT_EQ(ans[i], i != 2);
	ASSERT_EQ(icpt_ssar_answers(out, ans, nr + 1), -EINVAL);
	/* as kubectl prints them: one object after the other */
	char seq[8192] = "";
	for (size_t i = 0; i < nr; i++) {
		char *one = json_dumps(json_array_get(items, i), JSON_INDENT(4));
		strcat(seq, one);
		strcat(seq, "\n");
		free(one);
	}
	memset(ans, 0xff, sizeof ans);
	ASSERT_EQ(icpt_ssar_answers(seq, ans, nr), 0);
	for (size_t i = 0; i < nr; i++)
		ASSERT_EQ(ans[i], i != 2);
	ASSERT_EQ(icpt_ssar_answers("{\"status\":{\"allowed\":true}} junk", ans, 1), -EINVAL);
	ASSERT_EQ(icpt_ssar_answers("{\"items\":[{}]}", ans, 1), -EINVAL);
	ASSERT_EQ(icpt_ssar_answers("not json", ans, 1), -EINVAL);
	ASSERT_EQ(icpt_ssar_answers(NULL, ans, 1), -EINVAL);
	free(out);
	json_decref(l);
}

int main(void)
{
	RUN(test_spec_parse);
	RUN(test_ssar_list);
	RUN(test_not_interceptable);
	RUN(test_ports_default_every_tcp_port);
	RUN(test_ports_chosen);
	RUN(test_udp);
	RUN(test_active);
	RUN(test_named_targets);
	RUN(test_targets);
	RUN(test_selector_string);
	RUN(test_objects);
	RUN(test_swap_and_restore);
	RUN(test_rights);
	RUN(test_can_i);
	RUN(test_mesh_warnings);
	RUN(test_pod_security);
	RUN(test_ids);
	return 0;
}
