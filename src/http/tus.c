/*
 * tus.c - resumable uploads: the tus 1.0 protocol on /v1/uploads, with its
 * creation, checksum, termination and expiration extensions.
 *
 * POST /v1/uploads (Upload-Length) makes an upload and answers its Location;
 * HEAD /v1/uploads/{id} says how many bytes the server has (Upload-Offset);
 * PATCH appends bytes at exactly that offset; DELETE drops the upload. Once
 * the last byte is in, the bytes go through the same checks and the same
 * store as POST /v1/images, so the image gets the same id as a plain upload
 * of the same bytes; the final PATCH answers that id (Petcut-Image-Id), and
 * so does HEAD afterwards, until the upload expires.
 *
 * Partial uploads live in DATA/uploads/ as two files: ID.info (JSON: length,
 * metadata, and the image id once finished; replaced atomically) and ID.data
 * (the bytes so far: its size is the offset, synced at the end of each PATCH),
 * so they survive a restart. A PATCH cut off keeps what arrived, except when
 * it carried an Upload-Checksum: bytes that could not be verified are
 * dropped. A PATCH whose checksum does not match is dropped whole (460).
 * Such a PATCH first writes ID.verify (the offset it began at, synced), and
 * removes it once its bytes are verified or dropped; one found at start-up
 * belongs to a PATCH the process died in, and its bytes are dropped then.
 * Uploads idle for upload_expire_s are removed (checked at start-up, on
 * creation, and on access).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "http/http_int.h"
#include "http/parse.h"
#include "http/tus_int.h"
#include "util/util.h"

#define TUS_EXTENSIONS "creation,checksum,termination,expiration"
#define TUS_SWEEP_EVERY_MS 60000 /* creations look for expired uploads this often */

/* ===== Files ===== */

static void tus_path(const struct tus *t, const char *id, const char *ext, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.%s", t->dir, id, ext);
}

static int sync_dir(const struct tus *t)
{
	int fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* Writes ID.info through a synced temporary file renamed over it. */
static int info_write(const struct tus *t, const char *id, const struct tus_info *in)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *j = json_pack("{s:I,s:s,s:s}", "length", (json_int_t)in->length, "metadata", in->metadata, "image",
			      in->image);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int fd = -1, bad = -1;

	json_decref(j);
	if (!text)
		return -1;
	tus_path(t, id, "info", path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s/tmp-%s-XXXXXX", t->dir, id);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0 || fchmod(fd, 0644))
		goto out;
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || fsync(fd))
		goto out;
	int closed = close(fd);
	fd = -1;
	if (closed || rename(tmp, path))
		goto out;
	bad = sync_dir(t);
out:;
	int e = errno; /* the failure's, for the caller */
	if (fd >= 0)
		close(fd);
	if (bad)
		unlink(tmp);
	free(text);
	errno = e;
	return bad;
}

/* Reads ID.info: 0, or -1 when there is no such upload (or it is damaged). */
static int info_read(const struct tus *t, const char *id, struct tus_info *out)
{
	char path[PATH_MAX];
	struct stat sb;
	json_t *j;
	json_int_t length;
	const char *meta, *image;

	memset(out, 0, sizeof *out);
	tus_path(t, id, "info", path, sizeof path);
	if (!(j = json_load_file(path, 0, NULL)))
		return -1;
	if (json_unpack(j, "{s:I,s:s,s:s}", "length", &length, "metadata", &meta, "image", &image) || length <= 0 ||
	    strlen(meta) > TUS_MAX_METADATA || (*image && !store_key_valid(image))) {
		json_decref(j);
		return -1;
	}
	out->length = (uint64_t)length;
	snprintf(out->metadata, sizeof out->metadata, "%s", meta);
	snprintf(out->image, sizeof out->image, "%s", image);
	json_decref(j);
	if (stat(path, &sb) == 0)
		out->touched = sb.st_mtime;
	tus_path(t, id, "data", path, sizeof path);
	if (stat(path, &sb) == 0 && sb.st_mtime > out->touched)
		out->touched = sb.st_mtime;
	return 0;
}

