/*
 * test_store_s3.c - the S3 store against a real S3-compatible server on
 * loopback (s3rver, which scripts/test-setup.sh installs into BUILD/s3-tests):
 * content-addressed round trips (small, streamed and 3 MB), dedup, misses,
 * checksum mismatches that store nothing, explicit keys, deletes, a missing
 * bucket (a 4xx, refused at once, never retried), virtual-host addressing,
 * concurrent puts, and failures: 5xx answers are retried with backoff (and a
 * put succeeds when the server recovers), a stopped server and a frozen one give
 * STORE_IO in bounded time and leave no partial object, and a put that starts
 * while the server is down succeeds once it is back, through the retries.
 *
 * The test starts and stops the server itself; it skips (77) when node or
 * s3rver is missing. PETCUT_S3RVER may name s3rver's bin/s3rver.js.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "store/store.h"

#include "check.h"

/* SHA-256 of "hello world" */
#define HELLO_SHA "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
#define BUCKET "petcut"

static char work[64];		/* the test's folder: s3rver's data and log */
static char s3rver_js[PATH_MAX];
static pid_t server_pid;
static int server_port;

/* ===== Helpers ===== */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void sha_hex(const void *buf, size_t len, char hex[STORE_KEY_LEN + 1])
{
	unsigned char d[32];
	SHA256(buf, len, d);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
}

/* Where s3rver is: $PETCUT_S3RVER, or BUILD/s3-tests beside this program's
 * BUILD/tests. */
static int find_s3rver(void)
{
	const char *v = getenv("PETCUT_S3RVER");
	char exe[PATH_MAX - 64];
	ssize_t n;

	if (v && *v) {
		snprintf(s3rver_js, sizeof s3rver_js, "%s", v);
		return access(s3rver_js, R_OK);
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) < 0)
		return -1;
	exe[n] = 0;
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			return -1;
		*slash = 0;
	}
	snprintf(s3rver_js, sizeof s3rver_js, "%s/s3-tests/node_modules/s3rver/bin/s3rver.js", exe);
	return access(s3rver_js, R_OK);
}

/* node's path from PATH, found before any fork: the child of a process
 * with threads should only exec */
static char node_path[PATH_MAX];

static int find_node(void)
{
	const char *path = getenv("PATH");

	for (const char *d = path ? path : "/usr/bin"; *d;) {
		size_t n = strcspn(d, ":");
		if (n && (size_t)snprintf(node_path, sizeof node_path, "%.*s/node", (int)n, d) < sizeof node_path &&
		    access(node_path, X_OK) == 0)
			return 0;
		d += n;
		if (*d == ':')
			d++;
	}
	return -1;
}

/* Starts s3rver on port (0: a free one, then read from its log) with the
 * data kept in work/data across restarts. Returns 0 once it listens. */
static int server_start(int port)
{
	char log[128], data[128], portarg[16], line[256];
	/* --service-endpoint localhost: BUCKET.s3.localhost is the bucket in
	 * virtual-host style */
	char *argv[] = {"node", s3rver_js, "-d", data, "-a", "127.0.0.1", "-p", portarg, "-s", "--configure-bucket",
			BUCKET, "--service-endpoint", "localhost", NULL};

	snprintf(log, sizeof log, "%s/s3rver.log", work);
	snprintf(data, sizeof data, "%s/data", work);
	snprintf(portarg, sizeof portarg, "%d", port);
	mkdir(data, 0700);
	unlink(log);
	fflush(NULL);
	if ((server_pid = fork()) < 0)
		return -1;
	if (server_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		/* the server goes with the test, even when the test is killed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(node_path, argv);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) { /* 30 s: node starts slowly on a busy machine */
		FILE *f = fopen(log, "r");
		int p = 0;
		while (f && fgets(line, sizeof line, f)) {
			char *at = strstr(line, "listening on 127.0.0.1:");
			if (at)
				p = atoi(at + strlen("listening on 127.0.0.1:"));
		}
		if (f)
			fclose(f);
		if (p > 0) {
			server_port = p;
			return 0;
		}
		if (waitpid(server_pid, NULL, WNOHANG) == server_pid)
			break;
		sleep_ms(100);
	}
	fprintf(stderr, "s3rver did not start; its log:\n");
	char cmd[200];
	snprintf(cmd, sizeof cmd, "cat %s >&2", log);
	if (system(cmd)) {
	}
	return -1;
}

