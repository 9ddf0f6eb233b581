/*
 * batcher.h - the inference worker of one model and its bounded queue.
 *
 * Requests for a mask queue up; one worker thread owns the model and runs
 * them. When a request arrives the worker waits up to max_delay_ms for more
 * of the same input size, then runs up to max_batch of them as one forward
 * pass and hands each its own slice of the output. The queue is bounded:
 * a request that finds max_queue others waiting is refused at once
 * (BATCHER_FULL: the server answers 429), and each request may carry a
 * deadline past which it is dropped before it runs (BATCHER_EXPIRED: 504).
 * A request that would not be answered by its deadline (the requests ahead
 * of it and its own, each at the recent time per request of its input
 * size) is refused at once too (BATCHER_LATE: 429), rather than waiting to
 * expire; and as each pass starts, the queued requests are reckoned again
 * and those that fell behind are refused the same way. One whose deadline
 * has passed already gets BATCHER_EXPIRED.
 * Results are identical to running each request alone.
 *
 * A request nobody waits for (BATCHER_BACKGROUND: a mask made ahead of time)
 * runs only when no other is queued, or once it has waited background_wait_ms,
 * and never joins the pass of one that a client waits for.
 *
 * A forward pass that fails fails its requests and every request waiting
 * behind it at once (BATCHER_ERR_NN), and for fail_pause_ms new requests
 * are refused without waiting (BATCHER_UNAVAILABLE): a model that cannot
 * run does not make each request wait its turn to fail. After the pause the
 * next request tries the model again; a pass that works ends the failure.
 *
 * The model must take one float input [N, C, H, W] and give (after
 * nn_model_select_outputs) one output [N, ...]. While a batcher runs it, the
 * caller must not call nn_run on the same model.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef PETCUT_BATCHER_H
#define PETCUT_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum batcher_status {
	BATCHER_OK = 0,
	BATCHER_FULL = -1,    /* the queue is full: try again later */
	BATCHER_EXPIRED = -2, /* the deadline passed before the request ran */
	BATCHER_STOPPED = -3, /* the batcher is shutting down */
	BATCHER_ERR_NN = -4,  /* the model failed (see the job's message) */
	BATCHER_ERR_ARG = -5, /* a bad argument */
	BATCHER_ERR_NOMEM = -6,
	BATCHER_UNAVAILABLE = -7, /* the last forward pass failed: refused for a pause */
	BATCHER_LATE = -8,	  /* it would not be answered by its deadline: try again later */
} batcher_status;

struct batcher_opts {
	int max_batch;	  /* requests per forward pass (default 4) */
	int max_delay_ms; /* longest wait for more requests of the same size (default 5) */
	int max_queue;	  /* requests waiting, not counting the running batch (default 64) */
	/* Quality guard: when the model runs below fp32 and a mask's
	 * batcher_mask_uncertainty is above this, that input runs again at fp32
	 * and its fp32 mask is the result (0: never; default 0). */
	double fallback_above;
	/* After a forward pass fails, new requests are refused for this long
	 * (default 2000). */
	int fail_pause_ms;
	/* Compute threads of the forward passes (nn_set_threads, which holds
	 * for the thread that sets it); 0: the runtime's default. */
	int threads;
	/* A background request that has waited this long takes its turn in
	 * arrival order like any other (default 2000). */
	int background_wait_ms;
};

/* batcher_submit's flags */
enum { BATCHER_BACKGROUND = 1 };

