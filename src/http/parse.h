/*
 * parse.h - the parsers of what clients send to the http routes, apart from
 * what the routes then do with it: each reads JSON or header text, checks it
 * against the bounds written here and fills a struct, without touching the
 * store, the network, the model or the metrics. The routes call them first;
 * the fuzz targets (fuzz/NAME_fuzzer.c) call them alone.
 *
 * Strings a result points at are borrowed from the input (its JSON or its
 * header values) and live as long as it does. Errors are an HTTP status with
 * a message in why (always NUL-terminated); successes are 0.
 */
#ifndef PETCUT_HTTP_PARSE_H
#define PETCUT_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "img/img.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

/* ===== remove.c: the body of POST /v1/remove-background ===== */

#define VIEW_MIN_SIDE 16	 /* max: the longer side of a result sized for a screen */
#define VIEW_MAX_SIDE 4096

enum remove_source {
	REMOVE_SOURCE_ID,     /* image_id, or an image_url of this store (/v1/images/ID) */
	REMOVE_SOURCE_URL,    /* an image_url of another host: fetched, where allowed */
	REMOVE_SOURCE_BASE64, /* image: the bytes in base64, or a data: URL */
};


struct remove_params {
	enum remove_source source;
	const char *source_text;	  /* _URL: the URL; _BASE64: the text */
	char image_id[STORE_KEY_LEN + 1]; /* _ID: a valid key; the others: "" until stored */
	struct pipe_request req;	  /* the removal (pipeline.h); render.bg_image stays
					     NULL: the route loads bg_image_id */
	char bg_image_id[STORE_KEY_LEN + 1]; /* req.render.bg == IMG_BG_IMAGE: a valid key, or
						"" while bg_url is to be fetched */
	const char *bg_url;		  /* a background image at another host's URL (http or
					     https): fetched where allowed (NULL: none) */
	char canonical[768];		  /* every parameter, in one order: the cache key's */
	/* images: a group portrait of these stored images (req.group_n of them;
	   image_id is the first's) */
	char group_ids[IMG_GROUP_MAX][STORE_KEY_LEN + 1];
	int view_max;			  /* max: an image answer is sized for a screen, this
					     many pixels at most on its longer side; 0 = the
					     result itself (not part of the result's key) */
	/* the route's own, for batch requests (not set by parsing) */
	struct pipe_gate *gate;
	int *passed;
	int background; /* nobody waits for it (a precompute): its pass goes after the others */
};

/*
 * Reads the JSON object of a removal: its source (image_id, image_url or
 * image) and max here, every other field through the pipeline's validators
 * (pipe_set_json, then pipe_check and pipe_check_format), as the CLI's
 * options are. Returns 0 with p filled, or 400 with why set. A success has
 * exactly one source; req within the pipeline's bounds (side 512 by
 * default); a background that is an image has a valid bg_image_id, or a
 * bg_url of another host (its canonical text is made again once fetched);
 * canonical is whole (never cut short); view_max is 0 or VIEW_MIN_SIDE to
 * VIEW_MAX_SIDE.
 */
int http_remove_parse(json_t *body, struct remove_params *p, char *why, size_t wl);

/*
 * Adds one query parameter of a removal whose body is the image itself
 * (POST /v1/remove-background?size=preview&max=800 with Content-Type
 * image/...) to body, the JSON object http_remove_parse then reads: the
 * fields that are booleans there (crop, lossy, mask) take true, false, 1 or
 * 0, those that are integers (outline, quality, max) decimal digits, the
 * others the text as it is. Returns 0; 400 with why set when the key names
 * the image (image, image_id, image_url: the body is the image), is given
 * twice, or its value does not fit the field's type. Unknown keys are added
 * as text, for http_remove_parse to refuse.
 */
int http_remove_query_field(json_t *body, const char *key, const char *value, char *why, size_t wl);

/* Decodes standard base64 (or the part of a data: URL after its comma) into
 * a malloc'd buffer of *len bytes, at most 3/4 of the text's length. 0, or
 * -1 when the text is empty or not base64 (nothing to free then). */
int http_base64_decode(const char *text, unsigned char **out, size_t *len);

/* ===== removebg.c: the form of POST /v1.0/removebg ===== */

#define FORM_MAX_FIELD (64u << 20) /* bytes of one text field: a base64 image fits */
#define FORM_MAX_FIELDS 32	   /* text fields of one form */

/*
 * Adds a piece of a form's text field: the piece at off 0 starts the value
 * (a field named again replaces the earlier one), the next ones extend it.
 * The value is kept as the bytes sent. Returns 0; 400 when the name is not
 * UTF-8 or the piece holds a NUL byte (not text); 413 when the value would
 * pass FORM_MAX_FIELD bytes or the form FORM_MAX_FIELDS fields; 503 out of
 * memory. form is the caller's JSON object, read with http_form_value.
 */
int http_form_add(json_t *form, const char *key, const char *data, uint64_t off, size_t size, char *why,
		  size_t wl);

/* The value of a form's field, whole (its bytes as sent, not checked as
 * UTF-8), or NULL when the form has none; it lives as long as the form. */
const char *http_form_value(json_t *form, const char *key);

