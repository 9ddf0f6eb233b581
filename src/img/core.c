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

#include <vips/vips.h>

#include "img/img_int.h"

/* ===== Errors ===== */

static _Thread_local char errbuf[512];

const char *img_errmsg(void)
{
	return errbuf;
}

const char *img_strerror(img_status st)
{
	switch (st) {
	case IMG_OK: return "ok";
	case IMG_ERR_NOMEM: return "out of memory";
	case IMG_ERR_IO: return "i/o error";
	case IMG_ERR_NOT_IMAGE: return "not an image";
	case IMG_ERR_CORRUPT: return "truncated or damaged image";
	case IMG_ERR_UNSUPPORTED: return "unsupported image";
	case IMG_ERR_ARG: return "bad argument";
	case IMG_ERR_VIPS: return "image processing failed";
	case IMG_ERR_TOO_LARGE: return "image too large";
	}
	return "unknown error";
}

img_status img_fail(img_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
	return st;
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

/* ===== Start-up ===== */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static img_status init_status = IMG_ERR_VIPS;

static void log_drop(const char *domain, GLogLevelFlags level, const char *msg, void *user)
{
	(void)domain, (void)level, (void)msg, (void)user;
}

static void init_vips(void)
{
	if (VIPS_INIT("petcut"))
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

