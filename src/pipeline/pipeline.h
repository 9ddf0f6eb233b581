/*
 * pipeline.h - the one place that turns a removal request into results,
 * whoever asks: `petcut remove` and `remove-dir`, POST /v1/remove-background
 * (a JSON body, or the image as the body with the options in the query),
 * the remove.bg form, jobs and precomputation.
 *
 * Requests. struct pipe_request holds every option of a removal: the
 * network's input size, the mask's refinement, what the output shows
 * (struct img_render) and how it is encoded (struct img_save_opts). Every
 * kind of input fills it through the same validator, pipe_set, so that a
 * value is accepted or refused with the same words wherever it comes from:
 * the CLI's `--NAME VALUE` (pipe_opt_by_flag), a JSON body's fields
 * (pipe_opt_by_field, pipe_set_json), a query string (text, as the CLI's).
 * pipe_check then checks the options together.
 *
 * The engine. struct pipe_engine is the model (by variant name or path) at
 * the precision asked for, or the next one down that runs here, with its
 * inference worker (batcher.h) and the quality guard: a bf16 or int8 mask
 * that is unsure is made again at fp32. pipe_mask runs a photo through it;
 * pipe_output renders and encodes one output from the photo and its alpha.
 */
#ifndef PETCUT_PIPELINE_H
#define PETCUT_PIPELINE_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "batcher/batcher.h"
#include "img/img.h"
#include "nn/nn.h"

/* Network input sides: ISNet's own resolution, and a quarter of the work. */
#define PIPE_SIDE_FULL 1024
#define PIPE_SIDE_PREVIEW 512

/* The quality guard's threshold on batcher_mask_uncertainty: on 21 photos,
 * the int8 masks above it (3) were fp32's within IoU 0.66-0.91, those
 * below within a mean of 2.2/255. */
#define PIPE_GUARD_ABOVE 0.8

/* Bounds of the options' values. */
#define PIPE_MAX_OUTLINE 1000 /* outline, pixels */
#define PIPE_MAX_MARGIN 10000 /* margin, pixels or percent */
#define PIPE_MAX_FIT 20000    /* each side of fit, pixels */
#define PIPE_MAX_FIT_MP 1000   /* fit in megapixels */
#define PIPE_MAX_CANVAS 20000 /* each side of a canvas, pixels */
#define PIPE_MAX_CANVAS_MP 100 /* a canvas's pixels, millions */
#define PIPE_MAX_DPI 4800
#define PIPE_DEFAULT_DPI 300 /* a canvas given in inches or centimetres */

/* ===== Requests ===== */

struct pipe_request {
	int side;		   /* network input: PIPE_SIDE_PREVIEW or PIPE_SIDE_FULL */
	enum img_refine refine;	   /* mask scaling to the photo's size */
	struct img_render render;  /* bg_image stays NULL: the caller loads bg_ref */
	struct img_save_opts save; /* format, quality, lossy, colour */
	const char *bg_ref;	   /* render.bg == IMG_BG_IMAGE: the image as given (a file
				      for the CLI, an uploaded image's id or URL for the
				      server), borrowed from the input */
	int format_given;	   /* format came from the request, not a default */
	int margin_given, outline_given;
	double canvas_in[2];	   /* the canvas in inches (0: given in pixels, or none) */
	int layout_given;	   /* scale, position, padding or snap: they need a canvas */
	int shadow_given;	   /* shadow named a kind: it needs effect shadow */
	int group_n;		   /* a group portrait of this many photos (set by the caller
				      before pipe_check; 0: one photo) */
	struct img_group group;	   /* its overlap and heights */
	int heights_n;		   /* heights given (at most group_n) */
	int group_given;	   /* overlap or heights: they need a group */
};

/* The options, each with its JSON field and CLI flag. */
enum pipe_opt {
	PIPE_OPT_SIZE,
	PIPE_OPT_FORMAT,
	PIPE_OPT_BG,
	PIPE_OPT_EFFECT,
	PIPE_OPT_REFINE,
	PIPE_OPT_CROP,
	PIPE_OPT_MARGIN,
	PIPE_OPT_FIT,
	PIPE_OPT_OUTLINE,
	PIPE_OPT_QUALITY,
	PIPE_OPT_LOSSY,
	PIPE_OPT_MASK,
	PIPE_OPT_COLOR,
	PIPE_OPT_EDGES,
	PIPE_OPT_CANVAS,
	PIPE_OPT_DPI,
	PIPE_OPT_SCALE,
	PIPE_OPT_POSITION,
	PIPE_OPT_PADDING,
	PIPE_OPT_SNAP,
	PIPE_OPT_ROI,
	PIPE_OPT_SHADOW,
	PIPE_OPT_SHADOW_OPACITY,
	PIPE_OPT_SHADOW_BLUR,
	PIPE_OPT_SHADOW_OFFSET,
	PIPE_OPT_SHADOW_ANGLE,
	PIPE_OPT_OVERLAP,
	PIPE_OPT_HEIGHTS,
	PIPE_OPT_COUNT
};

