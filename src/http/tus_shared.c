/*
 * tus_shared.c - resumable uploads that any instance continues: with the
 * store in a bucket and a shared Redis, an upload is not tied to the
 * instance that created it, so a phone that resumes behind a load balancer
 * without affinity lands anywhere and goes on.
 *
 * Where an upload lives:
 *  - its record, in Redis under petcut:tus:ID (JSON: length, metadata,
 *    offset, the multipart upload's id and its parts' ETags, the tail's
 *    generation, the image once finished, when it was last touched), and
 *    its expiry in the sorted set petcut:tus:expiry;
 *  - its bytes, in the bucket: every full 5 MiB is a part of one S3
 *    multipart upload (tus/KEY, KEY the hash of the id), begun with the
 *    first part; the bytes after the last part (the tail, under 5 MiB) are
 *    an object of their own, tustail/KEY(ID, generation), written anew at
 *    the end of each PATCH under a new generation, so that the record
 *    always names a whole tail.
 *
 * The record's offset only ever counts bytes that are in the bucket: a part
 * sent, or a tail written. A PATCH holds the lock petcut:tus:lock:ID (SET NX
 * PX, renewed while bytes flow); a second PATCH of the same upload, on any
 * instance, gets 423 Locked. An instance that dies in a PATCH leaves the
 * record at the last part or tail it stored; its lock expires after
 * PETCUT_TUS_LOCK_MS (default 15 s), and the client resumes from the offset
 * HEAD gives. A PATCH with Upload-Checksum keeps its bytes in memory until
 * they are verified, so bytes that fail their checksum never reach the
 * bucket.
 *
 * The last byte in, the parts and the tail become the object tus/KEY
 * (CompleteMultipartUpload; an upload smaller than a part goes straight
 * from memory), which is read back through the same checks as POST
 * /v1/images into the image's content address, and then deleted: one
 * object remains. Expired uploads are found in petcut:tus:expiry by any
 * instance's creations and removed whole: the multipart upload aborted, the
 * tail and the record deleted.
 */
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "http/tus_int.h"
#include "util/util.h"

#define SH_RECORD "petcut:tus:"
#define SH_LOCK "petcut:tus:lock:"
#define SH_EXPIRY "petcut:tus:expiry"
#define SH_NS_PARTS "tus"     /* the multipart upload and what it assembles */
#define SH_NS_TAIL "tustail"  /* the bytes after the last part */
#define SH_MAX_PARTS 10000
#define SH_SWEEP_MAX 32	      /* expired uploads removed per sweep */

struct tus_shared {
	long lock_ms;	   /* a PATCH's lock expires after this if its holder dies */
	double sweep_every_ms;
	pthread_mutex_t lock;
	double last_sweep_ms;
};

/* An upload's record. */
struct sh_record {
	uint64_t length, offset, part_bytes;
	char metadata[TUS_MAX_METADATA + 1];
	char image[STORE_KEY_LEN + 1];
	char mp[STORE_MP_ID_MAX]; /* "" before the first part */
	int n_parts;
	char (*etags)[STORE_MP_ETAG_MAX];
	long long tail_gen;	  /* the tail's generation (0: none yet) */
	long long touched;	  /* unix seconds */
};

/* One PATCH. */
struct tus_shared_patch {
	char lock_key[64], token[64];
	struct sh_record rec;
	unsigned char *pend; /* bytes after the last part: the tail, then the body */
	size_t pend_len, pend_cap;
	uint64_t received;   /* the offset the bytes received reach */
	double renewed_ms;
};

/* ===== Names ===== */

static void parts_key(const char *id, char key[STORE_KEY_LEN + 1])
{
	char name[64];
	snprintf(name, sizeof name, "tus|%s", id);
	store_key_of(name, strlen(name), key);
}

static void tail_key(const char *id, long long gen, char key[STORE_KEY_LEN + 1])
{
	char name[80];
	snprintf(name, sizeof name, "tustail|%s|%lld", id, gen);
	store_key_of(name, strlen(name), key);
}

/* ===== Records ===== */

static void record_free(struct sh_record *rec)
{
	free(rec->etags);
	rec->etags = NULL;
	rec->n_parts = 0;
}

