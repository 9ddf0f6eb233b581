/*
 * cmd_remove.c - `petcut remove IN OUT [OUT...] [options]`: cut the
 * background out of one photo; and the options and photo work that
 * `petcut remove-dir` (cmd_remove_dir.c) shares.
 *
 * The removal is the pipeline's (pipeline.h), as for the server: the options
 * go through its validators, the photo through its engine; here are the
 * command line and exit codes. Every output of one photo comes from one
 * inference. A photo that cannot be used, or a request that cannot be met
 * (JPEG output of a transparent result), is reported as one line on stderr,
 * "petcut: ...", and exits 2; failures of the work itself (model missing,
 * out of memory, an output that cannot be written) exit 1. Outputs are
 * replaced atomically and all made before the first is written, so a
 * failed run leaves no partial output.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"

#include "cli/remove.h"
#include "util/util.h"

int bar_shown;

void say(const char *fmt, ...)
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
	if (!strcmp(cmd, "group"))
		fprintf(f, "usage: petcut group IN IN [IN...] -o OUT [-o OUT...] [options]\n\n"
			   "A group portrait: the pets of 2 to 8 photos cut out, scaled to one height, standing\n"
			   "side by side in the order given (each over the one before where they overlap),\n"
			   "then drawn as one subject: one background, shadow or outline, canvas. Their masks\n"
			   "come from one forward pass of the network.\n\n"
			   "group options:\n"
			   "  --overlap N%%         the share of the narrower neighbour's width two pets\n"
			   "                       overlap by, -100%% (a gap) to 90%% (default 0: side by side)\n"
			   "  --heights H,H,...    each pet's height as a share of the tallest's, in order\n"
			   "                       (100%%,80%%,60%%), or equal (default)\n");
	else if (!strcmp(cmd, "remove"))
		fprintf(f, "usage: petcut remove IN OUT [OUT...] [options]\n\n"
			   "Cuts the background out of the photo IN and writes each OUT, in the format\n"
			   "its extension names: .png, .webp, .jpg/.jpeg (needs an opaque --bg) or .avif.\n"
			   "All outputs come from one run of the network; the options apply to each.\n"
			   "IN - reads the photo from standard input; one OUT - writes to standard output\n"
			   "(PNG unless --format says).\n");
	else
		fprintf(f, "usage: petcut remove-dir IN_DIR OUT_DIR [options]\n\n"
			   "Cuts out every file in IN_DIR, in name order, into OUT_DIR/NAME.png (or the\n"
			   "--format's extension), NAME being the file's name without its extension.\n"
			   "Outputs that already exist are skipped; files that are not usable images are\n"
			   "reported and skipped. With -r, --recursive, the folders in IN_DIR too, each\n"
			   "one's outputs in the same folder under OUT_DIR. With --watch, then every file\n"
			   "that comes into IN_DIR, once it has stayed the same for a second (one still\n"
			   "being written is waited for), each output's name printed, until SIGINT or\n"
			   "SIGTERM.\n");
	fprintf(f, "\noptions:\n");
	if (strcmp(cmd, "remove-dir"))
		fprintf(f, "  -o, --out FILE       an output%s (repeatable)\n", strcmp(cmd, "group") ? ", like OUT" : "");
	fprintf(f,
		"  --format FMT         png, webp, jpg or avif (default: %s)\n"
		"  --mask               write the mask alone, as an 8-bit grey image\n"
		"  --bg COLOR|blur|FILE background: a colour (#rgb, #rrggbb, #rrggbbaa or a\n"
		"                       name: white, black, red, ...), the photo blurred, or an\n"
		"                       image scaled to cover (default: transparent)\n"
		"  --bg-color COLOR     the same as --bg COLOR; --bg-image FILE, as --bg FILE\n"
		"  --crop               crop to the subject\n"
		"  --margin N|N%%        with --crop: margin in pixels, or percent of the subject's box\n"
		"                       (at most 10000)\n"
		"  --fit WxH|NMP        scale down to fit within W x H, each at most 20000 (0: free),\n"
		"                       or within N megapixels (0.25MP; at most 1000); never enlarged\n"
		"  --canvas WxH         lay the subject out on a canvas: pixels (2400x3000), inches\n"
		"                       (8x10in) or centimetres (20x25cm) at --dpi, or photo (the\n"
		"                       photo's size); the subject is scaled to it, enlarged if need be\n"
		"  --dpi N              dots per inch written into the file (default 300 for a canvas\n"
		"                       in inches or centimetres)\n"
		"  --scale N%%           the share of the canvas's room the subject takes (default 100%%)\n"
		"  --position P         center (default), top, bottom, left, right, or X%%,Y%% of the\n"
		"                       room left (0%%,100%%: bottom left)\n"
		"  --padding P          the canvas's padding: 1, 2 or 4 values (CSS order), pixels or %%\n"
		"  --snap EDGE          auto (default: against the canvas's edge where the photo cuts\n"
		"                       the subject off), none, top, right, bottom or left\n"
		"  --roi X0,Y0,X1,Y1    the region the subject lies in, pixels or %% of the photo's\n"
		"                       sides; nothing outside it is kept\n"
		"  --effect NAME        none, shadow, sticker (a white outline) or popart (a 2x2 grid)\n"
		"  --shadow KIND        a shadow: drop (on a wall behind; --effect shadow's), soft (shade\n"
		"                       around the base), hard (cast on the ground behind, leaning) or\n"
		"                       floating (shade below the base: the subject hovers)\n"
		"  --shadow-opacity N   its opacity in percent (drop 50, soft 60, hard 45, floating 40)\n"
		"  --shadow-blur N|N%%   its blur, pixels or %% of the subject's longer side\n"
		"  --shadow-offset N|N%% drop: how far it falls; floating: the gap below the base\n"
		"  --shadow-angle DEG   drop, hard: degrees from straight down, -85 to 85 (default 45:\n"
		"                       down and right; a hard shadow leans right)\n"
		"  --edges MODE         the soft edge's colours: auto (default: clean where something is\n"
		"                       drawn under the subject), clean (the subject's own, estimated)\n"
		"                       or photo (the photo's pixels)\n"
		"  --outline N          sticker outline, 1 to 1000 pixels (default 1.5%% of the shorter\n"
		"                       side)\n"
		"  --quality Q          JPEG, lossy WebP and AVIF quality, 1 to 100\n"
		"  --lossy              WebP: lossy colours (the alpha stays exact)\n"
		"  --color keep|srgb    keep the photo's colour profile (default), or convert to sRGB\n"
		"  --refine MODE        the mask brought to the photo's size: none (default: scaled\n"
		"                       up), guided (edges sharpened by the photo) or matting (fine\n"
		"                       edges: the edge's alpha solved from the photo's colours;\n"
		"                       fur and hair, slower)\n"
		"  --keep-gps           keep the photo's GPS position in the outputs' EXIF\n"
		"  --model NAME|PATH    medium (default) or small, as fetched by `petcut model\n"
		"                       fetch`, or the path of an ONNX file\n"
		"  --size preview|full  network input of 512 or 1024 pixels a side (default full)\n"
		"  --threads N          compute threads (default: all CPUs)\n"
		"  --precision fp32|bf16|int8  the network's arithmetic (default bf16 where the CPU\n"
		"                       has AVX512_BF16, else fp32); bf16 takes a third of fp32's\n"
		"                       memory; int8 needs `petcut model calibrate` first\n"
		"  --fallback auto|fp32|none  a mask that is unsure (over 80%% of what might be the\n"
		"                       subject between 0.1 and 0.9) is made again at fp32: auto\n"
		"                       (default) an int8 one, fp32 a bf16 one too, none never\n"
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

/* The command's own options; the removal's are the pipeline's (--size,
 * --bg, --crop...: pipe_opt_by_flag). */
