/*
 * batcher.c - one worker thread per model, a bounded FIFO queue (background
 * requests behind the others), and dynamic batching of requests of the same
 * input size. See batcher.h.
 *
 * Locking: the batcher's mutex guards the queue and the counters; each job
 * has its own mutex and condition for its state, so a caller may wait on a
 * job after the batcher is gone. Order: batcher, then job.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher/batcher.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_EXPIRED, JOB_LATE, JOB_FAILED, JOB_STOPPED };

struct batcher_job {
	atomic_int refs; /* the caller's and the batcher's */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum job_state state;
	float *input;
	int c, h, w;
	int background; /* nobody waits for it: it goes after the others */
	int64_t deadline_ms;
	int64_t submit_ns;
	float *output;
	int rank;
	int64_t dims[NN_MAX_RANK];
	struct batcher_timing timing;
	char err[256];
	struct batcher *b;
	struct batcher_job *next, *prev;
};

struct batcher {
	nn_model *model;
	struct batcher_opts o;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* work arrived, or stopping */
	pthread_t worker;
	struct batcher_job *head, *tail;
	int queued;
	int stopping;
	int64_t fail_until_ns; /* refusing new requests until then (0: working) */
	struct batcher_stats stats;
	/* recent forward-pass time per request, by input size */
	struct cost {
		int c, h, w;
		double ns;
	} cost[8];
	int n_cost;
	int64_t running_ns; /* the running pass's expected length (0: none) */
	int64_t running_since;
	/* plans to make while idle (batcher_prepare), oldest first */
	struct prep {
		nn_precision prec;
		int c, h, w;
	} prep[BATCHER_MAX_PREPARE];
	int n_prep;
	int making; /* 1: the worker is making one of them */
};

/* ===== Time ===== */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t batcher_now_ms(void)
{
	return now_ns() / 1000000;
}

static struct timespec abs_time_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	return ts;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* ===== Jobs ===== */

void batcher_release(struct batcher_job *job)
{
	if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&job->lock);
	pthread_cond_destroy(&job->cond);
	free(job->input);
	free(job->output);
	free(job);
}

/* Sets a job's final state and wakes its waiter. */
static void job_finish(struct batcher_job *job, enum job_state st)
{
	pthread_mutex_lock(&job->lock);
	job->state = st;
	pthread_cond_broadcast(&job->cond);
	pthread_mutex_unlock(&job->lock);
}

static void queue_remove(struct batcher *b, struct batcher_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		b->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		b->tail = j->prev;
	j->next = j->prev = NULL;
	b->queued--;
}

const char *batcher_job_error(const struct batcher_job *job)
{
	return job->err;
}

/* ===== The worker ===== */

/* The recent time per request of a pass at this input size (ns; 0 if none
 * has run yet). */
static double cost_of(const struct batcher *b, int c, int h, int w)
{
	for (int i = 0; i < b->n_cost; i++)
		if (b->cost[i].c == c && b->cost[i].h == h && b->cost[i].w == w)
			return b->cost[i].ns;
	return 0;
}

/* Folds a pass of n requests that took ns into its size's figure (a moving
 * average; the least recent size gives way to a new one). */
static void cost_add(struct batcher *b, const struct batcher_job *j, int n, int64_t ns)
{
	double per = (double)ns / n;
	int i = 0;
	while (i < b->n_cost && !(b->cost[i].c == j->c && b->cost[i].h == j->h && b->cost[i].w == j->w))
		i++;
	if (i == b->n_cost) {
		if (b->n_cost < (int)(sizeof b->cost / sizeof b->cost[0]))
			b->n_cost++;
		else
			i = b->n_cost - 1;
		b->cost[i] = (struct cost){.c = j->c, .h = j->h, .w = j->w, .ns = per};
	} else {
		b->cost[i].ns = 0.7 * b->cost[i].ns + 0.3 * per;
	}
	/* most recent first */
	struct cost c = b->cost[i];
	memmove(b->cost + 1, b->cost, sizeof c * (size_t)i);
	b->cost[0] = c;
}

/* How long a new request of this kind would wait before its pass starts:
 * what is left of the running pass, and every request that would go before
 * it (a background one waits for all). */
static int64_t expected_wait_ns(const struct batcher *b, int background)
{
	double ns = 0;
	if (b->running_ns) {
		int64_t left = b->running_ns - (now_ns() - b->running_since);
		ns += left > 0 ? (double)left : 0;
	}
	for (const struct batcher_job *j = b->head; j; j = j->next)
		if (background || !j->background)
			ns += cost_of(b, j->c, j->h, j->w);
	return (int64_t)ns;
}