/* The bytes received so far (the size of ID.data; length once finished). */
static int data_size(const struct tus *t, const char *id, const struct tus_info *in, uint64_t *size)
{
	char path[PATH_MAX];
	struct stat sb;

	if (*in->image) {
		*size = in->length;
		return 0;
	}
	tus_path(t, id, "data", path, sizeof path);
	if (stat(path, &sb))
		return -1;
	*size = (uint64_t)sb.st_size;
	return 0;
}

static void upload_remove(const struct tus *t, const char *id)
{
	char path[PATH_MAX];
	tus_path(t, id, "info", path, sizeof path);
	unlink(path);
	tus_path(t, id, "data", path, sizeof path);
	unlink(path);
	tus_path(t, id, "verify", path, sizeof path);
	unlink(path);
	sync_dir(t);
}

/* ID.verify: a PATCH with a checksum is writing from offset start. */
static int verify_begin(const struct tus *t, const char *id, uint64_t start)
{
	char path[PATH_MAX], text[24];
	int fd, n = snprintf(text, sizeof text, "%" PRIu64 "\n", start), bad;

	tus_path(t, id, "verify", path, sizeof path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
		return -1;
	bad = write(fd, text, (size_t)n) != n || fsync(fd);
	bad |= close(fd) != 0;
	return bad || sync_dir(t) ? -1 : 0;
}

/* The PATCH's bytes are verified (and synced) or dropped. */
static int verify_end(const struct tus *t, const char *id)
{
	char path[PATH_MAX];
	tus_path(t, id, "verify", path, sizeof path);
	if (unlink(path) && errno != ENOENT)
		return -1;
	return sync_dir(t);
}

/* At start-up: drops the bytes of a checksum PATCH the process died in. */
static void verify_recover(const struct tus *t, const char *id)
{
	char path[PATH_MAX];
	unsigned long long start;
	struct stat sb;
	FILE *f;

	tus_path(t, id, "verify", path, sizeof path);
	if (!(f = fopen(path, "r")))
		return;
	int ok = fscanf(f, "%llu", &start) == 1;
	fclose(f);
	tus_path(t, id, "data", path, sizeof path);
	/* an unreadable record was cut while being written, before any byte */
	if (ok && stat(path, &sb) == 0 && (uint64_t)sb.st_size > start) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)start) || fsync(fd)) {
			if (fd >= 0)
				close(fd);
			return; /* kept: tried again at the next start */
		}
		close(fd);
	}
	verify_end(t, id);
}

static int expired(const struct http_server *s, const struct tus_info *in)
{
	return time(NULL) > in->touched + s->cfg.upload_expire_s;
}

/* Removes expired uploads and temporary files left by a crash (at start
 * all of them: no write of this instance is in flight yet). */
static void sweep(struct http_server *s, int at_start)
{
	struct tus *t = s->tus;
	DIR *d = opendir(t->dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char id[TUS_ID_LEN + 1], path[PATH_MAX + 256];
		struct tus_info in;
		const char *dot = strchr(e->d_name, '.');

		if (!strncmp(e->d_name, "tmp-", 4)) {
			struct stat sb;
			snprintf(path, sizeof path, "%s/%s", t->dir, e->d_name);
			if (at_start || (stat(path, &sb) == 0 && time(NULL) > sb.st_mtime + 3600))
				unlink(path);
			continue;
		}
		if (!dot || dot - e->d_name != TUS_ID_LEN ||
		    (strcmp(dot, ".info") && strcmp(dot, ".data") && strcmp(dot, ".verify")))
			continue;
		snprintf(id, sizeof id, "%.*s", TUS_ID_LEN, e->d_name);
		if (!http_tus_id_valid(id))
			continue;
		if (!strcmp(dot, ".verify")) {
			if (at_start)
				verify_recover(t, id);
			continue;
		}
		if (!strcmp(dot, ".data")) { /* bytes whose info was never written (a crash in creation) */
			struct stat sb;
			snprintf(path, sizeof path, "%s/%s.info", t->dir, id);
			if (stat(path, &sb) && errno == ENOENT) {
				snprintf(path, sizeof path, "%s/%s", t->dir, e->d_name);
				if (stat(path, &sb) == 0 && time(NULL) > sb.st_mtime + s->cfg.upload_expire_s)
					unlink(path);
			}
			continue;
		}
		pthread_mutex_lock(&t->lock);
		int busy = 0;
		for (int i = 0; i < TUS_MAX_BUSY && !busy; i++)
			busy = !strcmp(t->busy[i], id);
		if (!busy && (info_read(t, id, &in) || expired(s, &in)))
			upload_remove(t, id);
		pthread_mutex_unlock(&t->lock);
	}
	closedir(d);
}