/* What values an option takes. */
enum pipe_kind {
	PIPE_TEXT,    /* a word or text */
	PIPE_INTEGER, /* decimal digits (a JSON integer) */
	PIPE_SWITCH,  /* true or false (a JSON boolean; a CLI flag without value) */
	PIPE_NUMBER,  /* a number, with a unit where it takes one (a JSON number, or text) */
};

/* The request's defaults: side (PIPE_SIDE_FULL for the CLI, PREVIEW for the
 * API), PNG, a transparent background, no effect, no refinement. */
void pipe_request_init(struct pipe_request *r, int side);

/* The option named by a JSON field ("margin") or a CLI flag ("--margin"), or
 * -1. */
int pipe_opt_by_field(const char *field);
int pipe_opt_by_flag(const char *flag);
const char *pipe_opt_field(enum pipe_opt opt);
const char *pipe_opt_flag(enum pipe_opt opt);
enum pipe_kind pipe_opt_kind(enum pipe_opt opt);

/*
 * Sets option opt from its text (a switch: "true", "false", "1" or "0").
 * Returns 0, or -1 with why saying which values it takes (without naming
 * the option: the caller does, as its input names it). text is borrowed:
 * bg_ref may point into it.
 */
int pipe_set(struct pipe_request *r, enum pipe_opt opt, const char *text, char *why, size_t wl);

/* pipe_set from a JSON value of the option's kind (a string, an integer or
 * a boolean); -1 with why for another type. */
int pipe_set_json(struct pipe_request *r, enum pipe_opt opt, json_t *v, char *why, size_t wl);

/* Checks the options together (the mask alone, pop art's own backgrounds,
 * margin with crop, outline with sticker). 0, or -1 with why. */
int pipe_check(const struct pipe_request *r, char *why, size_t wl);

/* Whether format fmt can hold the result: JPEG has no transparency, so it
 * needs an opaque background (the mask and pop art are opaque). 0, or -1
 * with why. */
int pipe_check_format(const struct pipe_request *r, enum img_format fmt, char *why, size_t wl);

/* Every option in one order, for cache keys: bg_id names the background
 * image (""). Returns 0, or -1 when out (n bytes) is too small. */
int pipe_canonical(const struct pipe_request *r, const char *bg_id, char *out, size_t n);

/* The quality guard's choice: "auto" (int8 masks), "fp32" (bf16 masks
 * too) or "none" into *guard_bf16 and *on (0: no guard): 0, or -1. */
int pipe_parse_fallback(const char *text, int *guard_bf16, int *on);

/* "fp32", "bf16" or "int8" into *prec (an nn_precision): 0, or -1. */
int pipe_parse_precision(const char *text, int *prec);

/* ===== The engine ===== */

struct pipe_engine_opts {
	const char *model;   /* a variant name (small, medium) or an .onnx path; NULL: medium */
	int precision;	     /* nn_precision, or -1: bf16 where the CPU has it, else fp32 */
	double guard_above;  /* rerun at fp32 above this uncertainty; 0: no guard */
	/* 1: bf16 masks are rerun too; 0: int8's alone. On the photos behind
	 * PIPE_GUARD_ABOVE the unsure bf16 masks were fp32's within 16/255 (a
	 * mean of 1.23 at most), the unsure int8 ones within IoU 0.66-0.91
	 * (a mean of 8.8/255): only int8's rerun pays for its fp32 pass. */
	int guard_bf16;
	int max_batch;	     /* the worker's batcher_opts (0: its defaults; max_delay_ms as given) */
	int max_delay_ms;
	int max_queue;
	int threads;	     /* compute threads of the worker (0: all CPUs) */
	int prepare;	     /* plan the preview size now, the full size (and the guard's fp32 plans) in the worker while idle */
	int plan_side;	     /* plan one input of this side while opening, for a first mask
				that runs at once (0: none; a failure is the first mask's) */
	int identify;	     /* compute the model file's SHA-256 into model_id */
	int oneshot;	     /* one mask (or group of masks) is all: the model's working memory
				is freed once it is made, for the outputs' (pipe_remove_photo) */
};

struct pipe_engine {
	char path[PATH_MAX];	/* the model file */
	char model_id[65];	/* its SHA-256 in hex (identify), else "" */
	char precision_key[96]; /* how masks are made (precision, guard, calibration): part of cache keys */
	int precision;		/* what runs (nn_precision) */
	int oneshot;		/* from the options */
	nn_model *model;
	struct batcher *batcher;
};

