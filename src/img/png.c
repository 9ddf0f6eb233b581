/*
 * png.c - petcut's PNG writer, several times faster than libvips' (libpng
 * with zlib at level 3): the rows Paeth-filtered and compressed in pieces on
 * all cores by ISA-L's igzip at level 2 (each piece's rows filtered by the
 * thread that compresses them), the pieces joined into the one zlib stream
 * PNG asks for, the file made in one buffer. On a 12 MP cut-out (2-core Xeon) the compression takes 60-70 ms
 * against 270-290 ms for libdeflate at level 1 in one pass, and the whole
 * encode 160 ms against 458 ms with the rows Sub-filtered (BENCHMARKS.md).
 * igzip alone makes files 1-10 % larger than libdeflate; Paeth, which suits
 * photos better than Sub, makes up for most or all of it (from 6 % smaller
 * to 1.5 % larger on the photos tried).
 *
 * The file holds what libvips would write around the pixels: the ancillary
 * chunks (pHYs, iCCP, eXIf, text) come from libvips' own PNG of the image's
 * first pixel, which carries all of the image's metadata, with EXIF's pixel
 * dimensions then set to the whole image's (libvips sets them from the size
 * it saves). libpng writes eXIf a second time after the pixels; it is
 * written once here, as the PNG specification asks.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zlib.h>

#include "img/img_int.h"
#include "util/util.h"

/* The most compressed bytes one IDAT chunk holds. */
#define PNG_IDAT_MAX (1u << 20)

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24, p[1] = (v >> 16) & 0xff, p[2] = (v >> 8) & 0xff, p[3] = v & 0xff;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The CRC of a chunk: over its type and data. */
static uint32_t chunk_crc(const unsigned char *type, const unsigned char *data, size_t len)
{
	uint32_t crc = libdeflate_crc32(0, type, 4);

	return len ? libdeflate_crc32(crc, data, len) : crc;
}

/* ===== EXIF's pixel dimensions ===== */

/* An EXIF block as a PNG eXIf chunk holds it: TIFF, in either byte order. */
struct tiff {
	unsigned char *p;
	size_t n;
	int be; /* big-endian ("MM") */
};

static uint32_t tiff_get(const struct tiff *t, size_t at, int size)
{
	uint32_t v = 0;

	for (int i = 0; i < size; i++)
		v |= (uint32_t)t->p[at + i] << 8 * (t->be ? size - 1 - i : i);
	return v;
}

static void tiff_put(struct tiff *t, size_t at, int size, uint32_t v)
{
	for (int i = 0; i < size; i++)
		t->p[at + i] = (v >> 8 * (t->be ? size - 1 - i : i)) & 0xff;
}

/* The offset of tag's 12-byte entry in the directory at ifd, or 0. */
static size_t tiff_entry(const struct tiff *t, size_t ifd, unsigned tag)
{
	size_t count;

	if (ifd < 8 || ifd > t->n || t->n - ifd < 2)
		return 0;
	count = tiff_get(t, ifd, 2);
	for (size_t i = 0; i < count; i++) {
		size_t e = ifd + 2 + 12 * i;

		if (e + 12 > t->n)
			return 0;
		if (tiff_get(t, e, 2) == tag)
			return e;
	}
	return 0;
}

/* Sets PixelXDimension and PixelYDimension, where the block has them, to
 * w x h, as libvips does on saving (a SHORT keeps the low 16 bits, as
 * there). A block that cannot be followed is left as it is. */
static void exif_set_size(unsigned char *p, size_t n, uint32_t w, uint32_t h)
{
	struct tiff t = {p, n, n >= 2 && p[0] == 'M'};
	static const unsigned tags[2] = {0xa002, 0xa003};
	size_t ptr, exif;

	if (n < 8 || (memcmp(p, "II", 2) && memcmp(p, "MM", 2)))
		return;
	ptr = tiff_entry(&t, tiff_get(&t, 4, 4), 0x8769); /* the Exif directory */
	if (!ptr)
		return;
	exif = tiff_get(&t, ptr + 8, 4);
	for (int i = 0; i < 2; i++) {
		size_t e = tiff_entry(&t, exif, tags[i]);
		unsigned type = e ? tiff_get(&t, e + 2, 2) : 0;

		/* one value, which the entry holds itself */
		if ((type == 3 || type == 4) && tiff_get(&t, e + 4, 4) == 1)
			tiff_put(&t, e + 8, type == 3 ? 2 : 4, i ? h : w);
	}
}