/* Whether a request of this kind, its pass starting wait_ns from now,
 * would not be answered by its deadline (the recent time of its own pass
 * added: a pass that runs a little long does not make it expire). */
static bool too_late(const struct batcher *b, const struct batcher_job *j, int64_t now, double wait_ns)
{
	return j->deadline_ms && now + (int64_t)(wait_ns + cost_of(b, j->c, j->h, j->w)) > j->deadline_ms * 1000000;
}

/* As a pass starts, the figures being the freshest: refuses now
 * (BATCHER_LATE) each queued request that would not be answered by its
 * deadline, reckoned as batcher_submit does, instead of letting it wait to
 * expire. */
static void shed_late(struct batcher *b, int64_t now)
{
	double before_all = (double)b->running_ns, before_client = before_all;
	for (struct batcher_job *j = b->head, *next; j; j = next) {
		next = j->next;
		if (too_late(b, j, now, j->background ? before_all : before_client)) {
			queue_remove(b, j);
			b->stats.rejected_late++;
			job_finish(j, JOB_LATE);
			batcher_release(j);
			continue;
		}
		double ns = cost_of(b, j->c, j->h, j->w);
		before_all += ns;
		if (!j->background)
			before_client += ns;
	}
}

/* Whether job j may share first's forward pass: the same input size, and
 * no background job in a pass that a client waits for. */
static bool joins(const struct batcher_job *j, const struct batcher_job *first)
{
	return j->c == first->c && j->h == first->h && j->w == first->w && (first->background || !j->background);
}

static int count_same(const struct batcher *b, const struct batcher_job *first)
{
	int n = 0;
	for (const struct batcher_job *j = b->head; j; j = j->next)
		n += joins(j, first);
	return n;
}

/* The job whose pass is next: the oldest that a client waits for or that
 * has waited background_wait_ms, else the oldest. */
static struct batcher_job *next_job(const struct batcher *b)
{
	int64_t old = now_ns() - (int64_t)b->o.background_wait_ms * 1000000;
	for (struct batcher_job *j = b->head; j; j = j->next)
		if (!j->background || j->submit_ns <= old)
			return j;
	return b->head;
}

/* Runs one batch (the batcher unlocked) and fills each job's output. */
double batcher_mask_uncertainty(const float *p, size_t n)
{
	size_t unsure = 0, maybe = 0;

	for (size_t i = 0; i < n; i++) {
		maybe += p[i] > 0.1f;
		unsure += p[i] > 0.1f && p[i] < 0.9f;
	}
	return maybe ? (double)unsure / (double)maybe : 0.0;
}

/* The quality guard: job j's reduced-precision mask was unsure, so its
 * input runs again alone at fp32 and that mask replaces it. On failure the
 * reduced-precision mask stands. */
static void rerun_fp32(struct batcher *b, struct batcher_job *j, const float *input, size_t out_per)
{
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, j->c, j->h, j->w}};
	struct nn_tensor out = {0};
	int64_t t0 = now_ns();

	in.data = (void *)input;
	if (nn_run_at(b->model, NN_PRECISION_FP32, &in, 1, &out, 1) == NN_OK &&
	    (size_t)nn_tensor_numel(&out) == out_per) {
		memcpy(j->output, out.data, sizeof(float) * out_per);
		j->timing.fallback = 1;
		j->timing.infer_ms += (double)(now_ns() - t0) / 1e6;
	}
	nn_tensor_free(&out);
}

