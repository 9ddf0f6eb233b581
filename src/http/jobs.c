/*
 * jobs.c - asynchronous removals through the shared Redis: POST /v1/jobs
 * queues a remove-background body and answers 202 at once, GET
 * /v1/jobs/{id} says how it goes, and job consumers (`petcut worker`) do
 * them.
 *
 * A job is a JSON value under petcut:job:ID (status queued, running, done or
 * failed; the request; tries; the result or the error) and an entry on the
 * stream petcut:jobs read by the consumer group petcut-workers. A consumer
 * acknowledges an entry once the job is done or failed for good; an entry
 * whose consumer died is taken by another after --claim-ms (XAUTOCLAIM). So
 * every job is done at least once, and doing one twice is harmless: its
 * result is stored under the hash of its request, and a job found done is
 * only acknowledged.
 *
 * A job may name a callback_url, called (POST of the job's JSON) once it is
 * done or failed; only hosts of --callback-allow may be named, so that a
 * request cannot make petcut call into the network behind it. The consumer
 * that decides the outcome queues the callback on Redis; webhook.c signs,
 * delivers and retries it, apart from the consumers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/http_int.h"
#include "util/util.h"

#define JOB_STREAM "petcut:jobs"
#define JOB_GROUP "petcut-workers"
#define JOB_KEY "petcut:job:"	 /* + id: the job's JSON */
#define JOB_IDEM "petcut:idem:"	 /* + Idempotency-Key: the job's id */
#define JOB_TTL_MS (7 * 86400000L) /* a job's record is kept a week */
#define JOB_IDEM_TTL_MS 86400000L /* an Idempotency-Key names its job for a day */
#define JOB_MAX_TRIES 5		 /* transient failures (503, 429, 504) before a job fails */
#define JOB_MAX_BODY (64u << 10) /* a job names its image: no image bytes in it */
#define JOB_BLOCK_MS 1000	 /* a consumer's wait for new entries, so that it stops soon */
#define JOB_QUEUE_TRIES 20	 /* a callback is queued on Redis after its job's record: tries */

struct jobs {
	pthread_t *threads;
	int n;
	atomic_int stop;
	struct metrics_family *counts; /* petcut_jobs_total{outcome} */
};

struct consumer {
	struct http_server *s;
	int index;
};

/* ===== Records ===== */