enum opt_id { OPT_OUT, OPT_BG_COLOR, OPT_BG_IMAGE, OPT_KEEP_GPS, OPT_MODEL, OPT_THREADS, OPT_PRECISION,
	      OPT_FALLBACK, OPT_JSON, OPT_TIMINGS, OPT_HELP, OPT_RECURSIVE, OPT_WATCH, OPT_PIPE };

static const struct option_def {
	const char *name;
	enum opt_id id;
	int value; /* takes a value: "--opt VALUE" or "--opt=VALUE" */
} option_defs[] = {
	{"--out", OPT_OUT, 1},	       {"-o", OPT_OUT, 1},		{"--bg-color", OPT_BG_COLOR, 1},
	{"--bg-image", OPT_BG_IMAGE, 1}, {"--keep-gps", OPT_KEEP_GPS, 0}, {"--model", OPT_MODEL, 1},
	{"--threads", OPT_THREADS, 1}, {"--json", OPT_JSON, 0},		{"--timings", OPT_TIMINGS, 0},
	{"-h", OPT_HELP, 0},	       {"--help", OPT_HELP, 0},		{"--precision", OPT_PRECISION, 1},
	{"--fallback", OPT_FALLBACK, 1},	       {"--recursive", OPT_RECURSIVE, 0}, {"-r", OPT_RECURSIVE, 0},
	{"--watch", OPT_WATCH, 0},
};

