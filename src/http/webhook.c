/*
 * webhook.c - job callbacks as Standard Webhooks (standardwebhooks.com):
 * signed with the secrets of --webhook-secret-file, queued on the shared
 * Redis and delivered by a thread of every process with job consumers, tried
 * again with a growing pause until --webhook-retry-seconds have passed.
 *
 * A callback is POSTed with webhook-id (msg_ + the job's id: the same for
 * every try of it, so a receiver can drop repeats), webhook-timestamp (unix
 * seconds of that try) and webhook-signature: "v1," + base64 of the
 * HMAC-SHA256 of "ID.TIMESTAMP.BODY" under each secret, space-separated, so
 * that a receiver may move to a new secret while the old one is still
 * listed.
 *
 * Deliveries live in the kv delivery queue petcut:hooks (kv.h): an item per
 * job holding its URL, body, tries and first time. A delivery thread claims
 * the one due first (a lease of HOOK_LEASE_MS: one whose process died is due
 * again after it), tries it once, and reports back: done, or due again after
 * a pause with full jitter, from 1 s up to min(HOOK_CAP_MS, 1 s * 2^tries);
 * one whose next try would fall past the retry bound is given up. So a
 * receiver that is down never blocks a job consumer, and pending callbacks
 * survive the restart of every worker. Redis down: nothing is claimed, and
 * the thread asks again later.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "http/http_int.h"

#define HOOK_QUEUE "petcut:hooks"
#define HOOK_PREFIX "whsec_"
#define HOOK_KEY_MIN 24		/* bytes of a secret, as Standard Webhooks asks */
#define HOOK_KEY_MAX 64
#define HOOK_MAX_SECRETS 16
#define HOOK_BASE_MS 1000L	/* the shortest pause before another try */
#define HOOK_CAP_MS 600000L	/* the longest */
#define HOOK_ATTEMPT_MS 10000L	/* one try's time limit */
#define HOOK_LEASE_MS 60000L	/* a claimed delivery is due again this long after, unless reported */
#define HOOK_POLL_MS 200L	/* the pause when nothing is due */
#define HOOK_DOWN_MS 1000L	/* the pause while Redis is down */

struct webhook_key {
	unsigned char b[HOOK_KEY_MAX];
	size_t len;
};

struct webhook {
	struct webhook_key *keys; /* the decoded secrets, in the file's order */
	int n_keys;
	pthread_t thread;
	int running;			 /* the delivery thread was started */
	atomic_int stop;		 /* the delivery thread ends its try and stops */
	atomic_ullong claims;		 /* numbers the claims of this process */
	struct metrics_family *attempts;  /* petcut_webhook_attempts_total{outcome} */
	struct metrics_family *deliveries; /* petcut_webhook_deliveries_total{outcome} */
	struct metrics_family *jobs;	 /* petcut_jobs_total (callback_sent, callback_failed) */
};

/* ===== Secrets and signatures ===== */

int http_webhook_secret_parse(const char *text, unsigned char *key, size_t *len)
{
	char b64[((HOOK_KEY_MAX + 2) / 3) * 4 + 1];
	unsigned char out[sizeof b64];
	size_t n, pad = 0;

	if (strncmp(text, HOOK_PREFIX, strlen(HOOK_PREFIX)))
		return -1;
	text += strlen(HOOK_PREFIX);
	n = strlen(text);
	if (n >= sizeof b64 || strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return -1;
	memcpy(b64, text, n + 1);
	/* unpadded base64 too: what is missing of the last group */
	while (n % 4 && n < sizeof b64 - 1)
		b64[n++] = '=';
	b64[n] = 0;
	const char *eq = strchr(b64, '=');
	if (n % 4 || (eq && (eq < b64 + n - 2 || strspn(eq, "=") != strlen(eq))))
		return -1; /* '=' only at the end, at most two */
	for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
		pad++;
	int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad || (size_t)got - pad < HOOK_KEY_MIN || (size_t)got - pad > HOOK_KEY_MAX) {
		OPENSSL_cleanse(out, sizeof out);
		return -1;
	}
	*len = (size_t)got - pad;
	memcpy(key, out, *len);
	OPENSSL_cleanse(out, sizeof out);
	OPENSSL_cleanse(b64, sizeof b64);
	return 0;
}