static int job_id_valid(const char *id)
{
	return id && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

static void job_name(char *out, size_t n, const char *id)
{
	snprintf(out, n, JOB_KEY "%s", id);
}

/* The states after which a job's record never changes. */
static const char *const job_final[] = {"done", "failed", NULL};

/* Stores a job's JSON; with final, unless its record is final already
 * (KV_MISS then). */
static kv_status job_store(struct kv *kv, const char *id, json_t *job, int final)
{
	char name[64], *text = json_dumps(job, JSON_COMPACT);
	kv_status st;

	if (!text)
		return KV_NOMEM;
	job_name(name, sizeof name, id);
	st = final ? kv_set_unless(kv, name, text, strlen(text), JOB_TTL_MS, "status", job_final)
		   : kv_set(kv, name, text, strlen(text), JOB_TTL_MS);
	free(text);
	return st;
}

/* Stores a job's JSON. */
static kv_status job_save(struct kv *kv, const char *id, json_t *job)
{
	return job_store(kv, id, job, 0);
}

/* Stores a job's JSON as a consumer sees it, unless its record is final
 * already: KV_MISS then. An entry can be taken over while its consumer is
 * still at it (XAUTOCLAIM sees only how long ago it was handed out), and
 * the first to finish such a job decides its outcome: a later consumer never
 * turns it back into running or queued, nor records, counts or calls back
 * its outcome a second time. */
static kv_status job_put(struct kv *kv, const char *id, json_t *job)
{
	return job_store(kv, id, job, 1);
}

/* The job's JSON, or NULL with *st saying why (KV_MISS: no such job). */
static json_t *job_load(struct kv *kv, const char *id, kv_status *st)
{
	char name[64], *text;
	size_t len;
	json_t *job;

	job_name(name, sizeof name, id);
	if ((*st = kv_get(kv, name, &text, &len)) != KV_OK)
		return NULL;
	job = json_loadb(text, len, 0, NULL);
	free(text);
	if (!json_is_object(job)) {
		json_decref(job);
		*st = KV_MISS;
		return NULL;
	}
	return job;
}

static int random_hex(char *out, int bytes)
{
	unsigned char b[32];
	FILE *f = fopen("/dev/urandom", "rb");
	int ok = f && bytes <= 32 && fread(b, 1, (size_t)bytes, f) == (size_t)bytes;

	if (f)
		fclose(f);
	if (ok)
		util_hex(b, (size_t)bytes, out);
	return ok ? 0 : -1;
}

/* ===== Callbacks ===== */

/* True if url is http(s) to a HOST or HOST:PORT of the comma-separated
 * allow list (hosts compared without case; an entry without a port allows
 * the scheme's default one only). */
static int callback_allowed(const char *allow, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, hp[300];
	int ok = 0;

	if (!allow || !u || curl_url_set(u, CURLUPART_URL, url, 0) ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) || curl_url_get(u, CURLUPART_HOST, &host, 0))
		goto out;
	if (strcmp(scheme, "http") && strcmp(scheme, "https"))
		goto out;
	curl_url_get(u, CURLUPART_PORT, &port, 0); /* none when the URL gives none */
	snprintf(hp, sizeof hp, "%s%s%s", host, port ? ":" : "", port ? port : "");
	for (const char *e = allow; *e;) {
		size_t n = strcspn(e, ",");
		if (n == strlen(hp) && !strncasecmp(e, hp, n))
			ok = 1;
		e += n;
		if (*e == ',')
			e++;
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok;
}

/* ===== Routes ===== */

/* What GET /v1/jobs/{id} shows: the record without the request. */
static json_t *job_view(json_t *job)
{
	json_t *v = json_deep_copy(job);
	if (v)
		json_object_del(v, "request");
	return v;
}

/* POST /v1/jobs, once the body is in: validates, records, queues. */
static enum MHD_Result jobs_post(struct MHD_Connection *c, struct req *r, json_t *body)
{
	struct http_server *s = r->srv;
	const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	char id[33], name[300], *prior = NULL;
	kv_status st;

	if (json_object_get(body, "image") || (!json_is_string(json_object_get(body, "image_id")) &&
					       !json_is_string(json_object_get(body, "image_url")) &&
					       !json_is_array(json_object_get(body, "images")))) {
		json_decref(body);
		return http_reply_error(c, r, 400, "bad_request",
					"a job names stored images: image_id, image_url, or images for a group portrait "
					"(upload them first)");
	}
	/* the callback is the job's, not the removal's */
	json_t *callback = json_incref(json_object_get(body, "callback_url"));
	json_object_del(body, "callback_url");
	if (callback && (!json_is_string(callback) ||
			 !callback_allowed(s->cfg.callback_allow, json_string_value(callback)))) {
		json_decref(callback);
		json_decref(body);
		return http_reply_error(c, r, 400, "callback_not_allowed",
					"callback_url must be an http(s) URL to a host of --callback-allow");
	}
	if (idem && (!*idem || strlen(idem) > 200 || strspn(idem, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
								 "0123456789-_.:") != strlen(idem))) {
		json_decref(callback);
		json_decref(body);
		return http_reply_error(c, r, 400, "bad_request",
					"Idempotency-Key: 1 to 200 of letters, digits, '-', '_', '.', ':'");
	}
	if (random_hex(id, 16)) {
		json_decref(callback);
		json_decref(body);
		return http_reply_error(c, r, 503, "overloaded", "no random bytes for an id");
	}
	if (idem) {
		/* the first request with this key names the job; a repeat gets it */
		snprintf(name, sizeof name, JOB_IDEM "%s", idem);
		st = kv_lock(s->kv, name, id, JOB_IDEM_TTL_MS);
		if (st == KV_MISS && kv_get(s->kv, name, &prior, NULL) == KV_OK && job_id_valid(prior)) {
			json_decref(callback);
			json_decref(body);
			kv_status ls;
			json_t *job = job_load(s->kv, prior, &ls);
			free(prior);
			if (!job)
				return http_reply_error(c, r, ls == KV_MISS ? 409 : 503,
							ls == KV_MISS ? "conflict" : "redis_unavailable",
							"the job of this Idempotency-Key cannot be read");
			json_t *v = job_view(job);
			json_decref(job);
			return http_reply_json(c, r, 202, v);
		}
		free(prior);
		if (st != KV_OK) {
			json_decref(callback);
			json_decref(body);
			return http_reply_error(c, r, 503, "redis_unavailable", "the job queue cannot be reached");
		}
	}
	char url[64];
	snprintf(url, sizeof url, "/v1/jobs/%s", id);
	json_t *job = json_pack("{s:s,s:s,s:s,s:o,s:i,s:I}", "job_id", id, "url", url, "status", "queued", "request",
				body, "tries", 0, "created", (json_int_t)time(NULL));
	if (job && callback)
		json_object_set(job, "callback_url", callback);
	json_decref(callback);
	if (!job)
		return http_reply_error(c, r, 503, "overloaded", "out of memory");
	if (job_save(s->kv, id, job) != KV_OK || kv_stream_add(s->kv, JOB_STREAM, "job", id) != KV_OK) {
		json_decref(job);
		return http_reply_error(c, r, 503, "redis_unavailable", "the job queue cannot be reached");
	}
	metrics_add(metrics_series(s->jobs->counts, (const char *const[]){"queued"}), 1);
	json_t *v = job_view(job);
	json_decref(job);
	return http_reply_json(c, r, 202, v);
}

enum MHD_Result http_jobs(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	if (*size) { /* gather the JSON body */
		http_gather_body(r, data, size, JOB_MAX_BODY);
		return MHD_YES;
	}
	if (!r->began) {
		r->began = 1;
		return MHD_YES;
	}
	if (r->error_status)
		return http_reply_error(c, r, r->error_status, r->error_status == 413 ? "too_large" : "overloaded",
					"the job's body is over %u bytes or could not be held", JOB_MAX_BODY);
	if (!r->srv->kv)
		return http_reply_error(c, r, 503, "jobs_unavailable", "jobs need a shared Redis (petcut serve --redis)");
	json_t *body = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	if (!json_is_object(body)) {
		json_decref(body);
		return http_reply_error(c, r, 400, "bad_json", "the body must be a JSON object");
	}
	return jobs_post(c, r, body);
}

enum MHD_Result http_get_job(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	kv_status st;
	json_t *job;

	if (!job_id_valid(id))
		return http_reply_error(c, r, 400, "bad_id", "a job id is 32 lowercase hex characters");
	if (!r->srv->kv)
		return http_reply_error(c, r, 503, "jobs_unavailable", "jobs need a shared Redis (petcut serve --redis)");
	if (!(job = job_load(r->srv->kv, id, &st)))
		return st == KV_MISS ? http_reply_error(c, r, 404, "not_found", "no job %s", id)
				     : http_reply_error(c, r, 503, "redis_unavailable", "the job queue cannot be reached");
	json_t *v = job_view(job);
	json_decref(job);
	return http_reply_json(c, r, 200, v);
}

/* ===== Consumers ===== */

static void count(struct http_server *s, const char *outcome)
{
	metrics_add(metrics_series(s->jobs->counts, (const char *const[]){outcome}), 1);
}

/* Queues the callback of job id, whose final record was just stored: only
 * the consumer that stored it gets here, so a job is called back once. The
 * record is final already, so a Redis that fails now is waited for (a
 * while) rather than the entry left for another try, which would find the
 * job done and only acknowledge it. */
static void callback_queue(struct http_server *s, struct kv *kv, const char *id, const char *url, json_t *job)
{
	json_t *v = job_view(job);
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
	kv_status st = KV_NOMEM;

	for (int i = 0; text && i < JOB_QUEUE_TRIES; i++) {
		if ((st = http_webhook_queue(s, kv, id, url, text)) != KV_DOWN)
			break;
		usleep(500000);
	}
	if (st != KV_OK) {
		fprintf(stderr, "petcut worker: the callback of job %s cannot be queued: not sent\n", id);
		count(s, "callback_failed");
	}
	free(text);
	json_decref(v);
}

/* Does one job; returns 1 when its entry may be acknowledged (done, failed
 * for good, or gone), 0 to leave it for another try. Every acknowledgement
 * follows a final record, so no job is left queued or running without an
 * entry. */
static int job_run(struct http_server *s, struct kv *kv, const char *id)
{
	kv_status st;
	json_t *job = job_load(kv, id, &st);
	struct outcome o = {0};

	if (!job) {
		if (st != KV_MISS)
			return 0; /* Redis failed: the entry stays, for another try */
		/* expired, or never saved: there is nothing to do */
		fprintf(stderr, "petcut worker: job %s has no readable record; its entry is dropped\n", id);
		count(s, "dropped");
		return 1;
	}
	const char *status = json_string_value(json_object_get(job, "status"));
	if (status && (!strcmp(status, "done") || !strcmp(status, "failed"))) {
		json_decref(job); /* done by a consumer that died before its ack */
		return 1;
	}
	json_int_t tries = json_integer_value(json_object_get(job, "tries")) + 1;
	json_object_set_new(job, "tries", json_integer(tries));
	json_object_set_new(job, "status", json_string("running"));
	json_object_set_new(job, "worker", json_string(s->kv_token));
	if ((st = job_put(kv, id, job)) != KV_OK) {
		json_decref(job); /* finished meanwhile (acknowledged), or Redis failed (left) */
		return st == KV_MISS;
	}
	if (tries > 1)
		count(s, "retried");

	http_remove_run(s, json_object_get(job, "request"), NULL, NULL, &o);
	int transient = o.status == 503 || o.status == 429 || o.status == 504;
	if (transient && tries < JOB_MAX_TRIES) {
		/* left pending: taken again after the claim time */
		json_object_set_new(job, "status", json_string("queued"));
		st = job_put(kv, id, job);
		json_decref(job);
		json_decref(o.result);
		if (st == KV_MISS)
			return 1; /* finished by another consumer meanwhile */
		count(s, "deferred");
		return 0;
	}
	const char *outcome = o.status == 200 ? "done" : "failed";
	json_object_set_new(job, "status", json_string(outcome));
	if (o.status == 200) {
		json_object_set_new(job, "result_url", json_incref(json_object_get(o.result, "url")));
		json_object_set_new(job, "result", o.result);
	} else {
		json_decref(o.result);
		json_object_set_new(job, "error", json_pack("{s:i,s:s,s:s}", "status", o.status, "code",
							    o.code ? o.code : "internal", "message", o.msg));
	}
	if ((st = job_put(kv, id, job)) == KV_OK) {
		count(s, outcome);
		const char *cb = json_string_value(json_object_get(job, "callback_url"));
		if (cb)
			callback_queue(s, kv, id, cb, job);
	}
	json_decref(job);
	/* unsaved: do it again rather than lose it; already final: another
	 * consumer finished it first, and its outcome stands */
	return st != KV_DOWN && st != KV_NOMEM;
}

static void *consumer_main(void *arg)
{
	struct consumer *me = arg;
	struct http_server *s = me->s;
	struct kv *kv = NULL;
	char name[64], err[160], entry[64], *id;
	int grouped = 0;

	snprintf(name, sizeof name, "%s-%d", s->kv_token, me->index);
	/* a connection of its own: it waits in XREADGROUP */
	if (kv_open(s->cfg.redis, 500, JOB_BLOCK_MS + 2000, &kv, err, sizeof err) != KV_OK) {
		fprintf(stderr, "petcut worker: %s\n", err);
		free(me);
		return NULL;
	}
	while (!atomic_load(&s->jobs->stop)) {
		if (!grouped && !(grouped = kv_stream_group(kv, JOB_STREAM, JOB_GROUP) == KV_OK)) {
			usleep(200000); /* Redis down: try again soon */
			continue;
		}
		kv_status st = kv_stream_next(kv, JOB_STREAM, JOB_GROUP, name, JOB_BLOCK_MS, s->cfg.job_claim_ms, entry,
					      &id);
		if (st == KV_DOWN) {
			grouped = 0; /* a restarted Redis may have lost the group */
			usleep(200000);
			continue;
		}
		if (st != KV_OK)
			continue;
		if (job_run(s, kv, id))
			kv_stream_ack(kv, JOB_STREAM, JOB_GROUP, entry);
		free(id);
	}
	kv_close(kv);
	free(me);
	return NULL;
}

int http_jobs_init(struct http_server *s, char *errbuf, size_t errlen)
{
	if (!s->kv)
		return 0;
	if (!(s->jobs = calloc(1, sizeof *s->jobs)) ||
	    !(s->jobs->counts = metrics_family(s->metrics, METRICS_COUNTER, "petcut_jobs_total",
					       "Asynchronous jobs: queued here; done, failed, retried (taken again "
					       "after a consumer died or gave up), deferred (a transient failure), "
					       "dropped (no record left) by this instance's consumers; callback_sent "
					       "(a 2xx answer) and callback_failed (given up, or never queued) by its "
					       "deliveries.",
					       "outcome", NULL, 0))) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	if (s->cfg.job_consumers <= 0)
		return 0;
	/* before the consumers' threads, which may call back with libcurl */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errbuf, errlen, "cannot start libcurl");
		return -1;
	}
	if (!(s->jobs->threads = calloc((size_t)s->cfg.job_consumers, sizeof *s->jobs->threads))) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < s->cfg.job_consumers; i++) {
		struct consumer *me = calloc(1, sizeof *me);
		if (me) {
			me->s = s;
			me->index = i;
		}
		if (!me || pthread_create(&s->jobs->threads[i], NULL, consumer_main, me)) {
			free(me);
			snprintf(errbuf, errlen, "cannot start a job consumer");
			return -1;
		}
		s->jobs->n++;
	}
	/* callbacks are delivered where jobs are done */
	return http_webhook_start(s, s->jobs->counts, errbuf, errlen);
}

void http_jobs_fini(struct http_server *s)
{
	if (!s || !s->jobs)
		return;
	/* consumers finish the job in hand (a removal ends within its deadline) */
	atomic_store(&s->jobs->stop, 1);
	for (int i = 0; i < s->jobs->n; i++)
		pthread_join(s->jobs->threads[i], NULL);
	free(s->jobs->threads);
	free(s->jobs);
	s->jobs = NULL;
}
