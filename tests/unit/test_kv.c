/*
 * test_kv.c - the kv module against a real redis-server on loopback: URL
 * forms, values (binary too), databases, locks (one holder, release by the
 * holder only, expiry when the holder never releases), several threads on
 * one connection, records with final states that a late writer cannot
 * undo, the job stream (group, new entries, taking over an entry whose
 * consumer went quiet, acknowledgement), the delivery queue (items due at a
 * time, claimed by one at a time, due again when their claimer goes quiet),
 * and the server going away: calls
 * answer KV_DOWN at once and are counted, and the connection comes back by
 * itself when the server does.
 *
 * The test starts and stops redis-server itself (and makes sure the server
 * answering is its own, not another test's on a port taken meanwhile); it
 * skips (77) without it.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "kv/kv.h"

#include "check.h"

static char redis_path[PATH_MAX];
static char work[64];
static pid_t server_pid;
static int port;
static char url[64];

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* redis-server from PATH, found before any fork */
static int find_redis(void)
{
	const char *path = getenv("PATH");

	for (const char *d = path ? path : "/usr/bin"; *d;) {
		size_t n = strcspn(d, ":");
		if (n && (size_t)snprintf(redis_path, sizeof redis_path, "%.*s/redis-server", (int)n, d) <
				 sizeof redis_path &&
		    access(redis_path, X_OK) == 0)
			return 0;
		d += n;
		if (*d == ':')
			d++;
	}
	return -1;
}

/* A port nothing listens on now (the kernel's pick). */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof sa) && !getsockname(fd, (struct sockaddr *)&sa, &len))
		p = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

/* True when the server on port is the one this test started (INFO's
 * process_id): a server another test started on the port, e.g. while ours
 * was stopped, would mix the two tests' keys. */
static int server_is_ours(void)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *rep = c && !c->err ? redisCommand(c, "INFO server") : NULL;
	const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "process_id:") : NULL;
	int ours = p && atol(p + 11) == (long)server_pid;

	if (rep)
		freeReplyObject(rep);
	if (c)
		redisFree(c);
	if (!ours)
		fprintf(stderr, "the server on port %d is not the redis-server started here (pid %d)\n", port,
			(int)server_pid);
	return ours;
}