/* Marks an upload as having a PATCH in flight: its slot, or -1 if it has
 * one already (or too many are in flight). */
static int busy_take(struct tus *t, const char *id)
{
	int free_slot = -1;
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < TUS_MAX_BUSY; i++) {
		if (!strcmp(t->busy[i], id)) {
			free_slot = -1;
			goto out;
		}
		if (free_slot < 0 && !t->busy[i][0])
			free_slot = i;
	}
	if (free_slot >= 0)
		memcpy(t->busy[free_slot], id, TUS_ID_LEN + 1);
out:
	pthread_mutex_unlock(&t->lock);
	return free_slot;
}

static int busy_has(struct tus *t, const char *id)
{
	int found = 0;
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < TUS_MAX_BUSY && !found; i++)
		found = !strcmp(t->busy[i], id);
	pthread_mutex_unlock(&t->lock);
	return found;
}

static void busy_give(struct tus *t, int slot)
{
	pthread_mutex_lock(&t->lock);
	t->busy[slot][0] = 0;
	pthread_mutex_unlock(&t->lock);
}

/* ===== Replies ===== */

static void http_date(time_t when, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void add_tus_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Tus-Resumable", TUS_VERSION);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
}

/* An empty answer with the tus headers; the caller may add more first. */
struct MHD_Response *tus_empty(const struct req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp)
		add_tus_headers(resp);
	return resp;
}

/* An error as http_reply_error's, with the tus headers (and on 412 the
 * versions spoken). */
enum MHD_Result tus_error(struct MHD_Connection *c, struct req *r, int status, const char *code,
				 const char *fmt, ...)
{
	const char *const headers[] = {"Tus-Resumable", TUS_VERSION, "Cache-Control", "no-store",
				       status == 412 ? "Tus-Version" : NULL, TUS_VERSION, NULL};
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return http_reply_error_with(c, r, status, headers, code, "%s", msg);
}

void tus_add_u64(struct MHD_Response *resp, const char *name, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	MHD_add_response_header(resp, name, buf);
}

void tus_add_expires(struct MHD_Response *resp, const struct http_server *s, time_t touched)
{
	char date[64];
	http_date(touched + s->cfg.upload_expire_s, date, sizeof date);
	MHD_add_response_header(resp, "Upload-Expires", date);
}

void tus_add_image(struct MHD_Response *resp, const char *image)
{
	char url[96];
	snprintf(url, sizeof url, "/v1/images/%s", image);
	MHD_add_response_header(resp, "Petcut-Image-Id", image);
	MHD_add_response_header(resp, "Petcut-Image-Url", url);
}

/* ===== Header parsing ===== */

const char *tus_header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The header values the checks below read. */
void tus_get_headers(struct MHD_Connection *c, struct tus_headers *h)
{
	h->resumable = tus_header(c, "Tus-Resumable");
	h->length = tus_header(c, "Upload-Length");
	h->defer_length = tus_header(c, "Upload-Defer-Length");
	h->offset = tus_header(c, "Upload-Offset");
	h->metadata = tus_header(c, "Upload-Metadata");
	h->checksum = tus_header(c, "Upload-Checksum");
	h->content_type = tus_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
	h->content_length = tus_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
}

/* ===== OPTIONS, POST, HEAD, DELETE ===== */

