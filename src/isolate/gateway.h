/* The network gateway of a cell (SPEC §6.4, CELLOS_NETWORK=gateway): declared
 * egress that really works.
 *
 * A cell with a private netns that declares egress gets a veth pair: `host_if`
 * in the supervisor's netns, `eth0` in the cell's, with a /30 of
 * CELLOS_CELL_SUBNET between them (the host side is the gateway address, the
 * cell's default route points at it). The /30 is allocated under a lock file,
 * /run/cellos/gw/<network>.lock (flock held for the run's life, like the uid
 * allocator in runuid.h): parallel supervisors never share one, and a
 * SIGKILLed supervisor's /30 and host table are reclaimed by the next
 * supervisor's gateway_sweep().
 *
 * On the host side the run has a table of its own, `inet cellos-gw-<cellId>-
 * <runId8>` (gw->table), every rule matched on host_if, so one cell's rules
 * and drops never touch another's flows:
 *   chain input   (filter, hook input):   from host_if only udp/tcp dport
 *                 GATEWAY_DNS_PORT to the gateway address (the DNS proxy), and
 *                 tcp dport gw->l7_port when set (the SNI/Host check); every
 *                 other packet from the cell to any of the host's addresses is
 *                 dropped (counted);
 *   chain forward (filter, hook forward): replies to the cell; from the cell:
 *                 a source other than its own address dropped, its flows already
 *                 accepted (established) passed, the denied
 *                 CIDRs (CELLOS_EGRESS_DENY_CIDRS) dropped, the declared flows
 *                 accepted (a DNS-name rule through set `egress_<i>`), the rest
 *                 dropped (counted); nothing else enters the cell; with
 *                 gw->l7_queue, tcp 443/80 flows of DNS-name rules wait in
 *                 that nfnetlink_queue until their conntrack mark is set
 *                 (l7queue.h);
 *   chain prerouting (nat): only with gw->l7_port and without gw->l7_queue:
 *                 tcp 443/80 flows of DNS-name rules are redirected to
 *                 gateway:l7_port;
 *   chain postrouting (nat): masquerade of the cell's address.
 * The cell's own ruleset (nft.h, table inet cellos) matches DNS-name rules
 * through sets of the same names (`egress_<i>`, i = the rule's index in
 * authority.egressRules) and accepts the DNS proxy's port on the gateway.
 *
 * IPv4 only: the host never routes the cell's IPv6 (SPEC §6.4).
 *
 * For the DNS proxy and the SNI/Host check (which listen on gw->host_addr):
 * gateway_allow_name()/gateway_allow_addrs() add the addresses of a relayed
 * answer to the sets of both tables, gateway_addr_denied() says whether an
 * address lies in the denied CIDRs (a rebinding answer). Calls on one gateway
 * must not run concurrently (one thread, or the caller's lock). */
#ifndef CELLOS_GATEWAY_H
#define CELLOS_GATEWAY_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "isolate/nft.h"
#include "util/err.h"

#define GATEWAY_DIR "/run/cellos/gw"
/* The port of the DNS proxy on the gateway address (input chain, and the cell's
 * ruleset accepts it). */
#define GATEWAY_DNS_PORT 53
/* The cell's side of the veth, inside its netns. */
#define GATEWAY_CELL_IF "eth0"
/* Default CELLOS_CELL_SUBNET (RFC 6598 shared address space). */
#define GATEWAY_SUBNET_DEFAULT "100.96.0.0/16"

/* An IPv4 prefix, host byte order. */
struct cidr4 {
	uint32_t addr;                  /* host bits cleared */
	uint32_t prefix;                /* 0..32 */
};

/* Conntrack marks of a flow decided on the queue (l7_queue). */
#define GATEWAY_CT_ALLOW 0xce110a11u
#define GATEWAY_CT_DENY 0xce110de1u

/* Returned by gateway_up() when the host table (or the cell's sets) could not be
 * installed: the caller decides (portable: no veth, nftRulesApplied false;
 * hardened: 125). Everything made is already undone. */
#define GATEWAY_NFT_FAILED (-2)

struct gateway {
	/* Public, read-only after gateway_up() unless said otherwise. */
	char table[256];                /* cellos-gw-<cellId>-<runId8>: table inet <table> */
	char host_if[IF_NAMESIZE];      /* host side of the veth (cellos<hash>) */
	struct in_addr net;             /* the /30's network address */
	struct in_addr host_addr;       /* gateway address: net + 1, on host_if */
	struct in_addr cell_addr;       /* the cell's address: net + 2, on eth0 */
	/* Port of the SNI/Host check on host_addr; 0 (default): none. Set before
	 * gateway_up(): then tcp 443/80 flows of DNS-name rules are redirected to
	 * it (nat prerouting) and the input chain accepts it. */
	uint16_t l7_port;
	/* The SNI/Host check's nfnetlink_queue (l7queue.h), 0: none. Set before
	 * gateway_up(): then tcp 443/80 flows of DNS-name rules go to the real
	 * server and their segments wait in this queue until the flow's conntrack
	 * mark says GATEWAY_CT_ALLOW or GATEWAY_CT_DENY (and are not redirected to
	 * l7_port). Reset to 0 by gateway_up() when the kernel refuses the queue
	 * rule (no nft_compat or xt NFQUEUE): then they are redirected instead. */
	uint16_t l7_queue;

