/*
 * store_int.h - the backend table of the store module. Each backend fills a
 * const struct store_backend in its own file; store.c checks names and keys
 * and does the hashing, so backends see only valid ones.
 */
#ifndef PETCUT_STORE_INT_H
#define PETCUT_STORE_INT_H

#include <openssl/evp.h>

#include "store/store.h"
#include "util/util.h"

/* Multipart uploads (store.h's store_mp_*), for a backend that has them. */
struct store_multipart {
	store_status (*begin)(void *state, const char *ns, const char *key, char id[STORE_MP_ID_MAX]);
	store_status (*part)(void *state, const char *ns, const char *key, const char *id, int n, const void *buf,
			     size_t len, char etag[STORE_MP_ETAG_MAX]);
	store_status (*complete)(void *state, const char *ns, const char *key, const char *id, int n,
				 const char (*etags)[STORE_MP_ETAG_MAX]);
	store_status (*abort)(void *state, const char *ns, const char *key, const char *id);
	store_status (*list)(void *state, const char *ns, void (*fn)(void *arg, const char *key, const char *id),
			     void *arg);
};

struct store_backend {
	const char *name;
	/* spec without the "NAME:" prefix; returns the backend's state */
	store_status (*open)(const char *spec, void **state);
	void (*close)(void *state);
	/* a put: begin returns the backend's handle; write appends; commit
	 * publishes under key (keeping an object already there, *existed = 1)
	 * and frees the handle either way, given the content's SHA-256 (for a
	 * backend whose server checks it); abort drops it */
	store_status (*put_begin)(void *state, const char *ns, void **handle);
	store_status (*put_write)(void *handle, const void *buf, size_t len);
	store_status (*put_commit)(void *handle, const char *key, const unsigned char sha256[32], int *existed);
	void (*put_abort)(void *handle);
	store_status (*get)(void *state, const char *ns, const char *key, void **buf, size_t *len);
	store_status (*get_fd)(void *state, const char *ns, const char *key, int *fd, size_t *len); /* may be NULL */
	store_status (*head)(void *state, const char *ns, const char *key, size_t *len);
	store_status (*del)(void *state, const char *ns, const char *key);
	const struct store_multipart *mp; /* NULL: none */
};

/* The table of the backend whose functions are N_open, N_close, N_put_begin,
 * ... N_del (every one of them, so that none is forgotten), with its
 * multipart uploads MP (or NULL). */
#define STORE_BACKEND_TABLE(N, MP)                                                                      \
	{                                                                                               \
		.name = #N, .open = N##_open, .close = N##_close, .put_begin = N##_put_begin,            \
		.put_write = N##_put_write, .put_commit = N##_put_commit, .put_abort = N##_put_abort,    \
		.get = N##_get, .get_fd = N##_get_fd, .head = N##_head, .del = N##_del, .mp = (MP),      \
	}

extern const struct store_backend store_fs;
extern const struct store_backend store_s3;

/* ===== The memory tier (mem.c) ===== */

struct store_mem;

/* A tier holding at most max_bytes (objects' bytes plus a fixed cost each). */
struct store_mem *store_mem_new(size_t max_bytes);
void store_mem_free(struct store_mem *m);
/* The largest object the tier takes. */
size_t store_mem_max_object(const struct store_mem *m);
/* The object under ns/key with a reference for the caller, or NULL; count
 * says whether the look-up counts as a hit or miss. */
struct store_ref *store_mem_get(struct store_mem *m, const char *ns, const char *key, int count);
/* Keeps a copy of a whole object (nothing when it is too large). */
void store_mem_put(struct store_mem *m, const char *ns, const char *key, const void *data, size_t len);
/* Reads the len bytes of fd (the whole object) into the tier: the entry
 * with a reference for the caller, or NULL (too large, a read failed). */
struct store_ref *store_mem_fill_fd(struct store_mem *m, const char *ns, const char *key, int fd, size_t len);
/* Forgets ns/key (a deletion). */
void store_mem_drop(struct store_mem *m, const char *ns, const char *key);
void store_mem_stats(struct store_mem *m, struct store_memory_stats *out);

/* Records a message for store_errmsg() and returns st. */
extern _Thread_local struct util_err store_err;
#define store_fail(st, ...) ((store_status)util_fail(&store_err, (st), __VA_ARGS__))

#endif