/* Returns the forward pass's status (each job's output or message set). */
static nn_status run_batch(struct batcher *b, struct batcher_job **batch, int n, int64_t start_ns)
{
	const struct batcher_job *j0 = batch[0];
	size_t per = (size_t)j0->c * j0->h * j0->w;
	struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {n, j0->c, j0->h, j0->w}};
	struct nn_tensor out = {0};
	nn_status st = NN_ERR_NOMEM;
	const char *msg = "out of memory";
	bool reduced = nn_model_precision(b->model) != NN_PRECISION_FP32;

	/* one input runs from where it is; several are laid side by side */
	in.data = n == 1 ? batch[0]->input : malloc(sizeof(float) * per * (size_t)n);
	if (in.data) {
		for (int i = 0; n > 1 && i < n; i++)
			memcpy((float *)in.data + per * (size_t)i, batch[i]->input, sizeof(float) * per);
		st = nn_run(b->model, &in, 1, &out, 1);
		msg = nn_errmsg();
	}
	if (st == NN_OK && (out.dtype != NN_DTYPE_F32 || out.rank < 1 || out.dims[0] != n)) {
		st = NN_ERR_SHAPE;
		msg = "the model's output is not one float tensor per input";
	}
	double infer_ms = (double)(now_ns() - start_ns) / 1e6;
	size_t out_per = st == NN_OK ? (size_t)(nn_tensor_numel(&out) / n) : 0;
	for (int i = 0; i < n; i++) {
		struct batcher_job *j = batch[i];
		j->timing.infer_ms = infer_ms;
		j->timing.batch_size = n;
		j->timing.queue_ms = (double)(start_ns - j->submit_ns) / 1e6;
		j->timing.start_ms = (double)start_ns / 1e6;
		if (st == NN_OK && (j->output = malloc(sizeof(float) * (out_per ? out_per : 1)))) {
			memcpy(j->output, (float *)out.data + out_per * (size_t)i, sizeof(float) * out_per);
			j->rank = out.rank - 1;
			memcpy(j->dims, out.dims + 1, sizeof(int64_t) * (size_t)j->rank);
			j->timing.uncertainty = batcher_mask_uncertainty(j->output, out_per);
			if (reduced && b->o.fallback_above > 0 && j->timing.uncertainty > b->o.fallback_above)
				rerun_fp32(b, j, (const float *)in.data + per * (size_t)i, out_per);
		} else {
			snprintf(j->err, sizeof j->err, "%s", st == NN_OK ? "out of memory" : msg);
		}
	}
	nn_tensor_free(&out);
	if (n > 1)
		free(in.data);
	return st;
}

/* A forward pass failed (the batcher locked): the requests waiting behind
 * it fail now rather than each in its own failing pass, and new ones are
 * refused for the pause. */
static void fail_waiting(struct batcher *b, const char *why)
{
	b->stats.failed_passes++;
	b->fail_until_ns = now_ns() + (int64_t)b->o.fail_pause_ms * 1000000;
	if (!b->fail_until_ns)
		b->fail_until_ns = 1;
	while (b->head) {
		struct batcher_job *j = b->head;
		queue_remove(b, j);
		snprintf(j->err, sizeof j->err, "the inference worker failed: %.200s", why);
		b->stats.failed++;
		job_finish(j, JOB_FAILED);
		batcher_release(j);
	}
}

static void *worker_main(void *arg)
{
	struct batcher *b = arg;
	struct batcher_job *batch[BATCHER_MAX_BATCH];

	if (b->o.threads > 0)
		nn_set_threads(b->o.threads);
	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->head && !b->stopping && !b->n_prep)
			pthread_cond_wait(&b->cond, &b->lock);
		if (!b->head && b->n_prep && !b->stopping) {
			/* idle: the next plan asked for, made in this thread
			 * (the passes' thread count) with the queue open */
			struct prep p = b->prep[0];
			memmove(b->prep, b->prep + 1, sizeof *b->prep * (size_t)--b->n_prep);
			b->making = 1;
			pthread_mutex_unlock(&b->lock);
			struct nn_tensor t = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, p.c, p.h, p.w}};
			nn_model_prepare_at(b->model, p.prec, &t, 1); /* failing, the pass plans it or says why */
			pthread_mutex_lock(&b->lock);
			b->making = 0;
			b->stats.prepared++;
			continue;
		}
		if (!b->head)
			break; /* stopping and drained */
		/* wait a little for company of the same size */
		struct batcher_job *first = next_job(b);
		int64_t until = first->submit_ns + (int64_t)b->o.max_delay_ms * 1000000;
		while (next_job(b) == first && !b->stopping && count_same(b, first) < b->o.max_batch && now_ns() < until) {
			struct timespec ts = abs_time_ns(until);
			pthread_cond_timedwait(&b->cond, &b->lock, &ts);
		}
		if (next_job(b) != first)
			continue; /* it expired or left meanwhile, or another goes first: start over */
		/* take up to max_batch that may join first, oldest first; drop expired */
		int64_t start = now_ns(), now_ms = start / 1000000;
		int n = 0;
		for (struct batcher_job *j = b->head, *next; j && n < b->o.max_batch; j = next) {
			next = j->next;
			if (!joins(j, first))
				continue;
			queue_remove(b, j);
			if (j->deadline_ms && now_ms > j->deadline_ms) {
				b->stats.expired++;
				job_finish(j, JOB_EXPIRED);
				batcher_release(j);
				continue;
			}
			pthread_mutex_lock(&j->lock);
			j->state = JOB_RUNNING;
			pthread_mutex_unlock(&j->lock);
			batch[n++] = j;
		}
		if (!n)
			continue;
		b->stats.running = n;
		b->running_ns = (int64_t)(cost_of(b, first->c, first->h, first->w) * n);
		b->running_since = start;
		shed_late(b, start);
		pthread_mutex_unlock(&b->lock);

		nn_status pass = run_batch(b, batch, n, start);

		pthread_mutex_lock(&b->lock);
		b->running_ns = 0;
		if (pass == NN_OK)
			cost_add(b, batch[0], n, now_ns() - start);
		if (pass != NN_OK)
			fail_waiting(b, batch[0]->err);
		else
			b->fail_until_ns = 0;
		b->stats.running = 0;
		b->stats.batches++;
		b->stats.batch_sizes[n <= BATCHER_MAX_BATCH ? n : BATCHER_MAX_BATCH]++;
		b->stats.busy_ns += (uint64_t)(now_ns() - start);
		for (int i = 0; i < n; i++) {
			int ok = batch[i]->output != NULL;
			b->stats.fallbacks += (uint64_t)batch[i]->timing.fallback;
			if (ok)
				b->stats.completed++;
			else
				b->stats.failed++;
			job_finish(batch[i], ok ? JOB_DONE : JOB_FAILED);
			batcher_release(batch[i]);
		}
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* ===== Public ===== */