int http_webhook_sign(const unsigned char *key, size_t keylen, const char *id, long long ts, const char *body,
		      size_t len, char out[HTTP_WEBHOOK_SIG_LEN])
{
	char head[KV_QUEUE_ID_MAX + 48];
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	int hl = snprintf(head, sizeof head, "%s.%lld.", id, ts), ok;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
			       OSSL_PARAM_construct_end()};

	/* the MAC of the three parts, without joining them: the body may be long */
	ok = hl > 0 && (size_t)hl < sizeof head && c && EVP_MAC_init(c, key, keylen, params) &&
	     EVP_MAC_update(c, (const unsigned char *)head, (size_t)hl) &&
	     EVP_MAC_update(c, (const unsigned char *)body, len) && EVP_MAC_final(c, mac, &maclen, sizeof mac) &&
	     maclen == 32;
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	if (!ok)
		return -1;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen); /* 44 characters and a NUL */
	return 0;
}

/* Reads the secrets of cfg.webhook_secret_file: one a line, blank lines and
 * lines starting with # skipped. */
static int secrets_read(struct http_server *s, struct webhook *w, char *errbuf, size_t errlen)
{
	const char *path = s->cfg.webhook_secret_file;
	char line[512];
	int lineno = 0, rc = -1;
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(errbuf, errlen, "--webhook-secret-file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!(w->keys = calloc(HOOK_MAX_SECRETS, sizeof *w->keys))) {
		snprintf(errbuf, errlen, "out of memory");
		goto out;
	}
	while (fgets(line, sizeof line, f)) {
		size_t len = strcspn(line, "\r\n");
		lineno++;
		int whole = line[len] != 0 || feof(f);
		line[len] = 0;
		while (len && isspace((unsigned char)line[len - 1]))
			line[--len] = 0;
		if (whole && (!len || line[0] == '#'))
			continue;
		if (w->n_keys == HOOK_MAX_SECRETS) {
			snprintf(errbuf, errlen, "%s:%d: at most %d secrets", path, lineno, HOOK_MAX_SECRETS);
			goto out;
		}
		struct webhook_key *k = &w->keys[w->n_keys];
		if (!whole || http_webhook_secret_parse(line, k->b, &k->len)) {
			snprintf(errbuf, errlen,
				 "%s:%d: a webhook secret is whsec_ and the base64 of %d to %d random bytes "
				 "(e.g. whsec_$(openssl rand -base64 32))",
				 path, lineno, HOOK_KEY_MIN, HOOK_KEY_MAX);
			goto out;
		}
		w->n_keys++;
	}
	if (!w->n_keys) {
		snprintf(errbuf, errlen, "--webhook-secret-file %s holds no secret", path);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(line, sizeof line);
	fclose(f);
	return rc;
}

/* The webhook-signature header's value for one try: "v1,SIG" for each
 * secret, space-separated (malloc'd; NULL without secrets or memory). */
static char *signatures(const struct webhook *w, const char *id, long long ts, const char *body, size_t len)
{
	char *all = w->n_keys ? malloc((size_t)w->n_keys * HTTP_WEBHOOK_SIG_LEN) : NULL, *p = all;

	for (int i = 0; all && i < w->n_keys; i++) {
		if (i)
			*p++ = ' ';
		if (http_webhook_sign(w->keys[i].b, w->keys[i].len, id, ts, body, len, p)) {
			free(all);
			return NULL;
		}
		p += strlen(p);
	}
	return all;
}

/* ===== Queueing ===== */

kv_status http_webhook_queue(struct http_server *s, struct kv *kv, const char *job_id, const char *url,
			     const char *body)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_t *d = json_pack("{s:s,s:s,s:i,s:I}", "url", url, "body", body, "tries", 0, "since",
			      (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
	kv_status st = text ? kv_queue_add(kv, HOOK_QUEUE, job_id, text, strlen(text), 0) : KV_NOMEM;

	json_decref(d);
	free(text);
	/* KV_MISS: queued already, by a consumer that finished the same job */
	return st == KV_MISS ? KV_OK : st;
}

/* ===== Delivery ===== */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Ends a try early when the process stops. */
static int stopping(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	return atomic_load(&((struct webhook *)arg)->stop);
}

/* One try: POSTs body to url with the Standard Webhooks headers. Returns
 * the HTTP status (0: no answer), -1 when cut short by a stop. */
static long attempt(struct webhook *w, const char *url, const char *id, const char *body)
{
	long long ts = (long long)time(NULL);
	char h_id[200], h_ts[64], *sig = signatures(w, id, ts, body, strlen(body)), *h_sig = NULL;
	struct curl_slist *hdrs = NULL, *l;
	long status = 0;
	CURL *h = NULL;
	CURLcode rc;

	snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
	snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
	if (w->n_keys && (!sig || !(h_sig = malloc(strlen(sig) + 32))))
		goto out;
	if (h_sig)
		sprintf(h_sig, "webhook-signature: %s", sig);
	if (!(l = curl_slist_append(hdrs, "Content-Type: application/json")) || !(hdrs = l) ||
	    !(l = curl_slist_append(hdrs, h_id)) || !(hdrs = l) || !(l = curl_slist_append(hdrs, h_ts)) ||
	    !(hdrs = l) || (h_sig && (!(l = curl_slist_append(hdrs, h_sig)) || !(hdrs = l))) ||
	    !(h = curl_easy_init()))
		goto out;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could leave the allow list */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, HOOK_ATTEMPT_MS);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, stopping);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	rc = curl_easy_perform(h);
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		status = -1;
	else if (rc != CURLE_OK || curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status))
		status = 0;
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	free(h_sig);
	free(sig);
	return status;
}