/* Counters since creation, for /metrics. */
#define BATCHER_MAX_BATCH 32
struct batcher_stats {
	uint64_t submitted, rejected_full, expired, failed, completed;
	uint64_t rejected_late; /* refused at once: the deadline would pass in the queue */
	uint64_t failed_passes;	   /* forward passes that failed */
	uint64_t rejected_failing; /* refused during the pause after one (BATCHER_UNAVAILABLE) */
	uint64_t batches;
	uint64_t fallbacks; /* masks rerun at fp32 by the quality guard */
	uint64_t batch_sizes[BATCHER_MAX_BATCH + 1]; /* batches of each size */
	uint64_t busy_ns;			     /* time spent in forward passes */
	uint64_t prepared;			     /* plans made while idle (batcher_prepare) */
	int preparing;				     /* plans asked for and not made yet */
	int queued;				     /* waiting now */
	int running;				     /* in the forward pass now */
	int failing;				     /* 1: in the pause after a failed pass */
};

/* What one request went through. */
struct batcher_timing {
	double queue_ms; /* from submission to the start of its forward pass */
	double start_ms; /* that start, on batcher_now_ms's clock */
	double infer_ms; /* the forward pass it was part of */
	int batch_size;	 /* how many requests shared it */
	int fallback;	 /* 1: rerun at fp32 by the quality guard (infer_ms includes it) */
	double uncertainty; /* batcher_mask_uncertainty of its first mask */
};

/* How unsure a mask of probabilities is: the share of pixels between 0.1
 * and 0.9 among those above 0.1 (what might be subject), 0 when none are.
 * A clear subject gives about 0.02-0.3 (fur and hair are the unsure
 * part); a ghosted double exposure, or a blur with no subject, near 1. */
double batcher_mask_uncertainty(const float *p, size_t n);

struct batcher;
struct batcher_job;

/* Starts the worker. The model stays the caller's; it must outlive the
 * batcher. o may be NULL (defaults). */
batcher_status batcher_create(nn_model *m, const struct batcher_opts *o, struct batcher **out);

/* Has the worker make the plan of a c x h x w input at precision prec
 * (nn_model_prepare_at) when no request waits, so that a later request
 * of that size does not pay for it; plans are made in the order asked.
 * A request that arrives meanwhile waits for the plan being made, not for
 * the others. BATCHER_ERR_NOMEM when BATCHER_MAX_PREPARE are pending. */
#define BATCHER_MAX_PREPARE 8
batcher_status batcher_prepare(struct batcher *b, nn_precision prec, int c, int h, int w);

/* Stops taking requests, finishes those queued, then stops the worker and
 * frees the batcher (jobs not yet released stay valid until released). */
void batcher_destroy(struct batcher *b);

/* Queues one input of c x h x w floats (copied). deadline_ms is an absolute
 * CLOCK_MONOTONIC time in milliseconds (batcher_now_ms), or 0 for none;
 * flags: 0 or BATCHER_BACKGROUND. On BATCHER_OK *job must be released with
 * batcher_release after waiting. */
batcher_status batcher_submit(struct batcher *b, const float *input, int c, int h, int w, int64_t deadline_ms,
			      int flags, struct batcher_job **job);

/* batcher_submit without the copy: input (malloc'd) becomes the batcher's,
 * freed by it whatever the outcome. */
batcher_status batcher_give(struct batcher *b, float *input, int c, int h, int w, int64_t deadline_ms, int flags,
			    struct batcher_job **job);

/* Waits until the job has run or expired. On BATCHER_OK *out points to its
 * output (its dims in *dims, rank in *rank, excluding the batch axis), owned
 * by the job. timing may be NULL. If the deadline passes while the job still
 * waits in the queue, it is removed and BATCHER_EXPIRED returned;
 * BATCHER_LATE if it was refused in the queue (it fell behind, above). */
batcher_status batcher_wait(struct batcher_job *job, const float **out, int *rank, int64_t *dims,
			    struct batcher_timing *timing);

/* Message of a job that failed (BATCHER_ERR_NN). */
const char *batcher_job_error(const struct batcher_job *job);

/* Releases the caller's hold on a job (before or after waiting). */
void batcher_release(struct batcher_job *job);

void batcher_get_stats(struct batcher *b, struct batcher_stats *out);

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t batcher_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
