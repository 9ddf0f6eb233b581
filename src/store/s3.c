/*
 * s3.c - the S3-compatible backend of the store: objects are PREFIX/NS/KEY in
 * one bucket, reached over HTTP or HTTPS with libcurl, which signs every
 * request with AWS Signature V4 (CURLOPT_AWS_SIGV4). It needs only the S3
 * REST API with V4 signatures, which AWS S3, MinIO, Cloudflare R2 and Google
 * Cloud Storage's XML API (HMAC keys) all speak; the tests run on s3rver.
 *
 * A put streams into an unlinked temporary file while the store hashes the
 * bytes (S3 wants the length and the checksums before the body), then sends
 * one PUT with Content-MD5 and the body's SHA-256 as the signed payload hash,
 * so the server refuses bytes damaged on the way. A PUT is atomic on S3: the
 * object appears whole under its name or not at all, and a put that fails
 * never leaves a partial object behind.
 *
 * Transport failures and 5xx answers are retried with exponential backoff and
 * jitter; 4xx answers never are (asking again gets the same answer). Every
 * try has a connect and a total timeout, so a dead or frozen server turns into
 * STORE_IO in bounded time instead of a hung request.
 *
 * Settings come from the environment (read once, by store_open); store.h
 * lists them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "store/store_int.h"
#include "util/util.h"

#define S3_IDLE_MAX 8		/* easy handles kept (with their connections) */
#define S3_BACKOFF_MS 100	/* first wait before a retry; doubles each time */
#define S3_BACKOFF_MAX_MS 2000
#define S3_ERR_BODY 512		/* how much of an error answer is kept */
/* SHA-256 of no bytes: the payload hash of GET, HEAD and DELETE */
#define S3_EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3 {
	char *base;		/* URL up to the object's name, ending in '/' */
	char *prefix;		/* "" or "some/folder/" */
	char *sigv4;		/* "aws:amz:REGION:s3" */
	char *key_id, *secret;
	char *token_hdr;	/* "x-amz-security-token: ..." or NULL */
	char *tmpdir;		/* where puts and get_fd spool their bytes */
	long connect_ms, timeout_ms;
	int retries;		/* tries after the first one */
	pthread_mutex_t lock;	/* guards idle[] */
	CURL *idle[S3_IDLE_MAX];
	int n_idle;
};

struct s3_put {
	struct s3 *s3;
	char ns[17];
	int fd;			/* unlinked temporary file holding the bytes */
	size_t len;
	EVP_MD_CTX *md5;
};

/* One request and what came back, reset before each try. */
struct s3_req {
	CURL *h;
	const char *method;
	char name[512];		/* the object's name in the bucket, for messages */
	char url[4096];
	int body_fd;		/* PUT: where the body is read from (pread) */
	const char *body_mem;	/* or (body_fd < 0) from memory: a part, or POST's XML */
	curl_off_t body_len, body_off;
	const char *md5_b64;	/* PUT: Content-MD5 */
	const char *payload_sha; /* hex SHA-256 of the body */
	int sink_fd;		/* >= 0: a 2xx answer's body goes to this file */
	char *buf;		/* else into this buffer (GET) */
	size_t len, cap;
	int sink_failed;	/* a write to the sink failed (disk, memory) */
	long status;
	curl_off_t clen;	/* the answer's Content-Length, -1 if none */
	char err[S3_ERR_BODY];	/* the start of a non-2xx answer's body */
	size_t err_len;
	char etag[STORE_MP_ETAG_MAX]; /* the answer's ETag header, quotes included ("" if none) */
};

/* ===== Settings ===== */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *v = env(name);
	char *end;
	long n;

	if (!v)
		return def;
	n = strtol(v, &end, 10);
	return *end || n < lo || n > hi ? def : n;
}

/* Bucket names as S3 allows them (and as fit a host name). */
static int bucket_valid(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	return strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") >= n && b[0] != '.' && b[0] != '-';
}

/* A prefix is plain folder names: nothing a URL or a signature would have
 * to escape, no empty part, no "." or ".." part. */