/* ===== Metadata ===== */

/* The ancillary chunks libvips writes for im, whole (length, type, data,
 * CRC) and in its order, into *out (malloc; NULL and *len 0 when none).
 * 0, or -1 with a libvips error. */
static int meta_chunks(VipsImage *im, unsigned char **out, size_t *len)
{
	VipsImage *dot = NULL;
	unsigned char *png = NULL, *o = NULL;
	size_t n = 0, at = 8, olen = 0;
	int r = -1, exif_seen = 0;

	*out = NULL;
	*len = 0;
	if (vips_crop(im, &dot, 0, 0, 1, 1, NULL) ||
	    vips_pngsave_buffer(dot, (void **)&png, &n, "compression", 0, NULL))
		goto out;
	if (!(o = malloc(n))) {
		vips_error("petcut", "out of memory");
		goto out;
	}
	while (n - at >= 12) {
		uint32_t dl = get_be32(png + at);
		unsigned char *c = png + at, *type = c + 4;
		size_t whole = 12 + (size_t)dl;

		if (whole > n - at || !memcmp(type, "IEND", 4))
			break;
		at += whole;
		if (!memcmp(type, "IHDR", 4) || !memcmp(type, "IDAT", 4))
			continue;
		if (!memcmp(type, "eXIf", 4)) {
			if (exif_seen++)
				continue;
			exif_set_size(c + 8, dl, (uint32_t)im->Xsize, (uint32_t)im->Ysize);
			put_be32(c + 8 + dl, chunk_crc(type, c + 8, dl));
		}
		memcpy(o + olen, c, whole);
		olen += whole;
	}
	if (olen) {
		*out = o;
		*len = olen;
		o = NULL;
	}
	r = 0;
out:
	free(o);
	g_free(png);
	VIPS_UNREF(dot);
	return r;
}

/* ===== The pixels ===== */

/* One row with the Paeth filter: each byte less the one of its left, upper
 * and upper-left neighbours (of the same band) that a + b - c is nearest to;
 * up is the row above (zeros for the first). Bytes from i on; the portable
 * loop, and the tail of the vector one. */
static void paeth_from(unsigned char *restrict dst, const unsigned char *restrict row,
		       const unsigned char *restrict up, size_t i, size_t len, size_t bands)
{
	for (; i < len; i++) {
		int a = row[i - bands], b = up[i], c = up[i - bands];
		int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
		dst[i] = (unsigned char)(row[i] - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c));
	}
}

/* The predictor of 16 bytes, their neighbours widened to 16 bits:
 * |b - c|, |a - c| and |a + b - 2c| as the portable loop's pa, pb, pc. */
__attribute__((target("avx2"))) static inline __m256i paeth16(__m256i a, __m256i b, __m256i c)
{
	__m256i bc = _mm256_sub_epi16(b, c), ac = _mm256_sub_epi16(a, c);
	__m256i pa = _mm256_abs_epi16(bc), pb = _mm256_abs_epi16(ac), pc = _mm256_abs_epi16(_mm256_add_epi16(bc, ac));
	__m256i not_a = _mm256_or_si256(_mm256_cmpgt_epi16(pa, pb), _mm256_cmpgt_epi16(pa, pc));
	__m256i b_or_c = _mm256_blendv_epi8(b, c, _mm256_cmpgt_epi16(pb, pc));
	return _mm256_blendv_epi8(a, b_or_c, not_a);
}

/* 32 bytes a step: the neighbours widened to 16 bits in two halves, the
 * predictors packed back to bytes (packus keeps 0..255 as they are, then
 * the lanes are put back in order), the difference taken modulo 256. */
__attribute__((target("avx2"))) static void paeth_avx2(unsigned char *restrict dst, const unsigned char *restrict row,
						       const unsigned char *restrict up, size_t len, size_t bands)
{
	size_t i = bands;
	for (; i + 32 <= len; i += 32) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(row + i - bands));
		__m256i b = _mm256_loadu_si256((const __m256i *)(up + i));
		__m256i c = _mm256_loadu_si256((const __m256i *)(up + i - bands));
		__m256i x = _mm256_loadu_si256((const __m256i *)(row + i));
		__m256i lo = paeth16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(a)),
				     _mm256_cvtepu8_epi16(_mm256_castsi256_si128(b)),
				     _mm256_cvtepu8_epi16(_mm256_castsi256_si128(c)));
		__m256i hi = paeth16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(a, 1)),
				     _mm256_cvtepu8_epi16(_mm256_extracti128_si256(b, 1)),
				     _mm256_cvtepu8_epi16(_mm256_extracti128_si256(c, 1)));
		__m256i pred = _mm256_permute4x64_epi64(_mm256_packus_epi16(lo, hi), 0xd8);
		_mm256_storeu_si256((__m256i *)(dst + i), _mm256_sub_epi8(x, pred));
	}
	paeth_from(dst, row, up, i, len, bands);
}