static enum MHD_Result tus_options(struct MHD_Connection *c, struct req *r)
{
	struct MHD_Response *resp = tus_empty(r);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Tus-Version", TUS_VERSION);
	MHD_add_response_header(resp, "Tus-Extension", TUS_EXTENSIONS);
	MHD_add_response_header(resp, "Tus-Checksum-Algorithm", "sha256");
	tus_add_u64(resp, "Tus-Max-Size", r->srv->cfg.max_upload_bytes);
	return http_queue(c, r, 204, resp);
}

static enum MHD_Result tus_create(struct MHD_Connection *c, struct req *r)
{
	struct http_server *s = r->srv;
	struct tus *t = s->tus;
	struct tus_headers h;
	struct tus_parsed hp;
	struct tus_info in = {0};
	unsigned char rnd[TUS_ID_LEN / 2];
	char id[TUS_ID_LEN + 1], path[PATH_MAX], loc[64], why[200];
	const char *code;
	int st;

	tus_get_headers(c, &h);
	if ((st = http_tus_check_creation(&h, s->cfg.max_upload_bytes, &hp, &code, why, sizeof why)))
		return tus_error(c, r, st, code, "%s", why);
	in.length = hp.length;
	snprintf(in.metadata, sizeof in.metadata, "%s", h.metadata ? h.metadata : "");
	pthread_mutex_lock(&t->lock);
	int due = util_now_ms() - t->last_sweep_ms > TUS_SWEEP_EVERY_MS;
	if (due)
		t->last_sweep_ms = util_now_ms();
	pthread_mutex_unlock(&t->lock);
	if (due)
		sweep(s, 0);
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return tus_error(c, r, 503, "overloaded", "no random bytes for an id");
	util_hex(rnd, sizeof rnd, id);
	tus_path(t, id, "data", path, sizeof path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd) || info_write(t, id, &in)) {
		int full = errno == ENOSPC || errno == EDQUOT;
		unlink(path);
		return full ? tus_error(c, r, 507, "insufficient_storage", "the upload folder is out of space")
			    : tus_error(c, r, 503, "storage_unavailable", "the upload folder cannot be written");
	}
	struct MHD_Response *resp = tus_empty(r);
	if (!resp)
		return MHD_NO;
	snprintf(loc, sizeof loc, "/v1/uploads/%s", id);
	MHD_add_response_header(resp, "Location", loc);
	tus_add_expires(resp, s, time(NULL));
	return http_queue(c, r, 201, resp);
}

/* Finds an upload for HEAD, PATCH or DELETE; on failure replies (404, 410)
 * and returns -1 with *ret set. */
static int find(struct MHD_Connection *c, struct req *r, const char *id, struct tus_info *in, enum MHD_Result *ret)
{
	if (info_read(r->srv->tus, id, in)) {
		*ret = tus_error(c, r, 404, "not_found", "no upload %s", id);
		return -1;
	}
	if (expired(r->srv, in) && !busy_has(r->srv->tus, id)) {
		upload_remove(r->srv->tus, id);
		*ret = tus_error(c, r, 410, "expired", "upload %s has expired", id);
		return -1;
	}
	return 0;
}

static enum MHD_Result tus_head(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct tus_info in;
	uint64_t offset;
	enum MHD_Result ret;

	if (find(c, r, id, &in, &ret))
		return ret;
	if (data_size(r->srv->tus, id, &in, &offset))
		return tus_error(c, r, 404, "not_found", "no upload %s", id);
	struct MHD_Response *resp = tus_empty(r);
	if (!resp)
		return MHD_NO;
	tus_add_u64(resp, "Upload-Offset", offset);
	tus_add_u64(resp, "Upload-Length", in.length);
	if (*in.metadata)
		MHD_add_response_header(resp, "Upload-Metadata", in.metadata);
	tus_add_expires(resp, r->srv, in.touched);
	if (*in.image)
		tus_add_image(resp, in.image);
	return http_queue(c, r, 200, resp);
}

static enum MHD_Result tus_delete(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct tus_info in;
	enum MHD_Result ret;

	if (find(c, r, id, &in, &ret))
		return ret;
	if (busy_has(r->srv->tus, id))
		return tus_error(c, r, 423, "locked", "upload %s is receiving a PATCH", id);
	upload_remove(r->srv->tus, id);
	return http_queue(c, r, 204, tus_empty(r));
}

