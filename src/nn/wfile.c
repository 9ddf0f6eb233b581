/*
 * wfile.c - the weights a model's plans reordered, kept in a file so that a
 * later process plans without reordering them again.
 *
 * A plan's convolutions want their weights in the layouts oneDNN picks for
 * this CPU (blocked, bf16, Winograd-transformed); making them is most of a
 * first pass's planning besides compiling the kernels. Once a plan is built,
 * the tensors the plans of its precision made are written to that
 * precision's file in the cache folder; a later process running the same
 * weights on the same machine maps it when it plans at that precision and
 * finds them there (nn_wcache entries whose buffers are the file's pages,
 * read-only). One file per precision: a process maps only what it runs.
 *
 * The file is named by, and begins with, a key: a CRC-32 of every
 * convolution's weights as the graph passes leave them (their node names,
 * shapes and values: the model file and the passes both), the oneDNN
 * version and CPU ISA it ran on, the thread count, the size of a memory
 * descriptor and the version of petcut's own layouts (WFILE_LAYOUTS); an
 * int8 file's key adds a CRC-32 of the calibration (its ranges by value
 * name), which its s8 weights and their per-channel scales (1-D f32 entries
 * of the same node, nn_quant_weight_scales) follow. A file whose key, size
 * or CRC-32 of its contents does not match, or that names a node the graph
 * lacks, is ignored and written anew.
 *
 * Reading the whole file for its CRC-32 is a third of a fresh process's
 * planning (10 of 30 ms at bf16 on a 2-core Xeon), so it is done once per
 * file: a process that has read it through and found it whole writes what it
 * saw of it (device, inode, size, modification and change times, CRC-32) to
 * a check record beside it, FILE.checked, and a later process that finds the
 * file as the record describes maps it without reading it. Any write to the
 * file, or any change of its times, sets its change time, which the kernel
 * keeps and no process can set back; a record is written only for a file
 * last changed at least CHECK_SETTLE seconds before the check began
 * (timestamps are coarse: a write in the same tick as the change before
 * would leave the change time as it was) and after its data is on disk
 * (fdatasync: a crash cannot leave a record of data that was never written).
 * So a file altered in any way the filesystem sees is read through again:
 * the trust the model file itself has (its SHA-256 verified once, when
 * fetched). Damage the filesystem does not see (a failing disk) goes as
 * unnoticed as in the model file.
 *
 * Each process that uses a file sets its record's time (the file's own
 * times stay as the record says); a save removes the files of the folder
 * that neither they nor their records show used for 30 days (another
 * oneDNN, CPU, thread count or model), and records left without their file.
 *
 * Layout (native byte order; the key says the machine):
 *   "PETCUTW1", u32 key length, the key, u32 entries, u64 file size,
 *   u32 CRC-32 of everything after it; then per entry: u16 name length, the
 *   node's name, the memory descriptor's bytes, u64 offset, u64 size; the
 *   tensors at 4096-aligned offsets.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/crc.h>
#include <zlib.h>

#include "nn/nn_int.h"

#define MAGIC "PETCUTW1"
#define ALIGN 4096
#define CHECK_MAGIC "PETCUTC1"
#define CHECK_SUFFIX ".checked"
#define CHECK_SETTLE 2
/* The file is written and read in pieces of a huge page (2 MB on x86-64):
 * a filesystem that keeps large folios (ext4 since Linux 6.16) then holds
 * it in pieces a process maps with one fault each, not one per 64 KB, and
 * its first pass over the weights no longer waits on some 3000 faults
 * (about 10 ms for 200 MB). */
#define FILE_PIECE UTIL_HUGE_PAGE

/* The version of petcut's own layouts of weights (wino.c's), part of the
 * key: raised whenever one changes or a convolution may take another (a
 * file of the old ones would hold entries no plan asks for, or misread
 * ones of the same size). 2: F(4x4, 3x3), the direct narrow convolutions;
 * 3: Winograd on CPUs with AMX too (their products on its tiles); 4: the
 * bf16 convolutions left to oneDNN on its direct kernels (their layouts);
 * 5: int8's too. */
#define WFILE_LAYOUTS 5