/*
 * Loads the model and starts its worker. A precision that cannot run here
 * steps down (int8 without a calibration or VNNI: bf16; bf16 without
 * AVX512_BF16: fp32); when o->precision asked for it, note says so (else
 * note is ""). Returns 0; 1 when the model is missing or not usable (why
 * says so: a variant not fetched, a file that is not a segmentation model
 * with one float input [N,3,H,W]); 2 on another failure.
 */
int pipe_engine_open(const struct pipe_engine_opts *o, struct pipe_engine **out, char *note, size_t nl,
		     char *why, size_t wl);
void pipe_engine_close(struct pipe_engine *e);

/* The model file a variant name (small, medium) or a path names: 0, or -1
 * with why (a variant not fetched yet). */
int pipe_model_path(const char *spec, char *path, size_t n, char *why, size_t wl);

/* Sets model m (loaded from the file path) to precision p (an
 * nn_precision); int8 first loads the calibration kept beside the model
 * file, and writes its identity (size and mtime) into calib_id (cl bytes).
 * Returns 0, or -1 with why set when that precision cannot run here (the
 * model stays at fp32). */
int pipe_model_set_precision(nn_model *m, const char *path, int p, char *calib_id, size_t cl, char *why,
			     size_t wl);

/* Gives model m the folder of its reordered weights (nn_model_set_weight_cache):
 * $PETCUT_WEIGHT_CACHE if set (off: none), else the models folder's
 * cache/. */
void pipe_model_weight_cache(nn_model *m);

enum pipe_status {
	PIPE_OK,
	PIPE_BAD_INPUT,	  /* the photo cannot be made a network input */
	PIPE_BUSY,	  /* the worker's queue is full */
	PIPE_TIMEOUT,	  /* the deadline passed in the queue */
	PIPE_UNAVAILABLE, /* the worker failed or is stopping */
	PIPE_FAILED,	  /* out of memory, the model failed, an output not written */
	PIPE_REFUSED,	  /* an output cannot be made as asked (a format's limit...) */
};

/* What making a mask took. */
struct pipe_mask_info {
	double resize_ms;   /* the photo to the network's input */
	double queue_ms;    /* waiting for its forward pass */
	double infer_ms;    /* the forward pass (and the guard's rerun) */
	int batch_size;	    /* requests that shared the pass */
	int fallback;	    /* 1: rerun at fp32 by the guard */
	double uncertainty; /* batcher_mask_uncertainty of the first mask */
};

/*
 * The network's mask of photo, side x side floats (malloc'd, *mask), through
 * the engine's worker and its guard. deadline_ms (batcher_now_ms's clock, 0:
 * none) bounds the wait in the queue; background (nobody waits for this
 * mask: one made ahead of time) puts it behind the others (batcher.h);
 * submitting, if not NULL, is called just before the input joins the queue.
 * Returns PIPE_OK, or another status with why set.
 */
enum pipe_status pipe_mask(struct pipe_engine *e, const struct img *photo, int side, int64_t deadline_ms,
			   int background, void (*submitting)(void *), void *arg, float **mask,
			   struct pipe_mask_info *info, char *why, size_t wl);

/* pipe_mask's two halves. pipe_input makes the network's input of photo,
 * 3 x side x side floats in *input, and needs no engine (a process can make
 * it while its model loads); PIPE_OK, or PIPE_BAD_INPUT or PIPE_FAILED with
 * why set. pipe_mask_of runs an input (taken: freed whatever the outcome),
 * as pipe_mask does; info->resize_ms is left as it is. */
enum pipe_status pipe_input(const struct img *photo, int side, float **input, char *why, size_t wl);
enum pipe_status pipe_mask_of(struct pipe_engine *e, float *input, int side, int64_t deadline_ms, int background,
			      void (*submitting)(void *), void *arg, float **mask, struct pipe_mask_info *info,
			      char *why, size_t wl);

/* The alpha of photo at its size from a side x side mask, scaled as
 * r->refine says. */
img_status pipe_alpha(const struct img *photo, const float *mask, int side, const struct pipe_request *r,
		      struct img **alpha);

/*
 * One output: the photo rendered as r says (r->render.bg_image set by the
 * caller for a background image) and encoded in fmt. *enc (malloc'd,
 * *enc_len bytes) and *subject on success; *rendered, if not NULL, keeps the
 * rendered image (the caller's). compose_ms and encode_ms, if not NULL,
 * receive what each step took. Returns IMG_OK or the failing step's status
 * (img_errmsg says why).
 */
img_status pipe_output(const struct img *photo, const struct img *alpha, const struct pipe_request *r,
		       enum img_format fmt, void **enc, size_t *enc_len, struct img_subject *subject,
		       struct img **rendered, double *compose_ms, double *encode_ms);