/* Applies option id (or the pipeline's option popt) with its value.
 * Returns 0, or 2 after printing why the value is bad. */
static int apply_opt(const char *cmd, const char *name, enum opt_id id, int popt, const char *val,
		     struct remove_opts *o)
{
	char why[256];
	unsigned char rgba[4];

	switch (id) {
	case OPT_PIPE:
		if (pipe_set(&o->req, (enum pipe_opt)popt, val ? val : "true", why, sizeof why))
			goto bad;
		return 0;
	case OPT_OUT:
		if (o->nouts == MAX_OUTS) {
			fprintf(stderr, "petcut %s: at most %d outputs\n", cmd, MAX_OUTS);
			return 2;
		}
		o->outs[o->nouts++] = val;
		return 0;
	case OPT_BG_COLOR: /* --bg, but only a colour */
		if (img_color_parse(val, rgba)) {
			snprintf(why, sizeof why, "a colour (#rgb, #rrggbb, #rrggbbaa or a name)");
			goto bad;
		}
		return pipe_set(&o->req, PIPE_OPT_BG, val, why, sizeof why) ? 2 : 0;
	case OPT_BG_IMAGE: /* --bg, but only a file */
		o->req.render.bg = IMG_BG_IMAGE;
		o->req.bg_ref = val;
		return 0;
	case OPT_KEEP_GPS:
		o->keep_gps = 1;
		return 0;
	case OPT_MODEL:
		o->engine.model = val;
		return 0;
	case OPT_PRECISION:
		if (pipe_parse_precision(val, &o->engine.precision)) {
			snprintf(why, sizeof why, "fp32, bf16 or int8");
			goto bad;
		}
		return 0;
	case OPT_FALLBACK:
	{
		int on;
		if (pipe_parse_fallback(val, &o->engine.guard_bf16, &on)) {
			snprintf(why, sizeof why, "auto, fp32 or none");
			goto bad;
		}
		o->engine.guard_above = on ? PIPE_GUARD_ABOVE : 0;
		return 0;
	}
	case OPT_THREADS:
		if (cli_parse_int(val, 1, 4096, &o->engine.threads)) {
			snprintf(why, sizeof why, "a number from 1 to 4096");
			goto bad;
		}
		return 0;
	case OPT_JSON:
		o->json = 1;
		return 0;
	case OPT_TIMINGS:
		o->timings = 1;
		return 0;
	case OPT_RECURSIVE:
		o->recursive = 1;
		return 0;
	case OPT_WATCH:
		o->watch = 1;
		return 0;
	case OPT_HELP:
		return 0;
	}
	return 0;
bad:
	fprintf(stderr, "petcut %s: %s is %s, not '%s'\n", cmd, name, why, val ? val : "");
	return 2;
}