/* zlib's CRC-32, by ISA-L: with carry-less multiplies on wide vectors it
 * keeps up with memory (some 50 GB/s in cache, 2.5 x libdeflate's), and
 * checking a file or a model's weights is a pass over memory. */
static uint32_t crc_add(uint32_t crc, const void *p, size_t n)
{
	return crc32_gzip_refl(crc, p, n);
}

static size_t value_bytes(const struct nn_value *v)
{
	return (size_t)nn_numel(v->rank, v->dims) * nn_dtype_size(v->dtype);
}

/* The CRC-32 of n bytes at p, its pieces summed on every thread and joined
 * (the same sum as crc_add(0, p, n)): checking a mapped file is also what
 * brings its pages in, so both are spread over the cores. With let_go, each
 * piece's pages go once summed (a one-pass model's: nn_wfile_let_go). */
static uint32_t crc_spread(const unsigned char *p, size_t n, bool let_go)
{
	enum { PIECE = 2 << 20 };
	size_t pieces = (n + PIECE - 1) / PIECE;
	uint32_t *part, crc = 0;

	if (pieces < 2 || !(part = malloc(pieces * sizeof *part))) {
		crc = crc_add(0, p, n);
		if (let_go)
			nn_wfile_let_go((void *)p, n);
		return crc;
	}
	#pragma omp parallel for schedule(dynamic, 1)
	for (size_t i = 0; i < pieces; i++) {
		size_t len = i + 1 < pieces ? PIECE : n - i * PIECE;
		part[i] = crc_add(0, p + i * PIECE, len);
		if (let_go)
			nn_wfile_let_go((void *)(p + i * PIECE), len);
	}
	for (size_t i = 0; i < pieces; i++)
		crc = (uint32_t)crc32_combine(crc, part[i], (z_off_t)(i + 1 < pieces ? PIECE : n - i * PIECE));
	free(part);
	return crc;
}

/* The weights of node i if it is a live convolution that has them, else
 * NULL. */
static const struct nn_value *conv_weights(const nn_model *m, int i)
{
	const struct nn_node *n = &m->g.nodes[i];
	return n->dead || n->op != NN_OP_CONV || n->n_in < 2 || n->in[1] < 0 ? NULL : &m->g.vals[n->in[1]];
}

/* The key of model m's weights (m->wkey), made once while the graph holds
 * them all. false if a convolution's weights are already released. */
static bool make_key(nn_model *m)
{
	const dnnl_version_t *v = dnnl_version();
	uint32_t crc = 0, *part;
	bool missing = false;

	if (!(part = calloc((size_t)m->g.n_nodes + 1, sizeof *part)))
		return false;
	/* each convolution's weights summed on its own thread, joined below in
	 * the graph's order (the same key as one sum over them all) */
	#pragma omp parallel for schedule(dynamic, 1)
	for (int i = 0; i < m->g.n_nodes; i++) {
		const struct nn_value *w = conv_weights(m, i);
		if (!w)
			continue;
		if (!w->data) {
			#pragma omp atomic write
			missing = true;
			continue;
		}
		part[i] = crc_add(0, w->data, value_bytes(w));
	}
	for (int i = 0; !missing && i < m->g.n_nodes; i++) {
		const struct nn_value *w = conv_weights(m, i);
		if (!w)
			continue;
		crc = crc_add(crc, m->g.nodes[i].name, strlen(m->g.nodes[i].name) + 1);
		crc = crc_add(crc, w->dims, sizeof w->dims[0] * (size_t)w->rank);
		crc = (uint32_t)crc32_combine(crc, part[i], (z_off_t)value_bytes(w));
	}
	free(part);
	if (missing)
		return false;
	snprintf(m->wkey, sizeof m->wkey, "weights %08" PRIx32 ";onednn %d.%d.%d %s;isa %#x;threads %d;md %zu;layouts %d",
		 crc, v->major, v->minor, v->patch, v->hash, (unsigned)dnnl_get_effective_cpu_isa(), omp_get_max_threads(),
		 sizeof(dnnl_memory_desc_t), WFILE_LAYOUTS);
	return true;
}

static const char *const prec_names[NN_PRECISIONS] = {"fp32", "bf16", "int8"};

/* The CRC-32 of m's calibration: each range with its value's name (the
 * calibration file's own terms). */
