/*
 * store.c - the front of the store module: backend choice, name checks and
 * the SHA-256 of every put. See store.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "store/store_int.h"
#include "util/util.h"

struct store {
	const struct store_backend *be;
	void *state;
	struct store_mem *mem; /* the memory tier, or NULL */
};

struct store_put {
	struct store *s;
	void *handle;
	EVP_MD_CTX *md;
	size_t size, max;
	unsigned char digest[32];
	int final;
	char ns[17];
	/* with a memory tier: the bytes so far, while they are few enough
	 * for it (copy NULL once they are not) */
	unsigned char *copy;
	size_t copy_cap;
	int copying;
};

static const struct store_backend *const backends[] = {&store_fs, &store_s3};

/* ===== Errors ===== */

_Thread_local struct util_err store_err;

const char *store_errmsg(void)
{
	return store_err.msg;
}

const char *store_strerror(store_status st)
{
	/* by -st, in store_status's order */
	static const char *const texts[] = {"ok", "not found", "storage error", "bad key", "out of memory",
					    "checksum mismatch", "not supported by this storage", "too large",
					    "out of space"};

	return UTIL_STATUS_TEXT(texts, st);
}

/* ===== Names ===== */

void store_key_of(const void *data, size_t len, char key[STORE_KEY_LEN + 1])
{
	unsigned char d[32];

	EVP_Digest(data, len, d, NULL, EVP_sha256(), NULL);
	util_hex(d, sizeof d, key);
}