static int prefix_valid(const char *p)
{
	size_t n = strlen(p);
	if (n > 200 || strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != n)
		return 0;
	for (const char *c = p; *c;) {
		size_t part = strcspn(c, "/");
		if (part == 0 || (part == 1 && c[0] == '.') || (part == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += part;
		if (*c == '/')
			c++;
	}
	return 1;
}

/* Fills s3->base from the endpoint and the addressing style. */
static store_status make_base(struct s3 *s3, const char *bucket, const char *region)
{
	const char *ep = env("AWS_ENDPOINT_URL_S3"), *style = env("PETCUT_S3_ADDRESSING");
	char aws[128];
	int path_style;

	if (!ep)
		ep = env("AWS_ENDPOINT_URL");
	/* AWS itself prefers virtual hosts; other servers (MinIO, s3rver, a
	 * test on loopback) usually have no DNS for BUCKET.host */
	path_style = ep != NULL;
	if (style && !strcmp(style, "path"))
		path_style = 1;
	else if (style && !strcmp(style, "virtual"))
		path_style = 0;
	else if (style)
		return store_fail(STORE_BAD_KEY, "PETCUT_S3_ADDRESSING is '%s', not path or virtual", style);
	if (!ep) {
		snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
		ep = aws;
	}

	const char *host = strstr(ep, "://");
	if (!host || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) || !host[3])
		return store_fail(STORE_BAD_KEY, "the S3 endpoint '%s' is not an http:// or https:// URL", ep);
	host += 3;
	size_t n = strlen(ep);
	if (n > 400) /* keeps every request's URL within struct s3_req */
		return store_fail(STORE_BAD_KEY, "the S3 endpoint is over 400 characters");
	while (n && ep[n - 1] == '/')
		n--;
	size_t need = n + strlen(bucket) + 4;
	if (!(s3->base = malloc(need)))
		return store_fail(STORE_NOMEM, "out of memory");
	if (path_style)
		snprintf(s3->base, need, "%.*s/%s/", (int)n, ep, bucket);
	else
		snprintf(s3->base, need, "%.*s%s.%.*s/", (int)(host - ep), ep, bucket, (int)(n - (size_t)(host - ep)), host);
	return STORE_OK;
}

static void s3_free(struct s3 *s3)
{
	for (int i = 0; i < s3->n_idle; i++)
		curl_easy_cleanup(s3->idle[i]);
	free(s3->base);
	free(s3->prefix);
	free(s3->sigv4);
	free(s3->key_id);
	free(s3->secret);
	free(s3->token_hdr);
	free(s3->tmpdir);
	pthread_mutex_destroy(&s3->lock);
	free(s3);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

/* curl_global_init is not safe to race with other threads' curl calls: the
 * first store to open does it, once. */
static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* spec: "//BUCKET[/PREFIX]" (what follows "s3:" in "s3://BUCKET/PREFIX") */
static store_status s3_open(const char *spec, void **state)
{
	const char *region = env("AWS_REGION"), *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
	const char *token = env("AWS_SESSION_TOKEN"), *tmp = env("TMPDIR");
	char bucket[64];
	struct s3 *s3;
	store_status st;

	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return store_fail(STORE_IO, "cannot start libcurl: %s", curl_easy_strerror(curl_init_result));
	if (strncmp(spec, "//", 2))
		return store_fail(STORE_BAD_KEY, "an S3 store is s3://BUCKET[/PREFIX]");
	spec += 2;
	size_t blen = strcspn(spec, "/");
	if (!bucket_valid(spec, blen))
		return store_fail(STORE_BAD_KEY, "s3://%.*s: not a valid bucket name", (int)blen, spec);
	snprintf(bucket, sizeof bucket, "%.*s", (int)blen, spec);
	const char *prefix = spec[blen] ? spec + blen + 1 : "";
	size_t plen = strlen(prefix);
	while (plen && prefix[plen - 1] == '/')
		plen--;
	if (!id || !secret)
		return store_fail(STORE_BAD_KEY, "an S3 store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	if (!region)
		region = env("AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	if (strlen(region) > 64 || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
		return store_fail(STORE_BAD_KEY, "AWS_REGION '%s' is not a region name", region);

	if (!(s3 = calloc(1, sizeof *s3)))
		return store_fail(STORE_NOMEM, "out of memory");
	pthread_mutex_init(&s3->lock, NULL);
	s3->connect_ms = env_long("PETCUT_S3_CONNECT_TIMEOUT_MS", 3000, 1, 600000);
	s3->timeout_ms = env_long("PETCUT_S3_TIMEOUT_MS", 60000, 1, 3600000);
	s3->retries = (int)env_long("PETCUT_S3_RETRIES", 3, 0, 20);
	st = STORE_NOMEM;
	if (!(s3->prefix = malloc(plen + 2)) || !(s3->key_id = strdup(id)) || !(s3->secret = strdup(secret)) ||
	    !(s3->tmpdir = strdup(tmp ? tmp : "/tmp")) || !(s3->sigv4 = malloc(strlen(region) + 16)))
		goto fail;
	snprintf(s3->prefix, plen + 1, "%s", prefix);
	if (plen && !prefix_valid(s3->prefix)) {
		st = STORE_BAD_KEY;
		goto fail;
	}
	if (plen)
		strcat(s3->prefix, "/");
	sprintf(s3->sigv4, "aws:amz:%s:s3", region);
	if (token) {
		size_t n = strlen(token) + 32;
		if (!(s3->token_hdr = malloc(n)))
			goto fail;
		snprintf(s3->token_hdr, n, "x-amz-security-token: %s", token);
	}
	if ((st = make_base(s3, bucket, region)) != STORE_OK)
		goto out;
	*state = s3;
	return STORE_OK;
fail:
	if (st == STORE_NOMEM)
		store_fail(st, "out of memory");
	else
		store_fail(st, "s3://%s/%s: a prefix holds only letters, digits, '.', '_', '-' and '/' between folder names",
			   bucket, s3->prefix);
out:
	s3_free(s3);
	return st;
}

static void s3_close(void *state)
{
	s3_free(state);
}

/* ===== Requests ===== */

/* An easy handle from the idle list (keeping its open connection) or a new
 * one; NULL when out of memory. */
static CURL *handle_get(struct s3 *s3)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s3->lock);
	if (s3->n_idle)
		h = s3->idle[--s3->n_idle];
	pthread_mutex_unlock(&s3->lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(struct s3 *s3, CURL *h)
{
	pthread_mutex_lock(&s3->lock);
	if (s3->n_idle < S3_IDLE_MAX) {
		s3->idle[s3->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s3->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* An answer's body: a 2xx one goes to the request's sink, anything else is
 * an error document, of which the start is kept for the message. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		size_t room = sizeof r->err - 1 - r->err_len;
		size_t k = n < room ? n : room;
		memcpy(r->err + r->err_len, data, k);
		r->err_len += k;
		r->err[r->err_len] = 0;
		return n;
	}
	if (r->sink_fd >= 0) {
		for (size_t done = 0; done < n;) {
			ssize_t w = write(r->sink_fd, data + done, n - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->sink_failed = 1;
				return 0; /* stops the transfer */
			}
			done += (size_t)w;
		}
		return n;
	}
	if (r->len + n > r->cap) {
		curl_off_t cl = -1;
		/* sized once from Content-Length where the server sends one */
		if (!r->cap)
			curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		size_t cap = r->cap ? r->cap : cl > 0 && (uint64_t)cl < SIZE_MAX / 4 ? (size_t)cl : 64 << 10;
		while (cap < r->len + n)
			cap *= 2;
		char *b = realloc(r->buf, cap);
		if (!b) {
			r->sink_failed = 1;
			return 0;
		}
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	return n;
}

/* A PUT's body, read by offset so that a retry (or a rewind) starts over. */
static size_t on_read(char *out, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t want = size * nmemb;
	curl_off_t left = r->body_len - r->body_off;

	if ((curl_off_t)want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (r->body_fd < 0) {
		memcpy(out, r->body_mem + r->body_off, want);
		r->body_off += (curl_off_t)want;
		return want;
	}
	ssize_t n;
	do
		n = pread(r->body_fd, out, want, (off_t)r->body_off);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return CURL_READFUNC_ABORT;
	r->body_off += n;
	return (size_t)n;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct s3_req *r = arg;

	if (origin != SEEK_SET || offset < 0 || offset > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->body_off = offset;
	return CURL_SEEKFUNC_OK;
}

/* Keeps the ETag header (a part's name in a multipart upload). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct s3_req *r = arg;
	size_t n = size * nmemb;

	if (n > 5 && !strncasecmp(data, "ETag:", 5)) {
		const char *v = data + 5;
		size_t len = n - 5;
		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
			len--;
		if (len < sizeof r->etag)
			snprintf(r->etag, sizeof r->etag, "%.*s", (int)len, v);
	}
	return n;
}

/* Clears what a previous try of the request received. */
static int req_rewind(struct s3_req *r)
{
	r->len = 0;
	r->err_len = 0;
	r->err[0] = 0;
	r->body_off = 0;
	r->sink_failed = 0;
	r->status = 0;
	r->etag[0] = 0;
	if (r->sink_fd >= 0 && (ftruncate(r->sink_fd, 0) || lseek(r->sink_fd, 0, SEEK_SET) < 0))
		return -1;
	return 0;
}

/* The <Code> of an S3 error document, or "" */
static void err_code(const struct s3_req *r, char *out, size_t n)
{
	const char *a = strstr(r->err, "<Code>"), *b = a ? strstr(a, "</Code>") : NULL;
	snprintf(out, n, "%.*s", a && b ? (int)(b - a - 6) : 0, a ? a + 6 : "");
}

/* Whether a failed transfer is worth another try: the network, the server
 * going away or not answering in time. Local failures (a bad URL, a full
 * disk, out of memory) are not. */
static int curl_retryable(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static void backoff(int attempt)
{
	long ms = S3_BACKOFF_MS << (attempt < 5 ? attempt : 5);
	if (ms > S3_BACKOFF_MAX_MS)
		ms = S3_BACKOFF_MAX_MS;
	/* between half and all of it, so that clients that failed together do
	 * not come back together: each thread draws from its own seed */
	static _Thread_local unsigned seed;
	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)&seed;
	ms = ms / 2 + rand_r(&seed) % (ms / 2 + 1);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Sets the options of one try. */
static int req_setup(struct s3 *s3, struct s3_req *r, struct curl_slist **hdrs)
{
	char line[128];
	CURL *h = r->h;

	snprintf(line, sizeof line, "x-amz-content-sha256: %s", r->payload_sha ? r->payload_sha : S3_EMPTY_SHA);
	if (!(*hdrs = curl_slist_append(NULL, line)))
		return -1;
	if (r->md5_b64) {
		snprintf(line, sizeof line, "Content-MD5: %s", r->md5_b64);
		if (!curl_slist_append(*hdrs, line) || !curl_slist_append(*hdrs, "Content-Type: application/octet-stream"))
			return -1;
	}
	if (s3->token_hdr && !curl_slist_append(*hdrs, s3->token_hdr))
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s3->sigv4);
	curl_easy_setopt(h, CURLOPT_USERNAME, s3->key_id);
	curl_easy_setopt(h, CURLOPT_PASSWORD, s3->secret);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
	/* a transfer that stalls (no byte for 10 s) is over, even within the
	 * total limit */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	int post = !strcmp(r->method, "POST");
	if (post || !strcmp(r->method, "PUT")) {
		/* the body, read by offset (so that a retry starts over) */
		if (post) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, r->body_len);
		} else {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, r->body_len);
		}
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
	} else if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	return 0;
}

/*
 * Runs a request, with retries: STORE_OK on 2xx, STORE_NOT_FOUND on 404
 * (unless the bucket itself is missing), STORE_IO for everything else, with
 * a message naming the request and what went wrong.
 */
static store_status s3_do(struct s3 *s3, struct s3_req *r)
{
	char code[64];
	CURLcode c = CURLE_OK;
	int attempt;

	if (!(r->h = handle_get(s3)))
		return store_fail(STORE_NOMEM, "out of memory");
	for (attempt = 0;; attempt++) {
		struct curl_slist *hdrs = NULL;
		if (req_rewind(r) || req_setup(s3, r, &hdrs)) {
			curl_slist_free_all(hdrs);
			handle_put(s3, r->h);
			return store_fail(STORE_IO, "s3 %s %s: cannot prepare the request", r->method, r->name);
		}
		c = curl_easy_perform(r->h);
		curl_slist_free_all(hdrs);
		if (c == CURLE_OK) {
			curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
			curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->clen);
		}
		int again = c == CURLE_OK ? r->status >= 500 : curl_retryable(c) && !r->sink_failed;
		if (!again || attempt >= s3->retries)
			break;
		backoff(attempt);
	}
	if (c != CURLE_OK) {
		/* a connection that failed is not worth keeping */
		curl_easy_cleanup(r->h);
		r->h = NULL;
		if (r->sink_failed)
			return store_fail(r->sink_fd >= 0 ? STORE_IO : STORE_NOMEM, "s3 %s %s: cannot keep the answer",
					  r->method, r->name);
		return store_fail(STORE_IO, "s3 %s %s: %s (%d %s)", r->method, r->name, curl_easy_strerror(c),
				  attempt + 1, attempt ? "tries" : "try");
	}
	handle_put(s3, r->h);
	r->h = NULL;
	if (r->status >= 200 && r->status <= 299)
		return STORE_OK;
	err_code(r, code, sizeof code);
	if (r->status == 404 && strcmp(code, "NoSuchBucket"))
		return store_fail(STORE_NOT_FOUND, "no such object");
	return store_fail(STORE_IO, "s3 %s %s: HTTP %ld%s%s (%d %s)", r->method, r->name, r->status, *code ? " " : "",
			  code, attempt + 1, attempt ? "tries" : "try");
}

/* Starts a request for NS/KEY; the caller fills in what the method needs. */
static void req_init(struct s3 *s3, struct s3_req *r, const char *method, const char *ns, const char *key)
{
	memset(r, 0, sizeof *r);
	r->method = method;
	r->body_fd = -1;
	r->sink_fd = -1;
	snprintf(r->name, sizeof r->name, "%s%s/%s", s3->prefix, ns, key);
	snprintf(r->url, sizeof r->url, "%s%s", s3->base, r->name);
}

/* An unlinked temporary file in the store's temporary folder. */
static int spool_open(struct s3 *s3)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof path, "%s/petcut-s3-XXXXXX", s3->tmpdir) >= (int)sizeof path)
		return -1;
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -1;
	unlink(path);
	return fd;
}

/* ===== Reads ===== */

static store_status s3_head(void *state, const char *ns, const char *key, size_t *len)
{
	struct s3_req r;
	store_status st;

	req_init(state, &r, "HEAD", ns, key);
	if ((st = s3_do(state, &r)) != STORE_OK)
		return st;
	if (r.clen < 0)
		return store_fail(STORE_IO, "s3 HEAD %s: no Content-Length", r.name);
	*len = (size_t)r.clen;
	return STORE_OK;
}

static store_status s3_get(void *state, const char *ns, const char *key, void **buf, size_t *len)
{
	struct s3_req r;
	store_status st;

	req_init(state, &r, "GET", ns, key);
	if ((st = s3_do(state, &r)) != STORE_OK) {
		free(r.buf);
		return st;
	}
	if (r.clen >= 0 && (size_t)r.clen != r.len) {
		free(r.buf);
		return store_fail(STORE_IO, "s3 GET %s: %zu bytes of %lld", r.name, r.len, (long long)r.clen);
	}
	/* an empty object still gets a buffer, as from the folder backend */
	if (!r.buf && !(r.buf = malloc(1)))
		return store_fail(STORE_NOMEM, "out of memory");
	*buf = r.buf;
	*len = r.len;
	return STORE_OK;
}

/* Streams the object into an unlinked temporary file, so that a large one
 * never sits in memory; the caller reads it from the start. */
static store_status s3_get_fd(void *state, const char *ns, const char *key, int *fd, size_t *len)
{
	struct s3 *s3 = state;
	struct s3_req r;
	store_status st;
	off_t end;

	req_init(s3, &r, "GET", ns, key);
	if ((r.sink_fd = spool_open(s3)) < 0)
		return store_fail(STORE_IO, "cannot create a file in %s: %s", s3->tmpdir, strerror(errno));
	if ((st = s3_do(s3, &r)) != STORE_OK)
		goto fail;
	if ((end = lseek(r.sink_fd, 0, SEEK_CUR)) < 0 || lseek(r.sink_fd, 0, SEEK_SET) < 0) {
		st = store_fail(STORE_IO, "cannot read back %s: %s", r.name, strerror(errno));
		goto fail;
	}
	if (r.clen >= 0 && r.clen != end) {
		st = store_fail(STORE_IO, "s3 GET %s: %lld bytes of %lld", r.name, (long long)end, (long long)r.clen);
		goto fail;
	}
	*fd = r.sink_fd;
	*len = (size_t)end;
	return STORE_OK;
fail:
	close(r.sink_fd);
	return st;
}

/* ===== Puts ===== */

static store_status s3_put_begin(void *state, const char *ns, void **handle)
{
	struct s3 *s3 = state;
	struct s3_put *p = calloc(1, sizeof *p);

	if (!p)
		return store_fail(STORE_NOMEM, "out of memory");
	p->s3 = s3;
	snprintf(p->ns, sizeof p->ns, "%s", ns);
	if (!(p->md5 = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(p->md5, EVP_md5(), NULL)) {
		EVP_MD_CTX_free(p->md5);
		free(p);
		return store_fail(STORE_NOMEM, "out of memory");
	}
	if ((p->fd = spool_open(s3)) < 0) {
		store_status st = store_fail(STORE_IO, "cannot create a file in %s: %s", s3->tmpdir, strerror(errno));
		EVP_MD_CTX_free(p->md5);
		free(p);
		return st;
	}
	*handle = p;
	return STORE_OK;
}

static store_status s3_put_write(void *handle, const void *buf, size_t len)
{
	struct s3_put *p = handle;
	const char *c = buf;

	/* Content-MD5 is the checksum every S3-compatible server checks */
	if (!EVP_DigestUpdate(p->md5, buf, len))
		return store_fail(STORE_IO, "cannot hash");
	p->len += len;
	while (len) {
		ssize_t n = write(p->fd, c, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return store_fail(STORE_IO, "cannot spool an upload in %s: %s", p->s3->tmpdir, strerror(errno));
		c += n;
		len -= (size_t)n;
	}
	return STORE_OK;
}

static void s3_put_abort(void *handle)
{
	struct s3_put *p = handle;
	close(p->fd);
	EVP_MD_CTX_free(p->md5);
	free(p);
}


/*
 * Publishes the spooled bytes under NS/KEY: an object already there is kept
 * (as the folder backend does; under a content address it holds the same
 * bytes). Two instances storing the same new key at once both PUT; S3 keeps
 * one whole copy, and both copies are the same.
 */
static store_status s3_put_commit(void *handle, const char *key, const unsigned char sha256[32], int *existed)
{
	struct s3_put *p = handle;
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned int md5_len = 0;
	char md5_b64[32], sha_hex[65];
	size_t len;
	struct s3_req r;
	store_status st;

	*existed = 0;
	st = s3_head(p->s3, p->ns, key, &len);
	if (st == STORE_OK) {
		*existed = 1;
		goto out;
	}
	if (st != STORE_NOT_FOUND)
		goto out;
	if (!EVP_DigestFinal_ex(p->md5, md5, &md5_len) || md5_len != 16) {
		st = store_fail(STORE_IO, "cannot hash");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, 16);
	util_hex(sha256, 32, sha_hex);
	req_init(p->s3, &r, "PUT", p->ns, key);
	r.body_fd = p->fd;
	r.body_len = (curl_off_t)p->len;
	r.md5_b64 = md5_b64;
	/* signed as the payload hash: AWS refuses a body that does not match it */
	r.payload_sha = sha_hex;
	st = s3_do(p->s3, &r);
	if (st == STORE_NOT_FOUND) /* the bucket is there (else NoSuchBucket): nothing sensible */
		st = store_fail(STORE_IO, "s3 PUT %s: HTTP 404", r.name);
out:
	s3_put_abort(p);
	return st;
}

/* ===== Deletes ===== */

static store_status s3_del(void *state, const char *ns, const char *key)
{
	struct s3_req r;
	size_t len;
	store_status st;

	/* S3 answers a DELETE of a missing object with success; the store's
	 * contract says STORE_NOT_FOUND, which a HEAD first tells */
	if ((st = s3_head(state, ns, key, &len)) != STORE_OK)
		return st;
	req_init(state, &r, "DELETE", ns, key);
	return s3_do(state, &r);
}

/* ===== Multipart uploads =====
 *
 * An object assembled from parts sent at different times, possibly by
 * different instances: CreateMultipartUpload names the upload, UploadPart
 * sends each part whole (with Content-MD5 and its SHA-256 signed, as a PUT),
 * CompleteMultipartUpload makes the object from the parts at once, and
 * AbortMultipartUpload drops them. ListMultipartUploads finds the uploads
 * begun under NS/ (abandoned ones, for their owner to abort).
 *
 * The query strings are written in SigV4's canonical form (parameters in
 * order, each with "=", values percent-encoded), so the signature libcurl
 * computes over them is the one the server computes.
 */

/* The text between <tag> and </tag> at or after *from, or NULL; *from moves
 * past it. S3's documents carry the names petcut made and ids of the
 * server's, neither of which needs XML escapes. */
static const char *xml_tag(const char **from, const char *tag, size_t *len)
{
	char open[64], close[64];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	const char *a = strstr(*from, open), *b = a ? strstr(a, close) : NULL;
	if (!b)
		return NULL;
	a += strlen(open);
	*len = (size_t)(b - a);
	*from = b + strlen(close);
	return a;
}

/* Percent-encodes v for a query value (RFC 3986 unreserved kept). */
static void query_escape(const char *v, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *v && o + 4 < n; v++) {
		unsigned char c = (unsigned char)*v;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
}

/* An upload id as servers make them: letters, digits and a few marks. */
static int upload_id_valid(const char *id, size_t len)
{
	return len > 0 && len < STORE_MP_ID_MAX &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+/=") >= len;
}

/* req_init's request with ?query after the object's name. */
static void req_init_query(struct s3 *s3, struct s3_req *r, const char *method, const char *ns, const char *key,
			   const char *query)
{
	req_init(s3, r, method, ns, key);
	snprintf(r->url, sizeof r->url, "%s%s?%s", s3->base, r->name, query);
}

/* A body from memory, with the checksums a PUT or POST carries. */
static void req_body(struct s3_req *r, const void *buf, size_t len, char md5_b64[32], char sha_hex[65])
{
	unsigned char d[32];
	unsigned int n = 0;

	r->body_mem = buf;
	r->body_len = (curl_off_t)len;
	EVP_Digest(buf, len, d, &n, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)md5_b64, d, 16);
	EVP_Digest(buf, len, d, &n, EVP_sha256(), NULL);
	util_hex(d, 32, sha_hex);
	r->md5_b64 = md5_b64;
	r->payload_sha = sha_hex;
}

static store_status s3_mp_begin(void *state, const char *ns, const char *key, char id[STORE_MP_ID_MAX])
{
	char md5[32], sha[65];
	struct s3_req r;
	store_status st;
	size_t len;

	req_init_query(state, &r, "POST", ns, key, "uploads=");
	req_body(&r, "", 0, md5, sha);
	r.md5_b64 = NULL; /* no body: nothing to check */
	if ((st = s3_do(state, &r)) != STORE_OK) {
		free(r.buf);
		return st == STORE_NOT_FOUND ? store_fail(STORE_IO, "s3 POST %s?uploads: HTTP 404", r.name) : st;
	}
	char *doc = realloc(r.buf, r.len + 1);
	if (!doc) {
		free(r.buf);
		return store_fail(STORE_NOMEM, "out of memory");
	}
	doc[r.len] = 0;
	const char *from = doc, *v = xml_tag(&from, "UploadId", &len);
	if (!v || !upload_id_valid(v, len)) {
		free(doc);
		return store_fail(STORE_IO, "s3 POST %s?uploads: no UploadId in the answer", r.name);
	}
	snprintf(id, STORE_MP_ID_MAX, "%.*s", (int)len, v);
	free(doc);
	return STORE_OK;
}

static store_status s3_mp_part(void *state, const char *ns, const char *key, const char *id, int n, const void *buf,
			       size_t len, char etag[STORE_MP_ETAG_MAX])
{
	char q[STORE_MP_ID_MAX * 3 + 64], eid[STORE_MP_ID_MAX * 3], md5[32], sha[65];
	struct s3_req r;
	store_status st;

	query_escape(id, eid, sizeof eid);
	snprintf(q, sizeof q, "partNumber=%d&uploadId=%s", n, eid);
	req_init_query(state, &r, "PUT", ns, key, q);
	req_body(&r, buf, len, md5, sha);
	if ((st = s3_do(state, &r)) != STORE_OK)
		return st == STORE_NOT_FOUND ? store_fail(STORE_NOT_FOUND, "no such upload") : st;
	if (!r.etag[0])
		return store_fail(STORE_IO, "s3 PUT %s part %d: no ETag in the answer", r.name, n);
	snprintf(etag, STORE_MP_ETAG_MAX, "%s", r.etag);
	return STORE_OK;
}

static store_status s3_mp_complete(void *state, const char *ns, const char *key, const char *id, int n,
				   const char (*etags)[STORE_MP_ETAG_MAX])
{
	char q[STORE_MP_ID_MAX * 3 + 16], eid[STORE_MP_ID_MAX * 3], md5[32], sha[65];
	size_t cap = 128 + (size_t)n * (STORE_MP_ETAG_MAX + 64), o = 0;
	char *xml = malloc(cap);
	struct s3_req r;
	store_status st;

	if (!xml)
		return store_fail(STORE_NOMEM, "out of memory");
	o += (size_t)snprintf(xml + o, cap - o, "<CompleteMultipartUpload>");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(xml + o, cap - o, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
				      etags[i]);
	o += (size_t)snprintf(xml + o, cap - o, "</CompleteMultipartUpload>");
	query_escape(id, eid, sizeof eid);
	snprintf(q, sizeof q, "uploadId=%s", eid);
	req_init_query(state, &r, "POST", ns, key, q);
	req_body(&r, xml, o, md5, sha);
	st = s3_do(state, &r);
	/* a 200 may still carry an error document (the server failed while
	 * assembling): only one that names the result is success */
	if (st == STORE_OK && (!r.buf || r.len < 8 || !memmem(r.buf, r.len, "CompleteMultipartUploadResult", 29)))
		st = store_fail(STORE_IO, "s3 POST %s?uploadId: the upload was not completed", r.name);
	else if (st == STORE_NOT_FOUND)
		st = store_fail(STORE_NOT_FOUND, "no such upload");
	free(r.buf);
	free(xml);
	return st;
}

static store_status s3_mp_abort(void *state, const char *ns, const char *key, const char *id)
{
	char q[STORE_MP_ID_MAX * 3 + 16], eid[STORE_MP_ID_MAX * 3];
	struct s3_req r;
	store_status st;

	query_escape(id, eid, sizeof eid);
	snprintf(q, sizeof q, "uploadId=%s", eid);
	req_init_query(state, &r, "DELETE", ns, key, q);
	st = s3_do(state, &r);
	if (st == STORE_NOT_FOUND)
		return store_fail(STORE_NOT_FOUND, "no such upload");
	if (st == STORE_IO && (r.status == 405 || r.status == 501))
		return store_fail(STORE_UNSUPPORTED, "the S3 server cannot abort multipart uploads (HTTP %ld)", r.status);
	return st;
}

static store_status s3_mp_list(void *state, const char *ns, void (*fn)(void *arg, const char *key, const char *id),
			       void *arg)
{
	struct s3 *s3 = state;
	char prefix[300], eprefix[900], key_marker[600] = "", id_marker[STORE_MP_ID_MAX * 3] = "";
	store_status st = STORE_OK;

	snprintf(prefix, sizeof prefix, "%s%s/", s3->prefix, ns);
	query_escape(prefix, eprefix, sizeof eprefix);
	for (int page = 0; page < 10000; page++) {
		struct s3_req r;
		size_t len;
		req_init(s3, &r, "GET", ns, "uploads");
		if (*key_marker)
			snprintf(r.url, sizeof r.url, "%s?key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", s3->base,
				 key_marker, eprefix, id_marker);
		else
			snprintf(r.url, sizeof r.url, "%s?prefix=%s&uploads=", s3->base, eprefix);
		if ((st = s3_do(s3, &r)) != STORE_OK) {
			free(r.buf);
			if (r.status == 405 || r.status == 501 || (r.status == 400 && strstr(r.err, "NotImplemented")))
				return store_fail(STORE_UNSUPPORTED, "the S3 server cannot list multipart uploads (HTTP %ld)",
						  r.status);
			return st;
		}
		char *doc = realloc(r.buf, r.len + 1);
		if (!doc) {
			free(r.buf);
			return store_fail(STORE_NOMEM, "out of memory");
		}
		doc[r.len] = 0;
		const char *from = doc, *up;
		while ((up = xml_tag(&from, "Upload", &len))) {
			char one[2048], k[600], id[STORE_MP_ID_MAX];
			const char *in = one, *kv, *iv;
			size_t kl, il;
			snprintf(one, sizeof one, "%.*s", (int)len, up);
			if (!(kv = xml_tag(&in, "Key", &kl)) || !(iv = xml_tag(&in, "UploadId", &il)) ||
			    !upload_id_valid(iv, il) || kl >= sizeof k)
				continue;
			snprintf(k, sizeof k, "%.*s", (int)kl, kv);
			snprintf(id, sizeof id, "%.*s", (int)il, iv);
			if (!strncmp(k, prefix, strlen(prefix)) && store_key_valid(k + strlen(prefix)))
				fn(arg, k + strlen(prefix), id);
		}
		from = doc;
		const char *trunc = xml_tag(&from, "IsTruncated", &len);
		int more = trunc && len == 4 && !strncmp(trunc, "true", 4);
		const char *nk, *ni;
		size_t nkl = 0, nil = 0;
		from = doc;
		nk = xml_tag(&from, "NextKeyMarker", &nkl);
		from = doc;
		ni = xml_tag(&from, "NextUploadIdMarker", &nil);
		if (more && nk && nkl < 300 && ni && upload_id_valid(ni, nil)) {
			char t[STORE_MP_ID_MAX];
			snprintf(t, sizeof t, "%.*s", (int)nkl, nk);
			query_escape(t, key_marker, sizeof key_marker);
			snprintf(t, sizeof t, "%.*s", (int)nil, ni);
			query_escape(t, id_marker, sizeof id_marker);
		} else {
			more = 0;
		}
		free(doc);
		if (!more)
			break;
	}
	return st;
}

static const struct store_multipart s3_multipart = {
	.begin = s3_mp_begin,
	.part = s3_mp_part,
	.complete = s3_mp_complete,
	.abort = s3_mp_abort,
	.list = s3_mp_list,
};

const struct store_backend store_s3 = STORE_BACKEND_TABLE(s3, &s3_multipart);
