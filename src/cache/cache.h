/*
 * cache.h - what keeps petcut from doing the same work twice at once.
 *
 * Single-flight: when several requests need the same thing (a mask, a
 * result) at the same time, the first becomes its leader and computes it;
 * the others wait for the leader to finish and then read what it stored.
 * Keys are strings (content hashes in practice). A leader that fails simply
 * finishes: a waiter then finds nothing stored and may lead the next try.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PETCUT_CACHE_H
#define PETCUT_CACHE_H

#ifdef __cplusplus
extern "C" {
#endif

struct cache_flights;

struct cache_flights *cache_flights_new(void);
void cache_flights_free(struct cache_flights *f);

/* Returns 1 if the caller leads the work for key (it must call
 * cache_flight_done), or 0 once another caller's work for key has finished
 * (the caller then looks up the result). -1 on no memory. */
int cache_flight_join(struct cache_flights *f, const char *key);

/* Ends the caller's lead on key and wakes the waiters. */
void cache_flight_done(struct cache_flights *f, const char *key);

/* How many callers waited on a leader instead of working (for metrics). */
unsigned long long cache_flights_merged(struct cache_flights *f);

/* ===== Work done once among instances, and the shared index =====
 *
 * struct cache is the two levels together: this process's flights, then,
 * with a shared backend, every instance's (a lock per key in the kv, which
 * a holder that dies lets expire). Beside them, the index: the figures of
 * finished results, so that an instance finds another's without reading
 * the store. The backends are a table (cache.c): "local" (this process
 * alone: the index is empty) and "redis" (kv.h). */

struct kv;
struct cache;

struct cache_opts {
	struct kv *kv;	   /* the shared kv, or NULL: local */
	const char *token; /* this instance's name on the locks it takes */
	int lock_ms;	   /* a lock expires after this if its holder dies */
	void (*remote_wait)(void *arg); /* called as a caller starts waiting for another
					   instance's work (for metrics), or NULL */
	void *arg;
};

struct cache *cache_new(const struct cache_opts *o);
void cache_free(struct cache *c);

/* Joins the work on key among this process's callers, then among
 * instances. Returns 1 when the caller does the work (it then calls
 * cache_done), 0 once someone else's work on key has ended (the caller
 * looks for the result again), -1 on no memory. A shared backend that is
 * down makes the caller work alone, never wait. */
int cache_join(struct cache *c, const char *key);
void cache_done(struct cache *c, const char *key);

/* The figures (JSON text, malloc'd, *len bytes) of result key from the
 * index, or NULL. */
char *cache_index_get(struct cache *c, const char *key, size_t *len);
/* Records result key's figures in the index (best effort). */
void cache_index_put(struct cache *c, const char *key, const char *text, size_t len);

/* Callers that waited on a leader here (for metrics). */
unsigned long long cache_merged(struct cache *c);

#ifdef __cplusplus
}
#endif
#endif
