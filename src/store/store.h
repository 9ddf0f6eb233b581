/*
 * store.h - where uploaded photos and rendered results live: objects named by
 * a namespace and a key, written as streams, read whole or by descriptor.
 *
 * Uploads are content-addressed: a put streams the bytes in while their
 * SHA-256 is computed, and commits them under that hash, so the same photo
 * uploaded twice is stored once. Results are stored under keys the caller
 * computes (a hash of the request). A commit is atomic: an object appears
 * under its real name whole, or not at all; a crash never leaves a partial
 * object behind a real name.
 *
 * Backends are tables of functions (store_int.h) chosen by the spec given to
 * store_open: a folder ("fs:DIR" or a plain path) is the default;
 * "s3://BUCKET[/PREFIX]" is a bucket of any S3-compatible server (objects
 * PREFIX/NS/KEY), set up from the environment when the store opens:
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the keys (required);
 *                         AWS_SESSION_TOKEN too, for temporary ones
 *   AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL    the server, http(s)://HOST[:PORT]
 *                         (default AWS: https://s3.REGION.amazonaws.com)
 *   AWS_REGION or AWS_DEFAULT_REGION           the signing region (us-east-1)
 *   PETCUT_S3_ADDRESSING  path (HOST/BUCKET/..., the default with an
 *                         endpoint) or virtual (BUCKET.HOST/..., the default
 *                         for AWS)
 *   PETCUT_S3_RETRIES     tries after a network error or a 5xx answer (3);
 *                         a 4xx answer is never retried
 *   PETCUT_S3_CONNECT_TIMEOUT_MS, PETCUT_S3_TIMEOUT_MS   limits of one try
 *                         (3000 and 60000); a transfer stalled for 10 s ends
 *   TMPDIR                where puts and get_fd spool bytes (/tmp)
 * A network failure or 5xx answer is STORE_IO, a 404 STORE_NOT_FOUND (the
 * keys need s3:ListBucket for that: without it AWS answers 403).
 *
 * Keys are exactly 64 lowercase hex characters and namespaces 1 to 16 of
 * [a-z0-9_]: anything else is refused (STORE_BAD_KEY) before it reaches a
 * backend, so no request can name a path.
 *
 * Conventions: functions return a store_status (0 ok, negative errors); the
 * message of the last failure on the calling thread is store_errmsg(). A
 * store may be used from several threads at once; a put belongs to one.
 */
#ifndef PETCUT_STORE_H
#define PETCUT_STORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum store_status {
	STORE_OK = 0,
	STORE_NOT_FOUND = -1,	/* no object under that key */
	STORE_IO = -2,		/* the backend failed (disk, network) */
	STORE_BAD_KEY = -3,	/* not a valid key or namespace */
	STORE_NOMEM = -4,
	STORE_MISMATCH = -5,	/* the content does not have the expected SHA-256 */
	STORE_UNSUPPORTED = -6, /* the backend cannot do this (e.g. no descriptor) */
	STORE_TOO_LARGE = -7,	/* over the put's size limit */
	STORE_NO_SPACE = -8,	/* the backend is out of space (disk full, quota) */
} store_status;

#define STORE_KEY_LEN 64

struct store;
struct store_put;

const char *store_errmsg(void);
const char *store_strerror(store_status st);

/* True if key is 64 lowercase hex characters. */
int store_key_valid(const char *key);

/* The key of len bytes: their SHA-256 in lowercase hex. Content is stored
 * under this key, and derived objects under the key of a text naming what
 * they derive from. */
void store_key_of(const void *data, size_t len, char key[STORE_KEY_LEN + 1]);

/* Opens a store: "fs:DIR" or a folder path (created if missing; the
 * temporary files of puts whose process died are removed), or
 * "s3://BUCKET[/PREFIX]" (no request is made yet). */
store_status store_open(const char *spec, struct store **out);
void store_close(struct store *s);

/* The backend's name ("fs" or "s3"). */
const char *store_backend_name(const struct store *s);

/* Starts writing an object into namespace ns; max_bytes (0: no limit) makes
 * store_put_write fail with STORE_TOO_LARGE past it. */
store_status store_put_begin(struct store *s, const char *ns, size_t max_bytes, struct store_put **out);

/* Appends bytes; the SHA-256 is updated as they pass. */
store_status store_put_write(struct store_put *p, const void *buf, size_t len);

/* The SHA-256 so far, as 64 hex characters plus NUL (the final one once all
 * bytes are written). */
void store_put_sha256(const struct store_put *p, char hex[STORE_KEY_LEN + 1]);
size_t store_put_size(const struct store_put *p);

