/*
 * cmd_remove.c - `petcut remove` and `petcut remove-dir`: cut the background
 * out of one photo, or out of every photo in a folder, with the model loaded
 * once.
 *
 *   petcut remove IN OUT [OUT...] [options]
 *   petcut remove-dir IN_DIR OUT_DIR [options]
 *
 * Every output of one photo comes from one inference: the photo is decoded
 * once, the network runs once, the alpha is made once, and each output is
 * rendered from it (img_render) and encoded in the format its name asks for.
 *
 * A photo that cannot be used (not an image, truncated, unsupported,
 * unreadable), and a request that cannot be met (JPEG output of a
 * transparent result), are reported as one line on stderr, "petcut: ...",
 * and make the exit status 2; remove-dir reports a bad photo and goes on
 * with the next file. Failures of the work itself (model missing, out of
 * memory, an output that cannot be written) exit 1 at once. Outputs are
 * replaced atomically, so an interrupted or failed run never leaves a
 * partial file under an output's name; and all of a photo's outputs are
 * encoded before the first is written, so one that cannot be made as asked
 * leaves none.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "batcher/batcher.h"
#include "cli/cli.h"
#include "img/img.h"
#include "model/model.h"
#include "nn/nn.h"

/* Network input sides: ISNet's own resolution, and a quarter of the work. */
#define SIZE_FULL 1024
#define SIZE_PREVIEW 512

/* Mask scaling when --refine is not given: bilinear, until the guided
 * filter is shown to do better on real photos. */
#define REFINE_DEFAULT IMG_REFINE_NONE

/* Outputs one `remove` may write. */
#define MAX_OUTS 16
/* the quality guard's threshold (batcher_mask_uncertainty), as the server's */
#define FALLBACK_ABOVE 0.9

struct remove_opts {
	const char *model;	  /* variant name or path to an ONNX file */
	int size;		  /* network input side, SIZE_FULL or SIZE_PREVIEW */
	int format_given;	  /* format came from --format, not from a name */
	enum img_format format;	  /* output encoding (--format; remove-dir's only one) */
	int threads;		  /* compute threads; 0 means all CPUs */
	int precision;		  /* nn_precision, or -1: bf16 where the CPU has it, else fp32 */
	double fallback_above;	  /* rerun at fp32 above this mask uncertainty (0: never) */
	struct img_render render; /* what each output shows */
	const char *bg_path;	  /* --bg FILE: the background image */
	int margin_given, outline_given;
	struct img_save_opts save; /* quality, lossy, colour; format set per output */
	enum img_refine refine;	   /* mask scaling */
	int keep_gps;		   /* keep EXIF GPS tags in outputs */
	int timings;		   /* print per-stage times on stderr */
	int json;		   /* print each output's subject on stdout */
	const char *in;		   /* IN or IN_DIR */
	const char *outs[MAX_OUTS]; /* OUT files, or OUT_DIR */
	int nouts;
};

/* The model, loaded on first use so that refused input or a remove-dir with
 * nothing left to do never pays for it. */
struct remover {
	char path[PATH_MAX]; /* model file */
	nn_model *model;
	float *input; /* 1 x 3 x size x size */
	int size;
	int precision; /* as remove_opts */
	double fallback_above;
};

/* Whether remove-dir's progress bar is on stderr's current line. */
static int bar_shown;

/* Prints one message line on stderr, first clearing the progress bar if it
 * is drawn: the bar is drawn again, below, for the next file. */