/* The pause before try tries + 1 (tries >= 1 failed so far): full jitter
 * between HOOK_BASE_MS and min(HOOK_CAP_MS, HOOK_BASE_MS * 2^tries). */
static long backoff_ms(long long tries)
{
	long top = tries >= 20 ? HOOK_CAP_MS : HOOK_BASE_MS << tries;
	uint32_t r = 0;

	if (top > HOOK_CAP_MS)
		top = HOOK_CAP_MS;
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = (uint32_t)rand();
	return HOOK_BASE_MS + (long)((double)r / 4294967296.0 * (double)(top - HOOK_BASE_MS));
}

static void count(struct metrics_family *f, const char *what)
{
	metrics_add(metrics_series(f, (const char *const[]){what}), 1);
}

/* Tries the claimed delivery id (its queue item's payload) once and reports
 * back to the queue. */
static void deliver(struct http_server *s, struct webhook *w, const char *id, const char *token, const char *payload)
{
	struct kv *kv = s->kv;
	json_t *d = json_loads(payload, 0, NULL);
	const char *url = json_string_value(json_object_get(d, "url"));
	const char *body = json_string_value(json_object_get(d, "body"));
	char msg_id[KV_QUEUE_ID_MAX + 8], outcome[8];
	struct timespec now;

	if (!url || !body) {
		fprintf(stderr, "petcut: the callback of job %s cannot be read: dropped\n", id);
		kv_queue_done(kv, HOOK_QUEUE, id, token);
		json_decref(d);
		return;
	}
	snprintf(msg_id, sizeof msg_id, "msg_%s", id);
	long status = attempt(w, url, msg_id, body);
	if (status < 0) { /* stopping: another process (or this one, restarted) tries it */
		kv_queue_retry(kv, HOOK_QUEUE, id, token, payload, strlen(payload), 0);
		json_decref(d);
		return;
	}
	if (status >= 200 && status <= 599)
		snprintf(outcome, sizeof outcome, "%ldxx", status / 100);
	else
		snprintf(outcome, sizeof outcome, "network");
	count(w->attempts, outcome);
	if (status >= 200 && status <= 299) {
		kv_queue_done(kv, HOOK_QUEUE, id, token);
		count(w->deliveries, "delivered");
		count(w->jobs, "callback_sent");
		json_decref(d);
		return;
	}
	json_int_t tries = json_integer_value(json_object_get(d, "tries")) + 1;
	json_int_t since = json_integer_value(json_object_get(d, "since"));
	long pause = backoff_ms(tries);
	clock_gettime(CLOCK_REALTIME, &now);
	long long elapsed = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - since;
	if (elapsed + pause > (long long)s->cfg.webhook_retry_s * 1000) {
		fprintf(stderr, "petcut: the callback of job %s to %s is given up after %lld tries (the last: %s)\n", id,
			url, (long long)tries, status ? outcome : "no answer");
		kv_queue_done(kv, HOOK_QUEUE, id, token);
		count(w->deliveries, "given_up");
		count(w->jobs, "callback_failed");
		json_decref(d);
		return;
	}
	json_object_set_new(d, "tries", json_integer(tries));
	char *text = json_dumps(d, JSON_COMPACT);
	/* no memory: left claimed, so due again after the lease */
	if (text)
		kv_queue_retry(kv, HOOK_QUEUE, id, token, text, strlen(text), pause);
	free(text);
	json_decref(d);
}

