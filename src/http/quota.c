/*
 * quota.c - per-API-key limits: a rate, and the requests in progress.
 *
 * A line of the key file (auth.c) may follow its key with settings,
 * separated by spaces:
 *
 *	KEY rate=120/min concurrency=4
 *
 * rate=N/s, N/min or N/h allows N requests in that window, N of them at
 * once; concurrency=N allows N requests of the key in progress at once. A
 * key without settings has no limits. Every request that needs a key and
 * has one with limits is counted when its headers are in (server.c's
 * handle): over a limit it is answered 429 with Retry-After, its body read
 * and dropped, and nothing is counted.
 *
 * The rate is GCRA (the generic cell rate algorithm, a leaky bucket kept as
 * one number): each key has a theoretical arrival time, tat, that moves on
 * by one interval I = window / N per request allowed; a request at now is
 * allowed while max(tat, now) + I lies at most N intervals ahead of now.
 * A key left alone may send N at once; a key that keeps sending gets one
 * request every I, smoothly, with no window edge to burst across (a fixed
 * window lets 2N through around its edge). A client that keeps within N
 * requests in any window is never refused. I is whole microseconds, so N
 * requests span N * I, at most the window (never less generous than it).
 *
 * The answer's fields follow draft-ietf-httpapi-ratelimit-headers-11
 * (structured fields, RFC 9651):
 *
 *	RateLimit-Policy: "rate";q=120;w=60, "concurrency";q=4;qu="concurrent-requests"
 *	RateLimit: "rate";r=37;t=1, "concurrency";r=3
 *
 * r is what may be sent at once now, and t (seconds, rounded up) the time
 * until r grows by one: within t the client can use no more than r, which
 * is what the draft asks t to mean. Where r is the whole quota t is 0. A
 * refusal for the rate says r=0 and t the time Retry-After says; one for
 * concurrency says Retry-After 1 (when a slot frees is not known).
 *
 * Counted where: alone, in this process (one mutex, a few instructions per
 * request). With --redis, in Redis by one script (kv_limit_take), so the
 * limits hold across instances: under keys named by a short digest of the
 * key's digest (never the key), with expiries, and a request in progress
 * held as an entry that expires after the lock time (PETCUT_REDIS_LOCK_MS,
 * default the request timeout + 10 s) so that a killed instance's requests
 * stop counting by themselves. Redis down or failing: the request is
 * allowed (fail open, counted in petcut_ratelimit_fail_open_total) rather
 * than every keyed request refused; its answer then carries the policy
 * only, as the counts are not known.
 *
 * A slot is released in the request's completion callback (server.c's
 * completed), which libmicrohttpd calls however the request ends: answered,
 * failed, or its client gone.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "http/http_int.h"

#define RATE_MAX 1000000	  /* N of rate=N/...: an interval of at least 1 us */
#define CONCURRENCY_MAX 100000

/* One key's counters and its fixed texts. */
struct quota_key {
	long long tat_us;  /* alone: the theoretical arrival time (monotonic clock) */
	int in_progress;   /* alone: requests holding a slot */
	struct kv_limit lim;
	char name[40];	   /* its name in the kv: petcut:rl:{16 hex digits} */
	char policy[128];  /* RateLimit-Policy */
};

struct quota_table {
	pthread_mutex_t lock; /* guards the counters of keys[] */
	struct quota_key *keys; /* as the server's api_keys; NULL when no key has limits */
	atomic_ullong next_holder;
	struct metrics_series *refused_rate, *refused_concurrency, *fail_open;
};

/* ===== The key file's settings ===== */

/* A whole decimal number of at most 9 digits in [1, max]: 0, or -1. */
static int parse_count(const char *s, size_t n, long long max, long long *out)
{
	long long v = 0;

	if (!n || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > max)
		return -1;
	*out = v;
	return 0;
}

int http_limits_parse(const char *text, struct http_limits *out, char *why, size_t wl)
{
	int word = 1; /* the key is word 1 */

	memset(out, 0, sizeof *out);
	for (const char *p = text;;) {
		p += strspn(p, " \t");
		if (!*p)
			return 0;
		size_t n = strcspn(p, " \t");
		const char *tok = p;
		long long v;
		p += n;
		word++;
		/* the word itself is never echoed: it may be a second key
		 * written on the line by mistake */
		if (n > 5 && !strncmp(tok, "rate=", 5)) {
			const char *num = tok + 5, *slash = memchr(num, '/', n - 5);
			size_t ul = slash ? (size_t)(tok + n - slash - 1) : 0;
			if (out->rate) {
				snprintf(why, wl, "rate is given twice");
				return -1;
			}
			if (!slash || parse_count(num, (size_t)(slash - num), RATE_MAX, &v)) {
				snprintf(why, wl, "word %d: rate=N/s, N/min or N/h, N from 1 to %d", word, RATE_MAX);
				return -1;
			}
			if (ul == 1 && slash[1] == 's')
				out->window_s = 1;
			else if (ul == 3 && !strncmp(slash + 1, "min", 3))
				out->window_s = 60;
			else if (ul == 1 && slash[1] == 'h')
				out->window_s = 3600;
			else {
				snprintf(why, wl, "word %d: the rate's window is s, min or h (rate=N/s, N/min or N/h)",
					 word);
				return -1;
			}
			out->rate = v;
		} else if (n > 12 && !strncmp(tok, "concurrency=", 12)) {
			if (out->concurrency) {
				snprintf(why, wl, "concurrency is given twice");
				return -1;
			}
			if (parse_count(tok + 12, n - 12, CONCURRENCY_MAX, &v)) {
				snprintf(why, wl, "word %d: concurrency=N, N from 1 to %d", word, CONCURRENCY_MAX);
				return -1;
			}
			out->concurrency = (int)v;
		} else {
			snprintf(why, wl, "word %d is not a setting (a key is one word; settings after it: "
				 "rate=N/s, N/min or N/h, concurrency=N)", word);
			return -1;
		}
	}
}

