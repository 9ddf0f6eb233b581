/*
 * flight.c - single-flight by key: a list of keys in work, each with the
 * number of callers waiting on it. See cache.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

struct flight {
	char *key;
	int waiters;
	int done;
	pthread_cond_t cond;
	struct flight *next;
};

struct cache_flights {
	pthread_mutex_t lock;
	struct flight *list;
	unsigned long long merged;
};

struct cache_flights *cache_flights_new(void)
{
	struct cache_flights *f = calloc(1, sizeof *f);
	if (f)
		pthread_mutex_init(&f->lock, NULL);
	return f;
}

void cache_flights_free(struct cache_flights *f)
{
	if (!f)
		return;
	/* no flights may be in progress: their callers hold pointers */
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static struct flight *find(struct cache_flights *f, const char *key)
{
	for (struct flight *x = f->list; x; x = x->next)
		if (!x->done && !strcmp(x->key, key))
			return x;
	return NULL;
}

static void unlink_flight(struct cache_flights *f, struct flight *x)
{
	for (struct flight **p = &f->list; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			break;
		}
	pthread_cond_destroy(&x->cond);
	free(x->key);
	free(x);
}

int cache_flight_join(struct cache_flights *f, const char *key)
{
	struct flight *x;

	pthread_mutex_lock(&f->lock);
	if ((x = find(f, key))) {
		x->waiters++;
		f->merged++;
		while (!x->done)
			pthread_cond_wait(&x->cond, &f->lock);
		if (--x->waiters == 0)
			unlink_flight(f, x);
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	if (!(x = calloc(1, sizeof *x)) || !(x->key = strdup(key))) {
		free(x);
		pthread_mutex_unlock(&f->lock);
		return -1;
	}
	pthread_cond_init(&x->cond, NULL);
	x->next = f->list;
	f->list = x;
	pthread_mutex_unlock(&f->lock);
	return 1;
}

void cache_flight_done(struct cache_flights *f, const char *key)
{
	struct flight *x;

	pthread_mutex_lock(&f->lock);
	if ((x = find(f, key))) {
		x->done = 1;
		if (x->waiters)
			pthread_cond_broadcast(&x->cond);
		else
			unlink_flight(f, x);
	}
	pthread_mutex_unlock(&f->lock);
}

unsigned long long cache_flights_merged(struct cache_flights *f)
{
	pthread_mutex_lock(&f->lock);
	unsigned long long n = f->merged;
	pthread_mutex_unlock(&f->lock);
	return n;
}
