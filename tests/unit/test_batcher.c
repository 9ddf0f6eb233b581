/*
 * test_batcher.c - the inference worker with the real ISNet model: requests
 * arriving together share one forward pass and get the same masks as alone;
 * a full queue refuses exactly the excess; a deadline drops a waiting
 * request; shutting down finishes what was queued; a request a client waits
 * for passes background ones, which wait no longer than they are allowed;
 * plans asked for are made while the worker is idle.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batcher/batcher.h"

#include "check.h"


enum { S = 64, NJOBS = 4 };

static float inputs[NJOBS][3 * S * S];
static float alone[NJOBS][S * S];
static struct batcher *shared;

static void fill_noise(float *x, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
	}
}

struct client {
	int i;
	batcher_status st;
	float diff;
	struct batcher_timing t;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct batcher_job *job;
	const float *out;
	int rank;
	int64_t dims[NN_MAX_RANK];

	c->st = batcher_submit(shared, inputs[c->i], 3, S, S, 0, 0, &job);
	if (c->st != BATCHER_OK)
		return NULL;
	c->st = batcher_wait(job, &out, &rank, dims, &c->t);
	if (c->st == BATCHER_OK)
		for (int k = 0; k < S * S; k++)
			c->diff = fmaxf(c->diff, fabsf(out[k] - alone[c->i][k]));
	batcher_release(job);
	return NULL;
}

/* Submits a big input and waits until the worker is running it. */
static struct batcher_job *occupy(struct batcher *b, const float *big, int side)
{
	struct batcher_stats st;
	struct batcher_job *job = NULL;

	if (batcher_submit(b, big, 3, side, side, 0, 0, &job) != BATCHER_OK)
		return NULL;
	for (int i = 0; i < 2000; i++) {
		batcher_get_stats(b, &st);
		if (st.running)
			break;
		usleep(1000);
	}
	return job;
}

/* With the worker busy: two background requests, then one a client waits
 * for, all of one size. out: each one's timing (0, 1 background; 2 the
 * client's) and when its pass began, in ms since the first submission. */
static int background_run(nn_model *m, int background_wait_ms, const float *big, int side,
			  struct batcher_timing t[3], double began[3])
{
	struct batcher_opts o = {.max_batch = 4, .max_delay_ms = 0, .max_queue = 8,
				 .background_wait_ms = background_wait_ms};
	struct batcher *b;
	struct batcher_job *busy, *jobs[3] = {0};
	double t0 = (double)batcher_now_ms();
	int ok = 0;

	if (batcher_create(m, &o, &b) != BATCHER_OK)
		return 0;
	busy = occupy(b, big, side);
	for (int i = 0; i < 3; i++)
		batcher_submit(b, inputs[i], 3, S, S, 0, i < 2 ? BATCHER_BACKGROUND : 0, &jobs[i]);
	for (int i = 0; i < 3; i++)
		if (jobs[i]) {
			ok += batcher_wait(jobs[i], NULL, NULL, NULL, &t[i]) == BATCHER_OK;
			began[i] = t[i].start_ms - t0;
			batcher_release(jobs[i]);
		}
	if (busy) {
		batcher_wait(busy, NULL, NULL, NULL, NULL);
		batcher_release(busy);
	}
	batcher_destroy(b);
	return busy && ok == 3;
}

/* The quality guard's measure on masks made by hand. */
static void test_uncertainty(void)
{
	float m[100];

	for (int i = 0; i < 100; i++)
		m[i] = i < 50 ? 0.0f : 1.0f; /* a sure subject on half the picture */
	CHECK(batcher_mask_uncertainty(m, 100) == 0.0, "a hard 0/1 mask is sure");
	for (int i = 50; i < 60; i++)
		m[i] = 0.5f; /* a soft edge: 10 of the 50 that might be subject */
	CHECK(fabs(batcher_mask_uncertainty(m, 100) - 0.2) < 1e-9, "a soft edge: 0.2 (%g)",
	      batcher_mask_uncertainty(m, 100));
	for (int i = 0; i < 100; i++)
		m[i] = i < 90 ? 0.05f : 0.6f; /* no subject, a faint guess */
	CHECK(batcher_mask_uncertainty(m, 100) == 1.0, "only a faint guess: 1");
	for (int i = 0; i < 100; i++)
		m[i] = 0.0f;
	CHECK(batcher_mask_uncertainty(m, 100) == 0.0, "an empty mask: 0");
}

