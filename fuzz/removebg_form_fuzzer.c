/*
 * removebg_form_fuzzer.c - fuzz target for the form of POST /v1.0/removebg:
 * multipart/form-data or urlencoded bodies, read by libmicrohttpd's post
 * processor into petcut's field callback (http_upload_field: files stored
 * as uploads, text fields gathered by http_form_add), then turned into a
 * remove-background body (http_removebg_body) and parsed as one
 * (http_remove_parse), as the route does.
 *
 * The input is the Content-Type on its first line, then the body. Each one
 * is sent as a request over a socket pair to a libmicrohttpd daemon that
 * this program runs without threads (no network); uploads go to a store in
 * a temporary folder, removed at exit. Checked besides crashes and leaks:
 * every text field the form accepted is kept exactly as sent; a stored
 * file has a valid id; the body made of the form has one source, carries
 * the form's values as they were given, and never fails to parse for a
 * reason the form could not have caused (a field of the wrong type, or no
 * source). Anything else aborts.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_int.h"
#include "http/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                 \
	do {                        \
		if (!(cond))        \
			abort();    \
	} while (0)

#define MAX_SHADOW 64

/* One request: petcut's state, and what the text fields were sent as. */
struct fuzz_req {
	struct req r; /* first: the field callback gets it as its struct req */
	struct {
		char *key, *value;
		size_t len;
	} sent[MAX_SHADOW];
	int n_sent;
};

static struct MHD_Daemon *daemon_;
static struct http_server srv;
static char dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void at_exit(void)
{
	if (daemon_)
		MHD_stop_daemon(daemon_);
	if (srv.store)
		store_close(srv.store);
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int is_file(const char *key)
{
	return !strcmp(key, "file") || !strcmp(key, "image_file") || !strcmp(key, "bg_image_file");
}

/* Keeps what a text field was sent as, piece by piece; a piece at offset
 * 0 starts the field again (the last of a repeated field counts). */
static void shadow_add(struct fuzz_req *f, const char *key, const char *data, uint64_t off, size_t size)
{
	int i;
	for (i = 0; i < f->n_sent && strcmp(f->sent[i].key, key); i++)
		;
	if (i == MAX_SHADOW)
		return;
	if (i == f->n_sent) {
		CHECK(f->sent[i].key = strdup(key));
		f->sent[i].value = NULL;
		f->sent[i].len = 0;
		f->n_sent++;
	}
	if (!off)
		f->sent[i].len = 0;
	char *v = realloc(f->sent[i].value, f->sent[i].len + size + 1);
	CHECK(v);
	memcpy(v + f->sent[i].len, data, size);
	f->sent[i].len += size;
	v[f->sent[i].len] = 0;
	f->sent[i].value = v;
}

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
				const char *content_type, const char *transfer_encoding, const char *data,
				uint64_t off, size_t size)
{
	struct fuzz_req *f = cls;
	enum MHD_Result ret = http_upload_field(&f->r, kind, key, filename, content_type, transfer_encoding, data,
						off, size);
	if (ret == MHD_YES && !f->r.error_status && !is_file(key))
		shadow_add(f, key, data, off, size);
	return ret;
}

/* The body made of the form carries the form's values. */
static void check_body(json_t *form, json_t *img, json_t *body)
{
	const char *bg = http_form_value(form, "bg_color");
	const char *margin = http_form_value(form, "crop_margin");
	const char *got;

	CHECK(!!json_object_get(body, "image_id") + !!json_object_get(body, "image") +
		      !!json_object_get(body, "image_url") == 1);
	CHECK(!img || json_equal(json_object_get(body, "image_id"), json_object_get(img, "id")));
	if ((got = json_string_value(json_object_get(body, "image"))))
		CHECK(!strcmp(got, http_form_value(form, "image_file_b64")));
	if ((got = json_string_value(json_object_get(body, "image_url"))))
		CHECK(!strcmp(got, http_form_value(form, "image_url")));
	const char *channels = http_form_value(form, "channels"), *crop = http_form_value(form, "crop");
	int alpha = channels && !strcasecmp(channels, "alpha");
	int cropped = crop && (!strcasecmp(crop, "true") || !strcmp(crop, "1") || !strcasecmp(crop, "yes"));

	/* the alpha channel alone has no background; a margin is the crop's */
	CHECK(!alpha || !json_object_get(body, "bg"));
	CHECK(cropped || !json_object_get(body, "margin"));
	if (bg && *bg && !alpha) {
		got = json_string_value(json_object_get(body, "bg"));
		CHECK(got && (!strcmp(got, bg) || (got[0] == '#' && !strcmp(got + 1, bg))));
	}
	if (margin && *margin && cropped) {
		size_t n = strlen(margin);
		got = json_string_value(json_object_get(body, "margin"));
		if (n > 2 && !strcasecmp(margin + n - 2, "px"))
			n -= 2;
		CHECK(got && strlen(got) == n && !strncmp(got, margin, n));
	}
}

/* The body is complete: as the route, the last file is committed and the
 * form becomes a removal. */
