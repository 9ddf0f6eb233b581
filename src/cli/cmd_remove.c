/*
 * cmd_remove.c - `petcut remove` and `petcut remove-dir`: cut the background
 * out of one photo, or out of every photo in a folder, with the model loaded
 * once.
 *
 *   petcut remove IN OUT [options]
 *   petcut remove-dir IN_DIR OUT_DIR [options]
 *
 * A photo that cannot be used (not an image, truncated, unsupported,
 * unreadable) is reported as one line on stderr, "petcut: IN: reason", and
 * makes the exit status 2; remove-dir reports it and goes on with the next
 * file. Failures of the work itself (model missing, out of memory, an output
 * that cannot be written) exit 1 at once. Outputs are replaced atomically, so
 * an interrupted or failed run never leaves a partial file under an output's
 * name.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "img/img.h"
#include "model/model.h"
#include "nn/nn.h"

/* Network input sides: ISNet's own resolution, and a quarter of the work. */
#define SIZE_FULL 1024
#define SIZE_PREVIEW 512

struct remove_opts {
	const char *model;	  /* variant name or path to an ONNX file */
	int size;		  /* network input side, SIZE_FULL or SIZE_PREVIEW */
	int format_given;	  /* format came from --format, not from a name */
	enum img_format format;	  /* output encoding */
	enum img_cut kind;	  /* cut-out, or the mask alone (--mask) */
	int threads;		  /* compute threads; 0 means all CPUs */
	const char *pos[2];	  /* IN and OUT */
};

/* The model, loaded on first use so that refused input or a remove-dir with
 * nothing left to do never pays for it. */
struct remover {
	char path[PATH_MAX]; /* model file */
	nn_model *model;
	float *input; /* 1 x 3 x size x size */
	int size;
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
		fprintf(f, "usage: petcut remove IN OUT [options]\n\n"
			   "Cuts the background out of the photo IN and writes OUT, the photo with a\n"
			   "transparent background (PNG, or lossless WebP).\n");
	else
		fprintf(f, "usage: petcut remove-dir IN_DIR OUT_DIR [options]\n\n"
			   "Cuts out every file in IN_DIR, in name order, into OUT_DIR/NAME.png (or .webp),\n"
			   "NAME being the file's name without its extension. Outputs that already exist\n"
			   "are skipped; files that are not usable images are reported and skipped.\n");
	fprintf(f, "\noptions:\n"
		   "  --model NAME|PATH    medium (default) or small, as fetched by `petcut model\n"
		   "                       fetch`, or the path of an ONNX file\n"
		   "  --size preview|full  network input of 512 or 1024 pixels a side (default full)\n"
		   "  --format png|webp    output format (default: from OUT's extension%s)\n"
		   "  --mask               write the mask alone, as an 8-bit grey image\n"
		   "  --threads N          compute threads (default: all CPUs)\n"
		   "  -h, --help           show this help\n"
		   "\nexit status: 0 done; 1 failure while working (model missing, output not\n"
		   "written); 2 bad usage, or an input that is not a usable image\n",
		strcmp(cmd, "remove") ? "; png for remove-dir" : "");
}

/* ===== Arguments ===== */

/* Parses argv into o. Returns -1 when help was printed, 0 when the arguments
 * are good, 2 after printing a usage error. */
static int parse_args(int argc, char **argv, struct remove_opts *o)
{
	const char *cmd = argv[0];
	int npos = 0, opts_done = 0;

	*o = (struct remove_opts){.model = MODEL_DEFAULT_VARIANT, .size = SIZE_FULL,
				  .format = IMG_FORMAT_PNG, .kind = IMG_CUT_RGBA};
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i], *val = NULL, *eq;
		char name[16];

		if (opts_done || arg[0] != '-' || !arg[1]) {
			if (npos == 2) {
				fprintf(stderr, "petcut %s: unexpected argument '%s'\n", cmd, arg);
				return 2;
			}
			o->pos[npos++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			opts_done = 1;
			continue;
		}
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout, cmd);
			return -1;
		}
		if (!strcmp(arg, "--mask")) {
			o->kind = IMG_CUT_MASK;
			continue;
		}
		/* The rest take a value: "--opt VALUE" or "--opt=VALUE". */
		eq = strchr(arg, '=');
		snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
		if (strcmp(name, "--model") && strcmp(name, "--size") && strcmp(name, "--format") &&
		    strcmp(name, "--threads")) {
			fprintf(stderr, "petcut %s: unknown option '%s' (see petcut %s --help)\n", cmd, arg, cmd);
			return 2;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (!val || !*val) {
			fprintf(stderr, "petcut %s: %s needs a value\n", cmd, name);
			return 2;
		}

		if (!strcmp(name, "--model")) {
			o->model = val;
		} else if (!strcmp(name, "--size")) {
			if (!strcmp(val, "full")) {
				o->size = SIZE_FULL;
			} else if (!strcmp(val, "preview")) {
				o->size = SIZE_PREVIEW;
			} else {
				fprintf(stderr, "petcut %s: --size is preview or full, not '%s'\n", cmd, val);
				return 2;
			}
		} else if (!strcmp(name, "--format")) {
			if (img_format_parse(val, &o->format)) {
				fprintf(stderr, "petcut %s: --format is png or webp, not '%s'\n", cmd, val);
				return 2;
			}
			o->format_given = 1;
		} else {
			char *end;
			long n;

			errno = 0;
			n = strtol(val, &end, 10);
			if (errno || *end || n < 1 || n > 4096) {
				fprintf(stderr, "petcut %s: --threads needs a number from 1 to 4096, not '%s'\n",
					cmd, val);
				return 2;
			}
			o->threads = (int)n;
		}
	}
	if (npos != 2) {
		usage(stderr, cmd);
		return 2;
	}
	return 0;
}