/* ===== PATCH ===== */

static void patch_free(struct req *r)
{
	struct tus_patch *p = r->tus;
	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	EVP_MD_CTX_free(p->md);
	busy_give(r->srv->tus, p->slot);
	free(p);
	r->tus = NULL;
}

/* Drops what this PATCH wrote. */
static void patch_undo(const struct tus *t, struct tus_patch *p)
{
	if (p->offset != p->start && ftruncate(p->fd, (off_t)p->start) == 0)
		fsync(p->fd);
	p->offset = p->start;
	if (p->md)
		verify_end(t, p->id);
}

void tus_set_error(struct req *r, int status, const char *code, const char *msg)
{
	r->error_status = status;
	r->error_code = code;
	snprintf(r->error_msg, sizeof r->error_msg, "%s", msg);
}

/* The upload folder failed a write (errno): 507 when it is full, else 503. */
static void write_error(struct req *r)
{
	if (errno == ENOSPC || errno == EDQUOT)
		tus_set_error(r, 507, "insufficient_storage", "the upload folder is out of space");
	else
		tus_set_error(r, 503, "storage_unavailable", "the upload folder cannot be written");
}

/* The headers of a PATCH: checks them and opens the upload, or sets the
 * request's error (the body is then read and dropped). */
static void patch_begin(struct MHD_Connection *c, struct req *r, const char *id)
{
	struct tus *t = r->srv->tus;
	struct tus_headers h;
	struct tus_parsed hp;
	struct tus_info in;
	struct tus_patch *p;
	uint64_t offset, have;
	char path[PATH_MAX], why[200];
	const char *code;
	int st;

	tus_get_headers(c, &h);
	if ((st = http_tus_check_patch(&h, &hp, &code, why, sizeof why)))
		return tus_set_error(r, st, code, why);
	offset = hp.offset;
	if (info_read(t, id, &in) || data_size(t, id, &in, &have))
		return tus_set_error(r, 404, "not_found", "no such upload");
	if (expired(r->srv, &in))
		return tus_set_error(r, 410, "expired", "the upload has expired");
	if (!(p = calloc(1, sizeof *p)))
		return tus_set_error(r, 503, "overloaded", "out of memory");
	p->fd = -1;
	if ((p->slot = busy_take(t, id)) < 0) {
		free(p);
		return tus_set_error(r, 423, "locked", "another PATCH of this upload is in flight");
	}
	/* checked under the lock: no other PATCH can move the offset now */
	if (data_size(t, id, &in, &have) || offset != have) {
		busy_give(t, p->slot);
		free(p);
		snprintf(r->error_msg, sizeof r->error_msg, "Upload-Offset is %" PRIu64 " but the server has %" PRIu64,
			 offset, have);
		r->error_status = 409;
		r->error_code = "offset_mismatch";
		return;
	}
	if (hp.has_content_length && hp.content_length > in.length - offset) {
		busy_give(t, p->slot);
		free(p);
		return tus_set_error(r, 413, "too_large", "the body goes past Upload-Length");
	}
	r->tus = p;
	memcpy(p->id, id, sizeof p->id);
	p->start = p->offset = offset;
	p->length = in.length;
	tus_path(t, id, "data", path, sizeof path);
	if ((p->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
		patch_free(r);
		return tus_set_error(r, 404, "not_found", "no such upload");
	}
	if (hp.has_checksum) {
		memcpy(p->want, hp.want, sizeof p->want);
		if (!(p->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL)) {
			patch_free(r);
			return tus_set_error(r, 503, "overloaded", "out of memory");
		}
		if (verify_begin(t, id, offset)) {
			write_error(r);
			verify_end(t, id);
			patch_free(r);
			return;
		}
	}
}

static void patch_write(struct req *r, const char *data, size_t len)
{
	struct tus_patch *p = r->tus;

	if (len > p->length - p->offset) {
		patch_undo(r->srv->tus, p);
		return tus_set_error(r, 413, "too_large", "the body goes past Upload-Length");
	}
	if (p->md)
		EVP_DigestUpdate(p->md, data, len);
	while (len) {
		ssize_t n = pwrite(p->fd, data, len, (off_t)p->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			write_error(r);
			patch_undo(r->srv->tus, p);
			return;
		}
		data += n;
		len -= (size_t)n;
		p->offset += (uint64_t)n;
	}
}

int tus_image_write_fd(struct req *r, int fd)
{
	char *buf = malloc(1 << 18);

	if (!buf) {
		tus_set_error(r, 503, "overloaded", "out of memory");
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 18);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tus_set_error(r, 503, "storage_unavailable", "the upload cannot be read back");
			break;
		}
		if (n == 0 || http_image_write(r, buf, (size_t)n))
			break;
	}
	free(buf);
	return r->error_status ? -1 : 0;
}

