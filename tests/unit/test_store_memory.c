/*
 * test_store_memory.c - the store's memory tier in front of a folder store:
 * objects are answered from memory once put or read (shown by removing the
 * file behind the store's back), only whole objects enter, large ones never
 * do, the bytes held stay within the limit with the least recently used
 * dropped first, a reference keeps its bytes valid after eviction, a
 * deletion is forgotten, and threads reading and writing at once always see
 * the right bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#include "check.h"

#define LIMIT (1u << 20) /* so an object may have 64 KB */
#define SMALL 10000

static char dir[] = "/tmp/petcut-storemem-XXXXXX";

/* Bytes that depend on seed, so that each object has its own key. */
static void fill(unsigned char *b, size_t n, unsigned seed)
{
	unsigned long long x = 0x9e3779b97f4a7c15ull * (seed + 1);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (unsigned char)(x >> 32);
	}
}

/* Removes the object's file behind the store's back. */
static int unlink_object(const char *ns, const char *key)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s/%.2s/%.2s/%.64s", dir, ns, key, key + 2, key);
	return unlink(path);
}

static struct store_memory_stats stats(struct store *s)
{
	struct store_memory_stats st = {0};
	store_memory_stats(s, &st);
	return st;
}

static int get_is(struct store *s, const char *key, const unsigned char *want, size_t n)
{
	void *buf = NULL;
	size_t len = 0;
	int ok = store_get(s, "res", key, &buf, &len) == STORE_OK && len == n && !memcmp(buf, want, n);
	free(buf);
	return ok;
}

/* ===== Threads at once ===== */

#define THREADS 4
#define ROUNDS 400
#define KINDS 40

static struct store *shared;
static char kinds[KINDS][STORE_KEY_LEN + 1];

static void *reader(void *arg)
{
	unsigned seed = (unsigned)(size_t)arg, bad = 0;
	unsigned char want[SMALL];

	for (int i = 0; i < ROUNDS; i++) {
		unsigned k = (seed * 13 + (unsigned)i * 7) % KINDS;
		struct store_body b;
		size_t n;
		fill(want, SMALL, 1000 + k);
		if (i % 5 == 0) /* writers too: the same content again */
			store_put_buffer(shared, "res", NULL, want, SMALL, NULL, NULL);
		if (store_get_body(shared, "res", kinds[k], &b) != STORE_OK) {
			bad++;
			continue;
		}
		if (b.ref) {
			const void *p = store_ref_bytes(b.ref, &n);
			bad += n != SMALL || memcmp(p, want, SMALL);
			store_ref_release(b.ref);
		} else {
			unsigned char got[SMALL];
			bad += b.len != SMALL || pread(b.fd, got, SMALL, 0) != SMALL || memcmp(got, want, SMALL);
			close(b.fd);
		}
	}
	return (void *)(size_t)bad;
}

