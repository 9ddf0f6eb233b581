/*
 * engine.c - the model and its worker, and the steps of one removal: the
 * mask through the worker (and its quality guard), the alpha at the photo's
 * size, and each output rendered and encoded.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "pipeline/pipeline.h"
#include "util/util.h"


int pipe_model_path(const char *spec, char *path, size_t n, char *why, size_t wl)
{
	if (!spec)
		spec = MODEL_DEFAULT_VARIANT;
	if (model_variant_from_name(spec) < 0) { /* not a variant's name: a file */
		snprintf(path, n, "%s", spec);
		return 0;
	}
	if (model_path(spec, path, n) != MODEL_OK) {
		snprintf(why, wl, "%s", model_errmsg());
		return -1;
	}
	return 0;
}

int pipe_model_set_precision(nn_model *m, const char *path, int p, char *calib_id, size_t cl, char *why,
			     size_t wl)
{
	char calib[PATH_MAX + 64];
	struct stat sb;

	if (p == NN_PRECISION_INT8) {
		if (model_calibration_path(path, calib, sizeof calib) != MODEL_OK) {
			snprintf(why, wl, "%s", model_errmsg());
			return -1;
		}
		if (nn_model_load_calibration(m, calib) != NN_OK || stat(calib, &sb)) {
			snprintf(why, wl, "no int8 calibration (run: petcut model calibrate --images DIR): %s",
				 nn_errmsg());
			return -1;
		}
		snprintf(calib_id, cl, "%lld.%lld", (long long)sb.st_size, (long long)sb.st_mtim.tv_sec);
	}
	if (nn_model_set_precision(m, (nn_precision)p) != NN_OK) {
		snprintf(why, wl, "%s", nn_errmsg());
		return -1;
	}
	return 0;
}

/* Whether the model takes one float input [N,3,H,W], as a segmentation
 * model here does, and selects its output "output" where it has one. */
static int check_model(nn_model *m)
{
	static const char *const outputs[] = {"output"};
	struct nn_tensor_info in;

	if (nn_model_num_outputs(m) > 1 && nn_model_select_outputs(m, outputs, 1) != NN_OK)
		return -1;
	return nn_model_num_inputs(m) == 1 && nn_model_num_outputs(m) == 1 && nn_model_input(m, 0, &in) == NN_OK &&
			       in.dtype == NN_DTYPE_F32 && in.rank == 4 && in.dims[1] == 3
		       ? 0
		       : -1;
}

void pipe_model_weight_cache(nn_model *m)
{
	const char *env = getenv("PETCUT_WEIGHT_CACHE"), *models;
	char dir[PATH_MAX];

	if (env && *env) {
		if (strcmp(env, "off"))
			nn_model_set_weight_cache(m, env);
		return;
	}
	if ((models = model_dir()) && snprintf(dir, sizeof dir, "%s/cache", models) < (int)sizeof dir)
		nn_model_set_weight_cache(m, dir);
}