static void say(const char *fmt, ...)
{
	va_list ap;

	if (bar_shown)
		fputs("\r\033[K", stderr);
	bar_shown = 0;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "remove"))
		fprintf(f, "usage: petcut remove IN OUT [OUT...] [options]\n\n"
			   "Cuts the background out of the photo IN and writes each OUT, in the format\n"
			   "its extension names: .png, .webp, .jpg/.jpeg (needs an opaque --bg) or .avif.\n"
			   "All outputs come from one run of the network; the options apply to each.\n");
	else
		fprintf(f, "usage: petcut remove-dir IN_DIR OUT_DIR [options]\n\n"
			   "Cuts out every file in IN_DIR, in name order, into OUT_DIR/NAME.png (or the\n"
			   "--format's extension), NAME being the file's name without its extension.\n"
			   "Outputs that already exist are skipped; files that are not usable images are\n"
			   "reported and skipped.\n");
	fprintf(f, "\noptions:\n");
	if (!strcmp(cmd, "remove"))
		fprintf(f, "  -o, --out FILE       an output, like OUT (repeatable)\n");
	fprintf(f,
		"  --format FMT         png, webp, jpg or avif (default: %s)\n"
		"  --mask               write the mask alone, as an 8-bit grey image\n"
		"  --bg COLOR|blur|FILE background: a colour (#rgb, #rrggbb, #rrggbbaa or a\n"
		"                       name: white, black, red, ...), the photo blurred, or an\n"
		"                       image scaled to cover (default: transparent)\n"
		"  --bg-color COLOR     the same as --bg COLOR; --bg-image FILE, as --bg FILE\n"
		"  --crop               crop to the subject\n"
		"  --margin N|N%%        with --crop: margin in pixels, or percent of the subject's box\n"
		"  --fit WxH            scale down to fit within W x H (never enlarged)\n"
		"  --effect NAME        shadow, sticker (a white outline) or popart (a 2x2 grid)\n"
		"  --outline N          sticker outline in pixels (default 1.5%% of the shorter side)\n"
		"  --quality Q          JPEG, lossy WebP and AVIF quality, 1 to 100\n"
		"  --lossy              WebP: lossy colours (the alpha stays exact)\n"
		"  --color keep|srgb    keep the photo's colour profile (default), or convert to sRGB\n"
		"  --refine none|guided mask scaling to the photo's size (default none)\n"
		"  --keep-gps           keep the photo's GPS position in the outputs' EXIF\n"
		"  --model NAME|PATH    medium (default) or small, as fetched by `petcut model\n"
		"                       fetch`, or the path of an ONNX file\n"
		"  --size preview|full  network input of 512 or 1024 pixels a side (default full)\n"
		"  --threads N          compute threads (default: all CPUs)\n"
		"  --precision fp32|bf16|int8  the network's arithmetic (default bf16 where the CPU\n"
		"                       has AVX512_BF16, else fp32); bf16 takes a third of fp32's\n"
		"                       memory; int8 needs `petcut model calibrate` first\n"
		"  --fallback fp32|none a bf16/int8 mask that is unsure (over 90%% of what might be the\n"
		"                       subject between 0.1 and 0.9) is made again at fp32 (default)\n"
		"  --json               print each output's size, subject box and coverage as one\n"
		"                       JSON object a line on stdout\n"
		"  --timings            print each stage's time on stderr (decode, resize, infer,\n"
		"                       refine, compose, encode)\n"
		"  -h, --help           show this help\n"
		"\nexit status: 0 done; 1 failure while working (model missing, output not\n"
		"written); 2 bad usage, or an input that is not a usable image\n",
		strcmp(cmd, "remove") ? "png" : "from each OUT's extension");
}

/* ===== Arguments ===== */

enum opt_id {
	OPT_OUT, OPT_FORMAT, OPT_MASK, OPT_BG, OPT_BG_COLOR, OPT_BG_IMAGE, OPT_CROP, OPT_MARGIN, OPT_FIT,
	OPT_EFFECT, OPT_OUTLINE, OPT_QUALITY, OPT_LOSSY, OPT_COLOR, OPT_REFINE, OPT_KEEP_GPS, OPT_MODEL,
	OPT_SIZE, OPT_THREADS, OPT_PRECISION, OPT_FALLBACK, OPT_JSON, OPT_TIMINGS, OPT_HELP,
};

static const struct option_def {
	const char *name;
	enum opt_id id;
	int value; /* takes a value: "--opt VALUE" or "--opt=VALUE" */
} option_defs[] = {
	{"--out", OPT_OUT, 1},	       {"-o", OPT_OUT, 1},		{"--format", OPT_FORMAT, 1},
	{"--mask", OPT_MASK, 0},       {"--bg", OPT_BG, 1},		{"--bg-color", OPT_BG_COLOR, 1},
	{"--bg-image", OPT_BG_IMAGE, 1}, {"--crop", OPT_CROP, 0},	{"--margin", OPT_MARGIN, 1},
	{"--fit", OPT_FIT, 1},	       {"--effect", OPT_EFFECT, 1},	{"--outline", OPT_OUTLINE, 1},
	{"--quality", OPT_QUALITY, 1}, {"--lossy", OPT_LOSSY, 0},	{"--color", OPT_COLOR, 1},
	{"--refine", OPT_REFINE, 1},   {"--keep-gps", OPT_KEEP_GPS, 0}, {"--model", OPT_MODEL, 1},
	{"--size", OPT_SIZE, 1},       {"--threads", OPT_THREADS, 1},	{"--json", OPT_JSON, 0},
	{"--timings", OPT_TIMINGS, 0}, {"-h", OPT_HELP, 0},		{"--help", OPT_HELP, 0},
	{"--precision", OPT_PRECISION, 1},
	{"--fallback", OPT_FALLBACK, 1},
};