static void filter_paeth(unsigned char *restrict dst, const unsigned char *restrict row,
			 const unsigned char *restrict up, size_t len, int bands, int avx2)
{
	size_t k = (size_t)bands < len ? (size_t)bands : len;

	*dst++ = 4; /* the filter type */
	for (size_t i = 0; i < k; i++) /* no left neighbour: the upper one */
		dst[i] = (unsigned char)(row[i] - up[i]);
	if (avx2 && len >= k + 32)
		paeth_avx2(dst, row, up, len, (size_t)bands);
	else
		paeth_from(dst, row, up, k, len, (size_t)bands);
}

/* The filtered rows, one stream of h rows of 1 + row bytes, are compressed
 * in pieces of PNG_PIECE bytes, each a run of deflate blocks that, but for
 * the last, ends byte-aligned with an empty stored block (a sync flush), so
 * the pieces laid end to end are one deflate stream; each piece is primed
 * with the PNG_WINDOW bytes before it, so its matches reach back across the
 * join as in one pass. A thread filters the rows its piece and that window
 * cover into a buffer of its own and compresses them from there, while they
 * are in its cache: the filtered image is never whole in memory. */
#define PNG_PIECE (2u << 20)
#define PNG_WINDOW (32u << 10)

/* The rows of the image and what their filtered stream is made of. */
struct rows {
	VipsRegion *reg; /* over the whole image */
	const unsigned char *zero; /* the row above the first: zeros */
	size_t row;	 /* bytes of a row's pixels */
	size_t flen;	 /* bytes of the filtered stream: h * (1 + row) */
	int bands, avx2;
};

/* The bytes of piece i. */
static size_t piece_len(const struct rows *r, size_t i)
{
	size_t at = i * PNG_PIECE;
	return r->flen - at < PNG_PIECE ? r->flen - at : PNG_PIECE;
}

/* Room for a piece of n bytes: igzip's Huffman blocks grow incompressible
 * bytes by at most an eighth, plus the blocks' headers. */
static size_t piece_room(size_t n)
{
	return n + n / 8 + 4096;
}

/* Bytes a thread's buffer takes: a piece, its window, and the two partial
 * rows at their ends. */
static size_t rows_room(const struct rows *r)
{
	return PNG_PIECE + PNG_WINDOW + 2 * (r->row + 1);
}

/* Filters the rows that hold bytes [from, to) of the stream into buf; the
 * address of byte from in buf. */
static const unsigned char *filter_span(const struct rows *r, size_t from, size_t to, unsigned char *buf)
{
	size_t stride = r->row + 1;
	int y0 = (int)(from / stride), y1 = (int)((to - 1) / stride);

	for (int y = y0; y <= y1; y++)
		filter_paeth(buf + (size_t)(y - y0) * stride, VIPS_REGION_ADDR(r->reg, 0, y),
			     y ? VIPS_REGION_ADDR(r->reg, 0, y - 1) : r->zero, r->row, r->bands, r->avx2);
	return buf + (from - (size_t)y0 * stride);
}

/* Compresses n bytes at in (the dict bytes before them its window; the last
 * piece if last) into out (room bytes), with lvl igzip's level-2 buffer;
 * its length, 0 on failure. */
static size_t compress_piece(const unsigned char *in, size_t dict, size_t n, int last, unsigned char *out,
			     size_t room, unsigned char *lvl)
{
	struct isal_zstream s;

	isal_deflate_init(&s);
	s.level = 2;
	s.level_buf = lvl;
	s.level_buf_size = ISAL_DEF_LVL2_DEFAULT;
	if (dict && isal_deflate_set_dict(&s, (uint8_t *)in - dict, (uint32_t)dict) != COMP_OK)
		return 0;
	s.next_in = (uint8_t *)in;
	s.avail_in = (uint32_t)n;
	s.next_out = out;
	s.avail_out = (uint32_t)room;
	s.end_of_stream = last;
	s.flush = last ? NO_FLUSH : SYNC_FLUSH;
	/* all in and all out: input left, or output that filled the room,
	 * means the room was short */
	if (isal_deflate(&s) != COMP_OK || s.avail_in || !s.avail_out ||
	    (last && s.internal_state.state != ZSTATE_END))
		return 0;
	return room - s.avail_out;
}