	/* Private. */
	const struct nft_egress *rules; /* the cell's egress (borrowed; family 4 only here) */
	size_t n_rules;
	const struct cidr4 *deny;       /* denied CIDRs (borrowed) */
	size_t n_deny;
	int lock_fd;
	char lock_path[512];
	int cell_netns;                 /* borrowed fd of the cell's netns, -1 */
	bool link_made, table_made;
	struct mnl_socket *nl_host;     /* nf_tables netlink in the supervisor's netns */
	struct mnl_socket *nl_cell;     /* nf_tables netlink in the cell's netns (its sets) */
	uint32_t nl_seq;
};

/* CELLOS_CELL_SUBNET: an IPv4 CIDR with a /16../29 prefix. Message names the variable. */
int gateway_parse_subnet(const char *v, struct cidr4 *out, struct err *e);
/* CELLOS_EGRESS_DENY_CIDRS: comma list of IPv4 CIDRs or addresses (IPv6 ones are
 * accepted and ignored: the gateway never routes IPv6). *out malloc'd. */
int gateway_parse_cidrs(const char *v, struct cidr4 **out, size_t *n, struct err *e);
/* The default denied CIDRs (loopback, link-local, multicast, broadcast, `this`
 * network) plus the host's own IPv4 addresses (of the calling thread's netns)
 * plus `subnet`, appended to *list. */
int gateway_default_deny(const struct cidr4 *subnet, struct cidr4 **list, size_t *n, struct err *e);
/* The host's own IPv4 addresses (calling thread's netns), appended as /32s. */
int gateway_host_addrs(struct cidr4 **list, size_t *n, struct err *e);
/* Whether [addr/prefix] lies inside one of `deny` (a rule, a resolver). */
bool gateway_cidr_denied(const struct cidr4 *deny, size_t n, uint32_t addr, uint32_t prefix);
/* Whether `a` lies in the gateway's denied CIDRs (a relayed answer that would
 * rebind an allowed name there is not added to any set). */
bool gateway_addr_denied(const struct gateway *gw, struct in_addr a);

/* net.ipv4.ip_forward of the calling thread's netns is 1; else an error naming
 * the sysctl (the supervisor never changes it). */
int gateway_check_forwarding(struct err *e);

/* Make the cell's gateway: allocate a /30 of `subnet`, install the host table
 * (one transaction), create the veth with its cell side in `cell_netns` (an
 * fd), address it and bring it up on the host side. `name` is the run's
 * cellos-<cellId>-<runId8>. `rules`/`deny` must outlive the gateway. Then the
 * caller enters the cell's netns and calls gateway_cell_up(). On failure
 * everything made is undone; GATEWAY_NFT_FAILED when nftables refused. */
int gateway_up(struct gateway *gw, const char *name, const struct cidr4 *subnet, const struct nft_egress *rules,
	       size_t n_rules, const struct cidr4 *deny, size_t n_deny, int cell_netns, struct err *e);
/* gateway_up() in two steps, for a caller that hands the gateway's address on
 * (the cell's resolv.conf) while the rest is made: gateway_reserve() only
 * takes the /30 (gw->host_addr, cell_addr, host_if and table are set; on
 * failure nothing is held); gateway_build() then does the rest, and on failure
 * undoes everything, the /30 included (GATEWAY_NFT_FAILED as above). */
int gateway_reserve(struct gateway *gw, const char *name, const struct cidr4 *subnet, const struct nft_egress *rules,
		    size_t n_rules, const struct cidr4 *deny, size_t n_deny, int cell_netns, struct err *e);
int gateway_build(struct gateway *gw, struct err *e);
/* Inside the cell's netns (calling thread setns()ed there), after nft_apply():
 * address eth0, bring it up, default route via the gateway, and keep an
 * nf_tables socket of that netns for the cell's sets. */
int gateway_cell_up(struct gateway *gw, struct err *e);

/* Add IPv4 addresses to the set of egress rule `rule` (index in
 * authority.egressRules, a DNS-name rule) in the host table and the cell's
 * table. Denied addresses are skipped (counted in *rejected when not NULL). */
int gateway_allow_addrs(struct gateway *gw, size_t rule, const struct in_addr *addrs, size_t n, size_t *rejected,
			struct err *e);
/* The same for every DNS-name rule whose host matches `qname` (exact, or a
 * leading `*.` matching one or more labels but not the apex; case-insensitive).
 * Returns the number of rules extended. */
int gateway_allow_name(struct gateway *gw, const char *qname, const struct in_addr *addrs, size_t n,
		       size_t *rejected, struct err *e);

/* Remove the host table and the veth and give the /30 back. Errors are logged
 * (a table that could not be deleted keeps its allocation for the sweep). */
void gateway_down(struct gateway *gw);
/* The same when the cell's netns dies with the cell (its processes gone, its fd
 * closed right after): the veth is left to the kernel's teardown of that netns;
 * a later gateway_up() of the same /30 removes one still pending. */
void gateway_down_dying(struct gateway *gw);
/* Remove what dead supervisors of this netns left (their tables, links and /30s). */
void gateway_sweep(void);
/* Use `dir` instead of GATEWAY_DIR: for tests. */
void gateway_set_dir(const char *dir);

#endif
