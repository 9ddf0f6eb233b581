/*
 * mem.c - the store's memory tier: a bounded LRU of whole objects held in
 * this process, in front of the backend.
 *
 * Objects never change under their names (content hashes, or hashes of the
 * request that made them), so an object held here is always the stored one:
 * there is nothing to invalidate but deletions. Only whole objects enter
 * (after a put commits, or once a read has all the bytes), never a partial
 * one.
 *
 * An entry is shared: a reader takes a reference (struct store_ref) and
 * sends the bytes straight from it, with no copy; eviction unlinks the entry
 * at once, and its bytes are freed when the last reference is released. So
 * the bytes held are at most the limit plus what responses still being sent
 * hold.
 *
 * One lock guards the table and the recency list; it is held for pointer
 * work only, never while bytes are copied.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

#define NAME_MAX_LEN (16 + 1 + STORE_KEY_LEN) /* "NS/KEY" */
#define ENTRY_OVERHEAD 128		      /* what an entry costs beside its bytes */

struct store_ref {
	struct store_ref *next_hash;	      /* the bucket's chain */
	struct store_ref *newer, *older;      /* recency list */
	char name[NAME_MAX_LEN + 1];
	uint64_t hash;
	atomic_int refs; /* the table's (while linked) + readers' */
	size_t len;
	unsigned char data[]; /* the object's bytes */
};

struct store_mem {
	pthread_mutex_t lock;
	struct store_ref **buckets;
	size_t n_buckets; /* a power of two */
	struct store_ref *newest, *oldest;
	size_t max, held, objects;
	unsigned long long hits, misses, evictions;
};

static uint64_t name_hash(const char *ns, const char *key)
{
	/* keys are SHA-256 in hex: their first 16 digits are already uniform */
	uint64_t h = 1469598103934665603ull;
	for (const char *p = ns; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (int i = 0; i < 16; i++)
		h ^= (uint64_t)(key[i] <= '9' ? key[i] - '0' : key[i] - 'a' + 10) << (4 * i);
	return h;
}

static void name_of(const char *ns, const char *key, char out[NAME_MAX_LEN + 1])
{
	size_t n = strlen(ns);
	memcpy(out, ns, n);
	out[n] = '/';
	memcpy(out + n + 1, key, STORE_KEY_LEN + 1);
}

struct store_mem *store_mem_new(size_t max_bytes)
{
	struct store_mem *m = calloc(1, sizeof *m);
	size_t n = 1024;

	/* about one bucket per 16 KB held, the size of a small result */
	while (n < max_bytes / 16384 && n < ((size_t)1 << 20))
		n <<= 1;
	if (!m || !(m->buckets = calloc(n, sizeof *m->buckets))) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->n_buckets = n;
	m->max = max_bytes;
	return m;
}

/* Drops one reference; the last one frees the entry. References are only
 * taken while the entry is in the table, which holds one itself, so a count
 * that reaches 0 can never grow again. */
static void unref(struct store_ref *e)
{
	if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
		free(e);
}

/* Takes e out of the table and the recency list. Called with the lock. */
static void unlink_locked(struct store_mem *m, struct store_ref *e)
{
	struct store_ref **pp = &m->buckets[e->hash & (m->n_buckets - 1)];
	while (*pp != e)
		pp = &(*pp)->next_hash;
	*pp = e->next_hash;
	if (e->newer)
		e->newer->older = e->older;
	else
		m->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		m->oldest = e->newer;
	m->held -= e->len + ENTRY_OVERHEAD;
	m->objects--;
	unref(e);
}

void store_mem_free(struct store_mem *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	while (m->oldest)
		unlink_locked(m, m->oldest);
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	free(m->buckets);
	free(m);
}

size_t store_mem_max_object(const struct store_mem *m)
{
	/* one object may take a sixteenth: a large photo cannot flush the
	 * many small results that make the hits */
	return m->max / 16;
}

static struct store_ref *find_locked(struct store_mem *m, uint64_t h, const char *name)
{
	for (struct store_ref *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next_hash)
		if (e->hash == h && !strcmp(e->name, name))
			return e;
	return NULL;
}

/* Moves e to the newest end of the recency list. Called with the lock. */
static void touch_locked(struct store_mem *m, struct store_ref *e)
{
	if (m->newest == e)
		return;
	/* out of its place (it has a newer one, so it is not the newest) */
	e->newer->older = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		m->oldest = e->newer;
	e->older = m->newest;
	e->newer = NULL;
	m->newest->newer = e;
	m->newest = e;
}

struct store_ref *store_mem_get(struct store_mem *m, const char *ns, const char *key, int count)
{
	char name[NAME_MAX_LEN + 1];
	uint64_t h = name_hash(ns, key);

	name_of(ns, key, name);
	pthread_mutex_lock(&m->lock);
	struct store_ref *e = find_locked(m, h, name);
	if (e) {
		touch_locked(m, e);
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	}
	if (count) {
		if (e)
			m->hits++;
		else
			m->misses++;
	}
	pthread_mutex_unlock(&m->lock);
	return e;
}

/* Links e (one reference: the table's) as the newest entry, evicting the
 * oldest ones to make room; an entry already under its name is kept and
 * returned instead (then e is freed). Returns the entry in the table, with
 * a reference for the caller when want_ref, or NULL when it was not kept. */
static struct store_ref *link_entry(struct store_mem *m, struct store_ref *e, int want_ref)
{
	struct store_ref *have;

	pthread_mutex_lock(&m->lock);
	if ((have = find_locked(m, e->hash, e->name))) {
		free(e);
		e = have;
		touch_locked(m, e);
	} else {
		while (m->oldest && m->held + e->len + ENTRY_OVERHEAD > m->max) {
			unlink_locked(m, m->oldest);
			m->evictions++;
		}
		struct store_ref **b = &m->buckets[e->hash & (m->n_buckets - 1)];
		e->next_hash = *b;
		*b = e;
		e->older = m->newest;
		e->newer = NULL;
		if (m->newest)
			m->newest->newer = e;
		else
			m->oldest = e;
		m->newest = e;
		m->held += e->len + ENTRY_OVERHEAD;
		m->objects++;
	}
	if (want_ref)
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&m->lock);
	return e;
}

