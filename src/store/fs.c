/*
 * fs.c - the folder backend of the store: NS/ab/cd/KEY under the store's
 * folder. A put writes a temporary file in the store's tmp/ folder (the same
 * file system), syncs it, and links it under its real name, which either
 * appears whole or not at all, and never replaces an object already there;
 * then the folder holding the name is synced (and the folder above each
 * folder it had to create), so the name survives a crash.
 *
 * A put's temporary file is locked (flock) while its put lives. Opening the
 * store removes the temporary files no live put holds: those left by a
 * process that was killed. A full file system is STORE_NO_SPACE; no failed
 * write, sync, close, link or folder sync is ever reported as stored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

struct fs {
	char *dir;
};

struct fs_put {
	struct fs *fs;
	char ns[17];
	char tmp[PATH_MAX];
	int fd;
};

static store_status io_fail(const char *what, const char *path)
{
	store_status st = errno == ENOSPC || errno == EDQUOT ? STORE_NO_SPACE : STORE_IO;
	return store_fail(st, "%s %s: %s", what, path, strerror(errno));
}

static int sync_dir_of(const char *path);

/* mkdir -p for the folders of path up to (not including) its last part;
 * the folder above each one it creates is synced, so that a synced name
 * inside it is reachable after a crash. */
static int make_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0777);
		if (r == 0)
			r = sync_dir_of(path);
		else if (errno == EEXIST)
			r = 0;
		*p = '/';
		if (r)
			return -1;
	}
	return 0;
}

static int object_path(const struct fs *fs, const char *ns, const char *key, char *out, size_t n)
{
	int r = snprintf(out, n, "%s/%s/%.2s/%.2s/%s", fs->dir, ns, key, key + 2, key);
	return r > 0 && (size_t)r < n ? 0 : -1;
}

static int sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r;

	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* Removes the temporary files of puts that no process holds any more. */
static void sweep_tmp(const struct fs *fs)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof dir, "%s/tmp", fs->dir);
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "put-", 4))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		/* a live put holds its lock: only an orphan can be taken */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(path) == 0)
			n++;
		close(fd);
	}
	closedir(d);
	if (n)
		fprintf(stderr, "petcut: removed %d temporary file%s left in %s by a process that stopped\n", n,
			n == 1 ? "" : "s", dir);
}

static store_status fs_open(const char *spec, void **state)
{
	struct fs *fs = calloc(1, sizeof *fs);
	char tmp[PATH_MAX];

	if (!fs || !(fs->dir = strdup(spec))) {
		free(fs);
		return store_fail(STORE_NOMEM, "out of memory");
	}
	size_t n = strlen(fs->dir);
	while (n > 1 && fs->dir[n - 1] == '/')
		fs->dir[--n] = 0;
	if (snprintf(tmp, sizeof tmp, "%s/tmp/x", fs->dir) >= (int)sizeof tmp || make_parents(tmp)) {
		store_status st = io_fail("cannot create", fs->dir);
		free(fs->dir);
		free(fs);
		return st;
	}
	sweep_tmp(fs);
	*state = fs;
	return STORE_OK;
}

static void fs_close(void *state)
{
	struct fs *fs = state;
	free(fs->dir);
	free(fs);
}

static store_status fs_put_begin(void *state, const char *ns, void **handle)
{
	struct fs *fs = state;
	struct fs_put *p = calloc(1, sizeof *p);

	if (!p)
		return store_fail(STORE_NOMEM, "out of memory");
	p->fs = fs;
	snprintf(p->ns, sizeof p->ns, "%s", ns);
	for (int tries = 0;; tries++) {
		struct stat sb;
		snprintf(p->tmp, sizeof p->tmp, "%s/tmp/put-XXXXXX", fs->dir);
		if ((p->fd = mkostemp(p->tmp, O_CLOEXEC)) < 0) {
			store_status st = io_fail("cannot create a file in", fs->dir);
			free(p);
			return st;
		}
		/* locked for the put's life; a store opening meanwhile (another
		 * process) may have taken it as an orphan before the lock: then
		 * it is gone, and another is made */
		if (flock(p->fd, LOCK_EX | LOCK_NB) == 0 && fstat(p->fd, &sb) == 0 && sb.st_nlink > 0)
			break;
		close(p->fd);
		if (tries == 3) {
			free(p);
			return store_fail(STORE_IO, "cannot hold a temporary file in %s/tmp", fs->dir);
		}
	}
	*handle = p;
	return STORE_OK;
}

