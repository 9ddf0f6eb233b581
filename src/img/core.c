/*
 * core.c - the img module's errors, start-up and the image object.
 * See img.h for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmodule.h>
#include <omp.h>
#include <vips/vips.h>

#include "img/img_int.h"

/* ===== Errors ===== */

_Thread_local struct util_err img_err;

const char *img_errmsg(void)
{
	return img_err.msg;
}

const char *img_strerror(img_status st)
{
	/* by -st, in img_status's order */
	static const char *const texts[] = {"ok", "out of memory", "i/o error", "not an image",
					    "truncated or damaged image", "unsupported image", "bad argument",
					    "image processing failed", "image too large"};

	return UTIL_STATUS_TEXT(texts, st);
}

/* Fails with what, followed by the gist of libvips' error: the first line of
 * its buffer without the "domain: " prefix, since callers promise one line.
 * The buffer is process-wide, so it is cleared to keep the next failure's
 * message its own. */
img_status img_fail_vips(img_status st, const char *what)
{
	const char *msg = vips_error_buffer();
	const char *colon = strstr(msg, ": ");
	size_t n;

	if (colon && colon < msg + strcspn(msg, "\n"))
		msg = colon + 2;
	n = strcspn(msg, "\n");
	if (n)
		img_fail(st, "%s (%.*s)", what, (int)n, msg);
	else
		img_fail(st, "%s", what);
	vips_error_clear();
	return st;
}

/* ===== Pixels made on all cores ===== */

/* libvips' pools run one thread (init_vips); a pipeline that starts from
 * pixels in memory, not from a loader, runs on as many as the OpenMP loops
 * here, through the hint libvips reads from the image it starts a pool for:
 * set on a copy, so that v's own fields stay as they are. */
static VipsImage *on_all_cores(VipsImage *v)
{
	VipsImage *t;

	if (vips_copy(v, &t, NULL))
		return NULL;
	vips_image_set_int(t, VIPS_META_CONCURRENCY, VIPS_CLIP(1, omp_get_max_threads(), 99));
	return t;
}

static void free_pixels(VipsImage *im, void *px)
{
	(void)im;
	free(px);
}

VipsImage *img_new_big(int w, int h, int bands, VipsBandFormat fmt)
{
	size_t n = (size_t)w * (size_t)h * (size_t)bands * vips_format_sizeof(fmt);
	void *px = util_alloc_big(n);
	VipsImage *im;

	if (!px) {
		vips_error("petcut", "out of memory");
		return NULL;
	}
	im = vips_image_new_from_memory(px, n, w, h, bands, fmt);
	if (!im) {
		free(px);
		return NULL;
	}
	g_signal_connect(im, "postclose", G_CALLBACK(free_pixels), px);
	return im;
}

int img_write_big(VipsImage *v, VipsImage **out)
{
	if (!(*out = img_new_big(v->Xsize, v->Ysize, v->Bands, v->BandFmt)))
		return -1;
	if (vips_image_write(v, *out)) {
		VIPS_UNREF(*out);
		return -1;
	}
	return 0;
}

VipsImage *img_memory(VipsImage *v)
{
	VipsImage *t, *mem;

	if (v->data) { /* in memory already */
		g_object_ref(v);
		return v;
	}
	if (!(t = on_all_cores(v)))
		return NULL;
	if (img_write_big(t, &mem))
		mem = NULL;
	g_object_unref(t);
	if (mem) /* the copy's pixels are made: its later pipelines choose again */
		vips_image_remove(mem, VIPS_META_CONCURRENCY);
	return mem;
}

void *img_memory_bytes(VipsImage *v, size_t *len)
{
	VipsImage *t = on_all_cores(v);
	void *px;

	if (!t)
		return NULL;
	px = vips_image_write_to_memory(t, len);
	g_object_unref(t);
	return px;
}

img_status img_adopt(VipsImage *v, const char *what, struct img **out)
{
	struct img *im = calloc(1, sizeof *im);

	if (!im)
		return img_fail(IMG_ERR_NOMEM, "out of memory");
	im->pix = img_memory(v);
	if (!im->pix) {
		free(im);
		return img_fail_vips(IMG_ERR_VIPS, what);
	}
	*out = im;
	return IMG_OK;
}

/* ===== Start-up ===== */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static img_status init_status = IMG_ERR_VIPS;

static void log_drop(const char *domain, GLogLevelFlags level, const char *msg, void *user)
{
	(void)domain, (void)level, (void)msg, (void)user;
}

/* libvips loads its modules as it starts (HEIF, JPEG XL, PDF, ImageMagick,
 * OpenSlide, and what they link): some 30 ms of dynamic linking and 10 MB of
 * libraries in every process, for formats petcut reads rarely (HEIF: HEIC
 * and AVIF) or never. It is started without them, VIPSHOME naming no folder
 * while it starts, and the HEIF module is loaded from the folder libvips
 * was built for when a HEIF file or an AVIF output first needs it
 * (img_need_heif). */
#define NO_MODULES "/nonexistent/petcut-vips-home"

static void init_vips(void)
{
	const char *was = getenv("VIPSHOME");
	char *keep = was ? strdup(was) : NULL;
	int failed;

	if (was && !keep)
		return;
	setenv("VIPSHOME", NO_MODULES, 1);
	failed = VIPS_INIT("petcut");
	if (keep)
		setenv("VIPSHOME", keep, 1);
	else
		unsetenv("VIPSHOME");
	free(keep);
	if (failed)
		return;
	/* The library never prints: damaged input is reported through
	 * img_errmsg, and libvips would otherwise warn on stderr as well. */
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE, log_drop, NULL);
	/* Each photo is processed once, so cached operations would only pin
	 * memory between requests. */
	vips_cache_set_max(0);
	/* One thread per libvips pipeline. Its worker threads can lose a
	 * loader's read error (a truncated PNG then decodes, rarely, padded
	 * with black), and petcut's parallelism is across requests and in the
	 * network's oneDNN threads, which libvips' own pool would only contend
	 * with. */
	vips_concurrency_set(1);
	/* Uploads are untrusted: keep libvips' less hardened loaders out even
	 * though the allow-list below would refuse them anyway. */
	vips_block_untrusted_set(TRUE);
	init_status = IMG_OK;
}

static pthread_once_t heif_once = PTHREAD_ONCE_INIT;

static void load_heif(void)
{
	char path[4096];
	GModule *m;

	snprintf(path, sizeof path, "%s/vips-modules-%d.%d/vips-heif.%s", PETCUT_VIPS_LIBDIR, VIPS_MAJOR_VERSION,
		 VIPS_MINOR_VERSION, G_MODULE_SUFFIX);
	/* its g_module_check_init registers the loader and saver; a libvips
	 * built with HEIF inside has no such file, and needs none */
	if ((m = g_module_open(path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL)))
		g_module_make_resident(m);
}

void img_need_heif(void)
{
	pthread_once(&heif_once, load_heif);
}

img_status img_init(void)
{
	pthread_once(&init_once, init_vips);
	if (init_status != IMG_OK)
		return img_fail(init_status, "cannot start libvips");
	return IMG_OK;
}

/* ===== Images ===== */

void img_free(struct img *im)
{
	if (!im)
		return;
	VIPS_UNREF(im->pix);
	free(im);
}

int img_width(const struct img *im)
{
	return im->pix->Xsize;
}

int img_height(const struct img *im)
{
	return im->pix->Ysize;
}

int img_bands(const struct img *im)
{
	return im->pix->Bands;
}