static uint32_t calibration_sum(const nn_model *m)
{
	uint32_t crc = 0;

	for (int v = 0; m->calib && v < m->g.n_vals; v++) {
		const char *name = m->g.vals[v].name ? m->g.vals[v].name : "";
		if (!m->calib[v].set)
			continue;
		crc = crc_add(crc, name, strlen(name) + 1);
		crc = crc_add(crc, &m->calib[v].lo, sizeof m->calib[v].lo);
		crc = crc_add(crc, &m->calib[v].hi, sizeof m->calib[v].hi);
	}
	return crc;
}

/* The key of the weights of plans at precision prec: m->wkey and prec, and
 * for int8 the calibration. */
static void full_key(const nn_model *m, nn_precision prec, char *buf, size_t n)
{
	if (prec == NN_PRECISION_INT8)
		snprintf(buf, n, "%s;plans %s;calibration %08" PRIx32, m->wkey, prec_names[prec], calibration_sum(m));
	else
		snprintf(buf, n, "%s;plans %s", m->wkey, prec_names[prec]);
}

/* The file of a full key in m->wdir. */
static void file_name(const nn_model *m, const char *key, nn_precision prec, char *buf, size_t n)
{
	uint32_t h = crc_add(0, key, strlen(key));
	snprintf(buf, n, "%s/%08" PRIx32 "-%08" PRIx32 ".%s.weights", m->wdir, h, crc_add(h, key, strlen(key)),
		 prec_names[prec]);
}

/* A cursor over the mapped file. */
struct rd {
	const unsigned char *p, *end;
};

static bool take(struct rd *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	memcpy(out, r->p, n);
	r->p += n;
	return true;
}

static int node_by_name(const nn_model *m, const char *name)
{
	for (int i = 0; i < m->g.n_nodes; i++)
		if (!m->g.nodes[i].dead && m->g.nodes[i].name && !strcmp(m->g.nodes[i].name, name))
			return i;
	return -1;
}

/* Reads the entries of a mapped file into wcache entries (prepended to
 * *list); false if the file is not one of this key or is damaged. vouched:
 * the CRC-32 the file's check record gives (NULL: none that describes the
 * file as it is now); unless the header gives the same, the contents are
 * read through and summed (*read_through). *file_crc: the header's. */
static bool parse(nn_model *m, const char *key, nn_precision prec, const unsigned char *base, size_t len,
		  const uint32_t *vouched, bool *read_through, uint32_t *file_crc, struct nn_wcache **list)
{
	struct rd r = {base, base + len};
	char magic[8], name[1024];
	uint32_t klen, count, crc;
	uint64_t size;

	if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8) || !take(&r, &klen, 4) || klen != strlen(key) ||
	    (size_t)(r.end - r.p) < klen || memcmp(r.p, key, klen))
		return false;
	r.p += klen;
	if (!take(&r, &count, 4) || !take(&r, &size, 8) || size != len || !take(&r, &crc, 4))
		return false;
	*read_through = !vouched || *vouched != crc;
	if (*read_through && crc != crc_spread(r.p, (size_t)(r.end - r.p), m->one_pass))
		return false;
	*file_crc = crc;
	for (uint32_t i = 0; i < count; i++) {
		uint16_t nl;
		uint64_t off, bytes;
		struct nn_wcache *w = calloc(1, sizeof *w);
		if (!w)
			return false;
		w->next = *list;
		*list = w;
		w->mapped = true;
		w->prec = prec;
		if (!take(&r, &nl, 2) || nl >= sizeof name || !take(&r, name, nl) || !take(&r, &w->md, sizeof w->md) ||
		    !take(&r, &off, 8) || !take(&r, &bytes, 8))
			return false;
		name[nl] = '\0';
		if (off % ALIGN || off > len || bytes > len - off || bytes != dnnl_memory_desc_get_size(&w->md) ||
		    (w->node = node_by_name(m, name)) < 0)
			return false;
		w->buf = (void *)(base + off);
		if (dnnl_memory_create(&w->mem, &w->md, m->engine, w->buf) != dnnl_success)
			return false;
	}
	return true;
}

