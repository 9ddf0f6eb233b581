/*
 * store_int.h - the backend table of the store module. Each backend fills a
 * const struct store_backend in its own file; store.c checks names and keys
 * and does the hashing, so backends see only valid ones.
 */
#ifndef PETCUT_STORE_INT_H
#define PETCUT_STORE_INT_H

#include <openssl/evp.h>

#include "store/store.h"

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
};

extern const struct store_backend store_fs;
extern const struct store_backend store_s3;

/* Records a message for store_errmsg() and returns st. */
store_status store_fail(store_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