/* Reads the record of id: KV_OK, KV_MISS (no such upload, or a damaged
 * record), KV_DOWN. */
static kv_status record_get(struct http_server *s, const char *id, struct sh_record *rec)
{
	char key[64], *text = NULL;
	json_t *j = NULL, *parts;
	json_int_t length, offset, part_bytes, gen, touched;
	const char *meta, *image, *mp;
	kv_status st;

	memset(rec, 0, sizeof *rec);
	snprintf(key, sizeof key, SH_RECORD "%.32s", id);
	if ((st = kv_get(s->kv, key, &text, NULL)) != KV_OK)
		return st;
	j = json_loads(text, 0, NULL);
	free(text);
	st = KV_MISS;
	if (!j || json_unpack(j, "{s:I,s:I,s:I,s:s,s:s,s:s,s:o,s:I,s:I}", "length", &length, "offset", &offset,
			      "part_bytes", &part_bytes, "metadata", &meta, "image", &image, "mp", &mp, "parts",
			      &parts, "tail_gen", &gen, "touched", &touched) ||
	    length <= 0 || offset < 0 || offset > length || part_bytes < 0 || part_bytes > offset ||
	    strlen(meta) > TUS_MAX_METADATA || (*image && !store_key_valid(image)) || strlen(mp) >= STORE_MP_ID_MAX ||
	    !json_is_array(parts) || json_array_size(parts) > SH_MAX_PARTS)
		goto out;
	rec->length = (uint64_t)length;
	rec->offset = (uint64_t)offset;
	rec->part_bytes = (uint64_t)part_bytes;
	snprintf(rec->metadata, sizeof rec->metadata, "%s", meta);
	snprintf(rec->image, sizeof rec->image, "%s", image);
	snprintf(rec->mp, sizeof rec->mp, "%s", mp);
	rec->tail_gen = gen;
	rec->touched = touched;
	if (json_array_size(parts) && !(rec->etags = calloc(json_array_size(parts), sizeof *rec->etags)))
		goto out;
	for (size_t i = 0; i < json_array_size(parts); i++) {
		const char *e = json_string_value(json_array_get(parts, i));
		if (!e || strlen(e) >= STORE_MP_ETAG_MAX)
			goto out;
		snprintf(rec->etags[i], STORE_MP_ETAG_MAX, "%s", e);
		rec->n_parts++;
	}
	st = KV_OK;
out:
	if (st != KV_OK)
		record_free(rec);
	json_decref(j);
	return st;
}

static kv_status record_put(struct http_server *s, const char *id, const struct sh_record *rec)
{
	char key[64];
	json_t *parts = json_array(), *j;
	kv_status st = KV_NOMEM;

	for (int i = 0; parts && i < rec->n_parts; i++)
		json_array_append_new(parts, json_string(rec->etags[i]));
	j = parts ? json_pack("{s:I,s:I,s:I,s:s,s:s,s:s,s:o,s:I,s:I}", "length", (json_int_t)rec->length, "offset",
			      (json_int_t)rec->offset, "part_bytes", (json_int_t)rec->part_bytes, "metadata",
			      rec->metadata, "image", rec->image, "mp", rec->mp, "parts", parts, "tail_gen",
			      (json_int_t)rec->tail_gen, "touched", (json_int_t)rec->touched)
		  : NULL;
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (text) {
		snprintf(key, sizeof key, SH_RECORD "%.32s", id);
		st = kv_set(s->kv, key, text, strlen(text), 0);
		/* the expiry index: a record outliving its index entry would
		 * never be swept, so the entry is written after, and again */
		if (st == KV_OK)
			st = kv_zset(s->kv, SH_EXPIRY, id, (double)(rec->touched + s->cfg.upload_expire_s));
	}
	free(text);
	json_decref(j);
	return st;
}

static int record_expired(const struct http_server *s, const struct sh_record *rec)
{
	return (long long)time(NULL) > rec->touched + s->cfg.upload_expire_s;
}

/* Removes what an upload left: its multipart upload, its tail, its record
 * and its index entry (each best effort, the record last but one: a sweep
 * that stops half way finds it again). */