/* Parses argv into o. Returns -1 when help was printed, 0 when the arguments
 * are good, 2 after printing a usage error. */
int remove_parse_args(int argc, char **argv, struct remove_opts *o)
{
	const char *cmd = argv[0];
	int remove = !strcmp(cmd, "remove"), group = !strcmp(cmd, "group");
	int opts_done = 0, rc;
	char why[256], name[64];

	*o = (struct remove_opts){.engine = {.precision = -1, .guard_above = PIPE_GUARD_ABOVE}};
	pipe_request_init(&o->req, PIPE_SIDE_FULL);
	for (int i = 1; i < argc; i++) {
		const struct option_def *def = NULL;
		char *arg = argv[i], *val = NULL, *eq;
		size_t len;
		int popt = -1, takes;

		if (opts_done || arg[0] != '-' || !arg[1]) {
			if (group) { /* every one a photo: the outputs are -o's */
				if (o->nins == IMG_GROUP_MAX) {
					fprintf(stderr, "petcut group: at most %d photos\n", IMG_GROUP_MAX);
					return 2;
				}
				o->in = o->nins ? o->in : arg;
				o->ins[o->nins++] = arg;
			} else if (!o->in) {
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
		snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), arg);
		for (size_t k = 0; k < sizeof option_defs / sizeof option_defs[0]; k++)
			if (!strcmp(name, option_defs[k].name))
				def = &option_defs[k];
		struct option_def piped = {name, OPT_PIPE, 0};
		if (!def && (popt = pipe_opt_by_flag(name)) >= 0) { /* one of the removal's */
			piped.value = pipe_opt_kind((enum pipe_opt)popt) != PIPE_SWITCH;
			def = &piped;
		}
		if (!def || (def->id == OPT_OUT && !remove && !group) || ((def->id == OPT_RECURSIVE || def->id == OPT_WATCH) && (remove || group)) ||
		    (eq && !def->value)) {
			fprintf(stderr, "petcut %s: unknown option '%s' (see petcut %s --help)\n", cmd, arg, cmd);
			return 2;
		}
		if (def->id == OPT_HELP) {
			usage(stdout, cmd);
			return -1;
		}
		takes = def->value;
		if (takes) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			if (!val || !*val) {
				fprintf(stderr, "petcut %s: %s needs a value\n", cmd, name);
				return 2;
			}
		}
		rc = apply_opt(cmd, name, def->id, popt, val, o);
		if (rc)
			return rc;
	}
	if (!o->in || !o->nouts || (group && o->nins < 2)) {
		usage(stderr, cmd);
		return 2;
	}
	o->req.group_n = group ? o->nins : 0;
	if (o->watch && o->recursive) {
		fprintf(stderr, "petcut %s: --watch takes the files that come into IN_DIR itself: not with --recursive\n",
			cmd);
		return 2;
	}
	int to_stdout = 0;
	for (int i = 0; i < o->nouts; i++)
		to_stdout += !strcmp(o->outs[i], "-");
	if (to_stdout > 1 || (to_stdout && o->json) || (!remove && !group && !strcmp(o->outs[0], "-"))) {
		fprintf(stderr, "petcut %s: %s\n", cmd,
			to_stdout > 1 ? "one output at most goes to standard output (-)"
			: o->json    ? "--json prints on standard output, where the image goes (-): not both"
				     : "OUT_DIR is a folder, not standard output");
		return 2;
	}
	if (pipe_check(&o->req, why, sizeof why) ||
	    (o->req.format_given && pipe_check_format(&o->req, o->req.save.format, why, sizeof why))) {
		fprintf(stderr, "petcut %s: %s\n", cmd, why);
		return 2;
	}
	return 0;
}

