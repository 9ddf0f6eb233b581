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

#ifdef __cplusplus
}
#endif
#endif