static void list_free(struct nn_wcache *w)
{
	while (w) {
		struct nn_wcache *next = w->next;
		if (w->mem)
			dnnl_memory_destroy(w->mem);
		free(w);
		w = next;
	}
}

/* ===== Check records (see the top of the file) ===== */

/* What a check saw of a weights file. */
struct check_rec {
	char magic[8];
	uint64_t dev, ino, size;
	int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
	uint32_t crc, zero;
};

static void check_rec_of(const struct stat *sb, uint32_t crc, struct check_rec *c)
{
	memset(c, 0, sizeof *c);
	memcpy(c->magic, CHECK_MAGIC, 8);
	c->dev = (uint64_t)sb->st_dev;
	c->ino = (uint64_t)sb->st_ino;
	c->size = (uint64_t)sb->st_size;
	c->mtime_s = (int64_t)sb->st_mtim.tv_sec;
	c->mtime_ns = (int64_t)sb->st_mtim.tv_nsec;
	c->ctime_s = (int64_t)sb->st_ctim.tv_sec;
	c->ctime_ns = (int64_t)sb->st_ctim.tv_nsec;
	c->crc = crc;
}

/* The CRC-32 the check record at rp gives, if the record describes its
 * weights file as sb finds it; false if there is no such record. */
static bool check_rec_vouches(const char *rp, const struct stat *sb, uint32_t *crc)
{
	struct check_rec want, got;
	bool ok;
	FILE *f;

	if (!(f = fopen(rp, "rb")))
		return false;
	ok = fread(&got, sizeof got, 1, f) == 1 && fgetc(f) == EOF;
	fclose(f);
	if (!ok)
		return false;
	check_rec_of(sb, got.crc, &want);
	if (memcmp(&want, &got, sizeof got))
		return false;
	*crc = got.crc;
	return true;
}

/* Records at rp that the weights file open as fd, read whole (CRC-32 crc)
 * by a check that began at start, is as sb found it before the check, if
 * it is still so, was last changed CHECK_SETTLE seconds before the check
 * began, and its data is on disk. */
static void check_rec_write(const char *rp, int fd, const struct stat *sb, uint32_t crc, time_t start)
{
	char tmp[PATH_MAX + 48];
	struct check_rec was, now;
	struct stat after;
	FILE *f;

	check_rec_of(sb, crc, &was);
	if (fstat(fd, &after) || (check_rec_of(&after, crc, &now), memcmp(&was, &now, sizeof now)) ||
	    sb->st_ctim.tv_sec + CHECK_SETTLE > start || fdatasync(fd))
		return;
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", rp, (long)getpid());
	if (!(f = fopen(tmp, "wb")))
		return;
	bool ok = fwrite(&was, sizeof was, 1, f) == 1;
	if (!fclose(f) && ok && !rename(tmp, rp))
		return;
	unlink(tmp);
}

void nn_wfile_load(nn_model *m, nn_precision prec)
{
	char path[PATH_MAX], rp[PATH_MAX + 16], key[sizeof m->wkey + 64];
	struct nn_wcache *list = NULL;
	struct stat sb;
	void *map = MAP_FAILED;
	uint32_t vouched, crc = 0;
	bool has_rec, read_through = true;
	time_t start;
	int fd;

	if ((unsigned)prec >= NN_PRECISIONS || m->wtried[prec] || !m->wdir)
		return;
	m->wtried[prec] = true;
	if (!m->wkey[0] && !make_key(m))
		return;
	full_key(m, prec, key, sizeof key);
	file_name(m, key, prec, path, sizeof path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (!fstat(fd, &sb) && sb.st_size > 0)
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		close(fd);
		return;
	}
	/* advice: pages read from disk come in as huge folios (FILE_PIECE) */
	madvise(map, (size_t)sb.st_size, MADV_HUGEPAGE);
	snprintf(rp, sizeof rp, "%s%s", path, CHECK_SUFFIX);
	has_rec = check_rec_vouches(rp, &sb, &vouched);
	start = time(NULL);
	if (!parse(m, key, prec, map, (size_t)sb.st_size, has_rec ? &vouched : NULL, &read_through, &crc, &list)) {
		list_free(list);
		munmap(map, (size_t)sb.st_size);
		close(fd);
		return;
	}
	m->wread[prec] = read_through;
	if (read_through)
		check_rec_write(rp, fd, &sb, crc, start);
	utimensat(AT_FDCWD, rp, NULL, 0); /* in use: pruning spares it (where it may be written) */
	close(fd);
	/* the file's entries go behind the model's own (none, usually) */
	struct nn_wcache **tail = &m->wcache;
	while (*tail)
		tail = &(*tail)->next;
	*tail = list;
	m->wmap[prec] = map;
	m->wmap_len[prec] = (size_t)sb.st_size;
	/* the graph's copies of these weights are not needed to plan: gone now
	 * rather than once each is asked for, so that the plan's memory does
	 * not come on top of them */
	for (const struct nn_wcache *w = list; w; w = w->next) {
		const struct nn_node *n = &m->g.nodes[w->node];
		if (n->op == NN_OP_CONV && n->n_in > 1)
			nn_weights_release(m, n->in[1]);
	}
	malloc_trim(0);
}

