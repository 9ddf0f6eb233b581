/*
 * test_store.c - the folder store: content addressing, dedup, checksums,
 * atomic puts (nothing left behind on abort or mismatch), key checks,
 * concurrent puts of the same content, a failed write never stored, and the
 * temporary files of dead puts removed when the store opens.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

#include "check.h"


/* SHA-256 of "hello world" */
#define HELLO_SHA "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct store *shared;

static void *same_put(void *arg)
{
	int *existed = arg;
	char key[STORE_KEY_LEN + 1];
	if (store_put_buffer(shared, "img", NULL, "same bytes", 10, key, existed) != STORE_OK)
		*existed = -1;
	return NULL;
}

int main(void)
{
	char dir[] = "/tmp/petcut-store-XXXXXX", tmpdir[64], key[STORE_KEY_LEN + 1], path[256];
	struct store *s;
	struct store_put *p;
	void *buf;
	size_t len;
	int existed, fd;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
	CHECK(store_open(dir, &s) == STORE_OK && !strcmp(store_backend_name(s), "fs"), "a folder opens as fs storage");

	CHECK(store_put_begin(s, "img", 0, &p) == STORE_OK, "a put starts");
	store_put_write(p, "hello ", 6);
	store_put_write(p, "world", 5);
	CHECK(store_put_commit(p, NULL, HELLO_SHA, key, &existed) == STORE_OK && !strcmp(key, HELLO_SHA) && !existed,
	      "streamed content is stored under its SHA-256, verified against the expected one");
	snprintf(path, sizeof path, "%s/img/b9/4d/%s", dir, HELLO_SHA);
	CHECK(access(path, R_OK) == 0, "the object is at img/b9/4d/<sha256>");
	CHECK(store_put_buffer(s, "img", NULL, "hello world", 11, key, &existed) == STORE_OK && existed,
	      "the same content again is stored once (existed)");
	CHECK(store_get(s, "img", HELLO_SHA, &buf, &len) == STORE_OK && len == 11 && !memcmp(buf, "hello world", 11),
	      "get returns the bytes");
	free(buf);
	CHECK(store_get_fd(s, "img", HELLO_SHA, &fd, &len) == STORE_OK && len == 11, "get_fd opens the object");
	close(fd);
	CHECK(store_head(s, "img", HELLO_SHA, &len) == STORE_OK && len == 11, "head gives the size");

	store_put_begin(s, "img", 0, &p);
	store_put_write(p, "hello world", 11);
	CHECK(store_put_commit(p, NULL, "0000000000000000000000000000000000000000000000000000000000000000", key,
			       NULL) == STORE_MISMATCH,
	      "a checksum mismatch stores nothing (%s)", store_errmsg());
	store_put_begin(s, "img", 0, &p);
	store_put_write(p, "half an upl", 11);
	store_put_abort(p);
	store_put_begin(s, "img", 8, &p);
	CHECK(store_put_write(p, "123456789", 9) == STORE_TOO_LARGE, "a put over its limit fails");
	store_put_abort(p);
	CHECK(count_files(tmpdir) == 0, "aborted, refused and mismatched puts leave no file behind");

	const char *bad[] = {"../../etc/passwd", HELLO_SHA "0", "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9",
			     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde", "", "/etc/passwd"};
	int refused = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		refused += store_head(s, "img", bad[i], &len) == STORE_BAD_KEY;
	CHECK(refused == 6, "traversal, upper case, long and short keys are refused (%d of 6)", refused);
	CHECK(store_head(s, "../x", HELLO_SHA, &len) == STORE_BAD_KEY && store_head(s, "", HELLO_SHA, &len) == STORE_BAD_KEY,
	      "bad namespaces are refused");
	CHECK(store_head(s, "img", "00000000000000000000000000000000000000000000000000000000000000aa", &len) ==
		      STORE_NOT_FOUND,
	      "an unknown key is not found");
	CHECK(store_put_buffer(s, "res", "1111111111111111111111111111111111111111111111111111111111111111", "r", 1,
			       key, NULL) == STORE_OK &&
		      !strcmp(key, "1111111111111111111111111111111111111111111111111111111111111111"),
	      "results go under the caller's key");

	shared = s;
	pthread_t th[8];
	int ex[8] = {0}, created = 0, errors = 0;
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, same_put, &ex[i]);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		created += ex[i] == 0;
		errors += ex[i] < 0;
	}
	CHECK(created == 1 && errors == 0, "8 concurrent puts of one content: one creates it, the rest find it");
	CHECK(store_delete(s, "img", HELLO_SHA) == STORE_OK && store_head(s, "img", HELLO_SHA, &len) == STORE_NOT_FOUND &&
		      store_delete(s, "img", HELLO_SHA) == STORE_NOT_FOUND,
	      "delete removes an object once");
	/* a write that fails (the file size limit here, as a full disk would)
	 * is an error, and stores nothing */
	struct rlimit old_fsize, small = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
	static char big[16384];
	getrlimit(RLIMIT_FSIZE, &old_fsize);
	small.rlim_max = old_fsize.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	memset(big, 'x', sizeof big);
	store_status wst = STORE_OK;
	if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
		store_put_begin(s, "img", 0, &p);
		wst = store_put_write(p, big, sizeof big);
		if (wst == STORE_OK)
			wst = store_put_commit(p, NULL, NULL, key, NULL);
		else
			store_put_abort(p);
		setrlimit(RLIMIT_FSIZE, &old_fsize);
		CHECK(wst == STORE_IO, "a write past the file size limit fails (%s)", store_errmsg());
		CHECK(count_files(tmpdir) == 0, "... and leaves no file behind");
	} else {
		printf("# skipped the failed-write check: cannot lower RLIMIT_FSIZE\n");
	}

	/* temporary files: a live put's is kept by a second opening of the
	 * store, one no process holds (its put died with its process) goes */
	struct store_put *live;
	store_status st;
	char orphan[256];
	snprintf(orphan, sizeof orphan, "%s/put-orphan1", tmpdir);
	FILE *of = fopen(orphan, "w");
	if (of)
		fclose(of);
	store_put_begin(s, "img", 0, &live);
	store_put_write(live, "still uploading", 15);
	struct store *again;
	st = store_open(dir, &again);
	int left = count_files(tmpdir);
	CHECK(st == STORE_OK && left == 1 && access(orphan, F_OK) != 0,
	      "opening the store removes a dead put's temporary file and keeps a live one's (%d left)", left);
	CHECK(store_put_commit(live, NULL, NULL, key, NULL) == STORE_OK && count_files(tmpdir) == 0,
	      "... which still commits");
	store_close(again);

	struct store *other;
	st = store_open("gs://bucket/prefix", &other);
	CHECK(st == STORE_UNSUPPORTED, "an unknown backend is refused (%s)", store_errmsg());
	store_close(s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd))
		printf("# could not remove %s\n", dir);
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