static void server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
		server_pid = 0;
	}
}

/* Opens s3://BUCKET/PREFIX on the running server with the given retries and
 * timeout (0: the defaults). */
static struct store *open_s3(const char *spec, int retries, int timeout_ms, const char *addressing)
{
	char url[64], n[16];
	struct store *s = NULL;

	snprintf(url, sizeof url, "http://%s:%d", addressing ? "s3.localhost" : "127.0.0.1", server_port);
	setenv("AWS_ENDPOINT_URL", url, 1);
	if (addressing)
		setenv("PETCUT_S3_ADDRESSING", addressing, 1);
	else
		unsetenv("PETCUT_S3_ADDRESSING");
	snprintf(n, sizeof n, "%d", retries);
	setenv("PETCUT_S3_RETRIES", n, 1);
	if (timeout_ms) {
		snprintf(n, sizeof n, "%d", timeout_ms);
		setenv("PETCUT_S3_TIMEOUT_MS", n, 1);
	} else {
		unsetenv("PETCUT_S3_TIMEOUT_MS");
	}
	if (store_open(spec, &s) != STORE_OK)
		fprintf(stderr, "store_open %s: %s\n", spec, store_errmsg());
	return s;
}

/* True if ns/key holds exactly buf (or, with buf NULL, holds nothing). */
static int holds(struct store *s, const char *ns, const char *key, const void *buf, size_t len)
{
	void *got;
	size_t n;
	store_status st = store_get(s, ns, key, &got, &n);

	if (!buf)
		return st == STORE_NOT_FOUND;
	if (st != STORE_OK)
		return 0;
	int same = n == len && !memcmp(got, buf, len);
	free(got);
	return same;
}

/* ===== Without a server ===== */

static void spec_checks(void)
{
	struct store *s = NULL;
	store_status st;

	setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	st = store_open("s3://Bad_Bucket/x", &s);
	CHECK(st == STORE_BAD_KEY, "a bucket name S3 would refuse is refused: %s", store_errmsg());
	st = store_open("s3://" BUCKET "/a/../b", &s);
	CHECK(st == STORE_BAD_KEY, "a prefix with '..' is refused: %s", store_errmsg());
	CHECK(store_open("s3://" BUCKET "/a b", &s) == STORE_BAD_KEY, "a prefix with a space is refused");
	CHECK(store_open("s3:/" BUCKET, &s) != STORE_OK, "s3:/BUCKET is not an S3 spec");
	setenv("PETCUT_S3_ADDRESSING", "sideways", 1);
	CHECK(store_open("s3://" BUCKET, &s) == STORE_BAD_KEY, "an unknown addressing style is refused");
	unsetenv("PETCUT_S3_ADDRESSING");
	setenv("AWS_ENDPOINT_URL", "ftp://127.0.0.1:1", 1);
	CHECK(store_open("s3://" BUCKET, &s) == STORE_BAD_KEY, "an endpoint that is not http(s) is refused");
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	st = store_open("s3://" BUCKET, &s);
	CHECK(st == STORE_BAD_KEY, "no keys, no store: %s", store_errmsg());
	setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
	CHECK(store_open("s3://" BUCKET "/some/prefix/", &s) == STORE_OK && !strcmp(store_backend_name(s), "s3"),
	      "s3://BUCKET/PREFIX opens as s3 storage without a request");
	store_close(s);
}

/* ===== With the server ===== */

static struct store *shared;

struct same_put {
	int existed;
	store_status st;
};

static void *put_same(void *arg)
{
	struct same_put *sp = arg;
	char key[STORE_KEY_LEN + 1];
	sp->st = store_put_buffer(shared, "img", NULL, "same bytes from many threads", 28, key, &sp->existed);
	return NULL;
}