static void upload_drop(struct http_server *s, const char *id, const struct sh_record *rec)
{
	char key[STORE_KEY_LEN + 1], rkey[64];

	if (*rec->mp) {
		parts_key(id, key);
		if (store_mp_abort(s->store, SH_NS_PARTS, key, rec->mp) == STORE_UNSUPPORTED)
			fprintf(stderr, "petcut: upload %s: %s\n", id, store_errmsg());
	}
	if (rec->tail_gen) {
		tail_key(id, rec->tail_gen, key);
		store_delete(s->store, SH_NS_TAIL, key);
	}
	snprintf(rkey, sizeof rkey, SH_RECORD "%.32s", id);
	kv_del(s->kv, rkey);
	kv_zrem(s->kv, SH_EXPIRY, id);
}

/* ===== Set-up, sweeping ===== */

int tus_shared_init(struct http_server *s, char *errbuf, size_t errlen)
{
	const char *v = getenv("PETCUT_TUS_SHARED");
	struct tus_shared *sh;

	if (!s->kv || strcmp(store_backend_name(s->store), "s3") || (v && !strcmp(v, "0")))
		return 0; /* uploads stay in DATA/uploads/ */
	if (!(sh = calloc(1, sizeof *sh))) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	v = getenv("PETCUT_TUS_LOCK_MS");
	sh->lock_ms = v && atol(v) >= 100 ? atol(v) : 15000;
	v = getenv("PETCUT_TUS_SWEEP_MS");
	sh->sweep_every_ms = v && atol(v) >= 0 ? (double)atol(v) : 60000;
	pthread_mutex_init(&sh->lock, NULL);
	s->tus->shared = sh;
	return 0;
}

void tus_shared_fini(struct http_server *s)
{
	if (!s->tus || !s->tus->shared)
		return;
	pthread_mutex_destroy(&s->tus->shared->lock);
	free(s->tus->shared);
	s->tus->shared = NULL;
}

/* Removes uploads past their expiry, whoever made them (one instance at a
 * time takes each, under its lock). */
static void sweep(struct http_server *s)
{
	struct tus_shared *sh = s->tus->shared;
	char ids[SH_SWEEP_MAX][KV_MEMBER_MAX], lock[64], token[64];
	int n = 0;

	pthread_mutex_lock(&sh->lock);
	int due = util_now_ms() - sh->last_sweep_ms >= sh->sweep_every_ms;
	if (due)
		sh->last_sweep_ms = util_now_ms();
	pthread_mutex_unlock(&sh->lock);
	if (!due || kv_zbelow(s->kv, SH_EXPIRY, (double)time(NULL), ids, SH_SWEEP_MAX, &n) != KV_OK)
		return;
	snprintf(token, sizeof token, "%s-sweep", s->kv_token);
	for (int i = 0; i < n; i++) {
		struct sh_record rec;
		if (!http_tus_id_valid(ids[i])) {
			kv_zrem(s->kv, SH_EXPIRY, ids[i]);
			continue;
		}
		snprintf(lock, sizeof lock, SH_LOCK "%.32s", ids[i]);
		if (kv_lock(s->kv, lock, token, sh->lock_ms) != KV_OK)
			continue; /* a PATCH is in it: it is not abandoned */
		kv_status st = record_get(s, ids[i], &rec);
		if (st == KV_MISS) {
			struct sh_record none = {0};
			upload_drop(s, ids[i], &none);
		} else if (st == KV_OK && record_expired(s, &rec)) {
			upload_drop(s, ids[i], &rec);
		}
		record_free(&rec);
		kv_unlock(s->kv, lock, token);
	}
}

/* ===== POST, HEAD, DELETE ===== */

enum MHD_Result tus_shared_create(struct MHD_Connection *c, struct req *r)
{
	struct http_server *s = r->srv;
	struct tus_headers h;
	struct tus_parsed hp;
	struct sh_record rec = {0};
	unsigned char rnd[TUS_ID_LEN / 2];
	char id[TUS_ID_LEN + 1], loc[64], why[200];
	const char *code;
	int st;

