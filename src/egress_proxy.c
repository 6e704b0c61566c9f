#include "egress_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isolate/resolve.h"
#include "util/log.h"

static bool hook_denied(void *ctx, struct in_addr a)
{
	struct egress_proxy *p = ctx;
	return p->gw && gateway_addr_denied(p->gw, a);
}

static int hook_allow(void *ctx, size_t rule, const struct in_addr *a, size_t n, struct err *e)
{
	struct egress_proxy *p = ctx;
	return p->gw ? gateway_allow_addrs(p->gw, rule, a, n, NULL, e) : 0;
}

static void hook_dns(void *ctx, const struct dns_event *ev)
{
	struct egress_proxy *p = ctx;
	json_t *d = json_pack("{s:o, s:o, s:s, s:s}", "queryName", event_text(ev->query_name), "queryType",
			      event_text(ev->query_type), "decision", ev->decision, "reasonCode", ev->reason);
	if (ev->upstream_id)
		json_object_set_new(d, "upstreamResolverId", event_text(ev->upstream_id));
	if (ev->answer_count >= 0)
		json_object_set_new(d, "answerCount", json_integer(ev->answer_count));
	events_emit(p->es, "observability.v1.dns_query", d, NULL);
}

static void hook_l7(void *ctx, const struct l7_event *ev)
{
	struct egress_proxy *p = ctx;
	json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "destination", ev->destination, "protocol", ev->protocol,
			      "decision", ev->decision, "reasonCode", ev->reason);
	if (ev->server_name)
		json_object_set_new(d, "serverName", event_text(ev->server_name));
	events_emit(p->es, "observability.v1.l7_egress_decision", d, NULL);
}

/* The first `nameserver` of the host's /etc/resolv.conf. */
static int host_nameserver(char *ip, size_t size, struct err *e)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	if (!f)
		return err_sys(e, errno, "DNS proxy: no CELLOS_DNS_UPSTREAM and /etc/resolv.conf");
	char line[512];
	int rc = -1;
	while (rc < 0 && fgets(line, sizeof line, f)) {
		char word[16], addr[64];
		if (sscanf(line, " %15s %63s", word, addr) == 2 && strcmp(word, "nameserver") == 0 &&
		    strlen(addr) < size) {
			snprintf(ip, size, "%s", addr);
			rc = 0;
		}
	}
	fclose(f);
	return rc < 0 ? err_set(e, "DNS proxy: no CELLOS_DNS_UPSTREAM and no nameserver in /etc/resolv.conf") : 0;
}

static int upstream(struct egress_proxy *p, const struct config *cfg, const struct spec *spec, struct err *e)
{
	char ip[64];
	int port = 53;
	json_t *res = spec->dns_authority ? json_object_get(spec->dns_authority, "resolvers") : NULL;
	json_t *first = json_array_get(res, 0);
	json_t *addr = json_object_get(first, "address");
	if (json_is_string(addr) && resolve_split_addr(json_string_value(addr), ip, sizeof ip, &port) == 0) {
		json_t *id = json_object_get(first, "resolverId");
		p->dcfg.upstream_id = json_is_string(id) ? json_string_value(id) : NULL;
	} else if (cfg->dns_upstream_ip[0]) {
		snprintf(ip, sizeof ip, "%s", cfg->dns_upstream_ip);
		port = cfg->dns_upstream_port;
	} else if (host_nameserver(ip, sizeof ip, e) < 0) {
		return -1;
	}
	struct sockaddr_in *v4 = (struct sockaddr_in *)&p->dcfg.upstream;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&p->dcfg.upstream;
	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		p->dcfg.upstream_len = sizeof *v4;
	} else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		p->dcfg.upstream_len = sizeof *v6;
	} else {
		return err_set(e, "DNS proxy: upstream resolver %s is not an address", ip);
	}
	return 0;
}