/* Waits ms, or less when the process stops. */
static void nap(struct webhook *w, long ms)
{
	for (; ms > 0 && !atomic_load(&w->stop); ms -= 50)
		usleep(50000);
}

static void *deliver_main(void *arg)
{
	struct http_server *s = arg;
	struct webhook *w = s->webhook;
	char id[KV_QUEUE_ID_MAX], token[80], *payload;

	while (!atomic_load(&w->stop)) {
		snprintf(token, sizeof token, "%s-%llu", s->kv_token, (unsigned long long)atomic_fetch_add(&w->claims, 1));
		kv_status st = kv_queue_claim(s->kv, HOOK_QUEUE, HOOK_LEASE_MS, token, id, &payload, NULL);
		if (st != KV_OK) {
			nap(w, st == KV_MISS ? HOOK_POLL_MS : HOOK_DOWN_MS);
			continue;
		}
		deliver(s, w, id, token, payload);
		free(payload);
	}
	return NULL;
}

/* ===== Set-up ===== */

int http_webhook_init(struct http_server *s, char *errbuf, size_t errlen)
{
	struct webhook *w = calloc(1, sizeof *w);

	if (!w) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	s->webhook = w;
	return s->cfg.webhook_secret_file ? secrets_read(s, w, errbuf, errlen) : 0;
}

int http_webhook_start(struct http_server *s, struct metrics_family *jobs, char *errbuf, size_t errlen)
{
	struct webhook *w = s->webhook;

	w->jobs = jobs;
	if (!(w->attempts = metrics_family(s->metrics, METRICS_COUNTER, "petcut_webhook_attempts_total",
					   "Tries of job callbacks by this instance, by their answer: 2xx, 3xx "
					   "(redirects are not followed), 4xx, 5xx, or network (no answer in time).",
					   "outcome", NULL, 0)) ||
	    !(w->deliveries = metrics_family(s->metrics, METRICS_COUNTER, "petcut_webhook_deliveries_total",
					     "Job callbacks ended by this instance: delivered (a 2xx answer), or "
					     "given_up (no 2xx within --webhook-retry-seconds).",
					     "outcome", NULL, 0))) {
		snprintf(errbuf, errlen, "cannot set up metrics");
		return -1;
	}
	if (pthread_create(&w->thread, NULL, deliver_main, s)) {
		snprintf(errbuf, errlen, "cannot start the callback delivery");
		return -1;
	}
	w->running = 1;
	return 0;
}

void http_webhook_fini(struct http_server *s)
{
	struct webhook *w = s ? s->webhook : NULL;

	if (!w)
		return;
	if (w->running) {
		atomic_store(&w->stop, 1);
		pthread_join(w->thread, NULL);
	}
	if (w->keys)
		OPENSSL_cleanse(w->keys, sizeof *w->keys * HOOK_MAX_SECRETS);
	free(w->keys);
	free(w);
	s->webhook = NULL;
}