static struct store_ref *entry_new(const char *ns, const char *key, size_t len)
{
	struct store_ref *e = malloc(sizeof *e + (len ? len : 1));
	if (!e)
		return NULL;
	memset(e, 0, sizeof *e);
	name_of(ns, key, e->name);
	e->hash = name_hash(ns, key);
	atomic_init(&e->refs, 1);
	e->len = len;
	return e;
}

void store_mem_put(struct store_mem *m, const char *ns, const char *key, const void *data, size_t len)
{
	struct store_ref *e;

	if (len > store_mem_max_object(m) || !(e = entry_new(ns, key, len)))
		return;
	memcpy(e->data, data, len);
	link_entry(m, e, 0);
}

struct store_ref *store_mem_fill_fd(struct store_mem *m, const char *ns, const char *key, int fd, size_t len)
{
	struct store_ref *e;
	size_t got = 0;

	if (len > store_mem_max_object(m) || !(e = entry_new(ns, key, len)))
		return NULL;
	while (got < len) {
		ssize_t n = pread(fd, e->data + got, len - got, (off_t)got);
		if (n <= 0) {
			free(e); /* a short file is not the object: keep nothing */
			return NULL;
		}
		got += (size_t)n;
	}
	return link_entry(m, e, 1);
}

void store_mem_drop(struct store_mem *m, const char *ns, const char *key)
{
	char name[NAME_MAX_LEN + 1];

	name_of(ns, key, name);
	pthread_mutex_lock(&m->lock);
	struct store_ref *e = find_locked(m, name_hash(ns, key), name);
	if (e)
		unlink_locked(m, e);
	pthread_mutex_unlock(&m->lock);
}

void store_ref_release(struct store_ref *e)
{
	if (e)
		unref(e);
}

const void *store_ref_bytes(const struct store_ref *e, size_t *len)
{
	*len = e->len;
	return e->data;
}

void store_mem_stats(struct store_mem *m, struct store_memory_stats *out)
{
	pthread_mutex_lock(&m->lock);
	out->max_bytes = m->max;
	out->bytes = m->held;
	out->objects = m->objects;
	out->hits = m->hits;
	out->misses = m->misses;
	out->evictions = m->evictions;
	pthread_mutex_unlock(&m->lock);
}
