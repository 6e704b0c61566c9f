/* Verification of a signed event log. See verify.h.
 *
 * Everything in the log is attacker-controlled: nothing here trusts a length, a
 * number or a string from it, and text from it is shown only through show(). An
 * event whose signature does not verify still takes its place in its run's
 * sequence (so one altered event is one problem, not also a "gap"), but no digest
 * link is checked against it. */
#include "events/verify.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/event.h"
#include "events/sign.h"
#include "util/b64url.h"
#include "util/canon.h"

struct verify_key {
	char *kid;
	unsigned char pk[SIGN_ED25519_PK_BYTES];
};

enum kind { K_OTHER = 0, K_STARTED, K_DESTROYED, K_FAILED };

struct ventry {
	size_t line;
	unsigned long long seq;
	unsigned char digest[32], prev[32];
	bool trusted;     /* signature verified and cellosprevdigest well-formed */
	enum kind kind;
	size_t dup_of;    /* line of the first event of the run with this sequence */
	bool identical;   /* ... and it is the very same event */
};

struct verify_run {
	char *run_id;
	struct ventry *e;
	size_t n, cap;
};

/* Text from the log in a message: printable ASCII only, at most 64 bytes. */
static const char *show(char buf[72], const char *s)
{
	size_t i = 0;
	for (; s[i] && i < 64; i++)
		buf[i] = (s[i] >= ' ' && s[i] <= '~') ? s[i] : '?';
	if (s[i])
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

static void add_problem(struct verifier *v, size_t lineno, const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0) {
		v->oom = true;
		return;
	}
	if (v->n_problems == v->cap_problems) {
		size_t cap = v->cap_problems ? 2 * v->cap_problems : 16;
		struct verify_problem *np = realloc(v->problems, cap * sizeof *np);
		if (!np) {
			free(msg);
			v->oom = true;
			return;
		}
		v->problems = np;
		v->cap_problems = cap;
	}
	v->problems[v->n_problems] = (struct verify_problem){.line = lineno, .order = v->n_problems, .msg = msg};
	v->n_problems++;
}

void verifier_problem(struct verifier *v, size_t lineno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(v, lineno, fmt, ap);
	va_end(ap);
}

int verifier_init(struct verifier *v, struct err *e)
{
	memset(v, 0, sizeof *v);
	if (!(v->run_index = json_object()))
		return err_set(e, "out of memory");
	return 0;
}

void verifier_free(struct verifier *v)
{
	for (size_t i = 0; i < v->n_keys; i++)
		free(v->keys[i].kid);
	free(v->keys);
	sodium_free(v->hmac_key);
	json_decref(v->run_index);
	for (size_t i = 0; i < v->n_runs; i++) {
		free(v->runs[i].run_id);
		free(v->runs[i].e);
	}
	free(v->runs);
	for (size_t i = 0; i < v->n_problems; i++)
		free(v->problems[i].msg);
	free(v->problems);
	memset(v, 0, sizeof *v);
}

static const struct verify_key *find_key(const struct verifier *v, const char *kid)
{
	for (size_t i = 0; i < v->n_keys; i++)
		if (strcmp(v->keys[i].kid, kid) == 0)
			return &v->keys[i];
	return NULL;
}

static int add_key(struct verifier *v, const char *kid, const unsigned char pk[SIGN_ED25519_PK_BYTES], struct err *e)
{
	char b[72];
	const struct verify_key *old = find_key(v, kid);
	if (old) {
		if (memcmp(old->pk, pk, SIGN_ED25519_PK_BYTES) != 0)
			return err_set(e, "keys: kid '%s' is listed twice with different keys", show(b, kid));
		return 0;
	}
	struct verify_key *nk = realloc(v->keys, (v->n_keys + 1) * sizeof *nk);
	if (!nk)
		return err_set(e, "keys: out of memory");
	v->keys = nk;
	if (!(nk[v->n_keys].kid = strdup(kid)))
		return err_set(e, "keys: out of memory");
	memcpy(nk[v->n_keys].pk, pk, SIGN_ED25519_PK_BYTES);
	v->n_keys++;
	return 0;
}