int store_key_valid(const char *key)
{
	if (!key)
		return 0;
	for (int i = 0; i < STORE_KEY_LEN; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return 0;
	return key[STORE_KEY_LEN] == 0;
}

static int ns_valid(const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;
	if (n < 1 || n > 16)
		return 0;
	return strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static store_status check(const char *ns, const char *key)
{
	if (!ns_valid(ns))
		return store_fail(STORE_BAD_KEY, "bad namespace");
	if (key && !store_key_valid(key))
		return store_fail(STORE_BAD_KEY, "bad key (64 lowercase hex characters expected)");
	return STORE_OK;
}

/* ===== Stores ===== */

store_status store_open(const char *spec, struct store **out)
{
	const struct store_backend *be = &store_fs;
	const char *rest = spec;
	struct store *s;
	store_status st;

	*out = NULL;
	if (!spec || !*spec)
		return store_fail(STORE_BAD_KEY, "no store given");
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
		size_t n = strlen(backends[i]->name);
		if (!strncmp(spec, backends[i]->name, n) && spec[n] == ':') {
			be = backends[i];
			rest = spec + n + 1;
		}
	}
	if (strstr(spec, "://") && be == &store_fs)
		return store_fail(STORE_UNSUPPORTED, "%.*s: no such storage backend", (int)strcspn(spec, ":"), spec);
	if (!(s = calloc(1, sizeof *s)))
		return store_fail(STORE_NOMEM, "out of memory");
	s->be = be;
	if ((st = be->open(rest, &s->state)) != STORE_OK) {
		free(s);
		return st;
	}
	*out = s;
	return STORE_OK;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->be->close(s->state);
	store_mem_free(s->mem);
	free(s);
}

store_status store_set_memory(struct store *s, size_t max_bytes)
{
	struct store_mem *m = NULL;

	if (max_bytes && !(m = store_mem_new(max_bytes)))
		return store_fail(STORE_NOMEM, "out of memory");
	store_mem_free(s->mem);
	s->mem = m;
	return STORE_OK;
}

int store_memory_stats(struct store *s, struct store_memory_stats *out)
{
	if (!s->mem)
		return -1;
	store_mem_stats(s->mem, out);
	return 0;
}

const char *store_backend_name(const struct store *s)
{
	return s->be->name;
}

/* ===== Puts ===== */

store_status store_put_begin(struct store *s, const char *ns, size_t max_bytes, struct store_put **out)
{
	struct store_put *p;
	store_status st;

	*out = NULL;
	if ((st = check(ns, NULL)) != STORE_OK)
		return st;
	if (!(p = calloc(1, sizeof *p)) || !(p->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL)) {
		if (p)
			EVP_MD_CTX_free(p->md);
		free(p);
		return store_fail(STORE_NOMEM, "out of memory");
	}
	p->s = s;
	p->max = max_bytes;
	snprintf(p->ns, sizeof p->ns, "%s", ns);
	p->copying = s->mem != NULL;
	if ((st = s->be->put_begin(s->state, ns, &p->handle)) != STORE_OK) {
		EVP_MD_CTX_free(p->md);
		free(p);
		return st;
	}
	*out = p;
	return STORE_OK;
}

/* Adds the bytes to the put's copy for the memory tier, or gives the copy
 * up once the object is too large for it (or memory is short). */
static void keep_copy(struct store_put *p, const void *buf, size_t len)
{
	size_t cap = p->copy_cap;

	if (p->size > store_mem_max_object(p->s->mem)) {
		free(p->copy);
		p->copy = NULL;
		p->copying = 0;
		return;
	}
	while (cap < p->size)
		cap = cap ? 2 * cap : 65536;
	if (cap != p->copy_cap) {
		unsigned char *c = realloc(p->copy, cap);
		if (!c) {
			free(p->copy);
			p->copy = NULL;
			p->copying = 0;
			return;
		}
		p->copy = c;
		p->copy_cap = cap;
	}
	memcpy(p->copy + p->size - len, buf, len);
}

store_status store_put_write(struct store_put *p, const void *buf, size_t len)
{
	if (p->final)
		return store_fail(STORE_IO, "put already finished");
	if (p->max && (len > p->max || p->size > p->max - len))
		return store_fail(STORE_TOO_LARGE, "over %zu bytes", p->max);
	if (len && !EVP_DigestUpdate(p->md, buf, len))
		return store_fail(STORE_IO, "cannot hash");
	p->size += len;
	if (p->copying)
		keep_copy(p, buf, len);
	return len ? p->s->be->put_write(p->handle, buf, len) : STORE_OK;
}

static void finalize(struct store_put *p)
{
	if (!p->final) {
		EVP_MD_CTX *copy = EVP_MD_CTX_new();
		unsigned int n = 0;
		if (copy && EVP_MD_CTX_copy_ex(copy, p->md))
			EVP_DigestFinal_ex(copy, p->digest, &n);
		EVP_MD_CTX_free(copy);
	}
}

void store_put_sha256(const struct store_put *p, char hex[STORE_KEY_LEN + 1])
{
	finalize((struct store_put *)p);
	util_hex(p->digest, 32, hex);
}

size_t store_put_size(const struct store_put *p)
{
	return p->size;
}

static void put_free(struct store_put *p)
{
	free(p->copy);
	EVP_MD_CTX_free(p->md);
	free(p);
}

void store_put_abort(struct store_put *p)
{
	if (!p)
		return;
	p->s->be->put_abort(p->handle);
	put_free(p);
}

store_status store_put_commit(struct store_put *p, const char *key, const char *expect,
			      char out_key[STORE_KEY_LEN + 1], int *existed)
{
	char sha[STORE_KEY_LEN + 1];
	int ex = 0;
	store_status st;

	store_put_sha256(p, sha);
	p->final = 1;
	if (key && !store_key_valid(key)) {
		store_put_abort(p);
		return store_fail(STORE_BAD_KEY, "bad key (64 lowercase hex characters expected)");
	}
	if (expect && strcmp(expect, sha)) {
		store_put_abort(p);
		return store_fail(STORE_MISMATCH, "the content's SHA-256 is %s, not %s", sha, expect);
	}
	if (!key)
		key = sha;
	st = p->s->be->put_commit(p->handle, key, p->digest, &ex);
	if (st == STORE_OK) {
		if (out_key)
			memcpy(out_key, key, STORE_KEY_LEN + 1);
		if (existed)
			*existed = ex;
		if (p->copying)
			store_mem_put(p->s->mem, p->ns, key, p->copy ? p->copy : (const unsigned char *)"", p->size);
	}
	put_free(p); /* the backend freed its handle in commit either way */
	return st;
}

store_status store_put_buffer(struct store *s, const char *ns, const char *key, const void *buf, size_t len,
			      char out_key[STORE_KEY_LEN + 1], int *existed)
{
	struct store_put *p;
	store_status st;

	char k[STORE_KEY_LEN + 1];

	if ((st = store_put_begin(s, ns, 0, &p)) != STORE_OK)
		return st;
	p->copying = 0; /* the whole buffer is at hand: the tier copies it once */
	if ((st = store_put_write(p, buf, len)) != STORE_OK) {
		store_put_abort(p);
		return st;
	}
	if ((st = store_put_commit(p, key, NULL, k, existed)) != STORE_OK)
		return st;
	if (out_key)
		memcpy(out_key, k, sizeof k);
	if (s->mem)
		store_mem_put(s->mem, ns, k, buf, len);
	return STORE_OK;
}

/* ===== Reads ===== */

store_status store_get(struct store *s, const char *ns, const char *key, void **buf, size_t *len)
{
	struct store_ref *ref;
	store_status st = check(ns, key);

	if (st)
		return st;
	if (s->mem && (ref = store_mem_get(s->mem, ns, key, 1))) {
		size_t n;
		const void *b = store_ref_bytes(ref, &n);
		if ((*buf = malloc(n ? n : 1)))
			memcpy(*buf, b, n);
		store_ref_release(ref);
		if (!*buf)
			return store_fail(STORE_NOMEM, "out of memory");
		*len = n;
		return STORE_OK;
	}
	st = s->be->get(s->state, ns, key, buf, len);
	if (st == STORE_OK && s->mem)
		store_mem_put(s->mem, ns, key, *buf, *len);
	return st;
}

store_status store_get_body(struct store *s, const char *ns, const char *key, struct store_body *out)
{
	store_status st;

	out->ref = NULL;
	out->fd = -1;
	out->len = 0;
	if (s->mem && !check(ns, key) && (out->ref = store_mem_get(s->mem, ns, key, 1))) {
		store_ref_bytes(out->ref, &out->len);
		return STORE_OK;
	}
	if ((st = store_get_fd(s, ns, key, &out->fd, &out->len)) != STORE_OK)
		return st;
	/* read whole into the tier, so that the next one comes from memory */
	if (s->mem && (out->ref = store_mem_fill_fd(s->mem, ns, key, out->fd, out->len))) {
		close(out->fd);
		out->fd = -1;
	}
	return STORE_OK;
}

store_status store_get_fd(struct store *s, const char *ns, const char *key, int *fd, size_t *len)
{
	store_status st = check(ns, key);
	if (st)
		return st;
	if (!s->be->get_fd)
		return store_fail(STORE_UNSUPPORTED, "%s storage has no file descriptors", s->be->name);
	return s->be->get_fd(s->state, ns, key, fd, len);
}

store_status store_head(struct store *s, const char *ns, const char *key, size_t *len)
{
	struct store_ref *ref;
	store_status st = check(ns, key);

	if (st)
		return st;
	if (s->mem && (ref = store_mem_get(s->mem, ns, key, 1))) {
		store_ref_bytes(ref, len);
		store_ref_release(ref);
		return STORE_OK;
	}
	return s->be->head(s->state, ns, key, len);
}

store_status store_delete(struct store *s, const char *ns, const char *key)
{
	store_status st = check(ns, key);
	if (st)
		return st;
	if (s->mem)
		store_mem_drop(s->mem, ns, key);
	return s->be->del(s->state, ns, key);
}

/* ===== Multipart uploads ===== */

/* The backend's multipart table after the name checks, or NULL with the
 * status in *st. */
static const struct store_multipart *mp_of(struct store *s, const char *ns, const char *key, store_status *st)
{
	if ((*st = check(ns, key)) != STORE_OK)
		return NULL;
	if (!s->be->mp) {
		*st = store_fail(STORE_UNSUPPORTED, "%s storage has no multipart uploads", s->be->name);
		return NULL;
	}
	return s->be->mp;
}

store_status store_mp_begin(struct store *s, const char *ns, const char *key, char id[STORE_MP_ID_MAX])
{
	store_status st;
	const struct store_multipart *mp = mp_of(s, ns, key, &st);
	return mp ? mp->begin(s->state, ns, key, id) : st;
}

store_status store_mp_part(struct store *s, const char *ns, const char *key, const char *id, int n, const void *buf,
			   size_t len, char etag[STORE_MP_ETAG_MAX])
{
	store_status st;
	const struct store_multipart *mp = mp_of(s, ns, key, &st);
	if (mp && (n < 1 || n > 10000))
		return store_fail(STORE_BAD_KEY, "part %d: parts are 1 to 10000", n);
	return mp ? mp->part(s->state, ns, key, id, n, buf, len, etag) : st;
}

store_status store_mp_complete(struct store *s, const char *ns, const char *key, const char *id, int n,
			       const char (*etags)[STORE_MP_ETAG_MAX])
{
	store_status st;
	const struct store_multipart *mp = mp_of(s, ns, key, &st);
	if (mp && (n < 1 || n > 10000))
		return store_fail(STORE_BAD_KEY, "%d parts: 1 to 10000", n);
	return mp ? mp->complete(s->state, ns, key, id, n, etags) : st;
}

store_status store_mp_abort(struct store *s, const char *ns, const char *key, const char *id)
{
	store_status st;
	const struct store_multipart *mp = mp_of(s, ns, key, &st);
	return mp ? mp->abort(s->state, ns, key, id) : st;
}

store_status store_mp_list(struct store *s, const char *ns, void (*fn)(void *arg, const char *key, const char *id),
			   void *arg)
{
	store_status st;
	const struct store_multipart *mp = mp_of(s, ns, NULL, &st);
	return mp ? mp->list(s->state, ns, fn, arg) : st;
}