static void round_trips(struct store *s)
{
	char key[STORE_KEY_LEN + 1], sha[STORE_KEY_LEN + 1], path[256];
	struct store_put *p;
	void *buf;
	size_t len;
	int existed = -1, fd;

	CHECK(store_put_begin(s, "img", 0, &p) == STORE_OK, "a put starts");
	store_put_write(p, "hello ", 6);
	store_put_write(p, "world", 5);
	CHECK(store_put_commit(p, NULL, HELLO_SHA, key, &existed) == STORE_OK && !strcmp(key, HELLO_SHA) && !existed,
	      "streamed content is stored under its SHA-256, verified against the expected one");
	snprintf(path, sizeof path, "%s/data/%s/t/img/%s._S3rver_object", work, BUCKET, HELLO_SHA);
	CHECK(access(path, R_OK) == 0, "the server holds it as t/img/<sha256> in the bucket");
	CHECK(store_put_buffer(s, "img", NULL, "hello world", 11, key, &existed) == STORE_OK && existed,
	      "the same content again is stored once (existed)");
	CHECK(holds(s, "img", HELLO_SHA, "hello world", 11), "get returns the bytes");
	CHECK(store_get_fd(s, "img", HELLO_SHA, &fd, &len) == STORE_OK && len == 11, "get_fd gives a descriptor");
	char b[16] = {0};
	CHECK(read(fd, b, sizeof b) == 11 && !memcmp(b, "hello world", 11), "from the start of the object");
	close(fd);
	CHECK(store_head(s, "img", HELLO_SHA, &len) == STORE_OK && len == 11, "head gives the size");

	/* 3 MB of varied bytes, written in uneven pieces */
	size_t big = 3 << 20;
	unsigned char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 13);
	sha_hex(data, big, sha);
	store_put_begin(s, "img", 0, &p);
	for (size_t off = 0; off < big;) {
		size_t n = off % 7 == 0 ? 65521 : 100003;
		if (n > big - off)
			n = big - off;
		store_put_write(p, data + off, n);
		off += n;
	}
	CHECK(store_put_commit(p, NULL, NULL, key, &existed) == STORE_OK && !strcmp(key, sha) && !existed,
	      "3 MB are stored under their SHA-256 %.12s...", sha);
	CHECK(holds(s, "img", sha, data, big), "and read back whole");
	CHECK(store_get_fd(s, "img", sha, &fd, &len) == STORE_OK && len == big, "get_fd streams them to a file");
	if (len == big) {
		unsigned char *back = malloc(big);
		size_t got = 0;
		ssize_t n;
		while (got < big && (n = read(fd, back + got, big - got)) > 0)
			got += (size_t)n;
		CHECK(got == big && !memcmp(back, data, big), "the file holds the same bytes");
		free(back);
	}
	close(fd);
	free(data);

	CHECK(store_get(s, "img", "0000000000000000000000000000000000000000000000000000000000000001", &buf, &len) ==
		      STORE_NOT_FOUND,
	      "get of a missing key is STORE_NOT_FOUND");
	CHECK(store_head(s, "img", "0000000000000000000000000000000000000000000000000000000000000001", &len) ==
		      STORE_NOT_FOUND,
	      "so is head");
	CHECK(store_get_fd(s, "img", "0000000000000000000000000000000000000000000000000000000000000001", &fd, &len) ==
		      STORE_NOT_FOUND,
	      "and get_fd");

	store_put_begin(s, "img", 0, &p);
	store_put_write(p, "not what was announced", 22);
	store_put_sha256(p, sha);
	CHECK(store_put_commit(p, NULL, HELLO_SHA, key, &existed) == STORE_MISMATCH,
	      "a put whose content does not have the expected SHA-256 fails");
	CHECK(holds(s, "img", sha, NULL, 0), "and stores nothing, under either hash");

	const char *rkey = "ab00000000000000000000000000000000000000000000000000000000000042";
	CHECK(store_put_buffer(s, "res", rkey, "a result", 8, key, &existed) == STORE_OK && !strcmp(key, rkey),
	      "a result is stored under the key given");
	CHECK(holds(s, "res", rkey, "a result", 8), "and read back under it");
	CHECK(store_delete(s, "res", rkey) == STORE_OK, "delete works");
	CHECK(holds(s, "res", rkey, NULL, 0), "the object is gone");
	CHECK(store_delete(s, "res", rkey) == STORE_NOT_FOUND, "deleting it again is STORE_NOT_FOUND");
	CHECK(store_put_buffer(s, "res", rkey, "", 0, key, &existed) == STORE_OK && holds(s, "res", rkey, "", 0),
	      "an empty object round-trips");
	store_delete(s, "res", rkey);

	/* several threads through one store: the handle pool is shared */
	pthread_t t[6];
	struct same_put sp[6];
	shared = s;
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, put_same, &sp[i]);
	int ok = 1, stored = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		ok &= sp[i].st == STORE_OK;
		stored += sp[i].st == STORE_OK && !sp[i].existed;
	}
	sha_hex("same bytes from many threads", 28, sha);
	CHECK(ok && stored >= 1 && holds(s, "img", sha, "same bytes from many threads", 28),
	      "6 threads putting the same bytes at once all succeed (%d wrote, the others found it)", stored);
}