/* The compressed pieces: piece i's len[i] bytes at out + i * room, and the
 * Adler-32 of its filtered bytes. */
struct pieces {
	size_t n, room, *len;
	uint32_t *sum;
	unsigned char *out;
};

static void pieces_free(struct pieces *p)
{
	free(p->len);
	free(p->sum);
	free(p->out);
}

/* Filters and compresses the rows, on all cores; 0, or -1 (out of memory,
 * or igzip failed). */
static int compress_rows(const struct rows *r, struct pieces *p)
{
	int failed;

	p->n = r->flen ? (r->flen - 1) / PNG_PIECE + 1 : 1;
	p->room = piece_room(r->flen < PNG_PIECE ? r->flen : PNG_PIECE);
	p->len = calloc(p->n, sizeof *p->len);
	p->sum = calloc(p->n, sizeof *p->sum);
	p->out = malloc(p->n * p->room);
	failed = !p->len || !p->sum || !p->out;
#pragma omp parallel if (!failed && p->n > 1)
	{
		unsigned char *lvl = failed ? NULL : malloc(ISAL_DEF_LVL2_DEFAULT);
		unsigned char *buf = failed ? NULL : malloc(rows_room(r));
#pragma omp for schedule(dynamic, 1)
		for (size_t i = 0; i < p->n; i++) {
			size_t at = i * PNG_PIECE, n = piece_len(r, i), dict = at < PNG_WINDOW ? at : PNG_WINDOW;
			const unsigned char *in = lvl && buf ? filter_span(r, at - dict, at + n, buf) + dict : NULL;

			if (!in || !(p->len[i] = compress_piece(in, dict, n, i + 1 == p->n, p->out + i * p->room,
								p->room, lvl))) {
#pragma omp atomic write
				failed = 1;
				continue;
			}
			p->sum[i] = libdeflate_adler32(1, in, n);
		}
		free(buf);
		free(lvl);
	}
	return failed ? -1 : 0;
}

/* The zlib stream (a header, the pieces, the Adler-32 of the filtered
 * stream) laid into IDAT chunks of PNG_IDAT_MAX bytes, the last shorter,
 * starting at file: its bytes, each chunk's length, type and CRC. */
static size_t idat_len(size_t zlen)
{
	return zlen + (zlen + PNG_IDAT_MAX - 1) / PNG_IDAT_MAX * 12;
}

/* Copies n bytes of the zlib stream, from its byte k on, to their places in
 * the chunks at file. */
static void idat_put(unsigned char *file, size_t k, const unsigned char *src, size_t n)
{
	while (n) {
		size_t c = k / PNG_IDAT_MAX, in = k % PNG_IDAT_MAX, m = PNG_IDAT_MAX - in < n ? PNG_IDAT_MAX - in : n;

		memcpy(file + c * (PNG_IDAT_MAX + 12) + 8 + in, src, m);
		k += m, src += m, n -= m;
	}
}

static void idat_frame(unsigned char *file, size_t zlen)
{
	size_t chunks = (zlen + PNG_IDAT_MAX - 1) / PNG_IDAT_MAX;

#pragma omp parallel for schedule(static) if (chunks > 1)
	for (size_t c = 0; c < chunks; c++) {
		unsigned char *ch = file + c * (PNG_IDAT_MAX + 12);
		size_t dl = c + 1 < chunks ? PNG_IDAT_MAX : zlen - c * PNG_IDAT_MAX;

		put_be32(ch, (uint32_t)dl);
		memcpy(ch + 4, "IDAT", 4);
		put_be32(ch + 8 + dl, chunk_crc(ch + 4, ch + 8, dl));
	}
}

/* Appends one whole chunk at *p. */
static void put_chunk_at(unsigned char **p, const char *type, const unsigned char *data, size_t len)
{
	put_be32(*p, (uint32_t)len);
	memcpy(*p + 4, type, 4);
	if (len)
		memcpy(*p + 8, data, len);
	put_be32(*p + 8 + len, chunk_crc(*p + 4, *p + 8, len));
	*p += 12 + len;
}