int verifier_load_keys(struct verifier *v, const char *text, size_t len, struct err *e)
{
	size_t off = 0;
	for (;;) {
		while (off < len && isspace((unsigned char)text[off]))
			off++;
		if (off == len)
			return 0;
		size_t lineno = 1;
		for (size_t i = 0; i < off; i++)
			lineno += text[i] == '\n';
		json_error_t je;
		json_t *o = json_loadb(text + off, len - off, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
		if (!o)
			return err_set(e, "keys: line %zu: %s", lineno + (size_t)(je.line > 0 ? je.line - 1 : 0), je.text);
		int rc = 0;
		if (!json_is_object(o)) {
			rc = err_set(e, "keys: line %zu: expected an object {\"<kid>\": \"<base64url Ed25519 public key>\"}",
				     lineno);
		} else {
			const char *kid;
			json_t *val;
			json_object_foreach(o, kid, val) {
				unsigned char pk[SIGN_ED25519_PK_BYTES];
				size_t n = 0;
				char b[72];
				const char *s = json_string_value(val);
				if (!s || b64url_decode(s, json_string_length(val), true, pk, sizeof pk, &n) < 0 ||
				    n != sizeof pk) {
					rc = err_set(e, "keys: line %zu: kid '%s': not a base64url Ed25519 public key (32 bytes)",
						     lineno, show(b, kid));
					break;
				}
				if ((rc = add_key(v, kid, pk, e)) < 0)
					break;
			}
		}
		json_decref(o);
		if (rc < 0)
			return rc;
		/* With JSON_DISABLE_EOF_CHECK, position is how far the decoder read. */
		if (je.position <= 0)
			return err_set(e, "keys: line %zu: cannot find the end of the object", lineno);
		off += (size_t)je.position;
	}
}

int verifier_set_hmac_key(struct verifier *v, const unsigned char *key, size_t len, struct err *e)
{
	if (len == 0)
		return err_set(e, "empty HMAC key");
	sodium_free(v->hmac_key);
	if (!(v->hmac_key = sign_secure_alloc(len)))
		return err_set(e, "cannot allocate locked memory for the HMAC key");
	memcpy(v->hmac_key, key, len);
	v->hmac_key_len = len;
	return 0;
}

static const char *member_string(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A CloudEvents sequence as we write it: a positive decimal without leading zeros. */
static bool parse_seq(const char *s, unsigned long long *out)
{
	if (!s || s[0] < '1' || s[0] > '9' || strlen(s) > 19)
		return false;
	unsigned long long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	*out = v;
	return true;
}

static bool parse_digest(const char *s, unsigned char out[32])
{
	if (!s || strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++) {
		char c = s[i];
		int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(d << 4);
		else
			out[i / 2] |= (unsigned char)d;
	}
	return true;
}

static struct verify_run *find_run(struct verifier *v, json_t *run_id_json)
{
	const char *id = json_string_value(run_id_json);
	size_t idlen = json_string_length(run_id_json);
	json_t *ix = json_object_getn(v->run_index, id, idlen);
	if (ix)
		return &v->runs[json_integer_value(ix)];
	if (v->n_runs == v->cap_runs) {
		size_t cap = v->cap_runs ? 2 * v->cap_runs : 8;
		struct verify_run *nr = realloc(v->runs, cap * sizeof *nr);
		if (!nr)
			return NULL;
		v->runs = nr;
		v->cap_runs = cap;
	}
	struct verify_run *r = &v->runs[v->n_runs];
	*r = (struct verify_run){0};
	if (!(r->run_id = strdup(id)))
		return NULL;
	if (json_object_setn_new(v->run_index, id, idlen, json_integer((json_int_t)v->n_runs)) < 0) {
		free(r->run_id);
		return NULL;
	}
	v->n_runs++;
	return r;
}

static void problem(struct verifier *v, size_t lineno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(struct verifier *v, size_t lineno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_problem(v, lineno, fmt, ap);
	va_end(ap);
}

/* Place the (inner) event in its run. `canon` is its canonical form. */
static void add_event(struct verifier *v, size_t lineno, json_t *ev, const char *canon, size_t clen, bool trusted)
{
	char b[72];
	json_t *data = json_object_get(ev, "data");
	json_t *run_id = json_object_get(data, "runId");
	const char *type = member_string(ev, "type");
	unsigned long long seq;
	if (!json_is_string(run_id) || json_string_length(run_id) == 0) {
		problem(v, lineno, "event has no data.runId: it cannot be placed in a run");
		return;
	}
	if (!parse_seq(member_string(ev, "sequence"), &seq)) {
		problem(v, lineno, "event has no valid sequence (a positive decimal string)");
		return;
	}
	if (!type)
		problem(v, lineno, "event has no type");
	else if (strcmp(member_string(ev, "specversion") ? member_string(ev, "specversion") : "", "1.0") != 0)
		problem(v, lineno, "event (%s) is not a CloudEvents 1.0 event", show(b, type));
	struct ventry en = {.line = lineno, .seq = seq, .trusted = trusted};
	if (!parse_digest(member_string(ev, "cellosprevdigest"), en.prev)) {
		problem(v, lineno, "event has no valid cellosprevdigest (64 lowercase hex digits)");
		en.trusted = false;
	}
	crypto_hash_sha256(en.digest, (const unsigned char *)canon, clen);
	if (type && strcmp(type, EVENT_TYPE_PREFIX "lifecycle.v1.started") == 0)
		en.kind = K_STARTED;
	else if (type && strcmp(type, EVENT_TYPE_PREFIX "lifecycle.v1.destroyed") == 0)
		en.kind = K_DESTROYED;
	else if (type && strcmp(type, EVENT_TYPE_PREFIX "lifecycle.v1.failed") == 0)
		en.kind = K_FAILED;

	struct verify_run *r = find_run(v, run_id);
	if (!r) {
		v->oom = true;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct ventry *ne = realloc(r->e, cap * sizeof *ne);
		if (!ne) {
			v->oom = true;
			return;
		}
		r->e = ne;
		r->cap = cap;
	}
	r->e[r->n++] = en;
}

/* The wrapper of a signed event: returns its inner event (borrowed from w) and
 * whether the signature holds, or NULL when there is no event to speak of. */
static json_t *check_envelope(struct verifier *v, size_t lineno, json_t *w, bool *sig_ok)
{
	char b[72], b2[72];
	*sig_ok = false;
	json_t *data = json_object_get(w, "data");
	json_t *ev = json_object_get(data, "event");
	if (!json_is_object(ev)) {
		problem(v, lineno, "signed envelope: no data.event object");
		return NULL;
	}
	if (strcmp(member_string(w, "specversion") ? member_string(w, "specversion") : "", "1.0") != 0)
		problem(v, lineno, "signed envelope: specversion is not \"1.0\"");
	if (!member_string(w, "id"))
		problem(v, lineno, "signed envelope: no id");
	const char *alg = member_string(data, "algorithm");
	const char *kid = member_string(data, "signerKid");
	json_t *sig_json = json_object_get(data, "signature");
	if (!alg || !kid || !json_is_string(sig_json)) {
		problem(v, lineno, "signed envelope: data.algorithm, data.signerKid and data.signature must be strings");
		return ev;
	}
	/* The wrapper's own attributes are not signed: they must repeat the event's,
	 * or a consumer that reads them could be misled. */
	static const char *const same[] = {"source", "subject", "time"};
	for (size_t i = 0; i < 3; i++) {
		const char *a = member_string(w, same[i]), *bb = member_string(ev, same[i]);
		if (!a || !bb || strcmp(a, bb) != 0)
			problem(v, lineno, "signed envelope: %s differs from the signed event's (the envelope is not signed)",
				same[i]);
	}
	const char *dct = member_string(w, "datacontenttype");
	if (!dct || strcmp(dct, "application/json") != 0)
		problem(v, lineno, "signed envelope: datacontenttype is not application/json");

	size_t clen = 0;
	char *canon = canon_dump(ev, &clen);
	if (!canon) {
		problem(v, lineno, "signed event cannot be put in canonical form");
		return NULL;
	}
	unsigned char sig[SIGN_MAX_BYTES];
	size_t sig_len = 0;
	if (b64url_decode(json_string_value(sig_json), json_string_length(sig_json), false, sig, sizeof sig,
			  &sig_len) < 0) {
		problem(v, lineno, "signature is not base64url without padding");
	} else if (strcmp(alg, "ed25519") == 0) {
		const struct verify_key *k = find_key(v, kid);
		if (!k)
			problem(v, lineno, "signed by unknown key '%s' (not in the keys file)", show(b, kid));
		else if (!(*sig_ok = sign_verify_ed25519(k->pk, canon, clen, sig, sig_len)))
			problem(v, lineno, "bad Ed25519 signature (key '%s'): the event was altered or signed by another key",
				show(b, kid));
	} else if (strcmp(alg, "hmac-sha256") == 0) {
		if (!v->hmac_key)
			problem(v, lineno, "HMAC-signed event (key '%s') but no HMAC key was given (--hmac-key-env)",
				show(b, kid));
		else if (!(*sig_ok = sign_verify_hmac(v->hmac_key, v->hmac_key_len, canon, clen, sig, sig_len)))
			problem(v, lineno, "bad HMAC-SHA256 signature (key '%s'): the event was altered or signed by another key",
				show(b, kid));
	} else {
		problem(v, lineno, "unknown signature algorithm '%s' (key '%s')", show(b, alg), show(b2, kid));
	}
	v->n_events++;
	add_event(v, lineno, ev, canon, clen, *sig_ok);
	free(canon);
	return ev;
}

void verifier_line(struct verifier *v, size_t lineno, const char *line, size_t len)
{
	char b[72];
	json_error_t je;
	json_t *w = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!w) {
		problem(v, lineno, "not a JSON event: %s", je.text);
		return;
	}
	const char *type = member_string(w, "type");
	if (!json_is_object(w) || !type) {
		problem(v, lineno, "not an event (no type)");
	} else if (v->unsigned_log && strcmp(type, SIGNED_ENVELOPE_TYPE) == 0) {
		if (!v->first_signed_line)
			v->first_signed_line = lineno;
	} else if (v->unsigned_log) {
		/* Nothing vouches for it but the chain: that is what is checked. */
		size_t clen = 0;
		char *canon = canon_dump(w, &clen);
		if (canon) {
			v->n_events++;
			add_event(v, lineno, w, canon, clen, true);
		} else {
			problem(v, lineno, "event cannot be put in canonical form");
		}
		free(canon);
	} else if (strcmp(type, SIGNED_ENVELOPE_TYPE) != 0) {
		/* Counted in its run as untrusted, so that it is reported once, here. */
		problem(v, lineno, "unsigned event (%s): every event must be a " SIGNED_ENVELOPE_TYPE, show(b, type));
		size_t clen = 0;
		char *canon = canon_dump(w, &clen);
		if (canon)
			add_event(v, lineno, w, canon, clen, false);
		free(canon);
	} else {
		bool sig_ok;
		check_envelope(v, lineno, w, &sig_ok);
	}
	json_decref(w);
}

static int cmp_seq(const void *pa, const void *pb)
{
	const struct ventry *a = *(const struct ventry *const *)pa, *b = *(const struct ventry *const *)pb;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int cmp_problem(const void *pa, const void *pb)
{
	const struct verify_problem *a = pa, *b = pb;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

static const char *kind_name(enum kind k)
{
	return k == K_DESTROYED ? "lifecycle.v1.destroyed" : k == K_FAILED ? "lifecycle.v1.failed" : "?";
}

static void finish_run(struct verifier *v, struct verify_run *r)
{
	char b[72];
	const char *rid = show(b, r->run_id);
	struct ventry **s = malloc(r->n * sizeof *s);
	if (!s) {
		v->oom = true;
		return;
	}
	for (size_t i = 0; i < r->n; i++)
		s[i] = &r->e[i];
	qsort(s, r->n, sizeof *s, cmp_seq);

	/* Duplicates: the first (by line) of each sequence number is the one that counts. */
	for (size_t k = 1, first = 0; k < r->n; k++) {
		if (s[k]->seq != s[first]->seq) {
			first = k;
			continue;
		}
		s[k]->dup_of = s[first]->line;
		s[k]->identical = memcmp(s[k]->digest, s[first]->digest, 32) == 0;
	}

	/* In the order of the log: duplicates and events that come too late. */
	unsigned long long max = 0;
	size_t max_line = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct ventry *en = &r->e[i];
		if (en->dup_of && en->identical)
			problem(v, en->line, "run %s: duplicate of line %zu (sequence %llu)", rid, en->dup_of, en->seq);
		else if (en->dup_of)
			problem(v, en->line, "run %s: a second, different event with sequence %llu (the first is at line %zu)",
				rid, en->seq, en->dup_of);
		else if (en->seq < max)
			problem(v, en->line, "run %s: sequence %llu comes after sequence %llu (line %zu): events out of order",
				rid, en->seq, max, max_line);
		else
			max = en->seq, max_line = en->line;
	}

	/* In the order of the sequence: gaps and digest links. */
	const struct ventry *prev = NULL, *end = NULL;
	unsigned long long expected = 1;
	for (size_t k = 0; k < r->n; k++) {
		const struct ventry *u = s[k];
		if (u->dup_of)
			continue;
		if (u->seq > expected) {
			if (u->seq - expected == 1)
				problem(v, u->line, "run %s: event with sequence %llu is missing (dropped)", rid, expected);
			else
				problem(v, u->line, "run %s: events with sequence %llu to %llu are missing (dropped)", rid,
					expected, u->seq - 1);
		}
		static const unsigned char zero[32];
		if (u->seq == 1 && u->trusted && memcmp(u->prev, zero, 32) != 0)
			problem(v, u->line, "run %s: the first event's cellosprevdigest is not 64 zeros", rid);
		if (prev && prev->seq + 1 == u->seq && prev->trusted && u->trusted && memcmp(u->prev, prev->digest, 32) != 0)
			problem(v, u->line,
				"run %s: cellosprevdigest does not match the event with sequence %llu (line %zu): an event was altered, replaced or inserted",
				rid, prev->seq, prev->line);
		if (!end && (u->kind == K_DESTROYED || u->kind == K_FAILED))
			end = u;
		expected = u->seq + 1;
		prev = u;
	}

	/* The run must have ended, with its end as its last event. */
	bool started = false;
	for (size_t i = 0; i < r->n; i++)
		started |= r->e[i].kind == K_STARTED;
	if (prev && !end)
		problem(v, prev->line,
			"run %s %s but did not end: no %s after sequence %llu (its last events are missing, or it is still running)",
			rid, started ? "started" : "began", started ? "lifecycle.v1.destroyed" : "lifecycle.v1.destroyed or lifecycle.v1.failed",
			prev->seq);
	else if (prev && end != prev)
		problem(v, prev->line, "run %s: events after its end (%s, sequence %llu at line %zu)", rid, kind_name(end->kind),
			end->seq, end->line);
	free(s);
}

void verifier_finish(struct verifier *v)
{
	for (size_t i = 0; i < v->n_runs; i++)
		finish_run(v, &v->runs[i]);
	if (v->oom)
		problem(v, 0, "out of memory: the log could not be verified completely");
	if (v->n_problems > 1)
		qsort(v->problems, v->n_problems, sizeof *v->problems, cmp_problem);
}