/* ===== One photo ===== */

/* Prints one output's facts as a JSON object on its own line. */
static void print_json(const char *path, const struct pipe_out_info *o)
{
	const struct img_subject *s = &o->subject;
	json_t *j = json_pack("{s:s, s:i, s:i, s:[i,i,i,i], s:f, s:f}", "output", path, "width", o->width, "height",
			      o->height, "bbox", s->x, s->y, s->w, s->h, "coverage", round(s->coverage * 1e6) / 1e6,
			      "scale", round(s->scale * 1e4) / 1e4);

	if (j) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
		fputc('\n', stdout);
		fflush(stdout);
		json_decref(j);
	}
}

/* The most petcut reads from standard input. */
#define STDIN_MAX ((size_t)1 << 30)

/* A photo from the file path, or from standard input for "-". Returns 0,
 * or the exit status (1 or 2) after saying why not. */
static int load_photo(const char *path, const struct img_load_opts *lo, struct img **im)
{
	size_t len = 0, cap = 0, got;
	char *buf = NULL, *more = NULL;
	img_status st;

	*im = NULL;
	if (img_init() != IMG_OK) {
		say("petcut: %s", img_errmsg());
		return 1;
	}
	if (strcmp(path, "-")) {
		st = img_load_file_opts(path, lo, im);
	} else {
		do {
			if (len == cap && (cap == STDIN_MAX || !(more = realloc(buf, cap = cap ? 2 * cap : 1 << 20)))) {
				free(buf);
				say("petcut: standard input: %s", cap == STDIN_MAX ? "over 1 GiB" : "out of memory");
				return cap == STDIN_MAX ? 2 : 1;
			}
			buf = more;
			len += got = fread(buf + len, 1, cap - len, stdin);
		} while (got);
		st = ferror(stdin) ? IMG_ERR_IO : img_load_buffer_opts(buf, len, lo, im);
		free(buf);
	}
	if (st == IMG_OK)
		return 0;
	say("petcut: %s: %s", strcmp(path, "-") ? path : "standard input",
	    st == IMG_ERR_IO && !strcmp(path, "-") ? "cannot be read" : img_errmsg());
	return st == IMG_ERR_NOMEM || st == IMG_ERR_VIPS ? 1 : 2;
}

/* The engine being opened beside the photo's decoding. */
struct opening {
	const struct pipe_engine_opts *opts;
	struct pipe_engine *e;
	char note[1024], why[1024];
};

static void *open_engine(void *arg)
{
	struct opening *op = arg;
	(void)pipe_engine_open(op->opts, &op->e, op->note, sizeof op->note, op->why, sizeof op->why);
	return NULL;
}