/*
 * The remove-background body (for http_remove_parse) that a remove.bg form
 * asks for: form holds its text fields, files the uploaded files' JSON
 * (each with its "id" and the "field" it came in: image_file, or
 * bg_image_file for the background). Every field is one of remove.bg's;
 * those that ask for what petcut does not do (a type other than auto, a
 * scale, a region of interest...) are refused naming the field, never
 * ignored. Returns the body (the caller's), or NULL with *code and why set
 * (all 400). The body holds exactly one source and only strings and
 * booleans of the fields remove-background reads, each value as the form
 * gave it (the colour with '#' before hex, the margin without "px").
 */
json_t *http_removebg_body(json_t *form, json_t *files, const char **code, char *why, size_t wl);

/* ===== tus.c: the headers of resumable uploads ===== */

#define TUS_VERSION "1.0.0"
#define TUS_ID_LEN 32		/* 16 random bytes in hex */
#define TUS_MAX_METADATA 4096	/* Upload-Metadata, bytes */

/* The header values of a tus request (NULL where absent). */
struct tus_headers {
	const char *resumable;	    /* Tus-Resumable */
	const char *length;	    /* Upload-Length */
	const char *defer_length;   /* Upload-Defer-Length */
	const char *offset;	    /* Upload-Offset */
	const char *metadata;	    /* Upload-Metadata */
	const char *checksum;	    /* Upload-Checksum */
	const char *content_type;   /* Content-Type */
	const char *content_length; /* Content-Length */
};

/* What they say, once checked. */
struct tus_parsed {
	uint64_t length;	 /* creation: Upload-Length, 1 to max_bytes */
	uint64_t offset;	 /* PATCH: Upload-Offset */
	int has_content_length;	 /* PATCH: Content-Length given, in content_length */
	uint64_t content_length;
	int has_checksum;	 /* PATCH: Upload-Checksum given, its SHA-256 in want */
	unsigned char want[32];
};

/* An upload id: TUS_ID_LEN lowercase hex characters. */
int http_tus_id_valid(const char *id);
/* Tus-Resumable names the version petcut speaks. */
int http_tus_version_ok(const char *v);
/* A decimal integer of 1 to 19 digits, nothing else (no sign, spaces or
 * junk): 0 with *out set, or -1. */
int http_tus_parse_u64(const char *v, uint64_t *out);
/* Upload-Metadata: comma-separated "key" or "key value" pairs, keys of
 * visible ASCII without ',', values in base64, TUS_MAX_METADATA bytes at
 * most. */
int http_tus_metadata_valid(const char *m);
/* Upload-Checksum "sha256 BASE64" (the digest's base64, exactly) into out:
 * 1, 0 when v is NULL, -1 malformed, -2 another algorithm. */
int http_tus_parse_checksum(const char *v, unsigned char out[32]);

/* A SHA-256 digest from exactly its base64 encoding (len 44 characters, the
 * last '='), as in Content-Digest and Upload-Checksum: 0, or -1 for any
 * other text, even one that would decode. */
int http_digest_from_b64(const char *b64, size_t len, unsigned char out[32]);

/* The headers of a creation (POST /v1/uploads): 0 with out->length set, or
 * 400 or 413 with *code and why set. */
int http_tus_check_creation(const struct tus_headers *h, uint64_t max_bytes, struct tus_parsed *out,
			    const char **code, char *why, size_t wl);
/* The headers of a PATCH, checked before its upload is looked at: 0 with
 * out's PATCH fields set, or 415 or 400 with *code and why set. */
int http_tus_check_patch(const struct tus_headers *h, struct tus_parsed *out, const char **code, char *why,
			 size_t wl);

/* ===== client_metrics.c: the reports of POST /v1/client-metrics ===== */

#define CLIENT_MAX_DURATION_MS 3600000.0 /* an hour */
#define CLIENT_MAX_BYTES_SENT 10000000000.0
#define CLIENT_MAX_TRIES 100

enum client_report_kind {
	CLIENT_REPORT_UPLOAD, /* "kind":"upload" (the default): one upload's outcome */
	CLIENT_REPORT_WAIT,   /* "kind":"wait": what the customer waited, pick to result on screen */
};

struct client_report {
	enum client_report_kind kind;
	/* _WAIT: pick to preview and pick to full result on screen, in ms,
	 * each 0 to CLIENT_MAX_DURATION_MS or -1 when not measured (at least
	 * one is); the upload fields below are then unset (NULL, 0) */
	double preview_ms, full_ms;
	const char *outcome; /* success, failure or cancelled */
	const char *network; /* slow-2g, 2g, 3g, 4g or unknown */
	const char *device;  /* phone, tablet, desktop or unknown */
	double bytes;	     /* a whole number, 0 to CLIENT_MAX_BYTES_SENT */
	double duration_ms;  /* 0 to CLIENT_MAX_DURATION_MS */
	int tries;	     /* 1 to CLIENT_MAX_TRIES */
	int resumable;
};

/* Reads a report (a JSON object): 0 with out filled, or 400 with why set.
 * An upload report has outcome, bytes and duration_ms (tries, resumable);
 * a wait report ("kind":"wait") preview_ms, full_ms or both; both have
 * network and device (default unknown), from their closed sets. */
int http_client_report_parse(json_t *j, struct client_report *out, char *why, size_t wl);

#endif