int main(void)
{
	const char *out_name = "output";
	char path[4096];
	const char *dir = getenv("PETCUT_MODELS"), *home = getenv("HOME");
	struct batcher_opts o = {.max_batch = 4, .max_delay_ms = 200, .max_queue = 8};
	struct batcher_stats st;
	nn_model *m = NULL;
	enum { BIG = 768 };
	float *big = malloc(sizeof(float) * 3 * BIG * BIG);

	test_uncertainty();
	if (dir && *dir)
		snprintf(path, sizeof path, "%s/isnet-medium.onnx", dir);
	else
		snprintf(path, sizeof path, "%s/.cache/petcut/models/isnet-medium.onnx", home ? home : "");
	if (access(path, R_OK))
		return skip_rest("%s is not there (petcut model fetch)", path);
	nn_set_threads(0);
	if (!big || nn_model_load_file(path, &m) != NN_OK || nn_model_select_outputs(m, &out_name, 1) != NN_OK) {
		printf("not ok - load %s: %s\n", path, nn_errmsg());
		return 1;
	}
	fill_noise(big, 3 * BIG * BIG, 99);
	for (int i = 0; i < NJOBS; i++) {
		struct nn_tensor in = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, S, S}, .data = inputs[i]};
		struct nn_tensor out = {0};
		fill_noise(inputs[i], 3 * S * S, (uint32_t)i + 1);
		if (nn_run(m, &in, 1, &out, 1) != NN_OK) {
			printf("not ok - single run: %s\n", nn_errmsg());
			return 1;
		}
		memcpy(alone[i], out.data, sizeof alone[i]);
		nn_tensor_free(&out);
	}

	/* 1. four requests at once: one forward pass, the same masks */
	CHECK(batcher_create(m, &o, &shared) == BATCHER_OK, "batcher starts");
	pthread_t th[NJOBS];
	struct client cl[NJOBS] = {{0}};
	for (int i = 0; i < NJOBS; i++) {
		cl[i].i = i;
		pthread_create(&th[i], NULL, client_main, &cl[i]);
	}
	int ok = 0, shared_pass = 0;
	float worst = 0;
	for (int i = 0; i < NJOBS; i++) {
		pthread_join(th[i], NULL);
		ok += cl[i].st == BATCHER_OK;
		shared_pass += cl[i].t.batch_size > 1;
		worst = fmaxf(worst, cl[i].diff);
	}
	batcher_get_stats(shared, &st);
	CHECK(ok == NJOBS, "all %d requests completed", NJOBS);
	CHECK(st.batch_sizes[NJOBS] == 1 && st.batches == 1 && shared_pass == NJOBS,
	      "they ran as one forward pass of %d (%llu passes)", NJOBS, (unsigned long long)st.batches);
	CHECK(worst < 1e-4f, "batched masks equal the single runs (max diff %.2g)", worst);
	batcher_destroy(shared);

	/* 2. a full queue refuses exactly the excess */
	struct batcher_opts q = {.max_batch = 1, .max_delay_ms = 0, .max_queue = 3};
	struct batcher *b;
	struct batcher_job *busy, *jobs[5] = {0};
	batcher_create(m, &q, &b);
	busy = occupy(b, big, BIG);
	int accepted = 0, full = 0;
	for (int i = 0; i < 5; i++) {
		/* every other one given rather than copied: a refused one is
		 * freed by the batcher (the sanitizers' leak check sees it) */
		float *own = i % 2 ? malloc(sizeof(float) * 3 * S * S) : NULL;
		if (own)
			memcpy(own, inputs[i % NJOBS], sizeof(float) * 3 * S * S);
		batcher_status s = i % 2 ? batcher_give(b, own, 3, S, S, 0, 0, &jobs[i])
					 : batcher_submit(b, inputs[i % NJOBS], 3, S, S, 0, 0, &jobs[i]);
		accepted += s == BATCHER_OK;
		full += s == BATCHER_FULL;
	}
	batcher_get_stats(b, &st);
	CHECK(busy && accepted == 3 && full == 2 && st.rejected_full == 2,
	      "with the worker busy and a queue of 3, 5 requests: 3 accepted, 2 refused at once (%d, %d)", accepted,
	      full);
	/* 3. shutting down finishes what was queued */
	batcher_destroy(b);
	int done = 0, same = 0;
	for (int i = 0; i < 5; i++)
		if (jobs[i]) {
			const float *out = NULL;
			int ok1 = batcher_wait(jobs[i], &out, NULL, NULL, NULL) == BATCHER_OK;
			done += ok1;
			float d = ok1 && out ? 0 : 1;
			for (int k = 0; ok1 && out && k < S * S; k++)
				d = fmaxf(d, fabsf(out[k] - alone[i % NJOBS][k]));
			same += d < 1e-4f;
			batcher_release(jobs[i]);
		}
	if (busy) {
		done += batcher_wait(busy, NULL, NULL, NULL, NULL) == BATCHER_OK;
		batcher_release(busy);
	}
	CHECK(done == 4, "shutting down completed the running and the queued requests (%d of 4)", done);
	CHECK(same == 3, "each queued mask, given or copied, is its input's alone (%d of 3)", same);

	/* 4. a deadline drops a request still waiting */
	struct batcher_job *late;
	batcher_create(m, &q, &b);
	busy = occupy(b, big, BIG);
	batcher_status s = batcher_submit(b, inputs[0], 3, S, S, batcher_now_ms() + 10, 0, &late);
	s = s == BATCHER_OK ? batcher_wait(late, NULL, NULL, NULL, NULL) : s;
	batcher_get_stats(b, &st);
	CHECK(s == BATCHER_EXPIRED && st.expired == 1, "a request past its deadline in the queue expires (%d)", (int)s);
	if (s != BATCHER_ERR_ARG)
		batcher_release(late);
	if (busy) {
		batcher_wait(busy, NULL, NULL, NULL, NULL);
		batcher_release(busy);
	}
	batcher_destroy(b);

	/* 4b. behind a running pass whose length is known and two requests,
	 * one whose deadline is a quarter of that pass away is refused at once
	 * (a deadline near enough to pass while the request is being submitted,
	 * on a machine the pass keeps busy, would make it expire instead); one
	 * with a minute to spare waits its turn */
	struct batcher_job *ahead[6] = {0}, *soon = NULL, *later = NULL;
	batcher_create(m, &q, &b);
	int64_t big_ms = 0;
	for (int i = 0; i < 2; i++) { /* one pass of each size: their costs are known */
		struct batcher_job *warm = NULL;
		int side = i ? BIG : S;
		int64_t t = batcher_now_ms();
		if (batcher_submit(b, i ? big : inputs[0], 3, side, side, 0, 0, &warm) == BATCHER_OK) {
			batcher_wait(warm, NULL, NULL, NULL, NULL);
			batcher_release(warm);
		}
		big_ms = batcher_now_ms() - t;
	}
	busy = occupy(b, big, BIG);
	for (int i = 0; i < 2; i++)
		batcher_submit(b, inputs[i], 3, S, S, 0, 0, &ahead[i]);
	int64_t soon_ms = big_ms / 4 + 1;
	batcher_status s_soon = batcher_submit(b, inputs[2], 3, S, S, batcher_now_ms() + soon_ms, 0, &soon);
	batcher_status s_later = batcher_submit(b, inputs[3], 3, S, S, batcher_now_ms() + 60000, 0, &later);
	batcher_get_stats(b, &st);
	CHECK(s_soon == BATCHER_LATE && st.rejected_late == 1 && s_later == BATCHER_OK && st.expired == 0,
	      "a deadline that would pass in the queue is refused at once (%d, %llu refused, %lld ms away behind a "
	      "%lld ms pass), one that would not waits (%d)",
	      (int)s_soon, (unsigned long long)st.rejected_late, (long long)soon_ms,
	      (long long)big_ms, (int)s_later);
	if (later) {
		CHECK(batcher_wait(later, NULL, NULL, NULL, NULL) == BATCHER_OK, "... and runs");
		batcher_release(later);
	}
	for (int i = 0; i < 2; i++)
		if (ahead[i]) {
			batcher_wait(ahead[i], NULL, NULL, NULL, NULL);
			batcher_release(ahead[i]);
		}
	if (busy) {
		batcher_wait(busy, NULL, NULL, NULL, NULL);
		batcher_release(busy);
	}
	batcher_destroy(b);

	/* 4c. a request let in that then falls behind (the pass ahead of it,
	 * of a size this batcher never ran, was reckoned as nothing) is
	 * refused as the next pass starts, before its deadline, instead of
	 * expiring */
	enum { MID = 672 }; /* a pass some 0.75 of BIG's: between the quarter and the 2.25 that decide */
	struct batcher_job *first = NULL, *behind = NULL;
	struct batcher_job *warm = NULL;
	struct batcher_timing wt = {0};
	/* MID's plan made beforehand (its pass, not planning, is what runs
	 * ahead), its cost still unknown to the new batcher */
	struct nn_tensor mid = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, MID, MID}};
	nn_model_prepare(m, &mid, 1);
	batcher_create(m, &q, &b);
	if (batcher_submit(b, big, 3, BIG, BIG, 0, 0, &warm) == BATCHER_OK) {
		batcher_wait(warm, NULL, NULL, NULL, &wt); /* BIG's cost is known */
		batcher_release(warm);
	}
	busy = occupy(b, big, MID);
	int64_t t0 = batcher_now_ms();
	batcher_submit(b, big, 3, BIG, BIG, 0, 0, &first);
	/* let in: the MID pass counts for nothing, first and itself for a BIG
	 * pass each (a pass's cost, all of it, is a little over its infer_ms);
	 * once MID's pass has run a quarter of a BIG one, not */
	batcher_status s_behind =
		batcher_submit(b, big, 3, BIG, BIG, t0 + (int64_t)(2.25 * wt.infer_ms), 0, &behind);
	batcher_status s_let = s_behind;
	if (s_behind == BATCHER_OK)
		s_behind = batcher_wait(behind, NULL, NULL, NULL, NULL);
	batcher_get_stats(b, &st);
	struct batcher_timing mt = {0}, ft = {0};
	if (busy)
		batcher_wait(busy, NULL, NULL, NULL, &mt);
	if (first)
		batcher_wait(first, NULL, NULL, NULL, &ft);
	CHECK(s_let == BATCHER_OK && s_behind == BATCHER_LATE && st.rejected_late == 1 && st.expired == 0,
	      "a request that falls behind in the queue is refused before its deadline (let in %d, then %d; "
	      "%llu refused, %llu expired; BIG %.0f ms, MID from %.0f ms for %.0f ms, first from %.0f ms)",
	      (int)s_let, (int)s_behind, (unsigned long long)st.rejected_late, (unsigned long long)st.expired,
	      wt.infer_ms, mt.start_ms - (double)t0, mt.infer_ms, ft.start_ms - (double)t0);
	if (behind)
		batcher_release(behind);
	if (first) {
		CHECK(batcher_wait(first, NULL, NULL, NULL, NULL) == BATCHER_OK, "... and the one ahead of it runs");
		batcher_release(first);
	}
	if (busy) {
		batcher_wait(busy, NULL, NULL, NULL, NULL);
		batcher_release(busy);
	}
	batcher_destroy(b);

	/* 5. a request a client waits for goes before background ones queued
	 * earlier, and runs without them; they run together after it */
	struct batcher_timing bt[3];
	double began[3];
	ok = background_run(m, 60000, big, BIG, bt, began);
	CHECK(ok && bt[2].batch_size == 1 && bt[0].batch_size == 2 && bt[1].batch_size == 2 &&
		      began[2] + bt[2].infer_ms <= began[0] + 1.0 && began[2] + bt[2].infer_ms <= began[1] + 1.0,
	      "the client's request ran alone (batch %d) from %.1f ms, before the two background ones "
	      "(batches %d and %d, from %.1f and %.1f ms)",
	      bt[2].batch_size, began[2], bt[0].batch_size, bt[1].batch_size, began[0], began[1]);
	/* 6. background requests that have waited their time go in arrival
	 * order: all three in one pass */
	ok = background_run(m, 1, big, BIG, bt, began);
	CHECK(ok && bt[0].batch_size == 3 && bt[2].batch_size == 3,
	      "after background_wait_ms the background requests take their turn: one pass of %d",
	      bt[2].batch_size);

	/* 7. plans asked for are made by the worker while it has nothing
	 * to do, and a request that arrives meanwhile gets its mask; with
	 * the worker busy, the list takes BATCHER_MAX_PREPARE and no more */
	struct batcher_opts po = {.max_batch = 1, .max_delay_ms = 0, .max_queue = 8};
	batcher_create(m, &po, &b);
	int asked = (batcher_prepare(b, nn_model_precision(m), 3, 96, 96) == BATCHER_OK) +
		    (batcher_prepare(b, nn_model_precision(m), 3, 128, 96) == BATCHER_OK);
	struct client pc = {.i = 1};
	shared = b;
	client_main(&pc);
	for (int i = 0; i < 120000; i++) {
		batcher_get_stats(b, &st);
		if (!st.preparing)
			break;
		usleep(1000);
	}
	CHECK(asked == 2 && st.prepared == 2 && st.preparing == 0, "the worker made the 2 plans asked for (%llu made)",
	      (unsigned long long)st.prepared);
	CHECK(pc.st == BATCHER_OK && pc.diff < 1e-4f, "a request among them got its mask (status %d, max diff %.2g)",
	      (int)pc.st, pc.diff);
	busy = occupy(b, big, BIG);
	int taken = 0;
	for (int i = 0; i <= BATCHER_MAX_PREPARE; i++)
		taken += batcher_prepare(b, nn_model_precision(m), 3, 32 + 8 * i, 32) == BATCHER_OK;
	batcher_get_stats(b, &st);
	CHECK(busy && taken == BATCHER_MAX_PREPARE && st.preparing == BATCHER_MAX_PREPARE && st.prepared == 2,
	      "with the worker busy, %d of %d plans are taken and wait (%d waiting)", taken, BATCHER_MAX_PREPARE + 1,
	      st.preparing);
	if (busy) {
		batcher_wait(busy, NULL, NULL, NULL, NULL);
		batcher_release(busy);
	}
	batcher_destroy(b);

	nn_model_free(m);
	free(big);
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