int pipe_engine_open(const struct pipe_engine_opts *o, struct pipe_engine **out, char *note, size_t nl,
		     char *why, size_t wl)
{
	struct pipe_engine *e = calloc(1, sizeof *e);
	char calib_id[48] = "", later[512];
	unsigned char sum[32];
	int rc = 2;

	*out = NULL;
	note[0] = why[0] = '\0';
	if (!e) {
		snprintf(why, wl, "out of memory");
		return 2;
	}
	if (pipe_model_path(o->model, e->path, sizeof e->path, why, wl)) {
		rc = 1;
		goto fail;
	}
	if (o->identify) {
		if (util_file_sha256(e->path, sum, NULL)) {
			snprintf(why, wl, "%s: %s", e->path, strerror(errno));
			rc = errno == ENOENT ? 1 : 2;
			goto fail;
		}
		util_hex(sum, sizeof sum, e->model_id);
	}
	if (nn_model_load_file(e->path, &e->model) != NN_OK) {
		snprintf(why, wl, "%s", nn_errmsg()); /* it starts with the path */
		rc = 1;
		goto fail;
	}
	pipe_model_weight_cache(e->model);
	nn_model_set_one_pass(e->model, o->oneshot);
	if (check_model(e->model)) {
		snprintf(why, wl, "%s: not a segmentation model (want one float input [N,3,H,W] and one output)",
			 e->path);
		rc = 1;
		goto fail;
	}
	/* bf16 by default where the CPU has it; a precision that cannot run
	 * here steps down (int8, bf16, fp32), said when it was asked for */
	int want = o->precision < 0 ? NN_PRECISION_BF16 : o->precision, got = want;
	while (got != NN_PRECISION_FP32 &&
	       pipe_model_set_precision(e->model, e->path, got, calib_id, sizeof calib_id, got == want ? note : later,
					got == want ? nl : sizeof later))
		got = got == NN_PRECISION_INT8 ? NN_PRECISION_BF16 : NN_PRECISION_FP32;
	if (got == want || o->precision < 0)
		note[0] = '\0';
	else
		snprintf(note + strlen(note), nl - strlen(note), ": running at %s",
			 got == NN_PRECISION_BF16 ? "bf16" : "fp32");
	e->precision = got;
	e->oneshot = o->oneshot;
	bool guard = o->guard_above > 0 && (got == NN_PRECISION_INT8 || (got == NN_PRECISION_BF16 && o->guard_bf16));
	/* the guard's threshold names its reruns; an int8 calibration is named
	 * by its file's identity */
	if (got == NN_PRECISION_INT8)
		snprintf(e->precision_key, sizeof e->precision_key, "int8.%s/guard%.3g", calib_id,
			 guard ? o->guard_above : 0);
	else if (got == NN_PRECISION_BF16)
		snprintf(e->precision_key, sizeof e->precision_key, "bf16/guard%.3g", guard ? o->guard_above : 0);
	else
		snprintf(e->precision_key, sizeof e->precision_key, "fp32");
	/* the preview's plan now, before the engine takes requests: the first
	 * a page asks for */
	struct nn_tensor preview = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, PIPE_SIDE_PREVIEW, PIPE_SIDE_PREVIEW}};
	if (o->prepare)
		nn_model_prepare(e->model, &preview, 1);
	if (o->plan_side > 0) { /* with the worker's threads, as oneDNN's kernels want */
		struct nn_tensor first = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, o->plan_side, o->plan_side}};
		nn_set_threads(o->threads);
		nn_model_prepare(e->model, &first, 1);
	}
	/* requests may be long in coming: wait without the memory kept for
	 * the first pass */
	if (o->prepare || o->plan_side > 0)
		nn_model_trim(e->model);
	struct batcher_opts bo = {o->max_batch, o->max_delay_ms, o->max_queue, guard ? o->guard_above : 0, 0, o->threads};
	if (batcher_create(e->model, &bo, &e->batcher) != BATCHER_OK) {
		snprintf(why, wl, "cannot start the inference worker");
		goto fail;
	}
	/* the full size's, and with the guard on its fp32 plans (an unsure
	 * mask is rerun at once, not after planning and rereading the
	 * weights), made by the worker while it has nothing else to do */
	if (o->prepare) {
		batcher_prepare(e->batcher, nn_model_precision(e->model), 3, PIPE_SIDE_FULL, PIPE_SIDE_FULL);
		for (int side = PIPE_SIDE_PREVIEW; guard && side <= PIPE_SIDE_FULL; side *= 2)
			batcher_prepare(e->batcher, NN_PRECISION_FP32, 3, side, side);
	}
	*out = e;
	return 0;
fail:
	pipe_engine_close(e);
	return rc;
}

void pipe_engine_close(struct pipe_engine *e)
{
	if (!e)
		return;
	batcher_destroy(e->batcher);
	nn_model_free(e->model);
	free(e);
}

enum pipe_status pipe_input(const struct img *photo, int side, float **input, char *why, size_t wl)
{
	/* on huge pages: the worker's once given */
	float *tensor = util_alloc_big(sizeof(float) * 3 * (size_t)side * (size_t)side);

	*input = NULL;
	if (!tensor) {
		snprintf(why, wl, "out of memory");
		return PIPE_FAILED;
	}
	if (img_to_tensor(photo, side, side, tensor) != IMG_OK) {
		free(tensor);
		snprintf(why, wl, "%s", img_errmsg());
		return PIPE_BAD_INPUT;
	}
	*input = tensor;
	return PIPE_OK;
}