int img_png_encode(VipsImage *im, void **buf, size_t *len)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const unsigned char color_type[4] = {0, 4, 2, 6}; /* grey, grey + alpha, RGB, RGBA */
	int w = im->Xsize, h = im->Ysize, bands = im->Bands;
	struct rows r = {.row = (size_t)w * bands, .bands = bands, .avx2 = __builtin_cpu_supports("avx2")};
	struct pieces pc = {0};
	unsigned char *meta = NULL, *zero = NULL, *file = NULL, ihdr[13];
	size_t metalen = 0, zlen, flen;
	VipsRect all = {0, 0, w, h};
	int ret = -1;

	*buf = NULL;
	*len = 0;
	if (im->BandFmt != VIPS_FORMAT_UCHAR || im->Coding != VIPS_CODING_NONE || bands < 1 || bands > 4) {
		vips_error("petcut", "PNG takes 8-bit images of 1 to 4 bands");
		return -1;
	}
	r.flen = (r.row + 1) * (size_t)h;
	if (meta_chunks(im, &meta, &metalen))
		goto out;
	/* A region over the whole image: the pixels where they are. */
	r.reg = vips_region_new(im);
	if (!r.reg || vips_region_prepare(r.reg, &all))
		goto out;
	if (!(r.zero = zero = calloc(1, r.row))) {
		vips_error("petcut", "out of memory");
		goto out;
	}
	if (compress_rows(&r, &pc)) {
		vips_error("petcut", "cannot compress the PNG's pixels");
		goto out;
	}

	/* the file: the signature, IHDR, the ancillary chunks, the IDATs, IEND */
	zlen = 2 + 4;
	for (size_t i = 0; i < pc.n; i++)
		zlen += pc.len[i];
	flen = sizeof sig + (12 + sizeof ihdr) + metalen + idat_len(zlen) + 12;
	if (!(file = malloc(flen))) {
		vips_error("petcut", "out of memory");
		goto out;
	}
	unsigned char *p = file, *idat;
	memcpy(p, sig, sizeof sig);
	p += sizeof sig;
	put_be32(ihdr, (uint32_t)w);
	put_be32(ihdr + 4, (uint32_t)h);
	ihdr[8] = 8; /* bits a sample */
	ihdr[9] = color_type[bands - 1];
	ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filters, not interlaced */
	put_chunk_at(&p, "IHDR", ihdr, sizeof ihdr);
	if (metalen)
		memcpy(p, meta, metalen);
	idat = p + metalen;

	/* the zlib stream: deflate with a 32 KiB window at the fastest level
	 * ((0x78 << 8 | 0x01) is a multiple of 31), the pieces where the
	 * lengths before them put them, the Adler-32 combined from theirs */
	uint32_t adler = pc.sum[0];
	size_t *at = malloc(pc.n * sizeof *at);
	if (!at) {
		vips_error("petcut", "out of memory");
		goto out;
	}
	idat_put(idat, 0, (const unsigned char[]){0x78, 0x01}, 2);
	at[0] = 2;
	for (size_t i = 1; i < pc.n; i++) {
		at[i] = at[i - 1] + pc.len[i - 1];
		adler = (uint32_t)adler32_combine(adler, pc.sum[i], (z_off_t)piece_len(&r, i));
	}
#pragma omp parallel for schedule(static) if (pc.n > 1)
	for (size_t i = 0; i < pc.n; i++)
		idat_put(idat, at[i], pc.out + i * pc.room, pc.len[i]);
	free(at);
	unsigned char sum[4];
	put_be32(sum, adler);
	idat_put(idat, zlen - 4, sum, 4);
	idat_frame(idat, zlen);
	p = idat + idat_len(zlen);
	put_chunk_at(&p, "IEND", NULL, 0);

	*buf = file;
	*len = flen;
	file = NULL;
	ret = 0;
out:
	VIPS_UNREF(r.reg);
	pieces_free(&pc);
	free(file);
	free(zero);
	free(meta);
	return ret;
}

int img_png_save(VipsImage *im, VipsTarget *t)
{
	void *buf;
	size_t len;
	int r = img_png_encode(im, &buf, &len);

	if (!r)
		r = vips_target_write(t, buf, len) || vips_target_end(t) ? -1 : 0;
	free(buf);
	return r;
}