/* ===== Set-up ===== */

/* The key's name in the kv: a short digest of its digest, under a label of
 * its own, so that it matches no other use of the key's SHA-256. */
static int kv_name(const unsigned char digest[32], char out[40])
{
	unsigned char in[16 + 32], d[32];
	unsigned int n = 0;

	memcpy(in, "petcut ratelimit", 16);
	memcpy(in + 16, digest, 32);
	if (!EVP_Digest(in, sizeof in, d, &n, EVP_sha256(), NULL) || n != 32)
		return -1;
	int len = snprintf(out, 40, "petcut:rl:{");
	for (int i = 0; i < 8; i++)
		len += snprintf(out + len, (size_t)(40 - len), "%02x", d[i]);
	snprintf(out + len, (size_t)(40 - len), "}");
	return 0;
}

int http_quota_init(struct http_server *s, char *errbuf, size_t errlen)
{
	struct quota_table *q = calloc(1, sizeof *q);
	struct metrics_family *refused, *open;
	int any = 0;

	if (!q) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	s->quota = q;
	pthread_mutex_init(&q->lock, NULL);
	refused = metrics_family(s->metrics, METRICS_COUNTER, "petcut_ratelimited_total",
				 "Requests refused with 429 by their API key's limits (--api-key-file), by the "
				 "limit: rate or concurrency.", "reason", NULL, 0);
	open = metrics_family(s->metrics, METRICS_COUNTER, "petcut_ratelimit_fail_open_total",
			      "Requests of an API key with limits allowed uncounted because the shared Redis "
			      "could not decide (fail open).", NULL, NULL, 0);
	q->refused_rate = refused ? metrics_series(refused, (const char *const[]){"rate"}) : NULL;
	q->refused_concurrency = refused ? metrics_series(refused, (const char *const[]){"concurrency"}) : NULL;
	q->fail_open = open ? metrics_series(open, NULL) : NULL;
	if (!q->refused_rate || !q->refused_concurrency || !q->fail_open) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		return -1;
	}
	for (int i = 0; i < s->n_api_keys; i++)
		any |= s->api_limits[i].rate || s->api_limits[i].concurrency;
	if (!any)
		return 0;
	if (!(q->keys = calloc((size_t)s->n_api_keys, sizeof *q->keys))) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < s->n_api_keys; i++) {
		const struct http_limits *l = &s->api_limits[i];
		struct quota_key *k = &q->keys[i];
		int len = 0;

		if (l->rate) {
			k->lim.interval_us = (long long)l->window_s * 1000000 / l->rate;
			k->lim.burst = l->rate;
			len += snprintf(k->policy, sizeof k->policy, "\"rate\";q=%lld;w=%d", l->rate, l->window_s);
		}
		if (l->concurrency) {
			k->lim.concurrency = l->concurrency;
			snprintf(k->policy + len, sizeof k->policy - (size_t)len,
				 "%s\"concurrency\";q=%d;qu=\"concurrent-requests\"", len ? ", " : "", l->concurrency);
		}
		/* a request held longer than the lock time stops counting */
		k->lim.lease_ms = s->cfg.redis_lock_ms > 0 ? s->cfg.redis_lock_ms : s->cfg.request_timeout_ms + 10000;
		if (kv_name(s->api_keys[i], k->name)) {
			snprintf(errbuf, errlen, "cannot hash a key");
			return -1;
		}
	}
	return 0;
}

void http_quota_fini(struct http_server *s)
{
	struct quota_table *q = s->quota;

	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q->keys);
	free(q);
	s->quota = NULL;
}

/* ===== Deciding ===== */

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void http_limit_decide(const struct kv_limit *l, long long *tat_us, int *in_progress, long long now,
		       struct kv_limit_state *st)
{
	long long tat = now, span = l->interval_us * l->burst;