static bool put(FILE *f, const void *p, size_t n, uint32_t *crc)
{
	if (crc)
		*crc = crc_add(*crc, p, n);
	return fwrite(p, 1, n, f) == n;
}

/* Writes the table (crc != NULL: only adds it to *crc) and returns the
 * size of the file. */
static uint64_t table(const nn_model *m, nn_precision prec, FILE *f, uint64_t start, uint32_t *crc, bool *ok)
{
	uint64_t off = start;
	for (const struct nn_wcache *w = m->wcache; w; w = w->next) {
		if (w->prec != prec)
			continue;
		const char *name = m->g.nodes[w->node].name ? m->g.nodes[w->node].name : "";
		uint16_t nl = (uint16_t)strlen(name);
		uint64_t bytes = dnnl_memory_desc_get_size(&w->md);
		off = (off + ALIGN - 1) / ALIGN * ALIGN;
		if (f)
			*ok = *ok && put(f, &nl, 2, crc) && put(f, name, nl, crc) && put(f, &w->md, sizeof w->md, crc) &&
			      put(f, &off, 8, crc) && put(f, &bytes, 8, crc);
		off += bytes;
	}
	return off;
}

/* Removes from dir the weights files nobody used for PRUNE_DAYS (another
 * oneDNN, CPU or model: each process that uses one marks it) and temporary
 * files left by a process that died while writing. */
#define PRUNE_DAYS 30
static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	time_t now = time(NULL);

	if (!d)
		return;
	while ((e = readdir(d))) {
		const size_t n = strlen(e->d_name), ns = sizeof CHECK_SUFFIX - 1;
		char other[NAME_MAX + 16];
		struct stat sb, rb;
		bool weights = n > 8 && !strcmp(e->d_name + n - 8, ".weights"), tmp = n > 4 && !strcmp(e->d_name + n - 4, ".tmp");
		if (n > ns && !strcmp(e->d_name + n - ns, CHECK_SUFFIX)) { /* a record left without its file */
			snprintf(other, sizeof other, "%.*s", (int)(n - ns), e->d_name);
			if (fstatat(dirfd(d), other, &sb, 0) && errno == ENOENT)
				unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (!(weights || tmp) || fstatat(dirfd(d), e->d_name, &sb, 0))
			continue;
		/* a weights file's use is its record's time */
		snprintf(other, sizeof other, "%s%s", e->d_name, CHECK_SUFFIX);
		time_t used = weights && !fstatat(dirfd(d), other, &rb, 0) && rb.st_mtime > sb.st_mtime ? rb.st_mtime
													 : sb.st_mtime;
		if (now - used > (weights ? PRUNE_DAYS * 86400 : 86400)) {
			unlinkat(dirfd(d), e->d_name, 0);
			if (weights)
				unlinkat(dirfd(d), other, 0);
		}
	}
	closedir(d);
}

