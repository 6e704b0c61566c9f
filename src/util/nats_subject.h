/* The subject an event is published to (SPEC §3, CELLOS_NATS_SUBJECT): a
 * template with the placeholders {tenantId}, {cellId} and {event}. */
#ifndef CELLOS_NATS_SUBJECT_H
#define CELLOS_NATS_SUBJECT_H

#include <stddef.h>

#include "util/err.h"

#define NATS_SUBJECT_DEFAULT "cellos.events.{tenantId}.{cellId}.{event}"

/* A template is valid when it expands to a subject one can publish to for
 * every input: only the three placeholders, no wildcard ('*', '>'), no
 * whitespace or control character, no empty token. -1 with *e naming the
 * variable otherwise. */
int nats_subject_check(const char *tpl, struct err *e);

/* A subject token made of arbitrary text: '.', '*', '>', whitespace and control
 * characters become '_'; NULL or "" becomes "_". */
void nats_subject_token(const char *in, char *out, size_t size);

/* Expand a checked template. tenant and cell are tokens already
 * (nats_subject_token); event is the type without "dev.cellos.events.cell."
 * (several tokens). -1 when it does not fit in size bytes. */
int nats_subject_expand(const char *tpl, const char *tenant, const char *cell, const char *event, char *out,
			size_t size);

#endif