int remove_photo(struct pipe_engine **e, const struct remove_opts *o, const char *in, const char *const *outs,
		 const enum img_format *fmts, int n)
{
	struct img_load_opts lo = {.keep_gps = o->keep_gps};
	struct pipe_out_info info[MAX_OUTS];
	struct pipe_timings t;
	struct img *im = NULL;
	char why[1024];
	double t0 = util_now_ms(), decode_ms;
	int rc = 1;

	/* the model is loaded on first use, on a thread of its own while the
	 * photo is decoded (each mostly on one core; a 12 MP JPEG and the
	 * medium model take about as long); a remove-dir with nothing left to
	 * do never gets here */
	if (img_init() != IMG_OK) { /* before the thread: it sets the environment a while */
		say("petcut: %s", img_errmsg());
		return 1;
	}
	struct pipe_engine_opts eo = o->engine;
	eo.plan_side = o->req.side; /* the network planned while the photo is decoded */
	struct opening op = {.opts = &eo};
	pthread_t opener;
	bool opening = !*e && !pthread_create(&opener, NULL, open_engine, &op);
	int bad = load_photo(in, &lo, &im);
	decode_ms = util_now_ms() - t0;
	/* and the network's input made, where the model may still be loading */
	enum pipe_status ps = PIPE_OK;
	double resize_ms = util_now_ms();
	float *input = NULL;
	if (!bad)
		ps = pipe_input(im, o->req.side, &input, why, sizeof why);
	resize_ms = util_now_ms() - resize_ms;
	if (opening) {
		pthread_join(opener, NULL);
		*e = op.e;
	} else if (!*e && !bad) {
		open_engine(&op);
		*e = op.e;
	}
	if (bad)
		return bad;
	if (!*e) {
		free(input);
		say("petcut: %s", op.why);
		goto out;
	}
	if (*op.note)
		say("petcut: %s", op.note);
	if (ps == PIPE_OK) {
		ps = pipe_remove_photo(*e, &o->req, im, input, outs, fmts, n, info, &t, why, sizeof why);
		t.mask.resize_ms = resize_ms;
	}
	if (ps != PIPE_OK) {
		say("petcut: %s%s%s", ps == PIPE_REFUSED ? "" : in, ps == PIPE_REFUSED ? "" : ": ", why);
		rc = ps == PIPE_REFUSED ? 2 : 1;
		goto out;
	}
	for (int i = 0; o->json && i < n; i++)
		print_json(outs[i], &info[i]);
	if (o->timings) {
		const char *names[] = {"decode", "resize", "infer", "refine", "compose", "encode"};
		double ms[] = {decode_ms, t.mask.resize_ms, t.mask.infer_ms, t.refine_ms, t.compose_ms, t.encode_ms};
		for (int s = 0; s < 6; s++)
			say("timing: %s %.1f ms", names[s], ms[s]);
		say("timing: mask uncertainty %.3f%s", t.mask.uncertainty, t.mask.fallback ? ", rerun at fp32" : "");
		say("timing: total %.1f ms", util_now_ms() - t0);
	}
	rc = 0;
out:
	img_free(im);
	return rc;
}

/* Loads the background image if one is asked for (*bg); see remove.h. */
int remove_start(struct remove_opts *o, struct img **bg)
{
	img_status st;

	*bg = NULL;
	if (o->req.render.bg != IMG_BG_IMAGE) /* libvips starts with the first photo (remove_photo) */
		return 0;
	if (img_init() != IMG_OK) {
		say("petcut: %s", img_errmsg());
		return 1;
	}
	st = img_load_file(o->req.bg_ref, bg);
	if (st == IMG_ERR_IO && !strpbrk(o->req.bg_ref, "./")) {
		/* a word that names no file was meant as a colour */
		say("petcut: --bg %s: not a colour (#rgb, #rrggbb, #rrggbbaa or a name), 'blur', nor an image file",
		    o->req.bg_ref);
		return 2;
	}
	if (st != IMG_OK) {
		say("petcut: --bg %s: %s", o->req.bg_ref, img_errmsg());
		return st == IMG_ERR_NOMEM || st == IMG_ERR_VIPS ? 1 : 2;
	}
	o->req.render.bg_image = *bg;
	return 0;
}

/* The format of an output: --format, or its name's extension. Returns 0, or
 * 2 after saying why it cannot be told or cannot be met. */
static int output_format(const struct remove_opts *o, const char *path, enum img_format *fmt)
{
	const char *dot = strrchr(path, '.');
	char why[256];

	if (o->req.format_given) {
		*fmt = o->req.save.format;
	} else if (!strcmp(path, "-")) { /* standard output: PNG unless --format says */
		*fmt = IMG_FORMAT_PNG;
	} else if (!dot || strchr(dot, '/') || img_format_parse(dot + 1, fmt)) {
		say("petcut remove: cannot tell the format from '%s'; name it .png, .webp, .jpg or .avif, or give "
		    "--format", path);
		return 2;
	}
	if (pipe_check_format(&o->req, *fmt, why, sizeof why)) {
		say("petcut: %s: %s", path, why);
		return 2;
	}
	return 0;
}