	tus_get_headers(c, &h);
	if ((st = http_tus_check_creation(&h, s->cfg.max_upload_bytes, &hp, &code, why, sizeof why)))
		return tus_error(c, r, st, code, "%s", why);
	sweep(s);
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return tus_error(c, r, 503, "overloaded", "no random bytes for an id");
	util_hex(rnd, sizeof rnd, id);
	rec.length = hp.length;
	snprintf(rec.metadata, sizeof rec.metadata, "%s", h.metadata ? h.metadata : "");
	rec.touched = (long long)time(NULL);
	if (record_put(s, id, &rec) != KV_OK)
		return tus_error(c, r, 503, "storage_unavailable", "the shared upload records cannot be written");
	struct MHD_Response *resp = tus_empty(r);
	if (!resp)
		return MHD_NO;
	snprintf(loc, sizeof loc, "/v1/uploads/%s", id);
	MHD_add_response_header(resp, "Location", loc);
	tus_add_expires(resp, s, (time_t)rec.touched);
	return http_queue(c, r, 201, resp);
}

/* The record of id for HEAD and DELETE; on failure replies (404, 410, 503)
 * and returns -1 with *ret set. */
static int find(struct MHD_Connection *c, struct req *r, const char *id, struct sh_record *rec, enum MHD_Result *ret)
{
	kv_status st = record_get(r->srv, id, rec);
	if (st == KV_DOWN) {
		*ret = tus_error(c, r, 503, "storage_unavailable", "the shared upload records cannot be read");
		return -1;
	}
	if (st != KV_OK) {
		*ret = tus_error(c, r, 404, "not_found", "no upload %s", id);
		return -1;
	}
	if (record_expired(r->srv, rec)) {
		record_free(rec);
		*ret = tus_error(c, r, 410, "expired", "upload %s has expired", id);
		return -1;
	}
	return 0;
}

enum MHD_Result tus_shared_head(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct sh_record rec;
	enum MHD_Result ret;

	if (find(c, r, id, &rec, &ret))
		return ret;
	record_free(&rec);
	struct MHD_Response *resp = tus_empty(r);
	if (!resp)
		return MHD_NO;
	tus_add_u64(resp, "Upload-Offset", rec.offset);
	tus_add_u64(resp, "Upload-Length", rec.length);
	if (*rec.metadata)
		MHD_add_response_header(resp, "Upload-Metadata", rec.metadata);
	tus_add_expires(resp, r->srv, (time_t)rec.touched);
	if (*rec.image)
		tus_add_image(resp, rec.image);
	return http_queue(c, r, 200, resp);
}

enum MHD_Result tus_shared_delete(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct http_server *s = r->srv;
	struct sh_record rec;
	enum MHD_Result ret;
	char lock[64], token[64];

	snprintf(lock, sizeof lock, SH_LOCK "%.32s", id);
	snprintf(token, sizeof token, "%s-del", s->kv_token);
	kv_status st = kv_lock(s->kv, lock, token, s->tus->shared->lock_ms);
	if (st == KV_MISS)
		return tus_error(c, r, 423, "locked", "upload %s is receiving a PATCH", id);
	if (st != KV_OK)
		return tus_error(c, r, 503, "storage_unavailable", "the shared upload records cannot be reached");
	if (find(c, r, id, &rec, &ret)) {
		kv_unlock(s->kv, lock, token);
		return ret;
	}
	upload_drop(s, id, &rec);
	record_free(&rec);
	kv_unlock(s->kv, lock, token);
	return http_queue(c, r, 204, tus_empty(r));
}

/* ===== PATCH ===== */

static void patch_free(struct req *r)
{
	struct tus_patch *p = r->tus;
	struct tus_shared_patch *sp = p ? p->sh : NULL;

	if (!p)
		return;
	if (sp) {
		kv_unlock(r->srv->kv, sp->lock_key, sp->token);
		record_free(&sp->rec);
		free(sp->pend);
		free(sp);
	}
	EVP_MD_CTX_free(p->md);
	free(p);
	r->tus = NULL;
}

static int pend_grow(struct tus_shared_patch *sp, size_t need)
{
	size_t cap = sp->pend_cap ? sp->pend_cap : (1u << 20);
	while (cap < need)
		cap *= 2;
	if (cap == sp->pend_cap)
		return 0;
	unsigned char *b = realloc(sp->pend, cap);
	if (!b)
		return -1;
	sp->pend = b;
	sp->pend_cap = cap;
	return 0;
}