static void other_buckets(void)
{
	struct store *s;
	char key[STORE_KEY_LEN + 1];
	void *buf;
	size_t len;
	int existed;

	s = open_s3("s3://nosuchbucket", 5, 0, NULL);
	double t0 = now();
	store_status st = store_put_buffer(s, "img", NULL, "hello world", 11, key, &existed);
	double dt = now() - t0;
	CHECK(st == STORE_IO && strstr(store_errmsg(), "NoSuchBucket"), "a missing bucket is STORE_IO: %s",
	      store_errmsg());
	CHECK(dt < 1.0, "a 4xx answer is not retried (%.2f s with 5 retries allowed)", dt);
	CHECK(store_get(s, "img", HELLO_SHA, &buf, &len) == STORE_IO, "a get there is STORE_IO, not a miss");
	store_close(s);

	s = open_s3("s3://" BUCKET "/t", 0, 0, "virtual");
	CHECK(s && holds(s, "img", HELLO_SHA, "hello world", 11),
	      "virtual-host style (BUCKET.s3.localhost) reads what path style wrote");
	CHECK(s && store_put_buffer(s, "img", NULL, "virtual", 7, key, &existed) == STORE_OK && !existed,
	      "and writes");
	store_close(s);
	s = open_s3("s3://" BUCKET "/t", 0, 0, NULL);
	CHECK(holds(s, "img", key, "virtual", 7), "into the same bucket");
	store_close(s);
}

/* s3rver answers 500 when an object's folder cannot be made: a file named
 * like the prefix in its data folder does that, until it is removed. */
struct blocked_put {
	struct store *s;
	store_status st;
	char err[256];
};

static void *put_blocked(void *arg)
{
	struct blocked_put *bp = arg;
	char key[STORE_KEY_LEN + 1];
	int existed;
	bp->st = store_put_buffer(bp->s, "img", NULL, "after a 500", 11, key, &existed);
	snprintf(bp->err, sizeof bp->err, "%s", bp->st ? store_errmsg() : "ok");
	return NULL;
}

static void server_errors(void)
{
	char block[256], key[STORE_KEY_LEN + 1];
	struct store *s;
	int existed;

	snprintf(block, sizeof block, "%s/data/%s/blocked", work, BUCKET);
	FILE *f = fopen(block, "w");
	if (f)
		fclose(f);
	s = open_s3("s3://" BUCKET "/blocked", 2, 0, NULL);
	double t0 = now();
	store_status st = store_put_buffer(s, "img", NULL, "after a 500", 11, key, &existed);
	double dt = now() - t0;
	CHECK(st == STORE_IO && strstr(store_errmsg(), "HTTP 500") && strstr(store_errmsg(), "(3 tries)"),
	      "a 5xx answer is retried, then STORE_IO: %s", store_errmsg());
	CHECK(dt >= 0.15 && dt < 5.0, "with backoff between the tries (%.2f s for 3)", dt);
	store_close(s);

	struct blocked_put bp = {0};
	pthread_t t;
	bp.s = open_s3("s3://" BUCKET "/blocked", 8, 0, NULL);
	pthread_create(&t, NULL, put_blocked, &bp);
	sleep_ms(300);
	unlink(block);
	pthread_join(t, NULL);
	CHECK(bp.st == STORE_OK, "a put that got 500s succeeds once the server recovers, within its retries: %s", bp.err);
	store_close(bp.s);
}

struct late_put {
	struct store *s;
	store_status st;
	char key[STORE_KEY_LEN + 1];
	char err[256];		/* store_errmsg() is per thread */
};

static void *put_late(void *arg)
{
	struct late_put *lp = arg;
	int existed;
	lp->st = store_put_buffer(lp->s, "img", NULL, "stored once the server is back", 30, lp->key, &existed);
	snprintf(lp->err, sizeof lp->err, "%s", lp->st ? store_errmsg() : "ok");
	return NULL;
}

