#include "isolate/netpolicy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "isolate/hostmatch.h"
#include "util/log.h"
#include "util/vec.h"

void netpolicy_init(struct netpolicy *np, const char *const *allow, size_t n_allow, const struct netpolicy_hooks *h)
{
	*np = (struct netpolicy){.allow = allow, .n_allow = n_allow, .hooks = *h};
}

static bool known(const struct np_rule *r, struct in_addr a)
{
	for (size_t i = 0; i < r->n_addrs; i++)
		if (r->addrs[i].s_addr == a.s_addr)
			return true;
	return false;
}

static int remember(struct np_rule *r, struct in_addr a)
{
	if (known(r, a))
		return 0;
	if (vec_reserve(&r->addrs, r->n_addrs, &r->cap, sizeof *r->addrs, 8) < 0)
		return -1;
	r->addrs[r->n_addrs++] = a;
	return 1;
}

int netpolicy_add_rule(struct netpolicy *np, size_t index, const char *host, int port, bool udp,
		       const uint32_t *addrs, size_t n, struct err *e)
{
	struct np_rule *rs = realloc(np->rules, (np->n_rules + 1) * sizeof *rs);
	if (!rs)
		return err_sys(e, ENOMEM, "DNS proxy: egress rule %zu", index);
	np->rules = rs;
	struct np_rule *r = &rs[np->n_rules++];
	*r = (struct np_rule){.index = index, .host = host, .port = port, .udp = udp};
	for (size_t i = 0; i < n; i++)
		if (remember(r, (struct in_addr){.s_addr = addrs[i]}) < 0)
			return err_sys(e, ENOMEM, "DNS proxy: egress rule %zu", index);
	return 0;
}

void netpolicy_free(struct netpolicy *np)
{
	for (size_t i = 0; i < np->n_rules; i++)
		free(np->rules[i].addrs);
	free(np->rules);
	np->rules = NULL;
	np->n_rules = 0;
}

bool netpolicy_name_allowed(const struct netpolicy *np, const char *name)
{
	for (size_t i = 0; i < np->n_allow; i++)
		if (host_match(np->allow[i], name))
			return true;
	for (size_t i = 0; i < np->n_rules; i++)
		if (host_match(np->rules[i].host, name))
			return true;
	return false;
}

size_t netpolicy_learn(struct netpolicy *np, const char *qname, const struct in_addr *a, size_t n)
{
	size_t denied = 0;
	for (size_t k = 0; k < n; k++) {
		if (np->hooks.denied && np->hooks.denied(np->hooks.ctx, a[k])) {
			denied++;
			continue;
		}
		for (size_t i = 0; i < np->n_rules; i++) {
			struct np_rule *r = &np->rules[i];
			if (!host_match(r->host, qname) || known(r, a[k]))
				continue;
			struct err e = {0};
			/* The set first: an address the kernel does not pass is not
			 * one the SNI check should pass either. */
			if (np->hooks.allow && np->hooks.allow(np->hooks.ctx, r->index, &a[k], 1, &e) < 0) {
				log_warn("DNS proxy: %s", e.msg);
				continue;
			}
			if (remember(r, a[k]) < 0)
				log_warn("DNS proxy: egress rule %zu: out of memory", r->index);
		}
	}
	return denied;
}

bool netpolicy_l7_allowed(const struct netpolicy *np, const char *name, struct in_addr dst, int port)
{
	for (size_t i = 0; i < np->n_rules; i++) {
		const struct np_rule *r = &np->rules[i];
		if (!r->udp && r->port == port && host_match(r->host, name) && known(r, dst))
			return true;
	}
	return false;
}