/* The last byte is in: the upload becomes an image. Returns its JSON, or
 * NULL with the request's error set (the upload is then dropped). */
static json_t *patch_finish(struct req *r)
{
	struct tus *t = r->srv->tus;
	struct tus_patch *p = r->tus;
	char path[PATH_MAX];
	struct tus_info in;
	json_t *image = NULL;
	int fd = -1;

	tus_path(t, p->id, "data", path, sizeof path);
	if (info_read(t, p->id, &in) || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		tus_set_error(r, 503, "storage_unavailable", "the upload cannot be read back");
		goto out;
	}
	if (http_image_begin(r) || tus_image_write_fd(r, fd))
		goto out;
	if (!(image = http_image_commit(r, NULL)))
		goto out;
	snprintf(in.image, sizeof in.image, "%s", json_string_value(json_object_get(image, "id")));
	if (info_write(t, p->id, &in)) {
		json_decref(image);
		image = NULL;
		tus_set_error(r, 503, "storage_unavailable", "the upload folder cannot be written");
		goto out;
	}
	unlink(path); /* the bytes live in the store now */
out:
	if (fd >= 0)
		close(fd);
	if (r->put) {
		store_put_abort(r->put);
		r->put = NULL;
	}
	if (!image && r->error_status != 503 && r->error_status != 507)
		upload_remove(t, p->id); /* not an image: nothing to resume */
	return image;
}

/* The body is complete: verify, sync, maybe finish, answer. */
static enum MHD_Result patch_end(struct MHD_Connection *c, struct req *r)
{
	struct tus_patch *p = r->tus;
	unsigned char got[32];
	json_t *image = NULL;

	if (p->md) {
		EVP_DigestFinal_ex(p->md, got, NULL);
		if (memcmp(got, p->want, 32)) {
			patch_undo(r->srv->tus, p);
			patch_free(r);
			return tus_error(c, r, TUS_STATUS_CHECKSUM, "checksum_mismatch",
					 "the body does not match Upload-Checksum; it was dropped");
		}
	}
	if (fsync(p->fd) || (p->md && verify_end(r->srv->tus, p->id))) {
		write_error(r);
		patch_undo(r->srv->tus, p);
		patch_free(r);
		return tus_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	}
	uint64_t offset = p->offset;
	if (offset == p->length && !(image = patch_finish(r))) {
		patch_free(r);
		return tus_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	}
	return tus_reply_patched(c, r, offset, image, patch_free);
}

/* A PATCH that failed while its body came: what it wrote goes. */
static void patch_fail(struct req *r)
{
	patch_undo(r->srv->tus, r->tus);
	patch_free(r);
}

static const struct tus_patch_ops local_patch = {
	.begin = patch_begin, .write = patch_write, .fail = patch_fail, .end = patch_end,
};

enum MHD_Result tus_patch_drive(struct MHD_Connection *c, struct req *r, const char *id, const char *data,
				size_t *size, const struct tus_patch_ops *ops)
{
	if (!r->began) { /* the headers */
		r->began = 1;
		ops->begin(c, r, id);
		return MHD_YES;
	}
	if (*size) {
		if (!r->error_status)
			ops->write(r, data, *size);
		*size = 0;
		return MHD_YES;
	}
	if (r->error_status) {
		if (r->tus)
			ops->fail(r);
		return tus_error(c, r, r->error_status, r->error_code, "%s", r->error_msg);
	}
	return ops->end(c, r);
}