/* Commits and frees the put. key NULL means the content's SHA-256; expect,
 * if not NULL, is the SHA-256 the content must have (else STORE_MISMATCH and
 * nothing is stored). out_key (may be NULL) receives the key; *existed (may
 * be NULL) is set when an object was already there (it is kept). */
store_status store_put_commit(struct store_put *p, const char *key, const char *expect,
			      char out_key[STORE_KEY_LEN + 1], int *existed);

/* Drops a put: nothing is stored. */
void store_put_abort(struct store_put *p);

/* Stores a whole buffer under key (NULL: its SHA-256). */
store_status store_put_buffer(struct store *s, const char *ns, const char *key, const void *buf, size_t len,
			      char out_key[STORE_KEY_LEN + 1], int *existed);

/* Reads a whole object into a malloc'd buffer (free it). */
store_status store_get(struct store *s, const char *ns, const char *key, void **buf, size_t *len);

/* Opens an object for reading as a file descriptor (the caller closes it);
 * STORE_UNSUPPORTED where the backend has none. */
store_status store_get_fd(struct store *s, const char *ns, const char *key, int *fd, size_t *len);

/* ===== Multipart uploads =====
 *
 * An object ns/key assembled from numbered parts sent at different times,
 * possibly by different processes, for a backend that has them (s3; the
 * others answer STORE_UNSUPPORTED). store_mp_begin names an upload (an id of
 * the backend's, at most STORE_MP_ID_MAX - 1 characters); each part 1 to
 * 10000 is sent whole, all but the last at least 5 MiB, and named by the
 * ETag its store_mp_part returns; store_mp_complete makes the object from
 * parts 1..n at once (an object already under the name is replaced: give
 * an upload a name of its own, then move what it made); store_mp_abort drops
 * the parts. store_mp_list calls fn for each upload begun in ns and not yet
 * completed or aborted (to find abandoned ones); STORE_UNSUPPORTED where the
 * server cannot list (or abort) them. Neither the memory tier nor the
 * content hashing of puts sees these objects. */

#define STORE_MP_ID_MAX 256
#define STORE_MP_ETAG_MAX 80
#define STORE_MP_MIN_PART (5u << 20)

store_status store_mp_begin(struct store *s, const char *ns, const char *key, char id[STORE_MP_ID_MAX]);
store_status store_mp_part(struct store *s, const char *ns, const char *key, const char *id, int n, const void *buf,
			   size_t len, char etag[STORE_MP_ETAG_MAX]);
store_status store_mp_complete(struct store *s, const char *ns, const char *key, const char *id, int n,
			       const char (*etags)[STORE_MP_ETAG_MAX]);
store_status store_mp_abort(struct store *s, const char *ns, const char *key, const char *id);
store_status store_mp_list(struct store *s, const char *ns, void (*fn)(void *arg, const char *key, const char *id),
			   void *arg);

/* ===== The memory tier =====
 *
 * An optional bounded LRU of whole objects in this process, in front of the
 * backend: filled when a put commits and when an object is read, emptied
 * from the least recently used end. Objects never change under their names,
 * so what it holds is never stale; only whole objects enter it, and an
 * object over a sixteenth of the limit never does. With it, store_get,
 * store_head and store_get_body answer from memory when they can. */

struct store_memory_stats {
	size_t max_bytes;	     /* the limit */
	size_t bytes;		     /* held now: objects' bytes plus a fixed cost each */
	size_t objects;		     /* objects held now */
	unsigned long long hits;     /* reads answered from memory */
	unsigned long long misses;   /* reads that went to the backend */
	unsigned long long evictions; /* objects dropped to make room */
};

/* Puts a memory tier of max_bytes in front of the backend (0: none, the
 * default). Call before the store is shared between threads. */
store_status store_set_memory(struct store *s, size_t max_bytes);

/* The tier's figures; 0 when there is a tier, -1 when not. */
int store_memory_stats(struct store *s, struct store_memory_stats *out);

/* An object held in memory, shared: its bytes stay valid until
 * store_ref_release (from any thread). */
struct store_ref;
const void *store_ref_bytes(const struct store_ref *ref, size_t *len);
void store_ref_release(struct store_ref *ref);

/* An object opened to be sent: either its bytes in memory (ref set: read
 * them with store_ref_bytes, then release ref) or a file descriptor (ref
 * NULL, fd >= 0: the caller closes it); len is its size either way. */
struct store_body {
	struct store_ref *ref;
	int fd;
	size_t len;
};
store_status store_get_body(struct store *s, const char *ns, const char *key, struct store_body *out);

/* Size of an object, or STORE_NOT_FOUND. */
store_status store_head(struct store *s, const char *ns, const char *key, size_t *len);

store_status store_delete(struct store *s, const char *ns, const char *key);

#ifdef __cplusplus
}
#endif
#endif