batcher_status batcher_create(nn_model *m, const struct batcher_opts *o, struct batcher **out)
{
	struct batcher *b;

	*out = NULL;
	if (!m || nn_model_num_inputs(m) != 1 || nn_model_num_outputs(m) != 1)
		return BATCHER_ERR_ARG;
	if (!(b = calloc(1, sizeof *b)))
		return BATCHER_ERR_NOMEM;
	b->model = m;
	b->o.max_batch = o && o->max_batch > 0 ? o->max_batch : 4;
	b->o.max_delay_ms = o && o->max_delay_ms >= 0 ? o->max_delay_ms : 5;
	b->o.max_queue = o && o->max_queue > 0 ? o->max_queue : 64;
	b->o.fallback_above = o && o->fallback_above > 0 ? o->fallback_above : 0;
	b->o.fail_pause_ms = o && o->fail_pause_ms > 0 ? o->fail_pause_ms : 2000;
	b->o.threads = o && o->threads > 0 ? o->threads : 0;
	b->o.background_wait_ms = o && o->background_wait_ms > 0 ? o->background_wait_ms : 2000;
	if (b->o.max_batch > BATCHER_MAX_BATCH)
		b->o.max_batch = BATCHER_MAX_BATCH;
	pthread_mutex_init(&b->lock, NULL);
	cond_init_monotonic(&b->cond);
	if (pthread_create(&b->worker, NULL, worker_main, b)) {
		pthread_mutex_destroy(&b->lock);
		pthread_cond_destroy(&b->cond);
		free(b);
		return BATCHER_ERR_NOMEM;
	}
	*out = b;
	return BATCHER_OK;
}