/* Sends the first STORE_MP_MIN_PART pending bytes as the next part and
 * records it (the record's offset moves to the parts' end: the old tail is
 * inside the part now). 0, or -1 with the request's error set. */
static int send_part(struct req *r, const char *id, size_t len)
{
	struct http_server *s = r->srv;
	struct tus_shared_patch *sp = r->tus->sh;
	struct sh_record *rec = &sp->rec;
	char key[STORE_KEY_LEN + 1], old[STORE_KEY_LEN + 1];
	long long old_gen = rec->tail_gen;

	parts_key(id, key);
	if (rec->n_parts >= SH_MAX_PARTS)
		return tus_set_error(r, 413, "too_large", "the upload has too many parts"), -1;
	if (!*rec->mp && store_mp_begin(s->store, SH_NS_PARTS, key, rec->mp) != STORE_OK)
		goto fail;
	char (*e)[STORE_MP_ETAG_MAX] = realloc(rec->etags, (size_t)(rec->n_parts + 1) * sizeof *e);
	if (!e)
		return tus_set_error(r, 503, "overloaded", "out of memory"), -1;
	rec->etags = e;
	if (store_mp_part(s->store, SH_NS_PARTS, key, rec->mp, rec->n_parts + 1, sp->pend, len,
			  rec->etags[rec->n_parts]) != STORE_OK)
		goto fail;
	rec->n_parts++;
	rec->part_bytes += len;
	rec->offset = rec->part_bytes;
	rec->tail_gen = 0;
	rec->touched = (long long)time(NULL);
	if (record_put(s, id, rec) != KV_OK)
		goto fail;
	if (old_gen) {
		tail_key(id, old_gen, old);
		store_delete(s->store, SH_NS_TAIL, old);
	}
	memmove(sp->pend, sp->pend + len, sp->pend_len - len);
	sp->pend_len -= len;
	return 0;
fail:
	tus_set_error(r, 503, "storage_unavailable", "the upload's bytes cannot be stored");
	return -1;
}

/* Stores the pending bytes as the new tail and records the offset they
 * reach. 0, or -1 with the request's error set. */
static int save_tail(struct req *r, const char *id)
{
	struct http_server *s = r->srv;
	struct tus_shared_patch *sp = r->tus->sh;
	struct sh_record *rec = &sp->rec;
	char key[STORE_KEY_LEN + 1];
	long long old_gen = rec->tail_gen;

	if (rec->offset == rec->part_bytes + sp->pend_len)
		return 0; /* nothing new */
	rec->tail_gen = old_gen + 1;
	if (sp->pend_len) {
		tail_key(id, rec->tail_gen, key);
		if (store_put_buffer(s->store, SH_NS_TAIL, key, sp->pend, sp->pend_len, NULL, NULL) != STORE_OK) {
			rec->tail_gen = old_gen;
			tus_set_error(r, 503, "storage_unavailable", "the upload's bytes cannot be stored");
			return -1;
		}
	} else {
		rec->tail_gen = 0;
	}
	rec->offset = rec->part_bytes + sp->pend_len;
	rec->touched = (long long)time(NULL);
	if (record_put(s, id, rec) != KV_OK) {
		tus_set_error(r, 503, "storage_unavailable", "the shared upload records cannot be written");
		return -1;
	}
	if (old_gen) {
		tail_key(id, old_gen, key);
		store_delete(s->store, SH_NS_TAIL, key);
	}
	return 0;
}

