/*
 * img.h - petcut's image module: turn an uploaded photo into what the network
 * needs, and the network's mask back into a picture.
 *
 * A photo is decoded once, whole, into memory: its format is recognised from
 * its bytes (never its name) among the formats phones and browsers produce
 * (JPEG, PNG, WebP, TIFF, GIF, HEIC, AVIF); EXIF orientation is applied, so
 * every later step works on the upright picture; colour is converted to
 * 8-bit sRGB and an alpha channel, if any, is kept; EXIF, XMP and IPTC are
 * dropped (outputs are published) while the ICC profile stays. Truncated or
 * damaged data is an error, never a picture padded with grey. From a decoded
 * image the module writes the network's input tensor, composes the cut-out
 * (the photo with the mask as alpha, or the mask alone) at the photo's own
 * size, and encodes it as PNG or lossless WebP, replacing the destination
 * atomically.
 *
 * Conventions:
 *  - Functions that can fail return an img_status; IMG_OK is 0, errors are
 *    negative. The message of the last failure on the calling thread, one
 *    line, is returned by img_errmsg(). The module never prints and never
 *    exits; libvips warnings are silenced once img_init() has run.
 *  - img_init() must succeed before any other call. A struct img is
 *    immutable once made, so one may be read by several threads at once.
 */
#ifndef PETCUT_IMG_H
#define PETCUT_IMG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
typedef enum img_status {
	IMG_OK = 0,
	IMG_ERR_NOMEM = -1,	  /* allocation failed */
	IMG_ERR_IO = -2,	  /* a file could not be opened, read or written */
	IMG_ERR_NOT_IMAGE = -3,	  /* the bytes are not an image at all */
	IMG_ERR_CORRUPT = -4,	  /* an image, but truncated or damaged */
	IMG_ERR_UNSUPPORTED = -5, /* an image in a format, or of a size, petcut does not take */
	IMG_ERR_ARG = -6,	  /* a bad argument from the caller */
	IMG_ERR_VIPS = -7,	  /* libvips failed while processing a valid image */
} img_status;

/* Encodings img_save can write. */
enum img_format {
	IMG_FORMAT_PNG,
	IMG_FORMAT_WEBP, /* always lossless, so the alpha edge is kept exactly */
};

/* What img_cutout makes from a photo and its mask. */
enum img_cut {
	IMG_CUT_RGBA, /* the photo's colours with the mask as alpha */
	IMG_CUT_MASK, /* the mask alone, one 8-bit grey band */
};

/* Images with more pixels than this are refused as unsupported before their
 * pixels are decoded, so a small file cannot claim gigabytes of memory. */
#define IMG_MAX_PIXELS 200000000LL

/* A decoded image (opaque). */
struct img;

/* Starts libvips for the process; safe to call more than once and from
 * several threads. Returns IMG_ERR_VIPS if libvips cannot start. */
img_status img_init(void);

/* Message of the last failed img_* call on this thread ("" if none). */
const char *img_errmsg(void);

/* Short description of a status code. */
const char *img_strerror(img_status st);

/* Decodes a photo from a file or from memory (the buffer is not kept). On
 * success *out owns the upright 8-bit sRGB image (3 bands, or 4 when the
 * photo has alpha); free it with img_free. */
img_status img_load_file(const char *path, struct img **out);
img_status img_load_buffer(const void *buf, size_t len, struct img **out);
void img_free(struct img *im);

/* Size of an image as stored: upright for decoded photos. */
int img_width(const struct img *im);
int img_height(const struct img *im);
int img_bands(const struct img *im);

/* Writes the network input for one image into dst: h * w * 3 floats, planar
 * R, G, B, each value v / 255 - 0.5. The image is resized to exactly h x w
 * (aspect not kept, linear filter) after any alpha is flattened over white, so
 * N images written one after the other form a contiguous NCHW batch. */
img_status img_to_tensor(const struct img *im, int h, int w, float *dst);

/* Makes a cut-out from a photo and its mask: mask is mh x mw floats in 0..1
 * (the network's output for this photo), scaled back to the photo's size with
 * a linear filter. A photo that had alpha keeps it: the result's alpha is the
 * product of both. The mask is only read during the call. On success *out owns
 * the result (4 bands for IMG_CUT_RGBA, 1 for IMG_CUT_MASK). */
img_status img_cutout(const struct img *im, const float *mask, int mh, int mw,
		      enum img_cut kind, struct img **out);

/* Encodes an image to path. The bytes go to a temporary file in the same
 * directory, which is renamed over path only once complete and synced; on
 * any failure it is removed, so path holds either its old content or the
 * whole new file, never a partial one. */
img_status img_save(const struct img *im, const char *path, enum img_format fmt);

/* Parses a format name ("png", "webp", any case) into *fmt. Returns 0, or -1
 * if the name is not one img_save writes. */
int img_format_parse(const char *name, enum img_format *fmt);

/* The file extension of a format, without the dot ("png", "webp"). */
const char *img_format_ext(enum img_format fmt);

#ifdef __cplusplus
}
#endif
#endif