batcher_status batcher_prepare(struct batcher *b, nn_precision prec, int c, int h, int w)
{
	batcher_status st = BATCHER_OK;

	if (!b || c <= 0 || h <= 0 || w <= 0)
		return BATCHER_ERR_ARG;
	pthread_mutex_lock(&b->lock);
	if (b->n_prep == BATCHER_MAX_PREPARE) {
		st = BATCHER_ERR_NOMEM;
	} else {
		b->prep[b->n_prep++] = (struct prep){prec, c, h, w};
		pthread_cond_signal(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
	return st;
}

void batcher_destroy(struct batcher *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = 1;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->worker, NULL);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}

/* Queues the job of input, which is the batcher's (freed on every outcome). */
static batcher_status submit(struct batcher *b, float *input, int c, int h, int w, int64_t deadline_ms, int flags,
			     struct batcher_job **out)
{
	struct batcher_job *j;

	*out = NULL;
	if (!(j = calloc(1, sizeof *j))) {
		free(input);
		return BATCHER_ERR_NOMEM;
	}
	j->input = input;
	j->c = c;
	j->h = h;
	j->w = w;
	j->deadline_ms = deadline_ms;
	j->background = (flags & BATCHER_BACKGROUND) != 0;
	j->b = b;
	atomic_init(&j->refs, 2);
	pthread_mutex_init(&j->lock, NULL);
	cond_init_monotonic(&j->cond);

	pthread_mutex_lock(&b->lock);
	if (b->fail_until_ns && !b->stopping && now_ns() < b->fail_until_ns) {
		b->stats.rejected_failing++;
		pthread_mutex_unlock(&b->lock);
		atomic_store(&j->refs, 1);
		batcher_release(j);
		return BATCHER_UNAVAILABLE;
	}
	if (deadline_ms && !b->stopping && now_ns() >= deadline_ms * 1000000) { /* already past */
		b->stats.expired++;
		pthread_mutex_unlock(&b->lock);
		atomic_store(&j->refs, 1);
		batcher_release(j);
		return BATCHER_EXPIRED;
	}
	int late = !b->stopping && too_late(b, j, now_ns(), (double)expected_wait_ns(b, j->background));
	if (b->stopping || b->queued >= b->o.max_queue || late) {
		batcher_status st = b->stopping ? BATCHER_STOPPED : late ? BATCHER_LATE : BATCHER_FULL;
		if (st == BATCHER_FULL)
			b->stats.rejected_full++;
		else if (st == BATCHER_LATE)
			b->stats.rejected_late++;
		pthread_mutex_unlock(&b->lock);
		atomic_store(&j->refs, 1);
		batcher_release(j);
		return st;
	}
	j->submit_ns = now_ns();
	j->state = JOB_QUEUED;
	j->prev = b->tail;
	if (b->tail)
		b->tail->next = j;
	else
		b->head = j;
	b->tail = j;
	b->queued++;
	b->stats.submitted++;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	*out = j;
	return BATCHER_OK;
}

batcher_status batcher_submit(struct batcher *b, const float *input, int c, int h, int w, int64_t deadline_ms,
			      int flags, struct batcher_job **out)
{
	float *copy;
	size_t n;

	*out = NULL;
	if (!b || !input || c <= 0 || h <= 0 || w <= 0)
		return BATCHER_ERR_ARG;
	n = (size_t)c * h * w;
	if (!(copy = malloc(sizeof(float) * n)))
		return BATCHER_ERR_NOMEM;
	memcpy(copy, input, sizeof(float) * n);
	return submit(b, copy, c, h, w, deadline_ms, flags, out);
}

batcher_status batcher_give(struct batcher *b, float *input, int c, int h, int w, int64_t deadline_ms, int flags,
			    struct batcher_job **out)
{
	*out = NULL;
	if (!b || !input || c <= 0 || h <= 0 || w <= 0) {
		free(input);
		return BATCHER_ERR_ARG;
	}
	return submit(b, input, c, h, w, deadline_ms, flags, out);
}

batcher_status batcher_wait(struct batcher_job *j, const float **out, int *rank, int64_t *dims,
			    struct batcher_timing *timing)
{
	enum job_state st;

	pthread_mutex_lock(&j->lock);
	while (j->state == JOB_QUEUED || j->state == JOB_RUNNING) {
		if (j->deadline_ms && j->state == JOB_QUEUED) {
			struct timespec ts = abs_time_ns(j->deadline_ms * 1000000);
			if (pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT || j->state != JOB_QUEUED)
				continue;
			/* past the deadline and still queued: take it out (batcher, then job) */
			pthread_mutex_unlock(&j->lock);
			pthread_mutex_lock(&j->b->lock);
			pthread_mutex_lock(&j->lock);
			if (j->state == JOB_QUEUED) {
				queue_remove(j->b, j);
				j->b->stats.expired++;
				j->state = JOB_EXPIRED;
				pthread_mutex_unlock(&j->b->lock);
				atomic_fetch_sub(&j->refs, 1); /* the batcher's hold; ours remains */
				break;
			}
			pthread_mutex_unlock(&j->b->lock);
			continue;
		}
		pthread_cond_wait(&j->cond, &j->lock);
	}
	st = j->state;
	pthread_mutex_unlock(&j->lock);
	if (timing)
		*timing = j->timing;
	switch (st) {
	case JOB_DONE:
		if (out)
			*out = j->output;
		if (rank)
			*rank = j->rank;
		if (dims)
			memcpy(dims, j->dims, sizeof(int64_t) * (size_t)j->rank);
		return BATCHER_OK;
	case JOB_EXPIRED:
		return BATCHER_EXPIRED;
	case JOB_LATE:
		return BATCHER_LATE;
	case JOB_STOPPED:
		return BATCHER_STOPPED;
	default:
		return BATCHER_ERR_NN;
	}
}

void batcher_get_stats(struct batcher *b, struct batcher_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	out->queued = b->queued;
	out->preparing = b->n_prep + b->making;
	out->failing = b->fail_until_ns && now_ns() < b->fail_until_ns;
	pthread_mutex_unlock(&b->lock);
}
