/*
 * cmd_convert.c - `petcut convert`: a web-displayable thumbnail of any image
 * petcut reads (an iPhone's HEIC included).
 *
 *   petcut convert IN OUT [--max N] [--format webp|jpeg|png] [--quality Q]
 *
 * The thumbnail is upright, sRGB, at most N pixels on its longer side (never
 * enlarged) and carries no metadata. An input that cannot be used is
 * reported as one line on stderr, "petcut: IN: reason", with exit status 2;
 * OUT is replaced atomically, so a failed run never leaves a partial file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "img/img.h"

#define CONVERT_MAX_DEFAULT 512

static void usage(FILE *f)
{
	fprintf(f, "usage: petcut convert IN OUT [options]\n\n"
		   "Writes OUT, a web-displayable copy of the image IN: upright, sRGB, scaled\n"
		   "down to fit --max (never enlarged), without metadata. IN may be JPEG, PNG,\n"
		   "WebP, HEIC, AVIF, TIFF or GIF.\n\n"
		   "options:\n"
		   "  --max N              longer side at most N pixels (default %d)\n"
		   "  --format FMT         webp (lossy), jpeg (transparency over white) or png\n"
		   "                       (default: from OUT's extension)\n"
		   "  --quality Q          WebP and JPEG quality, 1 to 100\n"
		   "  -h, --help           show this help\n"
		   "\nexit status: 0 done; 1 failure while working (output not written);\n"
		   "2 bad usage, or an input that is not a usable image\n",
		CONVERT_MAX_DEFAULT);
}

/* The format an output's name asks for: 0, or -1 when its extension is not
 * one convert writes. */
static int format_of_name(const char *path, enum img_format *fmt)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return -1;
	if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))
		*fmt = IMG_FORMAT_JPEG;
	else if (!strcasecmp(dot, ".png"))
		*fmt = IMG_FORMAT_PNG;
	else if (!strcasecmp(dot, ".webp"))
		*fmt = IMG_FORMAT_WEBP;
	else
		return -1;
	return 0;
}

/* Whether a status from loading says the input itself is at fault. */
static int bad_input(img_status st)
{
	return st == IMG_ERR_IO || st == IMG_ERR_NOT_IMAGE || st == IMG_ERR_CORRUPT || st == IMG_ERR_UNSUPPORTED ||
	       st == IMG_ERR_TOO_LARGE;
}

int cmd_convert(int argc, char **argv)
{
	static const unsigned char white[3] = {255, 255, 255};
	const char *pos[2] = {NULL, NULL}, *fmt_name = NULL;
	struct img *im = NULL, *th = NULL, *flat = NULL;
	struct img_save_opts so = {.color = IMG_COLOR_SRGB};
	int npos = 0, max = CONVERT_MAX_DEFAULT, quality = 0, rc = 1;
	img_status st;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t n = strcspn(a, "=");
		int opt;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (a[0] != '-' || !a[1]) {
			if (npos == 2) {
				fprintf(stderr, "petcut convert: too many arguments ('%s')\n", a);
				return 2;
			}
			pos[npos++] = a;
			continue;
		}
		/* "--opt VALUE" or "--opt=VALUE". */
		if (n == 5 && !strncmp(a, "--max", n))
			opt = 'm';
		else if (n == 8 && !strncmp(a, "--format", n))
			opt = 'f';
		else if (n == 9 && !strncmp(a, "--quality", n))
			opt = 'q';
		else {
			fprintf(stderr, "petcut convert: unknown option '%s' (petcut convert --help)\n", a);
			return 2;
		}
		if (a[n] == '=')
			val = a + n + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (!val) {
			fprintf(stderr, "petcut convert: %s needs a value\n", a);
			return 2;
		}
		if (opt == 'm' && cli_parse_int(val, 1, 65535, &max)) {
			fprintf(stderr, "petcut convert: --max takes 1 to 65535, not '%s'\n", val);
			return 2;
		}
		if (opt == 'f')
			fmt_name = val;
		if (opt == 'q' && cli_parse_int(val, 1, 100, &quality)) {
			fprintf(stderr, "petcut convert: --quality takes 1 to 100, not '%s'\n", val);
			return 2;
		}
	}
	if (npos != 2) {
		usage(stderr);
		return 2;
	}
	if (fmt_name) {
		if (img_format_parse(fmt_name, &so.format) || so.format == IMG_FORMAT_AVIF || so.format == IMG_FORMAT_ZIP) {
			fprintf(stderr, "petcut convert: --format is webp, jpeg or png, not '%s'\n", fmt_name);
			return 2;
		}
	} else if (format_of_name(pos[1], &so.format)) {
		fprintf(stderr, "petcut convert: %s: name it .webp, .jpg or .png, or give --format\n", pos[1]);
		return 2;
	}
	if (quality && so.format == IMG_FORMAT_PNG) {
		fprintf(stderr, "petcut convert: --quality is for webp and jpeg, not png\n");
		return 2;
	}
	so.quality = quality;
	so.lossy = 1; /* WebP thumbnails: lossy, as the web serves photos */

	if (img_init() != IMG_OK) {
		fprintf(stderr, "petcut: %s\n", img_errmsg());
		return 1;
	}
	st = img_load_file(pos[0], &im);
	if (st != IMG_OK) {
		fprintf(stderr, "petcut: %s: %s\n", pos[0], img_errmsg());
		rc = bad_input(st) ? 2 : 1;
		goto out;
	}
	st = img_thumbnail(im, max, &th);
	if (st == IMG_OK && so.format == IMG_FORMAT_JPEG && (img_bands(th) == 4 || img_bands(th) == 2)) {
		st = img_flatten(th, white, &flat);
		if (st == IMG_OK) {
			img_free(th);
			th = flat;
		}
	}
	if (st != IMG_OK) {
		fprintf(stderr, "petcut: %s: %s\n", pos[0], img_errmsg());
		goto out;
	}
	st = img_save_opts(th, pos[1], &so);
	if (st != IMG_OK) {
		fprintf(stderr, "petcut: %s: %s\n", pos[1], img_errmsg());
		goto out;
	}
	rc = 0;
out:
	img_free(th);
	img_free(im);
	return rc;
}
