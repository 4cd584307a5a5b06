/* target.h - what connect is told to reach, and what the cluster says
 * about it: the "[NS/]SVC:PORT[:LOCAL]" syntax of -t, Kubernetes names,
 * and the verdict on a `kubectl get service -o json` answer.  Pure
 * functions (fuzzed: fuzz/fuzz_k8starget.c). */
#ifndef DEVBRIDGE_K8S_TARGET_H
#define DEVBRIDGE_K8S_TARGET_H

#include <stdbool.h>
#include <stddef.h>

/* An RFC 1123 label (namespaces; services are the stricter RFC 1035, but
 * the cluster is the judge of that): [a-z0-9-], 1-63, alphanumeric at
 * both ends. */
bool k8s_dns_label(const char *s);

struct k8s_target {
	char namespace[64]; /* "" = not given */
	char service[64];
	int port;
	int local; /* 0 = not given */
};

/* The name of connect's bridge to svc:port in ns, which keys its files in
 * the state directory: SVC.NS.PORT (labels have no dots, so it is
 * unambiguous); past 64 characters, its first 55 and a hash ("-%08x"),
 * unique still.  buf holds at least 65 bytes. */
void k8s_bridge_name(char *buf, size_t n, const char *svc, const char *ns, int port);

/* Whether `name` has the form k8s_bridge_name gives (LABEL.LABEL.PORT, or
 * 55 characters of one and a hash): a name of that form belongs to
 * connect, whatever it is told at run time (config: one namespace). */
bool k8s_bridge_name_like(const char *name);

/* Parse "SVC:PORT[:LOCAL]" or "NS/SVC:PORT[:LOCAL]".  0, or -EINVAL with
 * a sentence for the user in err. */
int k8s_target_parse(const char *spec, struct k8s_target *t, char *err, size_t errn);

enum k8s_svc_verdict {
	K8S_SVC_OK = 0,
	K8S_SVC_BAD_JSON,    /* not a Service object */
	K8S_SVC_NO_PORT,     /* no such port; detail lists the ports */
	K8S_SVC_UDP,	     /* the port is not TCP; detail names the protocol */
	K8S_SVC_NO_SELECTOR, /* ExternalName or no selector; detail says which */
};

/* Judge `kubectl get service -o json` output for a forward to `port`. */
enum k8s_svc_verdict k8s_service_check(const char *json, size_t len, int port, char *detail,
				       size_t n);

/* For a `kubectl get service -o json` answer that k8s_service_check
 * passed: the name of the port `port` ("" when unnamed; the Endpoints
 * name their ports after it) into name, and the selector as
 * "k=v,k2=v2" (control characters as '?', cut to fit) into selector.
 * 0, or -EINVAL (no such port, a port name that is not [a-z0-9-]{1,63}). */
int k8s_service_port_info(const char *json, size_t len, int port, char *name, size_t nn,
			  char *selector, size_t sn);

#endif