	st->verdict = KV_LIMIT_ALLOWED;
	st->rate_left = -1;
	st->rate_wait_us = 0;
	st->concurrency_left = -1;
	if (l->interval_us > 0) {
		tat = *tat_us > now ? *tat_us : now;
		if (tat + l->interval_us - now > span) {
			st->verdict = KV_LIMIT_RATE;
			st->rate_left = 0;
			st->rate_wait_us = tat + l->interval_us - span - now;
		}
	}
	if (l->concurrency > 0) {
		if (st->verdict == KV_LIMIT_ALLOWED && *in_progress >= l->concurrency)
			st->verdict = KV_LIMIT_CONCURRENCY;
		st->concurrency_left = *in_progress < l->concurrency ? l->concurrency - *in_progress : 0;
	}
	if (st->verdict == KV_LIMIT_ALLOWED) {
		if (l->interval_us > 0)
			*tat_us = tat += l->interval_us;
		if (l->concurrency > 0) {
			++*in_progress;
			st->concurrency_left--;
		}
	}
	if (l->interval_us > 0 && st->verdict != KV_LIMIT_RATE) {
		st->rate_left = (now + span - tat) / l->interval_us;
		if (st->rate_left >= l->burst) {
			st->rate_left = l->burst;
			st->rate_wait_us = 0;
		} else {
			st->rate_wait_us = tat - span + (st->rate_left + 1) * l->interval_us - now;
		}
	}
}

int http_quota_take(struct http_server *s, struct req *r, int key)
{
	struct quota_table *q = s->quota;
	struct http_quota *g = &r->quota;
	struct quota_key *k;

	if (!q || !q->keys || key < 0 || key >= s->n_api_keys)
		return 0;
	k = &q->keys[key];
	if (!k->lim.interval_us && !k->lim.concurrency)
		return 0;
	g->limited = 1;
	g->key = key;
	if (s->kv) {
		snprintf(g->holder, sizeof g->holder, "%s:%llx", s->kv_token,
			 (unsigned long long)atomic_fetch_add(&q->next_holder, 1));
		if (kv_limit_take(s->kv, k->name, g->holder, &k->lim, &g->st) != KV_OK) {
			metrics_add(q->fail_open, 1);
			return 0;
		}
		g->known = 1;
		if (g->st.verdict == KV_LIMIT_ALLOWED && k->lim.concurrency)
			g->held = 2;
	} else {
		pthread_mutex_lock(&q->lock);
		http_limit_decide(&k->lim, &k->tat_us, &k->in_progress, now_us(), &g->st);
		pthread_mutex_unlock(&q->lock);
		g->known = 1;
		if (g->st.verdict == KV_LIMIT_ALLOWED && k->lim.concurrency)
			g->held = 1;
	}
	if (g->st.verdict == KV_LIMIT_ALLOWED)
		return 0;
	g->refused = g->st.verdict;
	metrics_add(g->refused == KV_LIMIT_RATE ? q->refused_rate : q->refused_concurrency, 1);
	return -1;
}

void http_quota_release(struct req *r)
{
	struct http_server *s = r->srv;
	struct http_quota *g = &r->quota;
	struct quota_key *k;

	if (!g->held || !s->quota || !s->quota->keys)
		return;
	k = &s->quota->keys[g->key];
	if (g->held == 1) {
		pthread_mutex_lock(&s->quota->lock);
		k->in_progress--;
		pthread_mutex_unlock(&s->quota->lock);
	} else {
		/* Redis down now: the entry expires after its lease */
		kv_limit_release(s->kv, k->name, g->holder);
	}
	g->held = 0;
}

/* ===== Answers ===== */

static long long seconds_up(long long us)
{
	return us > 0 ? (us + 999999) / 1000000 : 0;
}

void http_quota_headers(struct MHD_Response *resp, const struct req *r)
{
	const struct http_quota *g = &r->quota;
	char field[160];
	int len = 0;

	if (!g->limited)
		return;
	MHD_add_response_header(resp, "RateLimit-Policy", r->srv->quota->keys[g->key].policy);
	if (!g->known)
		return;
	if (g->st.rate_left >= 0)
		len = snprintf(field, sizeof field, "\"rate\";r=%lld;t=%lld", g->st.rate_left,
			       seconds_up(g->st.rate_wait_us));
	if (g->st.concurrency_left >= 0)
		snprintf(field + len, sizeof field - (size_t)len, "%s\"concurrency\";r=%d", len ? ", " : "",
			 g->st.concurrency_left);
	MHD_add_response_header(resp, "RateLimit", field);
}

enum MHD_Result http_quota_refuse(struct MHD_Connection *c, struct req *r)
{
	const struct http_quota *g = &r->quota;
	char secs[24];
	const char *const headers[] = {"Retry-After", secs, NULL};

	if (g->refused == KV_LIMIT_RATE) {
		long long t = seconds_up(g->st.rate_wait_us);
		snprintf(secs, sizeof secs, "%lld", t > 0 ? t : 1);
		return http_reply_error_with(c, r, 429, headers, "rate_limited",
					     "this API key's rate limit is spent; try again in %s s", secs);
	}
	snprintf(secs, sizeof secs, "1");
	return http_reply_error_with(c, r, 429, headers, "concurrency_limited",
				     "this API key has as many requests in progress as it may; try again when one "
				     "ends");
}