/* Encodes a rendered output in fmt with r's options (pipe_output's second
 * step). Takes out: on success *rendered keeps it if not NULL, else it is
 * freed. */
img_status pipe_encode(struct img *out, const struct pipe_request *r, enum img_format fmt, void **enc,
		       size_t *enc_len, struct img **rendered, double *encode_ms);

/* An img failure as a status: the machine's trouble (memory, libvips,
 * writing) fails the work (PIPE_FAILED); any other is about what was asked
 * (PIPE_REFUSED). */
enum pipe_status pipe_img_failure(img_status st);

/* Writes the n encoded outputs enc[i] (enc_len[i] bytes) to the files
 * outs[i], each atomically ("-": standard output), adding the time it took
 * to *ms. PIPE_OK, or
 * pipe_img_failure's status with why naming the output. */
enum pipe_status pipe_write_outputs(const char *const *outs, void *const *enc, const size_t *enc_len, int n,
				    double *ms, char *why, size_t wl);

/* Outputs one removal may write. */
#define PIPE_MAX_OUTS 16

/* What pipe_remove_photo made of each output, and what its steps took. */
struct pipe_out_info {
	int width, height;
	struct img_subject subject;
};

struct pipe_timings {
	struct pipe_mask_info mask;
	double refine_ms, compose_ms, encode_ms; /* encode_ms includes writing */
};

/*
 * The n outputs of photo (r->render.bg_image set by the caller for a
 * background image), from the network's input pipe_input made of it at
 * r->side (taken: freed whatever the outcome), each encoded as fmts[i] and
 * written to the file outs[i] atomically, all from one mask. Every output is
 * made before any is written, so one that cannot be made as asked leaves
 * none. Returns PIPE_OK with info[i] and *t set (t->mask.resize_ms left to
 * the caller, who made the input); PIPE_REFUSED when an output cannot be
 * made as asked; PIPE_FAILED when the work fails (memory, writing);
 * pipe_mask's statuses. why says what failed, naming the output at fault.
 */
enum pipe_status pipe_remove_photo(struct pipe_engine *e, const struct pipe_request *r, const struct img *photo,
				   float *input, const char *const *outs, const enum img_format *fmts, int n,
				   struct pipe_out_info *info, struct pipe_timings *t, char *why, size_t wl);

/* ===== Several photos in one forward pass ===== */

/* Where n threads meet just before each queues its input for the network,
 * so that the worker finds them together and runs them as one forward pass
 * (batcher.h) whatever each did before. Each passes once (*passed keeps
 * count): as its input is queued, or as it ends without one. Nobody waits
 * more than 5 s for a late one: it misses the pass. */
struct pipe_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n, arrived;
};

void pipe_gate_init(struct pipe_gate *g, int n);
void pipe_gate_pass(struct pipe_gate *g, int *passed); /* g may be NULL: nothing */
void pipe_gate_drop(struct pipe_gate *g);		/* one of the n will not come */
void pipe_gate_destroy(struct pipe_gate *g);

/*
 * The masks of n photos (at most IMG_GROUP_MAX) at side x side, queued
 * together (one forward pass where the worker's max_batch allows), as
 * pipe_mask each. Returns PIPE_OK with masks[i] (malloc'd) and info[i]
 * set, or the first failure's status with why naming the photo (none
 * kept).
 */
enum pipe_status pipe_masks(struct pipe_engine *e, const struct img *const *photos, int n, int side, float **masks,
			    struct pipe_mask_info *info, char *why, size_t wl);

/* pipe_output for a group portrait (img_render_group) of n photos and
 * their alphas: subjects[i] and *group receive the subjects' boxes and the
 * group's. */
img_status pipe_group_output(const struct img *const *photos, const struct img *const *alphas, int n,
			     const struct pipe_request *r, enum img_format fmt, void **enc, size_t *enc_len,
			     struct img_subject *subjects, struct img_subject *group, struct img **rendered,
			     double *compose_ms, double *encode_ms);

/* What pipe_group_photos made of each output. */
struct pipe_group_info {
	int width, height;
	struct img_subject group;
	struct img_subject subjects[IMG_GROUP_MAX];
};

/* pipe_remove_photo for a group portrait of the n photos (r->group_n):
 * their masks in one forward pass, then each output. t->mask is the first
 * photo's. */
enum pipe_status pipe_group_photos(struct pipe_engine *e, const struct pipe_request *r,
				   const struct img *const *photos, int n, const char *const *outs,
				   const enum img_format *fmts, int nout, struct pipe_group_info *info,
				   struct pipe_timings *t, char *why, size_t wl);

#endif