static void failures_checks(void)
{
	const char *lost = "never stored: the server was down";
	char key[STORE_KEY_LEN + 1], sha[STORE_KEY_LEN + 1];
	struct store *s;
	void *buf;
	size_t len;
	int existed;

	/* stopped: connections are refused */
	s = open_s3("s3://" BUCKET "/t", 2, 0, NULL);
	int port = server_port;
	server_stop();
	double t0 = now();
	store_status st = store_put_buffer(s, "img", NULL, lost, strlen(lost), key, &existed);
	double dt = now() - t0;
	CHECK(st == STORE_IO, "server stopped: a put is STORE_IO: %s", store_errmsg());
	CHECK(dt < 5.0, "in bounded time (%.2f s with 2 retries)", dt);
	CHECK(store_get(s, "img", HELLO_SHA, &buf, &len) == STORE_IO, "a get is STORE_IO, not a miss");
	CHECK(store_head(s, "img", HELLO_SHA, &len) == STORE_IO, "so is head");
	store_close(s);

	/* a put that starts while the server is down, which comes back
	 * within its retries */
	struct late_put lp = {0};
	pthread_t t;
	lp.s = open_s3("s3://" BUCKET "/t", 10, 0, NULL);
	pthread_create(&t, NULL, put_late, &lp);
	sleep_ms(300);
	if (server_start(port)) {
		CHECK(0, "s3rver restarts on port %d", port);
		pthread_join(t, NULL);
		store_close(lp.s);
		return;
	}
	pthread_join(t, NULL);
	CHECK(lp.st == STORE_OK, "a put started while the server was down succeeds through retries once it is back: %s",
	      lp.err);
	CHECK(holds(lp.s, "img", lp.key, "stored once the server is back", 30), "with the right bytes");
	store_close(lp.s);

	s = open_s3("s3://" BUCKET "/t", 0, 0, NULL);
	sha_hex(lost, strlen(lost), sha);
	CHECK(holds(s, "img", sha, NULL, 0), "after the server is back, the failed put left no object");
	CHECK(holds(s, "img", HELLO_SHA, "hello world", 11), "and the earlier objects are there");
	store_close(s);

	/* frozen: connections are accepted, nothing answers */
	const char *frozen = "sent to a frozen server";
	s = open_s3("s3://" BUCKET "/t", 1, 1000, NULL);
	kill(server_pid, SIGSTOP);
	t0 = now();
	st = store_put_buffer(s, "img", NULL, frozen, strlen(frozen), key, &existed);
	dt = now() - t0;
	CHECK(st == STORE_IO, "server frozen: a put is STORE_IO: %s", store_errmsg());
	CHECK(dt < 4.0, "within its timeouts (%.2f s for 2 tries of 1 s)", dt);
	t0 = now();
	st = store_get(s, "img", HELLO_SHA, &buf, &len);
	dt = now() - t0;
	CHECK(st == STORE_IO && dt < 4.0, "a get too, in %.2f s", dt);
	kill(server_pid, SIGCONT);
	store_close(s);
	sleep_ms(1000); /* the server works through what it was sent */
	s = open_s3("s3://" BUCKET "/t", 0, 0, NULL);
	sha_hex(frozen, strlen(frozen), sha);
	st = store_head(s, "img", sha, &len);
	CHECK(st == STORE_NOT_FOUND || (st == STORE_OK && holds(s, "img", sha, frozen, strlen(frozen))),
	      "once it thaws, the timed-out put's object is whole or absent (%s)",
	      st == STORE_OK ? "whole" : store_strerror(st));
	store_close(s);
}

/* Puts and get_fd spool into TMPDIR (the test's folder): nothing may stay. */
static void no_spool_left(void)
{
	DIR *d = opendir(work);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "data") &&
		     strcmp(e->d_name, "s3rver.log");
	if (d)
		closedir(d);
	CHECK(d && n == 0, "no spooled file is left in TMPDIR (%d)", n);
}

/* ===== Multipart uploads ===== */

struct listed {
	int n;
	char key[STORE_KEY_LEN + 1];
};

static void on_upload(void *arg, const char *key, const char *id)
{
	struct listed *l = arg;
	if (l->n++ == 0)
		snprintf(l->key, sizeof l->key, "%s", key);
	(void)id;
}