enum MHD_Result tus_reply_patched(struct MHD_Connection *c, struct req *r, uint64_t offset, json_t *image,
				  void (*release)(struct req *r))
{
	struct MHD_Response *resp = tus_empty(r);
	if (!resp) {
		json_decref(image);
		release(r);
		return MHD_NO;
	}
	tus_add_u64(resp, "Upload-Offset", offset);
	tus_add_expires(resp, r->srv, time(NULL));
	if (image) {
		tus_add_image(resp, json_string_value(json_object_get(image, "id")));
		http_precompute_if_asked(c, r, json_string_value(json_object_get(image, "id")));
	}
	json_decref(image);
	release(r);
	return http_queue(c, r, 204, resp);
}

/* ===== Entry points ===== */

enum MHD_Result http_tus(struct MHD_Connection *c, struct req *r, const char *id, const char *data, size_t *size)
{
	const char *m = r->method;
	int item = r->route == ROUTE_TUS_UPLOAD;

	struct tus_shared *shared = r->srv->tus->shared;
	if (item && !strcmp(m, "PATCH") && r->began)
		return tus_patch_drive(c, r, id, data, size, shared ? &tus_shared_patch : &local_patch);
	if (*size) { /* a body only PATCH reads */
		*size = 0;
		return MHD_YES;
	}
	if (!r->began) {
		r->began = 1;
		if (!(item && !strcmp(m, "PATCH")))
			return MHD_YES;
	}
	if (item && !http_tus_id_valid(id))
		return tus_error(c, r, 400, "bad_id", "an upload id is 32 lowercase hex characters");
	if (!strcmp(m, "OPTIONS"))
		return tus_options(c, r);
	if (strcmp(m, item ? "HEAD" : "POST") && (!item || (strcmp(m, "PATCH") && strcmp(m, "DELETE"))))
		return tus_error(c, r, 405, "method_not_allowed", "%s is not allowed on %s", m, r->url);
	if (!http_tus_version_ok(tus_header(c, "Tus-Resumable")))
		return tus_error(c, r, 412, "unsupported_version", "send Tus-Resumable: " TUS_VERSION);
	if (!item)
		return shared ? tus_shared_create(c, r) : tus_create(c, r);
	if (!strcmp(m, "HEAD"))
		return shared ? tus_shared_head(c, r, id) : tus_head(c, r, id);
	if (!strcmp(m, "DELETE"))
		return shared ? tus_shared_delete(c, r, id) : tus_delete(c, r, id);
	r->began = 0; /* PATCH: its headers are checked by tus_patch */
	return tus_patch_drive(c, r, id, data, size, shared ? &tus_shared_patch : &local_patch);
}

void http_tus_cleanup(struct req *r)
{
	struct tus_patch *p = r->tus;
	if (!p)
		return;
	if (p->sh)
		return tus_shared_cleanup(r);
	/* cut off: unverifiable bytes go, the others stay for a resume */
	if (p->md)
		patch_undo(r->srv->tus, p);
	else
		fsync(p->fd);
	patch_free(r);
}

int http_tus_init(struct http_server *s, char *errbuf, size_t errlen)
{
	struct tus *t = calloc(1, sizeof *t);

	if (!t) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	if ((size_t)snprintf(t->dir, sizeof t->dir, "%s/uploads", s->cfg.data_dir) >= sizeof t->dir ||
	    (mkdir(t->dir, 0777) && errno != EEXIST)) {
		snprintf(errbuf, errlen, "cannot create %s/uploads: %s", s->cfg.data_dir, strerror(errno));
		free(t);
		return -1;
	}
	pthread_mutex_init(&t->lock, NULL);
	s->tus = t;
	t->last_sweep_ms = util_now_ms();
	sweep(s, 1);
	return tus_shared_init(s, errbuf, errlen);
}

void http_tus_fini(struct http_server *s)
{
	if (!s || !s->tus)
		return;
	tus_shared_fini(s);
	pthread_mutex_destroy(&s->tus->lock);
	free(s->tus);
	s->tus = NULL;
}
