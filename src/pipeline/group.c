/*
 * group.c - several photos at once: the gate where their inputs meet so the
 * worker runs them as one forward pass, their masks made that way, and a
 * group portrait of them (img_render_group) encoded and written as a
 * removal's outputs are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/pipeline.h"
#include "util/util.h"

/* ===== The gate ===== */

void pipe_gate_init(struct pipe_gate *g, int n)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->n = n;
	g->arrived = 0;
}

void pipe_gate_pass(struct pipe_gate *g, int *passed)
{
	if (!g || *passed)
		return;
	*passed = 1;
	pthread_mutex_lock(&g->lock);
	g->arrived++;
	pthread_cond_broadcast(&g->cond);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5; /* never stuck: a late one just misses the pass */
	while (g->arrived < g->n)
		if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
			break;
	pthread_mutex_unlock(&g->lock);
}

void pipe_gate_drop(struct pipe_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->n--;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void pipe_gate_destroy(struct pipe_gate *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

/* ===== Masks together ===== */

struct mask_task {
	struct pipe_engine *e;
	const struct img *photo;
	int side;
	struct pipe_gate *gate;
	int passed;
	float *mask;
	struct pipe_mask_info info;
	enum pipe_status st;
	char why[256];
	pthread_t thread;
};

static void at_gate(void *arg)
{
	struct mask_task *t = arg;
	pipe_gate_pass(t->gate, &t->passed);
}

static void *mask_main(void *arg)
{
	struct mask_task *t = arg;
	t->st = pipe_mask(t->e, t->photo, t->side, 0, 0, at_gate, t, &t->mask, &t->info, t->why, sizeof t->why);
	pipe_gate_pass(t->gate, &t->passed); /* if it never queued */
	return NULL;
}

enum pipe_status pipe_masks(struct pipe_engine *e, const struct img *const *photos, int n, int side, float **masks,
			    struct pipe_mask_info *info, char *why, size_t wl)
{
	struct mask_task tasks[IMG_GROUP_MAX];
	struct pipe_gate gate;
	enum pipe_status st = PIPE_OK;

	if (n < 1 || n > IMG_GROUP_MAX) {
		snprintf(why, wl, "1 to %d photos at once", IMG_GROUP_MAX);
		return PIPE_REFUSED;
	}
	pipe_gate_init(&gate, n);
	memset(tasks, 0, sizeof tasks);
	for (int i = 0; i < n; i++) {
		tasks[i] = (struct mask_task){.e = e, .photo = photos[i], .side = side, .gate = &gate};
		/* the last runs here; the others on threads of their own */
		if (i < n - 1 && pthread_create(&tasks[i].thread, NULL, mask_main, &tasks[i])) {
			tasks[i].st = PIPE_FAILED;
			snprintf(tasks[i].why, sizeof tasks[i].why, "cannot start a thread");
			tasks[i].photo = NULL;
			pipe_gate_drop(&gate);
		}
	}
	mask_main(&tasks[n - 1]);
	for (int i = 0; i < n; i++) {
		if (i < n - 1 && tasks[i].photo)
			pthread_join(tasks[i].thread, NULL);
		if (tasks[i].st != PIPE_OK && st == PIPE_OK) {
			st = tasks[i].st;
			snprintf(why, wl, "photo %d: %s", i + 1, tasks[i].why);
		}
	}
	for (int i = 0; i < n; i++) {
		if (st == PIPE_OK) {
			masks[i] = tasks[i].mask;
			info[i] = tasks[i].info;
		} else {
			free(tasks[i].mask);
		}
	}
	pipe_gate_destroy(&gate);
	return st;
}

/* ===== A group portrait ===== */

img_status pipe_group_output(const struct img *const *photos, const struct img *const *alphas, int n,
			     const struct pipe_request *r, enum img_format fmt, void **enc, size_t *enc_len,
			     struct img_subject *subjects, struct img_subject *group, struct img **rendered,
			     double *compose_ms, double *encode_ms)
{
	struct img *out = NULL;
	double t0 = util_now_ms();
	img_status st;

	*enc = NULL;
	*enc_len = 0;
	if (rendered)
		*rendered = NULL;
	st = img_render_group(photos, alphas, n, &r->render, &r->group, &out, subjects, group);
	if (compose_ms)
		*compose_ms = util_now_ms() - t0;
	return st == IMG_OK ? pipe_encode(out, r, fmt, enc, enc_len, rendered, encode_ms) : st;
}

enum pipe_status pipe_group_photos(struct pipe_engine *e, const struct pipe_request *r,
				   const struct img *const *photos, int n, const char *const *outs,
				   const enum img_format *fmts, int nout, struct pipe_group_info *info,
				   struct pipe_timings *t, char *why, size_t wl)
{
	struct pipe_mask_info mi[IMG_GROUP_MAX];
	float *masks[IMG_GROUP_MAX] = {0};
	struct img *alphas[IMG_GROUP_MAX] = {0}, *res;
	void *enc[PIPE_MAX_OUTS] = {0};
	size_t enc_len[PIPE_MAX_OUTS] = {0};
	enum pipe_status ps;
	img_status st;
	double t0, c, en;

	memset(t, 0, sizeof *t);
	if (nout < 1 || nout > PIPE_MAX_OUTS) {
		snprintf(why, wl, "1 to %d outputs", PIPE_MAX_OUTS);
		return PIPE_REFUSED;
	}
	if ((ps = pipe_masks(e, photos, n, r->side, masks, mi, why, wl)) != PIPE_OK)
		return ps;
	if (e->oneshot)
		nn_model_rest(e->model);
	t->mask = mi[0];
	t0 = util_now_ms();
	for (int i = 0; i < n; i++)
		if ((st = pipe_alpha(photos[i], masks[i], r->side, r, &alphas[i])) != IMG_OK) {
			snprintf(why, wl, "photo %d: %s", i + 1, img_errmsg());
			ps = pipe_img_failure(st);
			goto out;
		}
	t->refine_ms = util_now_ms() - t0;
	for (int i = 0; i < nout; i++) {
		st = pipe_group_output(photos, (const struct img *const *)alphas, n, r, fmts[i], &enc[i], &enc_len[i],
				       info[i].subjects, &info[i].group, &res, &c, &en);
		t->compose_ms += c;
		t->encode_ms += en;
		if (st != IMG_OK) {
			snprintf(why, wl, "%s: %s", outs[i], img_errmsg());
			ps = pipe_img_failure(st);
			goto out;
		}
		info[i].width = img_width(res);
		info[i].height = img_height(res);
		img_free(res);
	}
	ps = pipe_write_outputs(outs, enc, enc_len, nout, &t->encode_ms, why, wl);
out:
	for (int i = 0; i < nout; i++)
		free(enc[i]);
	for (int i = 0; i < n; i++) {
		free(masks[i]);
		img_free(alphas[i]);
	}
	return ps;
}
