/* The egress ruleset as nft text (SPEC §6.1). The kernel side, which installs
 * the same rules and reads their counters back, is in nft_netlink.c. */
#include "isolate/nft.h"

#include <stdio.h>
#include <stdlib.h>

char *nft_render(const struct nft_egress *rules, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	fputs("table inet cellos {\n"
	      "\tchain output {\n"
	      "\t\ttype filter hook output priority 0; policy drop;\n"
	      "\t\toifname \"lo\" accept\n"
	      "\t\tct state established,related accept\n", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "\t\t%s daddr %s %s dport %d counter accept\n",
			rules[i].family == 6 ? "ip6" : "ip", rules[i].addr,
			rules[i].udp ? "udp" : "tcp", rules[i].port);
	fputs("\t\tcounter drop\n"
	      "\t}\n"
	      "}\n", f);
	/* Write errors (out of memory) are sticky and reported by fclose. */
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

void nft_counters_free(struct nft_counter *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++)
		free(c[i].rule);
	free(c);
}