static void patch_begin(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct http_server *s = r->srv;
	struct tus_headers h;
	struct tus_parsed hp;
	struct tus_patch *p;
	struct tus_shared_patch *sp;
	char why[200];
	const char *code;
	int st;

	tus_get_headers(c, &h);
	if ((st = http_tus_check_patch(&h, &hp, &code, why, sizeof why)))
		return tus_set_error(r, st, code, why);
	if (!(p = calloc(1, sizeof *p)) || !(sp = calloc(1, sizeof *sp))) {
		free(p);
		return tus_set_error(r, 503, "overloaded", "out of memory");
	}
	p->fd = -1;
	p->sh = sp;
	memcpy(p->id, id, sizeof p->id);
	snprintf(sp->lock_key, sizeof sp->lock_key, SH_LOCK "%.32s", id);
	snprintf(sp->token, sizeof sp->token, "%s-%llx", s->kv_token, (unsigned long long)atomic_fetch_add(&s->next_id, 1));
	kv_status ks = kv_lock(s->kv, sp->lock_key, sp->token, s->tus->shared->lock_ms);
	if (ks != KV_OK) {
		free(sp);
		free(p);
		if (ks == KV_MISS)
			return tus_set_error(r, 423, "locked", "another PATCH of this upload is in flight");
		return tus_set_error(r, 503, "storage_unavailable", "the shared upload records cannot be reached");
	}
	sp->renewed_ms = util_now_ms();
	r->tus = p; /* from here patch_free unlocks */
	ks = record_get(s, id, &sp->rec);
	if (ks != KV_OK) {
		patch_free(r);
		return ks == KV_DOWN ? tus_set_error(r, 503, "storage_unavailable", "the shared upload records cannot be read")
				     : tus_set_error(r, 404, "not_found", "no such upload");
	}
	struct sh_record *rec = &sp->rec;
	if (record_expired(s, rec)) {
		patch_free(r);
		return tus_set_error(r, 410, "expired", "the upload has expired");
	}
	if (*rec->image || hp.offset != rec->offset) {
		snprintf(why, sizeof why, "Upload-Offset is %" PRIu64 " but the server has %" PRIu64, hp.offset,
			 rec->offset);
		patch_free(r);
		return tus_set_error(r, 409, "offset_mismatch", why);
	}
	if (hp.has_content_length && hp.content_length > rec->length - hp.offset) {
		patch_free(r);
		return tus_set_error(r, 413, "too_large", "the body goes past Upload-Length");
	}
	p->start = p->offset = hp.offset;
	p->length = rec->length;
	/* the tail goes in front of the body's bytes */
	if (rec->offset > rec->part_bytes) {
		char key[STORE_KEY_LEN + 1];
		void *tail = NULL;
		size_t len = 0;
		tail_key(id, rec->tail_gen, key);
		if (store_get(s->store, SH_NS_TAIL, key, &tail, &len) != STORE_OK ||
		    len != rec->offset - rec->part_bytes || pend_grow(sp, len)) {
			free(tail);
			patch_free(r);
			return tus_set_error(r, 503, "storage_unavailable", "the upload's bytes cannot be read");
		}
		memcpy(sp->pend, tail, len);
		sp->pend_len = len;
		free(tail);
	}
	sp->received = hp.offset;
	if (hp.has_checksum) {
		memcpy(p->want, hp.want, sizeof p->want);
		if (!(p->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL)) {
			patch_free(r);
			return tus_set_error(r, 503, "overloaded", "out of memory");
		}
	}
}

static void patch_write(struct req *r, const char *data, size_t len)
{
	struct http_server *s = r->srv;
	struct tus_patch *p = r->tus;
	struct tus_shared_patch *sp = p->sh;

	if (len > p->length - sp->received)
		return tus_set_error(r, 413, "too_large", "the body goes past Upload-Length");
	if (pend_grow(sp, sp->pend_len + len))
		return tus_set_error(r, 503, "overloaded", "out of memory");
	if (p->md)
		EVP_DigestUpdate(p->md, data, len);
	memcpy(sp->pend + sp->pend_len, data, len);
	sp->pend_len += len;
	sp->received += len;
	/* unverified bytes wait for the checksum; the others go as parts once
	 * there are enough, keeping the last part for the end */
	while (!p->md && sp->pend_len >= STORE_MP_MIN_PART && sp->rec.part_bytes + STORE_MP_MIN_PART < p->length)
		if (send_part(r, p->id, STORE_MP_MIN_PART))
			return;
	if (util_now_ms() - sp->renewed_ms > s->tus->shared->lock_ms / 3) {
		if (kv_lock_renew(s->kv, sp->lock_key, sp->token, s->tus->shared->lock_ms) != KV_OK)
			return tus_set_error(r, 503, "storage_unavailable", "the upload's lock was lost");
		sp->renewed_ms = util_now_ms();
	}
}

/* The last byte is in: the bytes become an image. Returns its JSON, or
 * NULL with the request's error set (the upload is then dropped unless the
 * failure was the storage's). */