void nn_wfile_save(nn_model *m, nn_precision prec)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32], key[sizeof m->wkey + 64];
	uint32_t count = 0, klen, crc = 0, crc_at;
	uint64_t head, size;
	bool ok = true, fresh = false;
	char *piece;
	FILE *f;

	if (!m->wdir || !m->wkey[0] || (unsigned)prec >= NN_PRECISIONS)
		return;
	for (const struct nn_wcache *w = m->wcache; w; w = w->next) {
		if (w->prec != prec)
			continue;
		count++;
		fresh = fresh || (!w->mapped && !w->saved);
		if (!m->g.nodes[w->node].name || strlen(m->g.nodes[w->node].name) >= 1024)
			return; /* a node the file could not name */
	}
	if (!fresh || count == 0)
		return;
	full_key(m, prec, key, sizeof key);
	file_name(m, key, prec, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	if (mkdir(m->wdir, 0755) && errno != EEXIST)
		return;
	if (!(f = fopen(tmp, "wb")))
		return;
	/* written in whole pieces at their own offsets (FILE_PIECE): stdio
	 * writes a full buffer, or a larger write in multiples of its size */
	if ((piece = malloc(FILE_PIECE)))
		setvbuf(f, piece, _IOFBF, FILE_PIECE);
	/* the header up to the CRC, the table's size, then the CRC over the
	 * rest: computed in a first pass over what will be written */
	klen = (uint32_t)strlen(key);
	crc_at = 8 + 4 + klen + 4 + 8;
	head = crc_at + 4;
	uint64_t table_end = head;
	for (const struct nn_wcache *w = m->wcache; w; w = w->next)
		if (w->prec == prec)
			table_end += 2 + strlen(m->g.nodes[w->node].name) + sizeof w->md + 16;
	size = table(m, prec, NULL, table_end, NULL, &ok);
	ok = put(f, MAGIC, 8, NULL) && put(f, &klen, 4, NULL) && put(f, key, klen, NULL) &&
	     put(f, &count, 4, NULL) && put(f, &size, 8, NULL) && put(f, &crc, 4, NULL);
	/* table, then each tensor after zeros up to its offset */
	table(m, prec, f, table_end, &crc, &ok);
	uint64_t at = table_end;
	static const unsigned char zeros[ALIGN];
	for (const struct nn_wcache *w = m->wcache; ok && w; w = w->next) {
		if (w->prec != prec)
			continue;
		uint64_t off = (at + ALIGN - 1) / ALIGN * ALIGN, bytes = dnnl_memory_desc_get_size(&w->md);
		ok = put(f, zeros, (size_t)(off - at), &crc) && put(f, w->buf, (size_t)bytes, &crc);
		at = off + bytes;
	}
	ok = ok && at == size && !fseek(f, (long)crc_at, SEEK_SET) && put(f, &crc, 4, NULL);
	/* its pages on their way to disk now, without waiting for them: the
	 * process that records the file's check (check_rec_write) waits for
	 * what is left */
	if (ok && !fflush(f))
		sync_file_range(fileno(f), 0, 0, SYNC_FILE_RANGE_WRITE);
	ok = !fclose(f) && ok;
	free(piece);
	if (ok && !rename(tmp, path)) {
		prune(m->wdir);
		for (struct nn_wcache *w = m->wcache; w; w = w->next)
			w->saved = w->saved || w->prec == prec;
		return;
	}
	unlink(tmp);
}

void nn_wfile_let_go(void *buf, size_t len)
{
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = ((uintptr_t)buf + page - 1) & ~(page - 1), to = ((uintptr_t)buf + len) & ~(page - 1);

	/* a private mapping of a file opened read-only: its pages are never
	 * copies, so dropping them loses nothing */
	if (to > from)
		madvise((void *)from, to - from, MADV_DONTNEED);
}

void nn_wfile_forget(nn_model *m)
{
	for (int p = 0; p < NN_PRECISIONS; p++) {
		if (m->wmap[p])
			munmap(m->wmap[p], m->wmap_len[p]);
		m->wmap[p] = NULL;
		m->wmap_len[p] = 0;
		m->wtried[p] = false;
	}
}

nn_status nn_model_set_weight_cache(nn_model *m, const char *dir)
{
	char *d = dir ? strdup(dir) : NULL;

	if (dir && !d)
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&m->lock);
	free(m->wdir);
	m->wdir = d;
	for (int p = 0; p < NN_PRECISIONS; p++)
		m->wtried[p] = false;
	pthread_mutex_unlock(&m->lock);
	return NN_OK;
}
