/*
 * cache.c - work done once among instances, and the shared index of results
 * (cache.h): this process's flights (flight.c) in front of a backend from a
 * table, "local" or "redis".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "kv/kv.h"
#include "util/util.h"

#define LOCK_PREFIX "petcut:lock:"	   /* + key: the instance doing that work */
#define INDEX_PREFIX "petcut:result:"	   /* + result key: the result's figures (JSON) */
#define INDEX_TTL_MS (7 * 86400000L)	   /* the store keeps results; the index, a week of them */
#define POLL_MIN_MS 10			   /* waits for a lock held elsewhere: 10 ms, doubling... */
#define POLL_MAX_MS 200			   /* ... up to this */

/* What a shared level does; the local one does nothing. */
struct cache_backend {
	const char *name;
	/* 1: ours; 0: another instance held it, now released or expired */
	int (*join)(struct cache *c, const char *key);
	void (*done)(struct cache *c, const char *key);
	char *(*index_get)(struct cache *c, const char *key, size_t *len);
	void (*index_put)(struct cache *c, const char *key, const char *text, size_t len);
};

struct cache {
	const struct cache_backend *be;
	struct cache_flights *flights;
	struct kv *kv;
	char token[64];
	int lock_ms;
	void (*remote_wait)(void *arg);
	void *arg;
};


/* ===== local: this process alone ===== */

static int local_join(struct cache *c, const char *key)
{
	return 1;
}

static void local_done(struct cache *c, const char *key)
{
}

static char *local_index_get(struct cache *c, const char *key, size_t *len)
{
	return NULL;
}

static void local_index_put(struct cache *c, const char *key, const char *text, size_t len)
{
}

/* ===== redis: every instance of one store ===== */

static int redis_join(struct cache *c, const char *key)
{
	char lock[128];
	long pause = POLL_MIN_MS;

	snprintf(lock, sizeof lock, LOCK_PREFIX "%s", key);
	if (kv_lock(c->kv, lock, c->token, c->lock_ms) != KV_MISS)
		return 1; /* taken, or the kv is down: ours */
	/* another instance does it: wait for its lock to go (released or
	 * expired), holding this process's flight so that its other callers
	 * for key wait here rather than in the kv */
	if (c->remote_wait)
		c->remote_wait(c->arg);
	double until = util_now_ms() + c->lock_ms + 1000.0;
	while (util_now_ms() < until && kv_exists(c->kv, lock) == KV_OK) {
		usleep((useconds_t)pause * 1000);
		pause = pause * 2 > POLL_MAX_MS ? POLL_MAX_MS : pause * 2;
	}
	return 0;
}

static void redis_done(struct cache *c, const char *key)
{
	char lock[128];

	snprintf(lock, sizeof lock, LOCK_PREFIX "%s", key);
	kv_unlock(c->kv, lock, c->token);
}

static char *redis_index_get(struct cache *c, const char *key, size_t *len)
{
	char name[128], *text;

	snprintf(name, sizeof name, INDEX_PREFIX "%s", key);
	return kv_get(c->kv, name, &text, len) == KV_OK ? text : NULL;
}

static void redis_index_put(struct cache *c, const char *key, const char *text, size_t len)
{
	char name[128];

	snprintf(name, sizeof name, INDEX_PREFIX "%s", key);
	kv_set(c->kv, name, text, len, INDEX_TTL_MS);
}

static const struct cache_backend backends[] = {
	{"local", local_join, local_done, local_index_get, local_index_put},
	{"redis", redis_join, redis_done, redis_index_get, redis_index_put},
};

/* ===== The two levels ===== */

struct cache *cache_new(const struct cache_opts *o)
{
	struct cache *c = calloc(1, sizeof *c);

	if (!c || !(c->flights = cache_flights_new())) {
		free(c);
		return NULL;
	}
	c->be = &backends[o && o->kv ? 1 : 0];
	c->kv = o ? o->kv : NULL;
	c->lock_ms = o ? o->lock_ms : 0;
	c->remote_wait = o ? o->remote_wait : NULL;
	c->arg = o ? o->arg : NULL;
	snprintf(c->token, sizeof c->token, "%s", o && o->token ? o->token : "");
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	cache_flights_free(c->flights);
	free(c);
}

int cache_join(struct cache *c, const char *key)
{
	int lead = cache_flight_join(c->flights, key);

	if (lead <= 0 || c->be->join(c, key))
		return lead;
	cache_flight_done(c->flights, key); /* the other instance's work ended */
	return 0;
}

void cache_done(struct cache *c, const char *key)
{
	c->be->done(c, key);
	cache_flight_done(c->flights, key);
}

char *cache_index_get(struct cache *c, const char *key, size_t *len)
{
	return c->be->index_get(c, key, len);
}

void cache_index_put(struct cache *c, const char *key, const char *text, size_t len)
{
	c->be->index_put(c, key, text, len);
}

unsigned long long cache_merged(struct cache *c)
{
	return cache_flights_merged(c->flights);
}