static void multipart(struct store *s)
{
	size_t part = STORE_MP_MIN_PART, total = 2 * part + 1000, len;
	unsigned char *data = malloc(total);
	char key[STORE_KEY_LEN + 1], id[STORE_MP_ID_MAX], etags[3][STORE_MP_ETAG_MAX];
	void *buf = NULL;
	store_status st;

	for (size_t i = 0; i < total; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 13);
	store_key_of("multipart test", 14, key);
	CHECK(store_mp_begin(s, "tus", key, id) == STORE_OK && *id, "a multipart upload begins: id %s", id);
	/* the parts go out of order, from what could be three instances */
	CHECK(store_mp_part(s, "tus", key, id, 3, data + 2 * part, 1000, etags[2]) == STORE_OK &&
		      store_mp_part(s, "tus", key, id, 1, data, part, etags[0]) == STORE_OK &&
		      store_mp_part(s, "tus", key, id, 2, data + part, part, etags[1]) == STORE_OK,
	      "three parts are sent (5 MiB, 5 MiB, 1000 bytes; out of order)");
	CHECK(etags[0][0] == '"' && strcmp(etags[0], etags[1]), "each part is named by its ETag (%s, %s)", etags[0],
	      etags[1]);
	CHECK(store_head(s, "tus", key, &len) == STORE_NOT_FOUND, "before completion there is no object");
	CHECK(store_mp_complete(s, "tus", key, id, 3, (const char(*)[STORE_MP_ETAG_MAX])etags) == STORE_OK,
	      "completed: %s", store_errmsg());
	CHECK(store_get(s, "tus", key, &buf, &len) == STORE_OK && len == total && !memcmp(buf, data, total),
	      "the object is the parts in order, whole (%zu bytes)", total);
	free(buf);
	CHECK(store_mp_part(s, "tus", key, id, 0, data, 10, etags[0]) == STORE_BAD_KEY, "part 0 is refused");

	/* listing and aborting: the S3 API has them; a server without them is
	 * told apart from a failure */
	struct listed l = {0};
	CHECK(store_mp_begin(s, "tus", key, id) == STORE_OK, "another upload begins");
	st = store_mp_list(s, "tus", on_upload, &l);
	if (st == STORE_UNSUPPORTED) {
		CHECK(strstr(store_errmsg(), "cannot list"), "this server cannot list multipart uploads, and says so: %s",
		      store_errmsg());
	} else {
		CHECK(st == STORE_OK && l.n == 1 && !strcmp(l.key, key), "the unfinished upload is listed (%d)", l.n);
	}
	st = store_mp_abort(s, "tus", key, id);
	CHECK(st == STORE_OK || (st == STORE_UNSUPPORTED && strstr(store_errmsg(), "cannot abort")),
	      "an abort is done, or refused as something this server cannot do: %s", store_errmsg());

	struct store *fs;
	char dir[] = "/tmp/petcut-mp-XXXXXX";
	CHECK(mkdtemp(dir) && store_open(dir, &fs) == STORE_OK &&
		      store_mp_begin(fs, "tus", key, id) == STORE_UNSUPPORTED,
	      "a folder store has no multipart uploads (STORE_UNSUPPORTED)");
	store_close(fs);
	rmdir(dir);
	free(data);
}

int main(void)
{
	struct store *s;

	spec_checks();
	if (find_node()) {
		printf("skip: node is not installed (scripts/install-deps.sh installs it)\n");
		return failures ? 1 : 77;
	}
	if (find_s3rver()) {
		printf("skip: s3rver not found at %s (scripts/test-setup.sh installs it)\n", s3rver_js);
		return failures ? 1 : 77;
	}
	snprintf(work, sizeof work, "/tmp/petcut-s3-XXXXXX");
	if (!mkdtemp(work)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("TMPDIR", work, 1);
	if (server_start(0)) {
		printf("s3rver did not start\n");
		failures++;
		goto out;
	}
	printf("# s3rver on 127.0.0.1:%d\n", server_port);
	if (!(s = open_s3("s3://" BUCKET "/t", 3, 0, NULL))) {
		failures++;
		goto out;
	}
	round_trips(s);
	multipart(s);
	store_close(s);
	other_buckets();
	server_errors();
	failures_checks();
	no_spool_left();
out:
	server_stop();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", work);
	if (system(cmd)) {
	}
	return failures ? 1 : 0;
}
