/*
 * img.h - petcut's image module: turn an uploaded photo into what the network
 * needs, and the network's mask back into a picture.
 *
 * A photo is decoded once, whole, into memory: its format is recognised from
 * its bytes (never its name) among the formats phones and browsers produce
 * (JPEG, PNG, WebP, TIFF, GIF, HEIC, AVIF); EXIF orientation is applied, so
 * every later step works on the upright picture; pixels become 8-bit RGB
 * in the photo's own colour space, whose ICC profile stays (CMYK, grey,
 * Lab and the like are converted to sRGB), and an alpha channel, if any, is
 * kept; EXIF stays with its orientation reset and without GPS, XMP and IPTC
 * are dropped (outputs are published). The pixel limit is checked from the
 * header, before any pixel is decoded. Truncated or damaged data is an
 * error, never a picture padded with grey. From a decoded
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
	IMG_ERR_UNSUPPORTED = -5, /* an image in a format petcut does not take */
	IMG_ERR_ARG = -6,	  /* a bad argument from the caller */
	IMG_ERR_VIPS = -7,	  /* libvips failed while processing a valid image */
	IMG_ERR_TOO_LARGE = -8,	  /* more pixels than the caller's limit (known from the header) */
} img_status;

/* Encodings img_save can write. */
enum img_format {
	IMG_FORMAT_PNG,
	IMG_FORMAT_WEBP, /* lossless unless img_save_opts.lossless is false */
	IMG_FORMAT_JPEG, /* no alpha: the image must be opaque (a background) */
	IMG_FORMAT_AVIF, /* where libvips can write it */
	IMG_FORMAT_ZIP,	 /* two files in a zip (remove.bg's layout): color.jpg, the colours
			    (opaque), and alpha.png, the alpha (grey); for large prints, far
			    smaller than a PNG. Not for a one-band image (the mask) */
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

/* Starts libvips for the process; safe to call more than once. The first
 * call sets VIPSHOME for the while libvips starts (it then loads none of
 * its modules, core.c says why): make it before the process starts other
 * threads, which might read the environment meanwhile. Returns
 * IMG_ERR_VIPS if libvips cannot start. */
img_status img_init(void);

/* Loads libvips' HEIF module (HEIC and AVIF) once, if not yet: the module
 * img_init leaves out. Decoding a HEIF file or encoding AVIF does it when
 * first needed; a server calls it at start, so that no request pays for it
 * beside others in progress. */
void img_need_heif(void);

/* Message of the last failed img_* call on this thread ("" if none). */
const char *img_errmsg(void);

/* Short description of a status code. */
const char *img_strerror(img_status st);

/* Decodes a photo from a file or from memory (the buffer is not kept), with
 * the default options (see img_load_file_opts). On success *out owns the
 * upright 8-bit RGB image (3 bands, or 4 when the photo has alpha); free it
 * with img_free. */
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

/* Parses a format name or extension ("png", "webp", "jpg", "jpeg", "avif",
 * any case) into *fmt. Returns 0, or -1 if the name is not one img_save
 * writes. */
int img_format_parse(const char *name, enum img_format *fmt);

/* The file extension of a format, without the dot ("png", "webp", "jpg",
 * "avif"). */
const char *img_format_ext(enum img_format fmt);

/* Whether this build can write fmt (AVIF needs libheif with an AV1
 * encoder); 1 or 0. */
int img_format_writable(enum img_format fmt);

/* =====================================================================
 * The full pipeline (issue: image pipeline). Sections are implemented in
 * the file named in their banner.
 * ===================================================================== */

/* ===== Probing and decoding options (decode.c) ===== */

/* Formats read, recognised from the bytes only. */
enum img_type {
	IMG_TYPE_JPEG,
	IMG_TYPE_PNG,
	IMG_TYPE_WEBP,
	IMG_TYPE_HEIC, /* HEIF with HEVC, what iPhones write */
	IMG_TYPE_AVIF,
	IMG_TYPE_TIFF,
	IMG_TYPE_GIF, /* the first frame */
};

/* Default pixel limit, checked from the header before any pixel is decoded. */
#define IMG_DEFAULT_MAX_PIXELS 50000000LL

struct img_load_opts {
	long long max_pixels; /* 0: IMG_DEFAULT_MAX_PIXELS */
	int keep_gps;	      /* keep EXIF GPS tags (dropped by default) */
};

/* What the header says, without decoding pixels. width and height are those
 * of the upright picture (EXIF orientation applied). */
struct img_info {
	enum img_type type;
	int width, height;
	int orientation; /* EXIF orientation, 1..8 (1 when absent) */
	int has_alpha;
	int has_icc;
};

/* Reads the header of an image in memory: format (from the bytes), size,
 * orientation; refuses sizes over the limit (IMG_ERR_UNSUPPORTED) without
 * decoding. o may be NULL (defaults). */
img_status img_probe(const void *buf, size_t len, const struct img_load_opts *o, struct img_info *out);

/* Like img_load_file/img_load_buffer, with options (NULL: defaults). The image
 * keeps the photo's own colour space and ICC profile (converted to sRGB only
 * when it is not RGB, e.g. CMYK or grey), 8 bits per band, 3 bands or 4 with
 * alpha; EXIF is kept with the orientation reset to 1 and GPS removed unless
 * keep_gps. */
img_status img_load_file_opts(const char *path, const struct img_load_opts *o, struct img **out);
img_status img_load_buffer_opts(const void *buf, size_t len, const struct img_load_opts *o, struct img **out);

/* Display name of a type ("JPEG", "HEIC", ...) and its usual MIME type. */
const char *img_type_name(enum img_type t);
const char *img_type_mime(enum img_type t);

/* A web-displayable copy at most max_side pixels on its longer side (never
 * enlarged), in sRGB; for thumbnails of uploads (HEIC included). The
 * thumbnail keeps the alpha, if any, and no metadata: its pixels are sRGB
 * and untagged, which is how browsers read an image without a profile. On
 * success *out owns it; IMG_ERR_ARG for max_side <= 0. */
img_status img_thumbnail(const struct img *im, int max_side, struct img **out);

/* An opaque copy of im (3 bands): its alpha, if any, composed over the
 * colour rgb; an opaque image is copied as it is. Metadata is kept. */
img_status img_flatten(const struct img *im, const unsigned char rgb[3], struct img **out);

/* ===== Mask to full resolution (refine.c) ===== */

enum img_refine {
	IMG_REFINE_NONE,    /* bilinear upscale */
	IMG_REFINE_GUIDED,  /* edge-aware: guided by the photo */
	IMG_REFINE_MATTING, /* fine edges: the edge's alpha solved from the photo (matting) */
};

/* What an IMG_REFINE_MATTING run did (struct img_refine_opts.matting). */
struct img_matting_info {
	int width, height; /* the grid the alpha was solved on (the photo, or it scaled down) */
	long unknown;	   /* pixels of that grid in the unknown band */
	int tiles;	   /* tiles of the grid held in memory for the solve */
	int iterations;	   /* conjugate gradient steps */
	double residual;   /* the residual at the end over the one at the start */
};

/* Tuning of IMG_REFINE_GUIDED; a zero field takes the default, measured on
 * real photos (BENCHMARKS.md, "Mask refinement"). */
struct img_refine_opts {
	int radius; /* window radius, in pixels of the mask (default 1) */
	double eps; /* regulariser; colours are in 0..1 (default 1e-4) */
	int clamp;  /* the alpha stays within the mask's range over this radius,
		       in pixels of the mask (default 1); -1: no clamp */
	int guide;  /* bands of the guide: 1 luminance, 3 colour (default 3) */
	struct img_matting_info *matting; /* IMG_REFINE_MATTING: where not NULL, receives what
					     the solve did (zeroed when there was nothing to solve) */
};

/* Scales the network's mask (mh x mw floats in 0..1, covering the whole
 * photo whatever its aspect) to the photo's size and returns it as one 8-bit
 * band (the alpha, interpretation B_W), multiplied by the photo's own alpha
 * if it has one. IMG_REFINE_NONE interpolates bilinearly (pixel centres
 * aligned); IMG_REFINE_GUIDED runs a fast guided filter at the mask's
 * resolution with the photo's colours as guide and applies it at full
 * resolution, so the alpha's edges follow the photo's. IMG_REFINE_MATTING
 * is IMG_REFINE_NONE's alpha except in a band around the mask's edge
 * (img_matting_trimap), where the alpha is solved from the photo's colours
 * (closed-form matting at up to 2 MP, brought to full resolution by a
 * guided filter): hairs and the gaps between them. The mask is only read
 * during the call. On success *alpha owns the result (free with img_free);
 * IMG_ERR_ARG for a missing photo, mask or out-parameter, a size <= 0 or an
 * unknown refine. */
img_status img_mask_to_alpha(const struct img *photo, const float *mask, int mh, int mw, enum img_refine refine,
			     struct img **alpha);

/* The same with tuning (o may be NULL: the defaults); for benchmarks. */
img_status img_mask_to_alpha_opts(const struct img *photo, const float *mask, int mh, int mw,
				  enum img_refine refine, const struct img_refine_opts *o, struct img **alpha);

/* The trimap of IMG_REFINE_MATTING for this photo and mask, at the photo's
 * size, one 8-bit band: IMG_TRIMAP_UNKNOWN where the alpha is solved (the
 * mask unsure, strictly between 0.05 and 0.95, or on its 0.5 contour,
 * widened by at least 0.4 % of the photo's longer side), elsewhere
 * IMG_TRIMAP_FG where the mask is >= 0.5, else IMG_TRIMAP_BG; there
 * IMG_REFINE_MATTING's alpha is IMG_REFINE_NONE's. Arguments and *trimap as
 * img_mask_to_alpha's. */
#define IMG_TRIMAP_BG 0
#define IMG_TRIMAP_UNKNOWN 128
#define IMG_TRIMAP_FG 255
img_status img_matting_trimap(const struct img *photo, const float *mask, int mh, int mw, struct img **trimap);

/* ===== Rendering outputs (compose.c) ===== */

/* The subject: bounding box of alpha >= 128 (x, y, w, h; all 0 when empty)
 * and the share of the picture's pixels it covers (0..1). */
struct img_subject {
	int x, y, w, h;
	double coverage;
	double scale; /* the subject's size in the output over its size in the photo (> 1: enlarged) */
};

enum img_bg {
	IMG_BG_NONE,  /* transparent */
	IMG_BG_COLOR, /* a solid colour, with its alpha */
	IMG_BG_BLUR,  /* the photo itself, blurred */
	IMG_BG_IMAGE, /* another image, scaled to cover and centred */
};

enum img_effect {
	IMG_EFFECT_NONE,
	IMG_EFFECT_SHADOW,  /* a shadow of the subject (struct img_shadow) */
	IMG_EFFECT_STICKER, /* a white outline of outline_px around the subject */
	IMG_EFFECT_POPART,  /* a 2x2 grid of posterised/duotone copies on bright backgrounds */
};

/* The kinds of shadow. Each is the subject's silhouette (soft and floating:
 * its lowest fifth) moved, squashed or leaned, then blurred and dimmed; none
 * rises above the subject's top. Sizes in percent are of the subject's
 * longer side, so a shadow keeps its look at any size. */
enum img_shadow_kind {
	IMG_SHADOW_DROP,     /* on a wall behind: the silhouette moved by offset at angle (2% at 45 degrees) */
	IMG_SHADOW_SOFT,     /* ambient: a soft pool of shade around the subject's base */
	IMG_SHADOW_HARD,     /* cast on the ground behind: half as tall, leaning by angle (45 degrees) */
	IMG_SHADOW_FLOATING, /* the pool offset below the base (6%): the subject hovers */
};

/* Which of struct img_shadow's values are given (the others: the kind's
 * defaults). */
enum {
	IMG_SHADOW_OPACITY = 1,
	IMG_SHADOW_BLUR = 2,
	IMG_SHADOW_OFFSET = 4,
	IMG_SHADOW_ANGLE = 8,
};

struct img_shadow {
	enum img_shadow_kind kind;
	unsigned given;	    /* IMG_SHADOW_* bits */
	double opacity;	    /* 0..1 */
	double blur;	    /* the Gaussian's sigma: pixels, or percent of the subject's longer side */
	double offset;	    /* drop: how far it moves; floating: the gap under the base; pixels or percent */
	int blur_percent, offset_percent;
	double angle;	    /* degrees from straight down, positive to the right (-85..85): where a
			       drop shadow falls, how a hard one leans */
};

/* The colours of the subject's soft edge (fur, hair), where the photo's
 * pixels mix the subject with the old background. */
enum img_edges {
	IMG_EDGES_AUTO,	 /* CLEAN where something is drawn under the subject, else PHOTO */
	IMG_EDGES_CLEAN, /* the subject's own colour there, estimated (img_foreground) */
	IMG_EDGES_PHOTO, /* the photo's pixels as they are */
};

/* Which canvas edge a subject is put against (canvas layout). */
enum img_snap {
	IMG_SNAP_AUTO,	 /* the edges where the photo cuts the subject off (a dog's body at the bottom) */
	IMG_SNAP_NONE,	 /* none: the alignment alone places it */
	IMG_SNAP_TOP,
	IMG_SNAP_RIGHT,
	IMG_SNAP_BOTTOM,
	IMG_SNAP_LEFT,
};

/* One output to make from a photo and its alpha. Zeroed means: the RGBA
 * cut-out at full size. */
struct img_render {
	enum img_cut kind;	    /* IMG_CUT_MASK: the alpha alone (other fields ignored) */
	enum img_bg bg;		    /* ignored by IMG_EFFECT_POPART, which has its own */
	unsigned char color[4];	    /* IMG_BG_COLOR: RGBA, in sRGB */
	double blur_sigma;	    /* IMG_BG_BLUR: 0 = 2% of the longer side */
	const struct img *bg_image; /* IMG_BG_IMAGE: not kept after the call */
	int crop;		    /* crop to the subject's box (and its outline or shadow) plus the margin */
	double margin;		    /* pixels, or percent of the box's width and height when margin_percent */
	int margin_percent;
	int fit_w, fit_h;	    /* then scale down to within fit_w x fit_h, aspect kept (0: that side free) */
	long fit_pixels;	    /* ... and to at most this many pixels in all (0: no limit) */
	enum img_effect effect;
	int outline_px;		    /* IMG_EFFECT_STICKER: 0 = 1.5% of the shorter side */
	struct img_shadow shadow;   /* IMG_EFFECT_SHADOW */
	enum img_edges edges;
	/* Canvas layout where canvas_w and canvas_h are not 0 (-1: the photo's
	 * own side): the subject's box, with its shadow or outline, scaled to
	 * `scale` (0 < scale <= 1; 0 = 1) of the room the padding leaves,
	 * enlarged where need be, placed at align_x, align_y of the room left
	 * (0: left or top, 1: right or bottom), or against a canvas edge
	 * (snap); the background covers the whole canvas, and a fit then
	 * applies to it. Not with crop or pop art. */
	int canvas_w, canvas_h;
	double scale;
	double align_x, align_y;
	double pad[4];	    /* top, right, bottom, left: pixels, or where pad_percent[i] percent of the
			       canvas's height (top, bottom) or width (right, left) */
	int pad_percent[4];
	enum img_snap snap;
	double dpi;	    /* written into the output (PNG pHYs, JPEG density) where > 0 */
	/* The region of interest: the subject lies within x0, y0 - x1, y1 (pixels,
	 * or where roi_percent[i] percent of the photo's width or height), and
	 * alpha is 0 outside it. roi[2] and roi[3] both 0: the whole photo. */
	double roi[4];
	int roi_percent[4];
};

/* Goes up by one whenever img_render draws different pixels for the same
 * options, so that results cached by an earlier petcut are not served as
 * this one's (part of the server's result keys). 2: shadow kinds, shadows
 * sized by the subject. */
#define IMG_RENDER_REVISION 2

/* Renders one output from a photo and its alpha (one 8-bit band at the
 * photo's size, as img_mask_to_alpha makes). Many outputs can be rendered
 * from one alpha (one inference).
 *
 * Layers, bottom up: the background; the effect's layer (a black shadow,
 * or the alpha dilated by outline_px in white); the cut-out, its soft edge in the subject's estimated colours
 * (edges). Composited in the photo's own colour space: sRGB
 * colours and a background image are converted into it through the
 * profiles, and the result carries the photo's metadata (ICC profile
 * included; none on the one-band mask). The crop box is clamped to the
 * picture; with no subject it is the whole picture. A fit never enlarges.
 * Pop art is four cells of half the (cropped) size each, so the grid keeps
 * about that size; its subject box is the top-left cell's.
 *
 * The result has 4 bands (RGBA; fully transparent pixels have colour 0), or
 * 3 when the background is opaque, or 1 for the mask. On success *out owns
 * it; subject, if not NULL, receives the subject's box in the output's
 * coordinates, the share of the output it covers and its scale.
 * IMG_ERR_ARG for a photo or alpha of the wrong kind or sizes, a missing
 * bg_image, or a padding that leaves no room on the canvas. */
img_status img_render(const struct img *photo, const struct img *alpha, const struct img_render *r,
		      struct img **out, struct img_subject *subject);

/* ===== Group portraits (group.c) ===== */

#define IMG_GROUP_MAX 8

/* How the subjects of a group portrait stand together. Zeroed: side by
 * side, touching, at equal heights. */
struct img_group {
	double overlap;		       /* the share of the narrower of two neighbours' boxes they overlap
					  by, -1 to 0.9 (negative: a gap) */
	double heights[IMG_GROUP_MAX]; /* each subject's height as a share of the tallest's (0 < h <= 1; 0: 1) */
};

/*
 * A group portrait: n (1 to IMG_GROUP_MAX) subjects, each cut out of its
 * photo by its alpha (alphas as img_render's), scaled to one height (or
 * heights[i] of it; none made smaller, unless that height is over a
 * canvas's), standing side by side on
 * one line in the order given, each drawn over the one before where they
 * overlap; then drawn as one subject by img_render with r: the background,
 * one shadow or outline of the whole group, the canvas layout, the fit.
 * Not with the mask alone, crop, pop art, the blurred photo or a roi. The
 * result is in the first photo's colour space. *out as img_render's; group,
 * if not NULL, receives the whole group's box and scale, subjects[i] (n of
 * them, if not NULL) each subject's box in the output, within a pixel.
 * IMG_ERR_ARG also when a photo shows no subject.
 */
img_status img_render_group(const struct img *const *photos, const struct img *const *alphas, int n,
			    const struct img_render *r, const struct img_group *g, struct img **out,
			    struct img_subject *subjects, struct img_subject *group);

/*
 * The subject's own colours: where alpha is between 0 and 1 the photo's
 * pixel is alpha F + (1 - alpha) B, the subject's colour F mixed with the
 * old background's B; this estimates F from the colours of the subject and
 * of the background nearby (blur fusion: local means of each, weighted by
 * alpha, then the pixel's residual given to F; twice, wide then narrow), so
 * that a new background does not show the old one through the fur. Where
 * alpha is 1 the photo is kept exactly; where it is 0, F is what the
 * subject nearby suggests. *fg: RGB at the photo's size and in its colour
 * space, 8-bit, with its metadata. alpha as img_render's.
 */
img_status img_foreground(const struct img *photo, const struct img *alpha, struct img **fg);

/* The subject of a one-band alpha image (see struct img_subject). */
img_status img_subject_of(const struct img *alpha, struct img_subject *out);

/* Parses "#rgb", "#rrggbb", "#rrggbbaa" or a CSS colour name (white black
 * red green lime blue yellow cyan aqua magenta fuchsia gray grey silver
 * orange pink purple brown navy teal transparent; any case) into RGBA.
 * Returns 0, or -1 if it is not a colour. */
int img_color_parse(const char *s, unsigned char rgba[4]);

/* ===== Encoding options (encode.c) ===== */

enum img_color {
	IMG_COLOR_KEEP, /* the photo's own profile, embedded */
	IMG_COLOR_SRGB, /* converted to sRGB through the profile, which is then dropped */
};

struct img_save_opts {
	enum img_format format;
	int quality; /* lossy formats, 1..100; 0 = petcut's default (JPEG 90, WebP 85, AVIF 60) */
	int lossy;   /* WebP: lossy colours (alpha stays lossless) instead of lossless */
	enum img_color color;
	int fast;    /* for a screen, not an archive: the quickest effort (AVIF: 0 instead of 2) */
};

/* Encodes to a file (atomically, as img_save) or to memory (*buf from
 * malloc, free with free()). PNG has the Sub filter, compressed by libdeflate
 * (level 1), with the metadata libvips writes (pHYs, iCCP, eXIf). JPEG holds
 * no alpha: an opaque 4-band image is flattened, a transparent one refused
 * with IMG_ERR_ARG ("JPEG has no transparency: choose a background").
 * IMG_ERR_UNSUPPORTED for a size over the format's limit, or AVIF where
 * libvips has no AV1 encoder; nothing is written on any failure. */
img_status img_save_opts(const struct img *im, const char *path, const struct img_save_opts *o);
img_status img_encode(const struct img *im, const struct img_save_opts *o, void **buf, size_t *len);

/* Writes len bytes (an img_encode result) to path, atomically as img_save:
 * for callers that encode several outputs before writing any. */
img_status img_write_file(const char *path, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