/* Parses "--bg"'s value: a colour, "blur", or (unless color_only) a file. */
static int parse_bg(const char *cmd, const char *val, int color_only, int image_only, struct remove_opts *o)
{
	if (!image_only && !img_color_parse(val, o->render.color)) {
		o->render.bg = IMG_BG_COLOR;
	} else if (!image_only && !color_only && !strcmp(val, "blur")) {
		o->render.bg = IMG_BG_BLUR;
	} else if (color_only) {
		fprintf(stderr, "petcut %s: '%s' is not a colour (#rgb, #rrggbb, #rrggbbaa or a name)\n", cmd, val);
		return 2;
	} else {
		o->render.bg = IMG_BG_IMAGE;
		o->bg_path = val;
	}
	return 0;
}

/* Applies one option with its value. Returns 0, or 2 after printing why
 * the value is bad. */
static int apply_opt(const char *cmd, enum opt_id id, const char *val, struct remove_opts *o)
{
	switch (id) {
	case OPT_OUT:
		if (o->nouts == MAX_OUTS) {
			fprintf(stderr, "petcut %s: at most %d outputs\n", cmd, MAX_OUTS);
			return 2;
		}
		o->outs[o->nouts++] = val;
		return 0;
	case OPT_FORMAT:
		if (img_format_parse(val, &o->format)) {
			fprintf(stderr, "petcut %s: --format is png, webp, jpg or avif, not '%s'\n", cmd, val);
			return 2;
		}
		o->format_given = 1;
		return 0;
	case OPT_MASK:
		o->render.kind = IMG_CUT_MASK;
		return 0;
	case OPT_BG:
		return parse_bg(cmd, val, 0, 0, o);
	case OPT_BG_COLOR:
		return parse_bg(cmd, val, 1, 0, o);
	case OPT_BG_IMAGE:
		return parse_bg(cmd, val, 0, 1, o);
	case OPT_CROP:
		o->render.crop = 1;
		return 0;
	case OPT_MARGIN: {
		char *end;
		double m;

		errno = 0;
		m = strtod(val, &end);
		o->render.margin_percent = *end == '%';
		if (errno || end == val || *(end + o->render.margin_percent) || !(m >= 0) || m > 1e6) {
			fprintf(stderr, "petcut %s: --margin is pixels (20) or a percentage of the subject (10%%), not '%s'\n",
				cmd, val);
			return 2;
		}
		o->render.margin = m;
		o->margin_given = 1;
		return 0;
	}
	case OPT_FIT: {
		int w = -1, h = -1, n = -1;

		if (sscanf(val, "%dx%d%n", &w, &h, &n) != 2 || val[n] || w < 0 || h < 0 || w > 100000 || h > 100000 ||
		    (w == 0 && h == 0)) {
			fprintf(stderr, "petcut %s: --fit is WIDTHxHEIGHT in pixels (e.g. 800x600; 0 for a free side), not '%s'\n",
				cmd, val);
			return 2;
		}
		o->render.fit_w = w;
		o->render.fit_h = h;
		return 0;
	}
	case OPT_EFFECT:
		if (!strcmp(val, "shadow"))
			o->render.effect = IMG_EFFECT_SHADOW;
		else if (!strcmp(val, "sticker"))
			o->render.effect = IMG_EFFECT_STICKER;
		else if (!strcmp(val, "popart"))
			o->render.effect = IMG_EFFECT_POPART;
		else if (!strcmp(val, "none"))
			o->render.effect = IMG_EFFECT_NONE;
		else {
			fprintf(stderr, "petcut %s: --effect is shadow, sticker or popart, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_OUTLINE:
		if (cli_parse_int(val, 1, 10000, &o->render.outline_px)) {
			fprintf(stderr, "petcut %s: --outline needs a number of pixels from 1 to 10000, not '%s'\n", cmd,
				val);
			return 2;
		}
		o->outline_given = 1;
		return 0;
	case OPT_QUALITY:
		if (cli_parse_int(val, 1, 100, &o->save.quality)) {
			fprintf(stderr, "petcut %s: --quality needs a number from 1 to 100, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_LOSSY:
		o->save.lossy = 1;
		return 0;
	case OPT_COLOR:
		if (!strcmp(val, "keep"))
			o->save.color = IMG_COLOR_KEEP;
		else if (!strcmp(val, "srgb"))
			o->save.color = IMG_COLOR_SRGB;
		else {
			fprintf(stderr, "petcut %s: --color is keep or srgb, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_REFINE:
		if (!strcmp(val, "none"))
			o->refine = IMG_REFINE_NONE;
		else if (!strcmp(val, "guided"))
			o->refine = IMG_REFINE_GUIDED;
		else {
			fprintf(stderr, "petcut %s: --refine is none or guided, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_KEEP_GPS:
		o->keep_gps = 1;
		return 0;
	case OPT_MODEL:
		o->model = val;
		return 0;
	case OPT_SIZE:
		if (!strcmp(val, "full"))
			o->size = SIZE_FULL;
		else if (!strcmp(val, "preview"))
			o->size = SIZE_PREVIEW;
		else {
			fprintf(stderr, "petcut %s: --size is preview or full, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_PRECISION:
		if (cli_parse_precision(val, &o->precision)) {
			fprintf(stderr, "petcut %s: --precision is fp32, bf16 or int8, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_FALLBACK:
		if (strcmp(val, "fp32") && strcmp(val, "none")) {
			fprintf(stderr, "petcut %s: --fallback is fp32 or none, not '%s'\n", cmd, val);
			return 2;
		}
		o->fallback_above = !strcmp(val, "none") ? 0 : FALLBACK_ABOVE;
		return 0;
	case OPT_THREADS:
		if (cli_parse_int(val, 1, 4096, &o->threads)) {
			fprintf(stderr, "petcut %s: --threads needs a number from 1 to 4096, not '%s'\n", cmd, val);
			return 2;
		}
		return 0;
	case OPT_JSON:
		o->json = 1;
		return 0;
	case OPT_TIMINGS:
		o->timings = 1;
		return 0;
	case OPT_HELP:
		return 0;
	}
	return 0;
}

/* Whether an output of format fmt needs a transparency the format lacks. */
static int needs_alpha(const struct remove_opts *o, enum img_format fmt)
{
	const struct img_render *r = &o->render;

	if (fmt != IMG_FORMAT_JPEG || r->kind == IMG_CUT_MASK || r->effect == IMG_EFFECT_POPART)
		return 0;
	return r->bg == IMG_BG_NONE || (r->bg == IMG_BG_COLOR && r->color[3] < 255);
}

/* Checks that the options make sense together. Returns 0, or 2 after
 * printing why not. */
static int check_opts(const char *cmd, struct remove_opts *o)
{
	const struct img_render *r = &o->render;

	if (r->kind == IMG_CUT_MASK && (r->bg != IMG_BG_NONE || r->effect != IMG_EFFECT_NONE || r->crop || r->fit_w ||
					 r->fit_h)) {
		fprintf(stderr, "petcut %s: --mask writes the mask alone: no --bg, --effect, --crop or --fit with it\n",
			cmd);
		return 2;
	}
	if (r->effect == IMG_EFFECT_POPART && r->bg != IMG_BG_NONE) {
		fprintf(stderr, "petcut %s: --effect popart brings its own backgrounds: no --bg with it\n", cmd);
		return 2;
	}
	if (o->margin_given && !r->crop) {
		fprintf(stderr, "petcut %s: --margin applies to --crop; add --crop\n", cmd);
		return 2;
	}
	if (o->outline_given && r->effect != IMG_EFFECT_STICKER) {
		fprintf(stderr, "petcut %s: --outline applies to --effect sticker\n", cmd);
		return 2;
	}
	return 0;
}

/* Parses argv into o. Returns -1 when help was printed, 0 when the arguments
 * are good, 2 after printing a usage error. */
static int parse_args(int argc, char **argv, struct remove_opts *o)
{
	const char *cmd = argv[0];
	int remove = !strcmp(cmd, "remove");
	int opts_done = 0, rc;

	*o = (struct remove_opts){.model = MODEL_DEFAULT_VARIANT, .size = SIZE_FULL, .format = IMG_FORMAT_PNG,
				  .refine = REFINE_DEFAULT, .precision = -1, .fallback_above = FALLBACK_ABOVE};
	for (int i = 1; i < argc; i++) {
		const struct option_def *def = NULL;
		char *arg = argv[i], *val = NULL, *eq;
		size_t len;

		if (opts_done || arg[0] != '-' || !arg[1]) {
			if (!o->in) {
				o->in = arg;
			} else if ((!remove && o->nouts == 1) || o->nouts == MAX_OUTS) {
				fprintf(stderr, "petcut %s: unexpected argument '%s'\n", cmd, arg);
				return 2;
			} else {
				o->outs[o->nouts++] = arg;
			}
			continue;
		}
		if (!strcmp(arg, "--")) {
			opts_done = 1;
			continue;
		}
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		for (size_t k = 0; k < sizeof option_defs / sizeof option_defs[0]; k++)
			if (strlen(option_defs[k].name) == len && !strncmp(arg, option_defs[k].name, len))
				def = &option_defs[k];
		if (!def || (def->id == OPT_OUT && !remove) || (eq && !def->value)) {
			fprintf(stderr, "petcut %s: unknown option '%s' (see petcut %s --help)\n", cmd, arg, cmd);
			return 2;
		}
		if (def->id == OPT_HELP) {
			usage(stdout, cmd);
			return -1;
		}
		if (def->value) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			if (!val || !*val) {
				fprintf(stderr, "petcut %s: %s needs a value\n", cmd, def->name);
				return 2;
			}
		}
		rc = apply_opt(cmd, def->id, val, o);
		if (rc)
			return rc;
	}
	if (!o->in || !o->nouts) {
		usage(stderr, cmd);
		return 2;
	}
	return check_opts(cmd, o);
}

/* ===== The model ===== */

/* Finds the model file: a variant name goes through the models folder, any
 * other value is taken as a path. Prints the reason and returns 1 if a named
 * variant has not been fetched. */
static int remover_init(struct remover *r, const struct remove_opts *o)
{
	*r = (struct remover){.size = o->size, .precision = o->precision, .fallback_above = o->fallback_above};
	if (model_variant_from_name(o->model) < 0) {
		snprintf(r->path, sizeof r->path, "%s", o->model);
		return 0;
	}
	if (model_path(o->model, r->path, sizeof r->path) != MODEL_OK) {
		say("petcut: %s", model_errmsg());
		return 1;
	}
	return 0;
}

/* Loads the model if it is not loaded yet. Returns 0, or 1 after printing
 * why it cannot be used. */
static int remover_load(struct remover *r)
{
	static const char *const outputs[] = {"output"};
	struct nn_tensor_info in;
	nn_status st;

	if (r->model)
		return 0;
	st = nn_model_load_file(r->path, &r->model);
	if (st != NN_OK) {
		/* The runtime's message starts with the path. */
		say("petcut: %s", nn_errmsg());
		return 1;
	}
	st = nn_model_select_outputs(r->model, outputs, 1);
	/* bf16 by default where the CPU has it; a precision that cannot run
	 * here steps down (int8, bf16, fp32), said when it was asked for */
	char why[1024] = "", later[1024];
	int want = r->precision < 0 ? NN_PRECISION_BF16 : r->precision, got = want;
	while (st == NN_OK && got != NN_PRECISION_FP32 &&
	       cli_set_precision(r->model, r->path, got, got == want ? why : later, sizeof why))
		got = got == NN_PRECISION_INT8 ? NN_PRECISION_BF16 : NN_PRECISION_FP32;
	if (got != want && r->precision >= 0)
		say("petcut: %s: running at %s", why, got == NN_PRECISION_BF16 ? "bf16" : "fp32");
	if (st == NN_OK)
		st = nn_model_input(r->model, 0, &in);
	if (st != NN_OK) {
		say("petcut: %s: %s", r->path, nn_errmsg());
		goto fail;
	}
	if (nn_model_num_inputs(r->model) != 1 || in.dtype != NN_DTYPE_F32 || in.rank != 4 ||
	    in.dims[1] != 3) {
		say("petcut: %s: not a segmentation model (want one float input [N,3,H,W])", r->path);
		goto fail;
	}
	r->input = malloc(sizeof(float) * 3 * r->size * r->size);
	if (!r->input) {
		say("petcut: out of memory");
		goto fail;
	}
	return 0;
fail:
	nn_model_free(r->model);
	r->model = NULL;
	return 1;
}

static void remover_free(struct remover *r)
{
	nn_model_free(r->model);
	free(r->input);
}

/* ===== One photo ===== */

/* Wall-clock milliseconds since an arbitrary start. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The pipeline's stages, as --timings names them. */
enum stage { STAGE_DECODE, STAGE_RESIZE, STAGE_INFER, STAGE_REFINE, STAGE_COMPOSE, STAGE_ENCODE, STAGE_COUNT };
static const char *const stage_names[STAGE_COUNT] = {"decode", "resize", "infer", "refine", "compose", "encode"};

/* Decodes the photo: its own colour space and profile, EXIF without GPS
 * unless --keep-gps. */
static img_status load_photo(const struct remove_opts *o, const char *in, struct img **im)
{
	struct img_load_opts lo = {.keep_gps = o->keep_gps};

	return img_load_file_opts(in, &lo, im);
}

/* Makes the alpha from the network's mask, at the photo's size. */
static img_status alpha_of(const struct remove_opts *o, const struct img *im, const float *mask, int mh, int mw,
			   struct img **alpha)
{
	return img_mask_to_alpha(im, mask, mh, mw, o->refine, alpha);
}

/* Exit status for an img failure: the machine's own trouble is a failure of
 * the work (1), anything else is about the input or the request (2). An
 * input that cannot be read is the input's trouble; an output that cannot
 * be written, the work's. */
static int input_rc(img_status st)
{
	return st == IMG_ERR_NOMEM || st == IMG_ERR_VIPS ? 1 : 2;
}

static int output_rc(img_status st)
{
	return st == IMG_ERR_IO ? 1 : input_rc(st);
}

/* Prints one output's facts as a JSON object on its own line. */
static void print_json(const char *path, int width, int height, const struct img_subject *s)
{
	json_t *j = json_pack("{s:s, s:i, s:i, s:[i,i,i,i], s:f}", "output", path, "width", width, "height", height,
			      "bbox", s->x, s->y, s->w, s->h, "coverage",
			      round(s->coverage * 1e6) / 1e6);

	if (j) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
		fputc('\n', stdout);
		fflush(stdout);
		json_decref(j);
	}
}

/* Cuts in out into the n (at most MAX_OUTS) outputs outs[i], each in format
 * fmts[i], from one inference. Returns 0; 2 when in is not a usable image
 * or an output cannot be made as asked (then none is written); 1 when the
 * work fails. Prints one line on stderr for either failure. */
static int remove_one(struct remover *r, const struct remove_opts *o, const struct img *bg, const char *in,
		      const char *const *outs, const enum img_format *fmts, int n)
{
	struct img *im = NULL, *alpha = NULL, *res = NULL;
	struct nn_tensor x = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, r->size, r->size}};
	struct nn_tensor y = {0};
	struct img_render rr = o->render;
	struct img_subject subs[MAX_OUTS];
	void *enc[MAX_OUTS] = {0};
	size_t enc_len[MAX_OUTS] = {0};
	int sizes[MAX_OUTS][2];
	double ms[STAGE_COUNT] = {0}, t0, t;
	img_status ist;
	nn_status nst;
	double unsure = 0;
	int rc = 1, fallback = 0;

	rr.bg_image = bg;
	t0 = t = now_ms();
	ist = load_photo(o, in, &im);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", in, img_errmsg());
		rc = input_rc(ist);
		goto out;
	}
	ms[STAGE_DECODE] = now_ms() - t;
	if (remover_load(r))
		goto out;
	t = now_ms();
	ist = img_to_tensor(im, r->size, r->size, r->input);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", in, img_errmsg());
		goto out;
	}
	ms[STAGE_RESIZE] = now_ms() - t;
	t = now_ms();
	x.data = r->input;
	nst = nn_run(r->model, &x, 1, &y, 1);
	if (nst != NN_OK) {
		say("petcut: %s: inference failed: %s", in, nn_errmsg());
		goto out;
	}
	if (y.dtype != NN_DTYPE_F32 || y.rank != 4 || y.dims[0] != 1 || y.dims[1] != 1) {
		say("petcut: %s: the model's output is not a mask [1,1,H,W]", r->path);
		goto out;
	}
	/* the quality guard: an unsure reduced-precision mask is made again at fp32 */
	unsure = batcher_mask_uncertainty(y.data, (size_t)nn_tensor_numel(&y));
	if (nn_model_precision(r->model) != NN_PRECISION_FP32 && r->fallback_above > 0 &&
	    unsure > r->fallback_above) {
		struct nn_tensor y32 = {0};
		if (nn_run_at(r->model, NN_PRECISION_FP32, &x, 1, &y32, 1) == NN_OK &&
		    nn_tensor_numel(&y32) == nn_tensor_numel(&y)) {
			nn_tensor_free(&y);
			y = y32;
			fallback = 1;
		} else {
			nn_tensor_free(&y32); /* the reduced-precision mask stands */
		}
	}
	ms[STAGE_INFER] = now_ms() - t;
	t = now_ms();
	ist = alpha_of(o, im, y.data, (int)y.dims[2], (int)y.dims[3], &alpha);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", in, img_errmsg());
		rc = output_rc(ist);
		goto out;
	}
	ms[STAGE_REFINE] = now_ms() - t;

	/* Every output is rendered and encoded before any is written, so a
	 * request that cannot be met (a format's limit, no AVIF encoder)
	 * leaves no output behind. */
	for (int i = 0; i < n; i++) {
		struct img_save_opts so = o->save;

		t = now_ms();
		ist = img_render(im, alpha, &rr, &res, &subs[i]);
		ms[STAGE_COMPOSE] += now_ms() - t;
		if (ist != IMG_OK) {
			say("petcut: %s: %s", outs[i], img_errmsg());
			rc = output_rc(ist);
			goto out;
		}
		t = now_ms();
		so.format = fmts[i];
		ist = img_encode(res, &so, &enc[i], &enc_len[i]);
		ms[STAGE_ENCODE] += now_ms() - t;
		if (ist != IMG_OK) {
			if (ist == IMG_ERR_ARG && fmts[i] == IMG_FORMAT_JPEG)
				say("petcut: %s: %s with --bg", outs[i], img_errmsg());
			else
				say("petcut: %s: %s", outs[i], img_errmsg());
			rc = output_rc(ist);
			goto out;
		}
		sizes[i][0] = img_width(res);
		sizes[i][1] = img_height(res);
		img_free(res);
		res = NULL;
	}
	t = now_ms();
	for (int i = 0; i < n; i++) {
		ist = img_write_file(outs[i], enc[i], enc_len[i]);
		if (ist != IMG_OK) {
			say("petcut: %s: %s", outs[i], img_errmsg());
			rc = output_rc(ist);
			goto out;
		}
	}
	ms[STAGE_ENCODE] += now_ms() - t;
	for (int i = 0; o->json && i < n; i++)
		print_json(outs[i], sizes[i][0], sizes[i][1], &subs[i]);
	if (o->timings) {
		for (int s = 0; s < STAGE_COUNT; s++)
			say("timing: %s %.1f ms", stage_names[s], ms[s]);
		say("timing: mask uncertainty %.3f%s", unsure, fallback ? ", rerun at fp32" : "");
		say("timing: total %.1f ms", now_ms() - t0);
	}
	rc = 0;
out:
	for (int i = 0; i < n; i++)
		free(enc[i]);
	nn_tensor_free(&y);
	img_free(res);
	img_free(alpha);
	img_free(im);
	return rc;
}

/* Sets things every command needs, and loads the background image if one
 * is asked for (*bg). Returns 0, or 1 or 2 after printing why not. */
static int start(const struct remove_opts *o, struct img **bg)
{
	img_status st;

	*bg = NULL;
	if (img_init() != IMG_OK) {
		say("petcut: %s", img_errmsg());
		return 1;
	}
	nn_set_threads(o->threads);
	if (o->render.bg == IMG_BG_IMAGE) {
		st = img_load_file(o->bg_path, bg);
		if (st == IMG_ERR_IO && !strpbrk(o->bg_path, "./")) {
			/* A word that names no file was meant as a colour. */
			say("petcut: --bg %s: not a colour (#rgb, #rrggbb, #rrggbbaa or a name), 'blur', "
			    "nor an image file", o->bg_path);
			return 2;
		}
		if (st != IMG_OK) {
			say("petcut: --bg %s: %s", o->bg_path, img_errmsg());
			return input_rc(st);
		}
	}
	return 0;
}

/* The format of an output: --format, or its name's extension. Returns 0, or
 * 2 after printing why it cannot be told or cannot be met. */
static int output_format(const struct remove_opts *o, const char *path, enum img_format *fmt)
{
	const char *dot = strrchr(path, '.');

	if (o->format_given) {
		*fmt = o->format;
	} else if (!dot || strchr(dot, '/') || img_format_parse(dot + 1, fmt)) {
		fprintf(stderr, "petcut remove: cannot tell the format from '%s'; "
				"name it .png, .webp, .jpg or .avif, or give --format\n", path);
		return 2;
	}
	if (needs_alpha(o, *fmt)) {
		fprintf(stderr, "petcut: %s: JPEG has no transparency: choose a background with --bg "
				"(e.g. --bg white)\n", path);
		return 2;
	}
	return 0;
}

int cmd_remove(int argc, char **argv)
{
	struct remove_opts o;
	struct remover r = {0};
	enum img_format fmts[MAX_OUTS];
	struct img *bg = NULL;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	for (int i = 0; i < o.nouts; i++)
		if ((rc = output_format(&o, o.outs[i], &fmts[i])))
			return rc;
	rc = start(&o, &bg);
	if (!rc)
		rc = remover_init(&r, &o);
	if (!rc)
		rc = remove_one(&r, &o, bg, o.in, o.outs, fmts, o.nouts);
	remover_free(&r);
	img_free(bg);
	return rc;
}

/* ===== A folder ===== */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the regular files of dir (symlinks followed), sorted by name. Hidden
 * files are left out: they are not photos people put there, and they include
 * other runs' temporary outputs when IN_DIR and OUT_DIR are the same. Returns
 * the count, or -1 after printing why the folder cannot be read. */
static int list_files(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, **grown, *path = NULL;
	int n = 0, cap = 0;
	struct stat sb;

	*names = NULL;
	if (!d) {
		say("petcut: %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
			goto nomem;
		if (stat(path, &sb) || !S_ISREG(sb.st_mode)) {
			free(path);
			continue;
		}
		free(path);
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(v, sizeof *v * cap);
			if (!grown)
				goto nomem;
			v = grown;
		}
		v[n] = strdup(e->d_name);
		if (!v[n])
			goto nomem;
		n++;
	}
	closedir(d);
	qsort(v, n, sizeof *v, cmp_names);
	*names = v;
	return n;
nomem:
	say("petcut: out of memory");
	while (n > 0)
		free(v[--n]);
	free(v);
	closedir(d);
	return -1;
}

/* Draws "[=====     ] done/total name" over the current line of stderr. */
static void progress_draw(int done, int total, const char *name)
{
	enum { WIDTH = 30 };
	int fill = total ? done * WIDTH / total : WIDTH;

	fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %.40s", fill, "==============================",
		WIDTH - fill, "", done, total, name);
	fflush(stderr);
	bar_shown = 1;
}

int cmd_remove_dir(int argc, char **argv)
{
	struct remove_opts o;
	struct remover r = {0};
	struct img *bg = NULL;
	char **names = NULL, *in = NULL, *out = NULL;
	int n = 0, rc, written = 0, skipped = 0, refused = 0;
	int bar = isatty(STDERR_FILENO);

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (needs_alpha(&o, o.format)) {
		fprintf(stderr, "petcut remove-dir: JPEG has no transparency: choose a background with --bg "
				"(e.g. --bg white)\n");
		return 2;
	}
	rc = start(&o, &bg);
	if (!rc)
		rc = remover_init(&r, &o);
	if (rc)
		goto out;
	n = list_files(o.in, &names);
	if (n < 0) {
		rc = 2;
		goto out;
	}
	if (mkdir(o.outs[0], 0777) && errno != EEXIST) {
		say("petcut: %s: %s", o.outs[0], strerror(errno));
		rc = 1;
		goto out;
	}

	for (int i = 0; i < n; i++) {
		const char *dot = strrchr(names[i], '.');
		int len = dot ? (int)(dot - names[i]) : (int)strlen(names[i]);
		int one;

		if (bar)
			progress_draw(i, n, names[i]);
		if (asprintf(&in, "%s/%s", o.in, names[i]) < 0 ||
		    asprintf(&out, "%s/%.*s.%s", o.outs[0], len, names[i], img_format_ext(o.format)) < 0) {
			in = out = NULL;
			say("petcut: out of memory");
			rc = 1;
			goto out;
		}
		if (access(out, F_OK) == 0) {
			skipped++;
		} else {
			const char *outs[1] = {out};

			one = remove_one(&r, &o, bg, in, outs, &o.format, 1);
			if (one == 1) {
				rc = 1;
				goto out;
			}
			if (one == 2)
				refused++;
			else
				written++;
		}
		free(in);
		free(out);
		in = out = NULL;
	}
	if (bar) {
		progress_draw(n, n, "");
		fputc('\n', stderr);
		bar_shown = 0;
	}
	/* With --json, stdout holds JSON lines only. */
	fprintf(o.json ? stderr : stdout, "%d written, %d skipped (already there), %d refused\n", written, skipped,
		refused);
	rc = refused ? 2 : 0;
out:
	free(in);
	free(out);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	remover_free(&r);
	img_free(bg);
	return rc;
}