enum pipe_status pipe_mask(struct pipe_engine *e, const struct img *photo, int side, int64_t deadline_ms,
			   int background, void (*submitting)(void *), void *arg, float **mask,
			   struct pipe_mask_info *info, char *why, size_t wl)
{
	double t0 = util_now_ms();
	float *input;
	enum pipe_status ps = pipe_input(photo, side, &input, why, wl);

	*mask = NULL;
	memset(info, 0, sizeof *info);
	if (ps != PIPE_OK)
		return ps;
	info->resize_ms = util_now_ms() - t0;
	return pipe_mask_of(e, input, side, deadline_ms, background, submitting, arg, mask, info, why, wl);
}

enum pipe_status pipe_mask_of(struct pipe_engine *e, float *tensor, int side, int64_t deadline_ms, int background,
			      void (*submitting)(void *), void *arg, float **mask, struct pipe_mask_info *info,
			      char *why, size_t wl)
{
	size_t n = (size_t)side * side;
	struct batcher_timing bt = {0};
	struct batcher_job *job;

	*mask = NULL;
	if (submitting)
		submitting(arg);
	batcher_status bs =
		batcher_give(e->batcher, tensor, 3, side, side, deadline_ms, background ? BATCHER_BACKGROUND : 0, &job);
	switch (bs) {
	case BATCHER_OK:
		break;
	case BATCHER_FULL:
		snprintf(why, wl, "the inference queue is full");
		return PIPE_BUSY;
	case BATCHER_LATE:
		snprintf(why, wl, "the inference queue would not reach this request before its deadline");
		return PIPE_BUSY;
	case BATCHER_EXPIRED:
		snprintf(why, wl, "the request's deadline passed before it reached the queue");
		return PIPE_TIMEOUT;
	case BATCHER_UNAVAILABLE:
		snprintf(why, wl, "the inference worker failed; it is tried again shortly");
		return PIPE_UNAVAILABLE;
	case BATCHER_ERR_NOMEM:
		snprintf(why, wl, "out of memory");
		return PIPE_FAILED;
	default:
		snprintf(why, wl, "the inference worker is not taking requests");
		return PIPE_UNAVAILABLE;
	}
	const float *out;
	int rank;
	int64_t dims[NN_MAX_RANK], got = 1;
	bs = batcher_wait(job, &out, &rank, dims, &bt);
	for (int i = 0; bs == BATCHER_OK && i < rank; i++)
		got *= dims[i];
	if (bs == BATCHER_OK && (size_t)got == n && (*mask = malloc(sizeof(float) * n)))
		memcpy(*mask, out, sizeof(float) * n);
	else if (bs == BATCHER_OK)
		bs = (size_t)got == n ? BATCHER_ERR_NOMEM : BATCHER_ERR_NN;
	if (bs != BATCHER_OK)
		snprintf(why, wl, "%s",
			 bs == BATCHER_EXPIRED	   ? "the request's deadline passed in the queue"
			 : bs == BATCHER_LATE	   ? "the inference queue fell behind: this request would not be answered before its deadline"
			 : bs == BATCHER_ERR_NOMEM ? "out of memory"
			 : bs == BATCHER_ERR_NN && (size_t)got != n && !*batcher_job_error(job)
				 ? "the model's output is not one side x side mask"
				 : batcher_job_error(job));
	batcher_release(job);
	info->queue_ms = bt.queue_ms;
	info->infer_ms = bt.infer_ms;
	info->batch_size = bt.batch_size;
	info->fallback = bt.fallback;
	info->uncertainty = bt.uncertainty;
	switch (bs) {
	case BATCHER_OK:
		return PIPE_OK;
	case BATCHER_EXPIRED:
		return PIPE_TIMEOUT;
	case BATCHER_LATE:
		return PIPE_BUSY;
	case BATCHER_STOPPED:
	case BATCHER_UNAVAILABLE:
		return PIPE_UNAVAILABLE;
	default:
		return PIPE_FAILED;
	}
}

img_status pipe_alpha(const struct img *photo, const float *mask, int side, const struct pipe_request *r,
		      struct img **alpha)
{
	return img_mask_to_alpha(photo, mask, side, side, r->refine, alpha);
}