static store_status fs_put_write(void *handle, const void *buf, size_t len)
{
	struct fs_put *p = handle;
	const char *c = buf;

	while (len) {
		ssize_t n = write(p->fd, c, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_fail("cannot write", p->tmp);
		c += n;
		len -= (size_t)n;
	}
	return STORE_OK;
}

static void fs_put_abort(void *handle)
{
	struct fs_put *p = handle;
	unlink(p->tmp); /* before the lock goes with the descriptor */
	close(p->fd);
	free(p);
}

static store_status fs_put_commit(void *handle, const char *key, const unsigned char sha256[32], int *existed)
{
	struct fs_put *p = handle;
	char path[PATH_MAX];
	store_status st = STORE_OK;
	struct stat sb;
	int hold = -1;

	*existed = 0;
	if (object_path(p->fs, p->ns, key, path, sizeof path)) {
		fs_put_abort(p);
		return store_fail(STORE_IO, "path too long");
	}
	if (stat(path, &sb) == 0) { /* stored already (and durably): this copy is not needed */
		*existed = 1;
		goto out;
	}
	/* the bytes are on disk before they get a name; a second descriptor
	 * keeps the file locked until its temporary name is gone */
	if ((hold = dup(p->fd)) < 0 || fsync(p->fd)) {
		st = io_fail("cannot write", p->tmp);
		goto out;
	}
	int bad = close(p->fd);
	p->fd = -1;
	if (bad) {
		st = io_fail("cannot write", p->tmp);
		goto out;
	}
	if (make_parents(path)) {
		st = io_fail("cannot create the folders of", path);
		goto out;
	}
	/* link, unlike rename, never replaces: the first copy of a content wins */
	if (link(p->tmp, path)) {
		if (errno == EEXIST)
			*existed = 1;
		else
			st = io_fail("cannot store", path);
		goto out;
	}
	if (sync_dir_of(path))
		st = io_fail("cannot sync the folder of", path);
out:
	unlink(p->tmp);
	if (p->fd >= 0)
		close(p->fd);
	if (hold >= 0)
		close(hold);
	free(p);
	return st;
}

static store_status fs_get_fd(void *state, const char *ns, const char *key, int *fd, size_t *len)
{
	char path[PATH_MAX];
	struct stat sb;

	if (object_path(state, ns, key, path, sizeof path))
		return store_fail(STORE_IO, "path too long");
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? store_fail(STORE_NOT_FOUND, "no such object") : io_fail("cannot open", path);
	if (fstat(*fd, &sb)) {
		close(*fd);
		return io_fail("cannot read", path);
	}
	*len = (size_t)sb.st_size;
	return STORE_OK;
}

static store_status fs_get(void *state, const char *ns, const char *key, void **buf, size_t *len)
{
	size_t size, got = 0;
	store_status st;
	char *b;
	int fd;

	if ((st = fs_get_fd(state, ns, key, &fd, &size)) != STORE_OK)
		return st;
	if (!(b = malloc(size ? size : 1))) {
		close(fd);
		return store_fail(STORE_NOMEM, "out of memory");
	}
	while (got < size) {
		ssize_t n = read(fd, b + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			free(b);
			return store_fail(STORE_IO, "short read of an object");
		}
		got += (size_t)n;
	}
	close(fd);
	*buf = b;
	*len = size;
	return STORE_OK;
}

static store_status fs_head(void *state, const char *ns, const char *key, size_t *len)
{
	char path[PATH_MAX];
	struct stat sb;

	if (object_path(state, ns, key, path, sizeof path))
		return store_fail(STORE_IO, "path too long");
	if (stat(path, &sb))
		return errno == ENOENT ? store_fail(STORE_NOT_FOUND, "no such object") : io_fail("cannot read", path);
	*len = (size_t)sb.st_size;
	return STORE_OK;
}

static store_status fs_del(void *state, const char *ns, const char *key)
{
	char path[PATH_MAX];

	if (object_path(state, ns, key, path, sizeof path))
		return store_fail(STORE_IO, "path too long");
	if (unlink(path))
		return errno == ENOENT ? store_fail(STORE_NOT_FOUND, "no such object") : io_fail("cannot delete", path);
	sync_dir_of(path);
	return STORE_OK;
}

const struct store_backend store_fs = STORE_BACKEND_TABLE(fs, NULL);
