/*
 * tus_int.h - what the two homes of resumable uploads share: tus.c (the
 * protocol, and uploads kept in DATA/uploads/ by one instance) and
 * tus_shared.c (uploads any instance continues: bytes in the bucket as a
 * multipart upload, their record and lock in Redis).
 */
#ifndef PETCUT_HTTP_TUS_INT_H
#define PETCUT_HTTP_TUS_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "http/http_int.h"
#include "http/parse.h"

#define TUS_STATUS_CHECKSUM 460 /* the checksum extension's "Checksum Mismatch" */
#define TUS_MAX_BUSY 1024	/* PATCHes in flight at once in one instance */

struct tus_shared;

struct tus {
	char dir[PATH_MAX - 64];
	pthread_mutex_t lock;
	char busy[TUS_MAX_BUSY][TUS_ID_LEN + 1]; /* uploads with a PATCH in flight ("" = free) */
	double last_sweep_ms; /* under lock */
	struct tus_shared *shared; /* uploads any instance continues, or NULL (tus_shared.c) */
};

/* One PATCH being received. */
struct tus_patch {
	char id[TUS_ID_LEN + 1];
	int slot;	    /* its place in tus->busy */
	int fd;		    /* ID.data, open for writing */
	uint64_t start;	    /* the offset the PATCH began at */
	uint64_t offset;    /* where the next byte goes */
	uint64_t length;    /* Upload-Length */
	EVP_MD_CTX *md;	    /* with Upload-Checksum: the SHA-256 of the body so far */
	unsigned char want[32];
	struct tus_shared_patch *sh; /* a shared upload's PATCH (tus_shared.c), else NULL */
};

/* What ID.info holds. */
struct tus_info {
	uint64_t length;
	char metadata[TUS_MAX_METADATA + 1];
	char image[STORE_KEY_LEN + 1]; /* "" until finished */
	time_t touched;		       /* the later of the two files' mtimes */
};

/* ===== Replies and headers (tus.c) ===== */

/* An empty answer with the tus headers; the caller may add more first. */
struct MHD_Response *tus_empty(const struct req *r);
/* An error as http_reply_error's, with the tus headers (and on 412 the
 * versions spoken). */
enum MHD_Result tus_error(struct MHD_Connection *c, struct req *r, int status, const char *code, const char *fmt,
			  ...) __attribute__((format(printf, 5, 6)));
void tus_add_u64(struct MHD_Response *resp, const char *name, uint64_t v);
void tus_add_expires(struct MHD_Response *resp, const struct http_server *s, time_t touched);
void tus_add_image(struct MHD_Response *resp, const char *image);
const char *tus_header(struct MHD_Connection *c, const char *name);
void tus_get_headers(struct MHD_Connection *c, struct tus_headers *h);
/* Records an error met while the body is read (answered at its end). */
void tus_set_error(struct req *r, int status, const char *code, const char *msg);

/* Feeds the bytes of fd, from where it stands to its end, to the image
 * upload begun on r (http_image_begin): 0, or -1 with the request's error
 * set. */
int tus_image_write_fd(struct req *r, int fd);

/* A PATCH's steps, as each home of uploads does them: begin (the headers:
 * checks, and r->tus set, or the request's error), write (a piece of the
 * body), fail (an error was met: drop what must go, free r->tus), end (the
 * body is in: store, maybe finish, answer). */
struct tus_patch_ops {
	void (*begin)(struct MHD_Connection *c, struct req *r, const char *id);
	void (*write)(struct req *r, const char *data, size_t len);
	void (*fail)(struct req *r);
	enum MHD_Result (*end)(struct MHD_Connection *c, struct req *r);
};
/* Runs a PATCH through ops, called for its headers, each piece of its body
 * and its end. */
enum MHD_Result tus_patch_drive(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				size_t *size, const struct tus_patch_ops *ops);
/* Answers a PATCH whose bytes are stored: 204 with Upload-Offset and
 * Upload-Expires, and once finished the image (handed over) and its
 * precomputation if asked; release(r) frees the PATCH's state first. */
enum MHD_Result tus_reply_patched(struct MHD_Connection *c, struct req *r, uint64_t offset, json_t *image,
				  void (*release)(struct req *r));

/* ===== Uploads any instance continues (tus_shared.c) =====
 *
 * With an S3 store and Redis (and PETCUT_TUS_SHARED not 0), the routes below
 * take the place of the ones of DATA/uploads/. */

/* Sets t->shared up when the server has what it needs: 0, or -1 with
 * errbuf. */
int tus_shared_init(struct http_server *s, char *errbuf, size_t errlen);
void tus_shared_fini(struct http_server *s);
enum MHD_Result tus_shared_create(struct MHD_Connection *c, struct req *r);
enum MHD_Result tus_shared_head(struct MHD_Connection *c, struct req *r, const char *id);
enum MHD_Result tus_shared_delete(struct MHD_Connection *c, struct req *r, const char *id);
/* A PATCH's steps. */
extern const struct tus_patch_ops tus_shared_patch;
/* A PATCH cut off (its connection ended): keeps what can be kept. */
void tus_shared_cleanup(struct req *r);

#endif