img_status pipe_encode(struct img *out, const struct pipe_request *r, enum img_format fmt, void **enc,
		       size_t *enc_len, struct img **rendered, double *encode_ms)
{
	struct img_save_opts so = r->save;
	double t0 = util_now_ms();
	img_status st;

	so.format = fmt;
	st = img_encode(out, &so, enc, enc_len);
	if (encode_ms)
		*encode_ms = util_now_ms() - t0;
	if (st == IMG_OK && rendered)
		*rendered = out;
	else
		img_free(out);
	return st;
}

img_status pipe_output(const struct img *photo, const struct img *alpha, const struct pipe_request *r,
		       enum img_format fmt, void **enc, size_t *enc_len, struct img_subject *subject,
		       struct img **rendered, double *compose_ms, double *encode_ms)
{
	struct img *out = NULL;
	double t0 = util_now_ms();
	img_status st;

	*enc = NULL;
	*enc_len = 0;
	if (rendered)
		*rendered = NULL;
	st = img_render(photo, alpha, &r->render, &out, subject);
	if (compose_ms)
		*compose_ms = util_now_ms() - t0;
	return st == IMG_OK ? pipe_encode(out, r, fmt, enc, enc_len, rendered, encode_ms) : st;
}

enum pipe_status pipe_img_failure(img_status st)
{
	return st == IMG_ERR_IO || st == IMG_ERR_NOMEM || st == IMG_ERR_VIPS ? PIPE_FAILED : PIPE_REFUSED;
}

enum pipe_status pipe_write_outputs(const char *const *outs, void *const *enc, const size_t *enc_len, int n,
				    double *ms, char *why, size_t wl)
{
	double t0 = util_now_ms();
	img_status st;

	for (int i = 0; i < n; i++) {
		if (!strcmp(outs[i], "-")) { /* standard output */
			const char *p = enc[i];
			for (size_t left = enc_len[i]; left > 0;) {
				ssize_t k = write(STDOUT_FILENO, p, left);
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0) {
					snprintf(why, wl, "standard output: %s", strerror(errno));
					return PIPE_FAILED;
				}
				p += k, left -= (size_t)k;
			}
			continue;
		}
		if ((st = img_write_file(outs[i], enc[i], enc_len[i])) != IMG_OK) {
			snprintf(why, wl, "%s: %s", outs[i], img_errmsg());
			return pipe_img_failure(st);
		}
	}
	*ms += util_now_ms() - t0;
	return PIPE_OK;
}

enum pipe_status pipe_remove_photo(struct pipe_engine *e, const struct pipe_request *r, const struct img *photo,
				   float *input, const char *const *outs, const enum img_format *fmts, int n,
				   struct pipe_out_info *info, struct pipe_timings *t, char *why, size_t wl)
{
	struct img *alpha = NULL, *res;
	void **enc = calloc((size_t)(n > 0 ? n : 1), sizeof *enc);
	size_t *enc_len = calloc((size_t)(n > 0 ? n : 1), sizeof *enc_len);
	float *mask = NULL;
	enum pipe_status ps = PIPE_FAILED;
	img_status st;
	double t0, c, en;

	memset(t, 0, sizeof *t);
	if (!enc || !enc_len) {
		free(input);
		snprintf(why, wl, "out of memory");
		goto out;
	}
	if ((ps = pipe_mask_of(e, input, r->side, 0, 0, NULL, NULL, &mask, &t->mask, why, wl)) != PIPE_OK)
		goto out;
	if (e->oneshot) /* a 12 MP photo's outputs take about what the model held */
		nn_model_rest(e->model);
	t0 = util_now_ms();
	if ((st = pipe_alpha(photo, mask, r->side, r, &alpha)) != IMG_OK) {
		snprintf(why, wl, "%s", img_errmsg());
		ps = pipe_img_failure(st);
		goto out;
	}
	t->refine_ms = util_now_ms() - t0;
	for (int i = 0; i < n; i++) {
		st = pipe_output(photo, alpha, r, fmts[i], &enc[i], &enc_len[i], &info[i].subject, &res, &c, &en);
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
	ps = pipe_write_outputs(outs, enc, enc_len, n, &t->encode_ms, why, wl);
out:
	for (int i = 0; enc && i < n; i++)
		free(enc[i]);
	free(enc);
	free(enc_len);
	free(mask);
	img_free(alpha);
	return ps;
}