/* ===== The model ===== */

/* Finds the model file: a variant name goes through the models folder, any
 * other value is taken as a path. Prints the reason and returns 1 if a named
 * variant has not been fetched. */
static int remover_init(struct remover *r, const struct remove_opts *o)
{
	*r = (struct remover){.size = o->size};
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

/* Cuts in out into out. Returns 0; 2 when in is not a usable image; 1 when
 * the work fails. Prints one line on stderr for either failure. */
static int remove_one(struct remover *r, const char *in, const char *out, enum img_format fmt,
		      enum img_cut kind)
{
	struct img *im = NULL, *cut = NULL;
	struct nn_tensor x = {.dtype = NN_DTYPE_F32, .rank = 4, .dims = {1, 3, r->size, r->size}};
	struct nn_tensor y = {0};
	img_status ist;
	nn_status nst;
	int rc = 1;

	ist = img_load_file(in, &im);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", in, img_errmsg());
		/* Only the machine's own trouble is a failure of the work. */
		rc = ist == IMG_ERR_NOMEM || ist == IMG_ERR_VIPS ? 1 : 2;
		goto out;
	}
	if (remover_load(r))
		goto out;
	ist = img_to_tensor(im, r->size, r->size, r->input);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", in, img_errmsg());
		goto out;
	}
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
	ist = img_cutout(im, y.data, (int)y.dims[2], (int)y.dims[3], kind, &cut);
	if (ist == IMG_OK)
		ist = img_save(cut, out, fmt);
	if (ist != IMG_OK) {
		say("petcut: %s: %s", out, img_errmsg());
		goto out;
	}
	rc = 0;
out:
	nn_tensor_free(&y);
	img_free(cut);
	img_free(im);
	return rc;
}

/* Sets things every command needs. Returns 0, or 1 after printing why not. */
static int start(const struct remove_opts *o)
{
	if (img_init() != IMG_OK) {
		say("petcut: %s", img_errmsg());
		return 1;
	}
	nn_set_threads(o->threads);
	return 0;
}

int cmd_remove(int argc, char **argv)
{
	struct remove_opts o;
	struct remover r = {0};
	const char *dot;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (!o.format_given) {
		dot = strrchr(o.pos[1], '.');
		if (!dot || strchr(dot, '/') || img_format_parse(dot + 1, &o.format)) {
			fprintf(stderr, "petcut remove: cannot tell the format from '%s'; "
					"name it .png or .webp, or give --format\n", o.pos[1]);
			return 2;
		}
	}
	rc = start(&o);
	if (!rc)
		rc = remover_init(&r, &o);
	if (!rc)
		rc = remove_one(&r, o.pos[0], o.pos[1], o.format, o.kind);
	remover_free(&r);
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
	char **names = NULL, *in = NULL, *out = NULL;
	int n = 0, rc, written = 0, skipped = 0, refused = 0;
	int bar = isatty(STDERR_FILENO);

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	rc = start(&o);
	if (!rc)
		rc = remover_init(&r, &o);
	if (rc)
		goto out;
	n = list_files(o.pos[0], &names);
	if (n < 0) {
		rc = 2;
		goto out;
	}
	if (mkdir(o.pos[1], 0777) && errno != EEXIST) {
		say("petcut: %s: %s", o.pos[1], strerror(errno));
		rc = 1;
		goto out;
	}

	for (int i = 0; i < n; i++) {
		const char *dot = strrchr(names[i], '.');
		int len = dot ? (int)(dot - names[i]) : (int)strlen(names[i]);
		int one;

		if (bar)
			progress_draw(i, n, names[i]);
		if (asprintf(&in, "%s/%s", o.pos[0], names[i]) < 0 ||
		    asprintf(&out, "%s/%.*s.%s", o.pos[1], len, names[i], img_format_ext(o.format)) < 0) {
			in = out = NULL;
			say("petcut: out of memory");
			rc = 1;
			goto out;
		}
		if (access(out, F_OK) == 0) {
			skipped++;
		} else {
			one = remove_one(&r, in, out, o.format, o.kind);
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
	printf("%d written, %d skipped (already there), %d refused\n", written, skipped, refused);
	rc = refused ? 2 : 0;
out:
	free(in);
	free(out);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	remover_free(&r);
	return rc;
}