static void finish(struct fuzz_req *f)
{
	struct req *r = &f->r;
	struct remove_params p;
	const char *code = NULL;
	char why[300];
	json_t *body, *img = NULL, *file;
	size_t k;

	if (http_upload_commit_part(r, NULL))
		return;
	for (size_t i = 0; i < json_array_size(r->uploaded); i++)
		CHECK(store_key_valid(json_string_value(json_object_get(json_array_get(r->uploaded, i), "id"))));
	/* every text field accepted is kept as it was sent */
	for (int i = 0; i < f->n_sent; i++) {
		const char *v = http_form_value(r->form, f->sent[i].key);
		CHECK(v && strlen(v) == f->sent[i].len && !memcmp(v, f->sent[i].value, f->sent[i].len));
	}
	json_array_foreach(r->uploaded, k, file)
		if (strcmp(json_string_value(json_object_get(file, "field")), "bg_image_file"))
			img = file;
	if (!(body = http_removebg_body(r->form, r->uploaded, &code, why, sizeof why))) {
		CHECK(code && why[0]);
		return;
	}
	check_body(r->form, img, body);
	int st = http_remove_parse(body, &p, why, sizeof why);
	CHECK(st == 0 || st == 400);
	if (st)
		CHECK(strncmp(why, "bad field", 9) && strncmp(why, "give exactly one", 16));
	json_decref(body);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *data, size_t *size, void **con_cls)
{
	struct fuzz_req *f = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	(void)cls, (void)url, (void)method, (void)version;

	if (!f) { /* the headers: a form, as http_upload takes it on this route */
		const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!(f = calloc(1, sizeof *f)))
			return MHD_NO;
		*con_cls = f;
		f->r.srv = &srv;
		f->r.route = ROUTE_REMOVEBG;
		if (type && (!strncasecmp(type, "multipart/form-data", 19) ||
			     !strncasecmp(type, "application/x-www-form-urlencoded", 33))) {
			f->r.multipart = 1;
			f->r.uploaded = json_array();
			f->r.form = json_object();
			f->r.pp = MHD_create_post_processor(c, 64 << 10, on_field, f);
			if (!f->r.pp || !f->r.uploaded || !f->r.form)
				f->r.error_status = 400;
		} else {
			f->r.error_status = 415;
		}
		return MHD_YES;
	}
	if (*size) {
		if (!f->r.error_status && MHD_post_process(f->r.pp, data, *size) != MHD_YES && !f->r.error_status)
			f->r.error_status = 400;
		*size = 0;
		return MHD_YES;
	}
	if (!f->r.error_status)
		finish(f);
	if (!(resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)))
		return MHD_NO;
	ret = MHD_queue_response(c, f->r.error_status ? (unsigned)f->r.error_status : 204, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct fuzz_req *f = *con_cls;
	(void)cls, (void)c, (void)toe;

	if (!f)
		return;
	http_req_cleanup_upload(&f->r);
	for (int i = 0; i < f->n_sent; i++) {
		free(f->sent[i].key);
		free(f->sent[i].value);
	}
	free(f);
	*con_cls = NULL;
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "%s", "/tmp/petcut-fuzz-form-XXXXXX");
	if (!mkdtemp(dir) || img_init() != IMG_OK || store_open(dir, &srv.store) != STORE_OK)
		abort();
	srv.cfg.max_upload_bytes = 1 << 20;
	srv.cfg.max_pixels = 4000000;
	daemon_ = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, handler, NULL,
				   MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	if (!daemon_)
		abort();
	atexit(at_exit);
}

/* Sends one request over a socket pair and runs the daemon until it has
 * answered and closed the connection. */
static void send_request(const char *req, size_t n)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	size_t sent = 0;
	char buf[4096];
	int sv[2], done = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (MHD_add_connection(daemon_, sv[0], (struct sockaddr *)&sin, sizeof sin) != MHD_YES) {
		close(sv[1]);
		return;
	}
	for (int i = 0; i < 1000000 && !done; i++) {
		if (sent < n) {
			ssize_t w = write(sv[1], req + sent, n - sent);
			if (w > 0)
				sent += (size_t)w;
		}
		MHD_run(daemon_);
		ssize_t got;
		while ((got = read(sv[1], buf, sizeof buf)) > 0)
			;
		done = got == 0;
	}
	CHECK(done); /* the daemon answered and closed */
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tlen = nl ? (size_t)(nl - data) : size, blen = nl ? size - tlen - 1 : 0;
	char head[256], *req;
	int hl;

	if (!daemon_)
		setup();
	if (tlen > 1000)
		return 0;
	hl = snprintf(head, sizeof head,
		      "POST /v1.0/removebg HTTP/1.1\r\nHost: petcut\r\nConnection: close\r\nContent-Length: %zu\r\n"
		      "Content-Type: ",
		      blen);
	if (!(req = malloc((size_t)hl + tlen + 4 + blen)))
		return 0;
	memcpy(req, head, (size_t)hl);
	for (size_t i = 0; i < tlen; i++) /* one header line, whatever it holds */
		req[hl + i] = data[i] == '\r' || data[i] == 0 ? ' ' : (char)data[i];
	memcpy(req + hl + tlen, "\r\n\r\n", 4);
	if (blen)
		memcpy(req + hl + tlen + 4, nl + 1, blen);
	send_request(req, (size_t)hl + tlen + 4 + blen);
	free(req);
	return 0;
}
