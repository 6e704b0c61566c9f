/* How to reach NATS (vocabulary: plain data, includes nothing of ours), so that
 * the configuration can hold it without depending on the sink. */
#ifndef CELLOS_NATS_OPTS_H
#define CELLOS_NATS_OPTS_H

#include <stdbool.h>

/* How to reach the servers: CELLOS_NATS_URL, CELLOS_NATS_CREDS,
 * CELLOS_NATS_TLS_CA/_CERT/_KEY (config_nats_load() fills it from the
 * environment; config_nats_free() releases `urls`). The other strings are
 * borrowed. */
struct nats_conn_opts {
	char **urls;             /* NULL-terminated, at least one: a cluster's seeds */
	const char *creds;       /* credentials file (JWT + nkey seed), or NULL */
	const char *tls_ca;      /* CA bundle (PEM) to verify the servers, or NULL */
	const char *tls_cert;    /* client certificate and key (PEM), both or neither */
	const char *tls_key;
	/* CELLOS_NATS_RELAY_FD (the supervisor only, docs/DESIGN.md): publish
	 * through cellos-agent's connection on this socket instead. */
	bool relay;
	int relay_fd;
};

#endif