static json_t *patch_finish(struct req *r)
{
	struct http_server *s = r->srv;
	struct tus_patch *p = r->tus;
	struct tus_shared_patch *sp = p->sh;
	struct sh_record *rec = &sp->rec;
	char key[STORE_KEY_LEN + 1], tkey[STORE_KEY_LEN + 1];
	json_t *image = NULL;
	int fd = -1, assembled = 0;

	parts_key(p->id, key);
	if (http_image_begin(r))
		goto out;
	if (!rec->n_parts) {
		/* smaller than a part: all of it is here */
		http_image_write(r, (const char *)sp->pend, sp->pend_len);
	} else {
		size_t len;
		if (sp->pend_len && send_part(r, p->id, sp->pend_len))
			goto out;
		if (store_mp_complete(s->store, SH_NS_PARTS, key, rec->mp, rec->n_parts,
				      (const char(*)[STORE_MP_ETAG_MAX])rec->etags) != STORE_OK ||
		    store_get_fd(s->store, SH_NS_PARTS, key, &fd, &len) != STORE_OK || len != rec->length) {
			tus_set_error(r, 503, "storage_unavailable", "the upload cannot be assembled");
			goto out;
		}
		assembled = 1;
		if (tus_image_write_fd(r, fd))
			goto out;
	}
	if (r->error_status || !(image = http_image_commit(r, NULL)))
		goto out;
	/* finished: the record says which image, until it expires */
	long long gen = rec->tail_gen;
	snprintf(rec->image, sizeof rec->image, "%s", json_string_value(json_object_get(image, "id")));
	rec->offset = rec->length;
	rec->mp[0] = 0;
	record_free(rec);
	rec->part_bytes = 0;
	rec->tail_gen = 0;
	rec->touched = (long long)time(NULL);
	if (record_put(s, p->id, rec) != KV_OK) {
		json_decref(image);
		image = NULL;
		tus_set_error(r, 503, "storage_unavailable", "the shared upload records cannot be written");
		goto out;
	}
	if (gen) {
		tail_key(p->id, gen, tkey);
		store_delete(s->store, SH_NS_TAIL, tkey);
	}
out:
	if (assembled)
		store_delete(s->store, SH_NS_PARTS, key); /* the image is stored under its own name */
	if (fd >= 0)
		close(fd);
	if (r->put) {
		store_put_abort(r->put);
		r->put = NULL;
	}
	if (!image && r->error_status != 503 && r->error_status != 507)
		upload_drop(s, p->id, rec); /* not an image: nothing to resume */
	return image;
}

static enum MHD_Result patch_end(struct MHD_Connection *c, struct req *r)
{
	struct tus_patch *p = r->tus;
	struct tus_shared_patch *sp = p->sh;
	unsigned char got[32];
	json_t *image = NULL;

	if (p->md) {
		EVP_DigestFinal_ex(p->md, got, NULL);
		if (memcmp(got, p->want, 32)) {
			patch_free(r); /* nothing of this PATCH was stored */
			return tus_error(c, r, TUS_STATUS_CHECKSUM, "checksum_mismatch",
					 "the body does not match Upload-Checksum; it was dropped");
		}
		EVP_MD_CTX_free(p->md);
		p->md = NULL;
		/* verified: now the full parts may go */
		while (sp->pend_len >= STORE_MP_MIN_PART && sp->rec.part_bytes + STORE_MP_MIN_PART < p->length)
			if (send_part(r, p->id, STORE_MP_MIN_PART))
				break;
	}
	if (!r->error_status && sp->received == p->length)
		image = patch_finish(r);
	else if (!r->error_status)
		save_tail(r, p->id);
	if (r->error_status) {
		patch_free(r);
		return tus_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	}
	return tus_reply_patched(c, r, sp->received, image, patch_free);
}

const struct tus_patch_ops tus_shared_patch = {
	.begin = patch_begin, .write = patch_write, .fail = patch_free, .end = patch_end,
};

void tus_shared_cleanup(struct req *r)
{
	struct tus_patch *p = r->tus;

	if (!p)
		return;
	/* cut off: verified bytes are kept for a resume; unverifiable ones go */
	if (!p->md && !r->error_status && p->sh->received < p->length)
		save_tail(r, p->id);
	patch_free(r);
}