/* Prints a group portrait's facts: remove's, and each pet's box. */
static void print_group_json(const char *path, const struct pipe_group_info *g, int n)
{
	json_t *j = json_pack("{s:s, s:i, s:i, s:[i,i,i,i], s:f, s:[]}", "output", path, "width", g->width, "height",
			      g->height, "bbox", g->group.x, g->group.y, g->group.w, g->group.h, "scale",
			      round(g->group.scale * 1e4) / 1e4, "subjects");
	for (int i = 0; j && i < n; i++) {
		const struct img_subject *s = &g->subjects[i];
		json_array_append_new(json_object_get(j, "subjects"), json_pack("[i,i,i,i]", s->x, s->y, s->w, s->h));
	}
	if (j) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
		fputc('\n', stdout);
		fflush(stdout);
		json_decref(j);
	}
}

int cmd_group(int argc, char **argv)
{
	struct remove_opts o;
	struct pipe_engine *e = NULL;
	enum img_format fmts[MAX_OUTS];
	struct pipe_group_info info[MAX_OUTS];
	struct pipe_timings t;
	struct img *bg = NULL, *photos[IMG_GROUP_MAX] = {0};
	struct img_load_opts lo = {0};
	char note[1024], why[1024];
	int rc = remove_parse_args(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	lo.keep_gps = o.keep_gps;
	for (int i = 0; i < o.nouts; i++)
		if ((rc = output_format(&o, o.outs[i], &fmts[i])))
			return rc;
	if ((rc = remove_start(&o, &bg)))
		goto out;
	for (int i = 0; i < o.nins; i++)
		if ((rc = load_photo(o.ins[i], &lo, &photos[i])))
			goto out;
	/* every photo's input in one forward pass */
	if (o.engine.max_batch < o.nins)
		o.engine.max_batch = o.nins;
	o.engine.max_delay_ms = 20; /* they come together through the gate: a little slack */
	o.engine.oneshot = 1;
	if (pipe_engine_open(&o.engine, &e, note, sizeof note, why, sizeof why)) {
		say("petcut: %s", why);
		rc = 1;
		goto out;
	}
	if (*note)
		say("petcut: %s", note);
	enum pipe_status ps = pipe_group_photos(e, &o.req, (const struct img *const *)photos, o.nins, o.outs, fmts,
						o.nouts, info, &t, why, sizeof why);
	if (ps != PIPE_OK) {
		say("petcut: %s", why);
		rc = ps == PIPE_REFUSED || ps == PIPE_BAD_INPUT ? 2 : 1;
		goto out;
	}
	for (int i = 0; o.json && i < o.nouts; i++)
		print_group_json(o.outs[i], &info[i], o.nins);
	if (o.timings)
		say("timing: infer %.1f ms (batch of %d), refine %.1f ms, compose %.1f ms, encode %.1f ms",
		    t.mask.infer_ms, t.mask.batch_size, t.refine_ms, t.compose_ms, t.encode_ms);
	rc = 0;
out:
	for (int i = 0; i < o.nins; i++)
		img_free(photos[i]);
	pipe_engine_close(e);
	img_free(bg);
	return rc;
}

int cmd_remove(int argc, char **argv)
{
	struct remove_opts o;
	struct pipe_engine *e = NULL;
	enum img_format fmts[MAX_OUTS];
	struct img *bg = NULL;
	int rc = remove_parse_args(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	for (int i = 0; i < o.nouts; i++)
		if ((rc = output_format(&o, o.outs[i], &fmts[i])))
			return rc;
	o.engine.oneshot = 1; /* one photo: its outputs get the model's memory */
	if (!(rc = remove_start(&o, &bg)))
		rc = remove_photo(&e, &o, o.in, o.outs, fmts, o.nouts);
	pipe_engine_close(e);
	img_free(bg);
	return rc;
}