static int server_start(void)
{
	char portarg[16], log[128];
	char *argv[] = {"redis-server", "--port", portarg, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", work, NULL};
	struct kv *probe = NULL;
	char err[128];

	snprintf(portarg, sizeof portarg, "%d", port);
	snprintf(log, sizeof log, "%s/redis.log", work);
	fflush(NULL);
	if ((server_pid = fork()) < 0)
		return -1;
	if (server_pid == 0) {
		FILE *f = freopen(log, "w", stdout);
		(void)f;
		dup2(1, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* the server goes with the test */
		execv(redis_path, argv);
		_exit(127);
	}
	/* up once a fresh client gets PONG */
	if (kv_open(url, 200, 1000, &probe, err, sizeof err) != KV_OK)
		return -1;
	for (int i = 0; i < 100; i++) {
		if (kv_ping(probe) == KV_OK) {
			kv_close(probe);
			return server_is_ours() ? 0 : -1;
		}
		sleep_ms(KV_RETRY_MAX_MS / 10);
	}
	kv_close(probe);
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

static struct kv *open_kv(const char *u)
{
	struct kv *kv = NULL;
	char err[128];

	if (kv_open(u, 200, 1000, &kv, err, sizeof err) != KV_OK)
		fprintf(stderr, "kv_open %s: %s\n", u, err);
	return kv;
}

/* ===== Without a server ===== */

static void urls(void)
{
	struct kv *kv;
	char err[128];

	const char *bad[] = {"http://127.0.0.1:6379", "redis://", "redis://:pw@", "redis://host:0", "redis://host:x",
			     "redis://host:6379/x", "redis://host:70000"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(kv_open(bad[i], 100, 100, &kv, err, sizeof err) == KV_BAD_URL && strstr(err, "redis://"),
		      "'%s' is refused: %s", bad[i], err);
	/* a server that is not there is no error: the calls say so */
	char none[64];
	snprintf(none, sizeof none, "redis://:secret@127.0.0.1:%d/2", free_port());
	CHECK(kv_open(none, 100, 100, &kv, err, sizeof err) == KV_OK, "a URL with a password and a db opens");
	if (!kv)
		return;
	CHECK(!strstr(kv_address(kv), "secret") && strstr(kv_address(kv), "/2"), "its address hides the password: %s",
	      kv_address(kv));
	double t0 = now_ms();
	kv_status st = kv_ping(kv);
	double ms = now_ms() - t0;
	struct kv_stats s;
	kv_get_stats(kv, &s);
	CHECK(st == KV_DOWN && ms < 50, "no server: KV_DOWN at once (%.1f ms, within the pause)", ms);
	CHECK(s.errors >= 1 && !s.up, "and counted (%llu errors, up %d)", s.errors, s.up);
	kv_close(kv);
}

/* ===== With the server ===== */

static void values(struct kv *kv)
{
	char *v = NULL;
	size_t len = 0;
	static const char bin[] = {'a', 0, 'b', '\n', (char)0xff};

	CHECK(kv_get(kv, "t:missing", &v, &len) == KV_MISS, "a missing key: KV_MISS");
	CHECK(kv_exists(kv, "t:missing") == KV_MISS, "EXISTS of a missing key: KV_MISS");
	CHECK(kv_set(kv, "t:bin", bin, sizeof bin, 0) == KV_OK, "set a binary value");
	CHECK(kv_get(kv, "t:bin", &v, &len) == KV_OK && len == sizeof bin && !memcmp(v, bin, len) && v[len] == 0,
	      "and read it back whole, NUL-terminated");
	free(v);
	CHECK(kv_exists(kv, "t:bin") == KV_OK, "EXISTS of a set key: KV_OK");
	CHECK(kv_set(kv, "t:ttl", "x", 1, 100) == KV_OK, "set with a 100 ms expiry");
	sleep_ms(250);
	CHECK(kv_exists(kv, "t:ttl") == KV_MISS, "gone after it");

	/* databases are apart */
	char u3[80];
	snprintf(u3, sizeof u3, "%s/3", url);
	struct kv *db3 = open_kv(u3);
	CHECK(db3 && kv_set(db3, "t:db", "3", 1, 0) == KV_OK && kv_exists(db3, "t:db") == KV_OK,
	      "a key set in db 3");
	CHECK(kv_exists(kv, "t:db") == KV_MISS, "is not in db 0");
	kv_close(db3);
}

static void locks(struct kv *kv)
{
	struct kv *other = open_kv(url);

	if (!other)
		return;
	CHECK(kv_lock(kv, "t:lock", "A", 10000) == KV_OK, "A takes a free lock");
	CHECK(kv_lock(other, "t:lock", "B", 10000) == KV_MISS, "B cannot take it while A holds it");
	CHECK(kv_lock(kv, "t:lock", "A2", 10000) == KV_MISS, "nor can A under another token");
	CHECK(kv_unlock(other, "t:lock", "B") == KV_OK && kv_exists(kv, "t:lock") == KV_OK,
	      "B's release of A's lock leaves it held");
	CHECK(kv_unlock(kv, "t:lock", "A") == KV_OK && kv_exists(kv, "t:lock") == KV_MISS, "A's release frees it");
	CHECK(kv_lock(other, "t:lock", "B", 10000) == KV_OK, "then B takes it");
	kv_unlock(other, "t:lock", "B");

	/* a holder that dies never releases: the lock expires */
	CHECK(kv_lock(kv, "t:dead", "A", 200) == KV_OK, "A takes a lock for 200 ms and dies");
	CHECK(kv_lock(other, "t:dead", "B", 10000) == KV_MISS, "B waits");
	double t0 = now_ms();
	while (kv_lock(other, "t:dead", "B", 10000) == KV_MISS && now_ms() - t0 < 2000)
		sleep_ms(10);
	double ms = now_ms() - t0;
	CHECK(ms > 100 && ms < 500, "B has it once it expires (%.0f ms later)", ms);
	CHECK(kv_unlock(kv, "t:dead", "A") == KV_OK && kv_exists(other, "t:dead") == KV_OK,
	      "A's late release leaves B's lock alone");
	kv_close(other);
}

/* kv_set_unless: a record whose status is final stays as it is */
static void final_records(struct kv *kv)
{
	static const char *const final[] = {"done", "failed", NULL};
	static const char running[] = "{\"status\":\"running\",\"tries\":2}";
	static const char done[] = "{\"status\":\"done\",\"tries\":1}";
	char *v = NULL;

	CHECK(kv_set_unless(kv, "t:job", running, strlen(running), 10000, "status", final) == KV_OK &&
		      kv_get(kv, "t:job", &v, NULL) == KV_OK && !strcmp(v, running),
	      "no record yet: set");
	free(v);
	CHECK(kv_set_unless(kv, "t:job", done, strlen(done), 10000, "status", final) == KV_OK,
	      "running, then done: set");
	CHECK(kv_set_unless(kv, "t:job", running, strlen(running), 10000, "status", final) == KV_MISS &&
		      kv_get(kv, "t:job", &v, NULL) == KV_OK && !strcmp(v, done),
	      "done, then running: KV_MISS and still done");
	free(v);
	v = NULL;
	CHECK(kv_set_unless(kv, "t:job", "{\"status\":\"failed\"}", 19, 10000, "status", final) == KV_MISS,
	      "done, then failed: KV_MISS too (the first outcome stands)");
	CHECK(kv_set(kv, "t:job", "not json", 8, 0) == KV_OK &&
		      kv_set_unless(kv, "t:job", running, strlen(running), 100, "status", final) == KV_OK,
	      "a value that is not JSON is replaced");
	sleep_ms(250);
	CHECK(kv_exists(kv, "t:job") == KV_MISS, "with its expiry");
}

/* the job stream: one group, entries handed out once, taken over after
 * the claim time, and never again once acknowledged */
static void streams(struct kv *kv)
{
	struct kv *other = open_kv(url);
	char id[64], id2[64];
	char *v = NULL;

	if (!other)
		return;
	CHECK(kv_stream_group(kv, "t:s", "g") == KV_OK && kv_stream_group(other, "t:s", "g") == KV_OK,
	      "a group made twice: both KV_OK");
	CHECK(kv_stream_next(kv, "t:s", "g", "c1", 50, 10000, id, &v) == KV_MISS, "nothing queued: KV_MISS");
	CHECK(kv_stream_add(kv, "t:s", "job", "one") == KV_OK && kv_stream_add(kv, "t:s", "job", "two") == KV_OK,
	      "two entries added");
	CHECK(kv_stream_next(kv, "t:s", "g", "c1", 50, 10000, id, &v) == KV_OK && !strcmp(v, "one"),
	      "c1 gets the first");
	free(v);
	v = NULL;
	CHECK(kv_stream_next(other, "t:s", "g", "c2", 50, 10000, id2, &v) == KV_OK && !strcmp(v, "two"),
	      "c2 the second");
	free(v);
	v = NULL;
	CHECK(kv_stream_next(other, "t:s", "g", "c2", 50, 10000, id2, &v) == KV_MISS,
	      "then nothing for c2 while c1's entry is fresh");
	CHECK(kv_stream_ack(other, "t:s", "g", id2) == KV_OK, "c2 acknowledges its entry");
	sleep_ms(150);
	CHECK(kv_stream_next(other, "t:s", "g", "c2", 50, 100, id2, &v) == KV_OK && !strcmp(v, "one") &&
		      !strcmp(id, id2),
	      "c1 quiet for over the claim time: c2 takes its entry over");
	free(v);
	v = NULL;
	CHECK(kv_stream_ack(other, "t:s", "g", id2) == KV_OK, "and acknowledges it");
	sleep_ms(150);
	CHECK(kv_stream_next(kv, "t:s", "g", "c1", 50, 100, id, &v) == KV_MISS &&
		      kv_stream_next(other, "t:s", "g", "c2", 50, 100, id, &v) == KV_MISS,
	      "acknowledged entries are never handed out again");
	kv_close(other);
}

static struct kv *shared_kv;

static void *hammer(void *arg)
{
	struct kv *kv = shared_kv;
	int id = (int)(long)arg;
	char key[32], val[32], *got;
	long bad = 0;

	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof key, "t:th:%d:%d", id, i % 10);
		snprintf(val, sizeof val, "%d", i);
		if (kv_set(kv, key, val, strlen(val), 0) != KV_OK || kv_get(kv, key, &got, NULL) != KV_OK) {
			bad++;
			continue;
		}
		bad += strcmp(got, val) != 0;
		free(got);
	}
	return (void *)bad;
}

static void threads(struct kv *kv)
{
	pthread_t t[8];
	long bad = 0;

	shared_kv = kv;
	for (long i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, hammer, (void *)i);
	for (int i = 0; i < 8; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (long)r;
	}
	CHECK(bad == 0, "8 threads x 200 SET+GET on one kv: every answer is the thread's own (%ld wrong)", bad);
}

static void outage(struct kv *kv)
{
	struct kv_stats a, b;

	kv_get_stats(kv, &a);
	server_stop();
	CHECK(kv_set(kv, "t:x", "1", 1, 0) == KV_DOWN, "server gone: KV_DOWN");
	double t0 = now_ms();
	int down = 0;
	for (int i = 0; i < 100; i++)
		down += kv_exists(kv, "t:x") == KV_DOWN;
	double ms = now_ms() - t0;
	kv_get_stats(kv, &b);
	CHECK(down == 100 && ms < 200, "100 calls while it is down: all KV_DOWN in %.1f ms", ms);
	CHECK(b.errors >= a.errors + 101 && !b.up, "all counted as errors (%llu), up %d", b.errors - a.errors, b.up);
	if (server_start()) {
		CHECK(0, "redis-server restarts");
		return;
	}
	t0 = now_ms();
	while (kv_ping(kv) != KV_OK && now_ms() - t0 < 5000)
		sleep_ms(20);
	ms = now_ms() - t0;
	kv_get_stats(kv, &b);
	CHECK(kv_ping(kv) == KV_OK && ms <= KV_RETRY_MAX_MS + 500, "server back: the kv reconnects by itself (%.0f ms)",
	      ms);
	CHECK(b.reconnects >= a.reconnects + 1 && b.up, "a reconnect counted (%llu), up %d", b.reconnects, b.up);
	CHECK(kv_set(kv, "t:x", "1", 1, 0) == KV_OK, "and commands work again");
}

/* the delivery queue: an item due later is not handed out, one due is
 * handed to one claimer only, a retry makes it due again later, a claim
 * whose lease ran out goes to another and the late claimer's report changes
 * nothing, done removes it */
static void queue(struct kv *kv)
{
	struct kv *other = open_kv(url);
	char id[KV_QUEUE_ID_MAX];
	char *p = NULL;
	size_t len = 0;
	long long n = -1;
	kv_status st;

	if (!other)
		return;
	CHECK(kv_queue_claim(kv, "t:q", 1000, "a1", id, &p, &len) == KV_MISS, "an empty queue: nothing to claim");
	CHECK(kv_queue_add(kv, "t:q", "d1", "one\0x", 5, 0) == KV_OK &&
		      kv_queue_add(kv, "t:q", "d2", "two", 3, 300) == KV_OK,
	      "two items added, one due now and one in 300 ms");
	CHECK(kv_queue_add(kv, "t:q", "d1", "again", 5, 0) == KV_MISS, "an id already queued: KV_MISS");
	st = kv_queue_size(kv, "t:q", &n);
	CHECK(st == KV_OK && n == 2, "two items queued (%lld)", n);
	CHECK(kv_queue_claim(kv, "t:q", 450, "a1", id, &p, &len) == KV_OK && !strcmp(id, "d1") && len == 5 &&
		      !memcmp(p, "one\0x", 5),
	      "the due item is claimed, its payload whole (binary too)");
	free(p);
	p = NULL;
	CHECK(kv_queue_claim(other, "t:q", 200, "b1", id, &p, &len) == KV_MISS,
	      "while it is claimed and the other not due: nothing for another claimer");
	sleep_ms(320);
	CHECK(kv_queue_claim(other, "t:q", 5000, "b2", id, &p, &len) == KV_OK && !strcmp(id, "d2") &&
		      !strcmp(p, "two"),
	      "the second, once due, goes to another claimer");
	free(p);
	p = NULL;
	sleep_ms(200);
	CHECK(kv_queue_claim(other, "t:q", 5000, "b3", id, &p, &len) == KV_OK && !strcmp(id, "d1"),
	      "the first claimer silent past its lease: its item is claimed again");
	free(p);
	p = NULL;
	CHECK(kv_queue_done(kv, "t:q", "d1", "a1") == KV_MISS && kv_queue_retry(kv, "t:q", "d1", "a1", "x", 1, 0) == KV_MISS,
	      "the late claimer's done and retry change nothing (KV_MISS)");
	CHECK(kv_queue_retry(other, "t:q", "d1", "b3", "one-2", 5, 250) == KV_OK, "the holder retries it in 250 ms");
	CHECK(kv_queue_claim(kv, "t:q", 5000, "a2", id, &p, &len) == KV_MISS, "not due before then");
	sleep_ms(300);
	CHECK(kv_queue_claim(kv, "t:q", 5000, "a3", id, &p, &len) == KV_OK && !strcmp(id, "d1") &&
		      !strcmp(p, "one-2"),
	      "then due again, with the payload of the retry");
	free(p);
	p = NULL;
	CHECK(kv_queue_done(kv, "t:q", "d1", "a3") == KV_OK && kv_queue_done(other, "t:q", "d2", "b2") == KV_OK,
	      "both done by their holders");
	st = kv_queue_size(kv, "t:q", &n);
	CHECK(st == KV_OK && n == 0 && kv_exists(kv, "t:q:items") == KV_MISS &&
		      kv_exists(kv, "t:q:claims") == KV_MISS,
	      "nothing is left (%lld queued)", n);
	kv_close(other);
}

int main(void)
{
	if (find_redis()) {
		printf("skip: redis-server is not installed (scripts/install-deps.sh installs it)\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	urls();
	snprintf(work, sizeof work, "/tmp/petcut-kv.XXXXXX");
	if (!mkdtemp(work) || (port = free_port()) < 0) {
		fprintf(stderr, "cannot make a folder or find a port: %s\n", strerror(errno));
		return 1;
	}
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	if (server_start()) {
		fprintf(stderr, "redis-server did not start on port %d\n", port);
		server_stop();
		return 1;
	}
	struct kv *kv = open_kv(url);
	CHECK(kv && kv_ping(kv) == KV_OK, "PING %s", url);
	if (kv) {
		values(kv);
		locks(kv);
		final_records(kv);
		streams(kv);
		queue(kv);
		threads(kv);
		outage(kv);
		kv_close(kv);
	}
	server_stop();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", work);
	if (system(cmd)) {
	}
	return failures ? 1 : 0;
}