int main(void)
{
	static unsigned char a[SMALL], big[100000], obj[SMALL];
	char ka[STORE_KEY_LEN + 1], kbig[STORE_KEY_LEN + 1], keys[200][STORE_KEY_LEN + 1], k[STORE_KEY_LEN + 1];
	struct store *s;
	struct store_put *p;
	struct store_body b;
	size_t len;
	void *buf;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	CHECK(store_open(dir, &s) == STORE_OK, "a folder store opens");
	CHECK(store_memory_stats(s, &(struct store_memory_stats){0}) == -1, "no memory tier unless asked for");
	CHECK(store_set_memory(s, LIMIT) == STORE_OK && stats(s).max_bytes == LIMIT, "a 1 MB memory tier");

	/* ---- put, then read from memory ---- */
	fill(a, sizeof a, 1);
	CHECK(store_put_buffer(s, "res", NULL, a, sizeof a, ka, NULL) == STORE_OK && stats(s).objects == 1,
	      "a put fills the tier (1 object)");
	CHECK(unlink_object("res", ka) == 0, "the object's file is removed behind the store's back");
	CHECK(get_is(s, ka, a, sizeof a), "get still answers the bytes: from memory");
	CHECK(store_head(s, "res", ka, &len) == STORE_OK && len == sizeof a, "head answers from memory too");
	CHECK(store_get_body(s, "res", ka, &b) == STORE_OK && b.ref && b.fd == -1 && b.len == sizeof a,
	      "get_body gives the bytes in memory, no descriptor");
	const void *held = store_ref_bytes(b.ref, &len);
	CHECK(stats(s).hits == 3 && stats(s).misses == 0, "three hits, no miss (%llu, %llu)", stats(s).hits,
	      stats(s).misses);

	/* ---- a reference outlives eviction ---- */
	for (int i = 0; i < 200; i++) {
		fill(obj, sizeof obj, 100 + (unsigned)i);
		store_put_buffer(s, "res", NULL, obj, sizeof obj, keys[i], NULL);
	}
	struct store_memory_stats st = stats(s);
	CHECK(st.bytes <= LIMIT && st.evictions > 0 && st.objects < 200,
	      "200 objects of 10 KB: %zu bytes held of %u, %llu evicted, %zu held", st.bytes, LIMIT, st.evictions,
	      st.objects);
	CHECK(store_get(s, "res", ka, &buf, &len) == STORE_NOT_FOUND, "the evicted object is gone (its file is)");
	CHECK(len == sizeof a && !memcmp(held, a, sizeof a), "a reference taken before still reads the bytes");
	store_ref_release(b.ref);

	/* ---- least recently used first ---- */
	/* with the files gone, only memory answers: find the oldest object
	 * held, read it now and then while 40 new ones come; it stays, and
	 * its neighbour, put just after it but never read, goes */
	for (int i = 0; i < 200; i++)
		unlink_object("res", keys[i]);
	int oldest = 0;
	while (oldest < 199 && store_head(s, "res", keys[oldest], &len) != STORE_OK)
		oldest++;
	unsigned char want[SMALL];
	fill(want, sizeof want, 100 + (unsigned)oldest);
	int stayed = 1;
	for (int i = 0; i < 40; i++) {
		fill(obj, sizeof obj, 5000 + (unsigned)i);
		store_put_buffer(s, "res", NULL, obj, sizeof obj, k, NULL);
		if (i % 8 == 0)
			stayed &= get_is(s, keys[oldest], want, sizeof want);
	}
	CHECK(oldest > 0 && oldest < 199 && stayed && get_is(s, keys[oldest], want, sizeof want),
	      "the object read now and then (%d) stays while 40 new come", oldest);
	CHECK(store_head(s, "res", keys[oldest + 1], &len) == STORE_NOT_FOUND,
	      "its neighbour, put just after it but not read, was dropped");

	/* ---- large objects stay out ---- */
	size_t objects = stats(s).objects;
	fill(big, sizeof big, 7);
	CHECK(store_put_buffer(s, "res", NULL, big, sizeof big, kbig, NULL) == STORE_OK && stats(s).objects <= objects,
	      "an object over a sixteenth of the limit is not held");
	unsigned long long misses = stats(s).misses;
	CHECK(get_is(s, kbig, big, sizeof big) && stats(s).misses == misses + 1, "it is read from the folder (a miss)");
	CHECK(store_get_body(s, "res", kbig, &b) == STORE_OK && !b.ref && b.fd >= 0, "and sent from its descriptor");
	close(b.fd);

	/* ---- streamed puts: whole objects only ---- */
	fill(obj, sizeof obj, 424242);
	CHECK(store_put_begin(s, "res", 0, &p) == STORE_OK, "a streamed put");
	store_put_write(p, obj, 4000);
	store_put_write(p, obj + 4000, sizeof obj - 4000);
	CHECK(store_put_commit(p, NULL, NULL, k, NULL) == STORE_OK && unlink_object("res", k) == 0 &&
		      get_is(s, k, obj, sizeof obj),
	      "a streamed put is held once committed");
	fill(obj, sizeof obj, 434343);
	CHECK(store_put_begin(s, "res", 0, &p) == STORE_OK, "another streamed put, aborted");
	store_put_write(p, obj, sizeof obj);
	store_key_of(obj, sizeof obj, k);
	store_put_abort(p);
	CHECK(store_head(s, "res", k, &len) == STORE_NOT_FOUND, "an aborted put is held nowhere");
	CHECK(store_put_begin(s, "res", 0, &p) == STORE_OK, "a streamed put growing past the object limit");
	for (int i = 0; i < 10; i++)
		store_put_write(p, big, 10000);
	CHECK(store_put_commit(p, NULL, NULL, k, NULL) == STORE_OK && unlink_object("res", k) == 0 &&
		      store_head(s, "res", k, &len) == STORE_NOT_FOUND,
	      "is not held");

	/* ---- a read fills; a deletion is forgotten ---- */
	CHECK(store_set_memory(s, LIMIT) == STORE_OK && stats(s).objects == 0, "a new, empty tier");
	fill(obj, sizeof obj, 99);
	CHECK(store_put_buffer(s, "res", NULL, obj, sizeof obj, k, NULL) == STORE_OK, "an object");
	CHECK(store_set_memory(s, LIMIT) == STORE_OK && store_get_body(s, "res", k, &b) == STORE_OK && b.ref &&
		      stats(s).objects == 1 && stats(s).misses == 1,
	      "get_body of an object not held reads it into memory (a miss) and answers from there");
	store_ref_release(b.ref);
	CHECK(store_delete(s, "res", k) == STORE_OK && store_get(s, "res", k, &buf, &len) == STORE_NOT_FOUND &&
		      stats(s).objects == 0,
	      "a deleted object is not answered from memory");

	/* ---- threads ---- */
	shared = s;
	for (int i = 0; i < KINDS; i++) {
		fill(obj, sizeof obj, 1000 + (unsigned)i);
		store_put_buffer(s, "res", NULL, obj, sizeof obj, kinds[i], NULL);
	}
	CHECK(store_set_memory(s, 200000) == STORE_OK, "a tier smaller than what the threads read (evictions)");
	pthread_t t[THREADS];
	size_t bad = 0;
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, reader, (void *)(size_t)(i + 1));
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (size_t)r;
	}
	st = stats(s);
	CHECK(bad == 0, "%d threads reading and writing at once always read the right bytes (%zu wrong)", THREADS, bad);
	CHECK(st.hits > 0 && st.evictions > 0 && st.bytes <= 200000, "with hits (%llu), evictions (%llu), %zu bytes held",
	      st.hits, st.evictions, st.bytes);

	store_close(s);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd))
		perror("rm");
	return failures ? 1 : 0;
}