int egress_proxy_prepare(struct egress_proxy *p, const struct config *cfg, const struct spec *spec,
			 const struct nft_egress *egress, size_t n_egress, struct event_stream *es, uint16_t *l7_port,
			 uint16_t *l7_queue, struct err *e)
{
	*l7_port = 0;
	*l7_queue = 0;
	p->es = es;
	json_t *list = spec->dns_authority ? json_object_get(spec->dns_authority, "hostnameAllowlist") : NULL;
	size_t n_allow = json_array_size(list);
	p->allow = calloc(n_allow + 1, sizeof *p->allow);
	if (!p->allow)
		return err_sys(e, ENOMEM, "DNS proxy");
	for (size_t i = 0; i < n_allow; i++)
		p->allow[i] = json_string_value(json_array_get(list, i));
	struct netpolicy_hooks h = {.denied = hook_denied, .allow = hook_allow, .dns_event = hook_dns,
				    .l7_event = hook_l7, .ctx = p};
	netpolicy_init(&p->np, p->allow, n_allow, &h);
	p->prepared = true;
	p->names = n_allow > 0;
	bool want_l7 = false, want_queue = false;
	for (size_t i = 0; i < n_egress; i++) {
		const struct nft_egress *g = &egress[i];
		if (!g->set)
			continue;
		if (netpolicy_add_rule(&p->np, g->rule, g->host, g->port, g->udp, g->elems, g->n_elems, e) < 0)
			return -1;
		p->names = true;
		want_l7 |= !g->udp && (g->port == 443 || g->port == 80);
		want_queue |= !g->udp && (g->port == 443 || g->port == 80) && g->family == 4;
	}
	/* No resolver to ask is not a reason to refuse the cell (its rules may all
	 * be addresses): the proxy then answers allowed names with SERVFAIL. */
	struct err ue = {0};
	if (upstream(p, cfg, spec, &ue) < 0) {
		log_warn("%s: allowed names get SERVFAIL", ue.msg);
		p->dcfg.upstream_len = 0;
	}
	if (want_l7) {
		if (l7proxy_open(&p->l7, &p->np, L7PROXY_PEEK_TIMEOUT_MS, e) < 0)
			return -1;
		*l7_port = l7proxy_port(p->l7);
	}
	if (want_queue) {
		/* Decided on the queue, so that the kernel forwards an allowed flow;
		 * the proxy (already listening) is the fallback. */
		struct err qe = {0};
		if (l7queue_open(&p->l7q, &p->np, L7PROXY_PEEK_TIMEOUT_MS, &qe) == 0)
			*l7_queue = l7queue_num(p->l7q);
		else
			log_debug("%s: the SNI/Host check proxies 443/80", qe.msg);
	}
	return 0;
}

int egress_proxy_start(struct egress_proxy *p, struct gateway *gw, struct err *e)
{
	p->gw = gw;
	p->dcfg.listen = gw->host_addr;
	p->dcfg.port = GATEWAY_DNS_PORT;
	p->dcfg.timeout_ms = DNSPROXY_TIMEOUT_MS;
	p->dcfg.np = &p->np;
	if (dnsproxy_open(&p->dns, &p->dcfg, e) < 0)
		return -1;
	if (p->l7 && l7proxy_listen(p->l7, gw->host_if, gw->cell_addr, e) < 0)
		return -1;
	if (p->l7q && !gw->l7_queue) { /* the kernel refused the queue rule: all is proxied */
		l7queue_close(p->l7q);
		p->l7q = NULL;
	}
	if (p->l7q && l7queue_start(p->l7q, gw->host_if, gw->cell_addr, e) < 0)
		return -1;
	return 0;
}

void egress_proxy_preload(const struct egress_proxy *p)
{
	if (p->dns && p->names)
		dnsproxy_preload();
}

void egress_proxy_pollfds(const struct egress_proxy *p, struct pollfd *fds)
{
	fds[0] = (struct pollfd){.fd = p->dns ? dnsproxy_fd(p->dns) : -1, .events = POLLIN};
	fds[1] = (struct pollfd){.fd = p->l7 ? l7proxy_fd(p->l7) : -1, .events = POLLIN};
	fds[2] = (struct pollfd){.fd = p->l7q ? l7queue_fd(p->l7q) : -1, .events = POLLIN};
}

void egress_proxy_pump(struct egress_proxy *p, const struct pollfd *fds)
{
	if (p->dns && fds[0].revents)
		dnsproxy_pump(p->dns);
	if (p->l7 && fds[1].revents)
		l7proxy_pump(p->l7);
	if (p->l7q && fds[2].revents)
		l7queue_pump(p->l7q);
}

void egress_proxy_stop(struct egress_proxy *p)
{
	dnsproxy_close(p->dns);
	l7proxy_close(p->l7);
	l7queue_close(p->l7q);
	p->dns = NULL;
	p->l7 = NULL;
	p->l7q = NULL;
	if (p->prepared)
		netpolicy_free(&p->np);
	p->prepared = false;
	free(p->allow);
	p->allow = NULL;
	p->gw = NULL;
}
