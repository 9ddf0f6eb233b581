/*
 * slab.c - the memory a model is decoded into, handed on to its
 * activations.
 *
 * Decoding an ONNX file copies each tensor's bytes out of it (protobuf-c
 * allocates every field). A model's weights are then freed tensor by tensor
 * as plans keep them in their own layouts, and the first pass allocates the
 * activation arena: fresh memory, which the kernel makes and zeroes page by
 * page as the pass first writes it. A slab takes the decoded tensors
 * instead, one after the other in one region on huge pages (a page fault
 * every 2 MiB while decoding, not every 4 KiB), and once all of them are
 * freed the region, already in memory, becomes the arena (nn_slab_take).
 * ISNet medium's 88 MB file decodes some 10 ms sooner, and a fresh
 * process's first pass no longer waits for its 96 MB of new pages.
 *
 * Blocks are freed with nn_data_free, which tells a slab's blocks from
 * malloc's (and aborts on a pointer inside a slab that is not a live
 * block's, as free() does on a bad pointer). A slab lives until its owner
 * has let it go (nn_slab_close) and its last block is freed, or until it is
 * taken whole. With AddressSanitizer, what is not a live block is poisoned
 * and each block is followed by a poisoned gap, so its checks see a slab's
 * blocks as they see malloc's.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/nn_int.h"
#include "util/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif

#define SLAB_ALIGN 64

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define GAP SLAB_ALIGN
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define GAP 0
#endif

struct block {
	size_t off, n;
	bool live;
};

struct nn_slab {
	unsigned char *base;
	size_t size, used;
	struct block *blocks; /* by offset */
	size_t n_blocks, cap_blocks, live;
	bool closed; /* its owner let it go: released with its last block */
	struct nn_slab *next;
};

/* Every slab, for nn_data_free to find a block's. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct nn_slab *slabs;

/* Unlinks s and frees its bookkeeping; its region too unless keep. The
 * caller holds lock. */
static void release(struct nn_slab *s, bool keep)
{
	for (struct nn_slab **pp = &slabs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (!keep)
		free(s->base);
	free(s->blocks);
	free(s);
}

struct nn_slab *nn_slab_new(size_t size)
{
	struct nn_slab *s = calloc(1, sizeof *s);

	if (!s || !size || !(s->base = util_alloc_huge(size))) {
		free(s);
		return NULL;
	}
	s->size = size;
	POISON(s->base, size);
	pthread_mutex_lock(&lock);
	s->next = slabs;
	slabs = s;
	pthread_mutex_unlock(&lock);
	return s;
}

void *nn_slab_alloc(struct nn_slab *s, size_t n)
{
	size_t span = (n + SLAB_ALIGN - 1) / SLAB_ALIGN * SLAB_ALIGN + GAP;
	void *p = NULL;

	if (!s || !n)
		return NULL;
	pthread_mutex_lock(&lock);
	if (!s->closed && span <= s->size - s->used) {
		if (s->n_blocks == s->cap_blocks) {
			size_t cap = s->cap_blocks ? 2 * s->cap_blocks : 64;
			struct block *b = realloc(s->blocks, cap * sizeof *b);
			if (!b)
				goto out;
			s->blocks = b;
			s->cap_blocks = cap;
		}
		s->blocks[s->n_blocks++] = (struct block){.off = s->used, .n = n, .live = true};
		s->live++;
		p = s->base + s->used;
		s->used += span;
		UNPOISON(p, n);
	}
out:
	pthread_mutex_unlock(&lock);
	return p;
}

/* The block of s at offset off, or NULL. */
static struct block *block_at(const struct nn_slab *s, size_t off)
{
	size_t lo = 0, hi = s->n_blocks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->blocks[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n_blocks && s->blocks[lo].off == off ? &s->blocks[lo] : NULL;
}

void nn_data_free(void *p)
{
	const unsigned char *b = p;

	if (!p)
		return;
	pthread_mutex_lock(&lock);
	for (struct nn_slab *s = slabs; s; s = s->next) {
		if (b < s->base || b >= s->base + s->used)
			continue;
		struct block *k = block_at(s, (size_t)(b - s->base));
		if (!k || !k->live) {
			fprintf(stderr, "petcut: freeing %p, not a live block of a model's slab\n", p);
			abort();
		}
		k->live = false;
		POISON(p, k->n);
		if (!--s->live && s->closed)
			release(s, false);
		pthread_mutex_unlock(&lock);
		return;
	}
	pthread_mutex_unlock(&lock);
	free(p);
}

void nn_slab_close(struct nn_slab *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&lock);
	s->closed = true;
	if (!s->live)
		release(s, false);
	pthread_mutex_unlock(&lock);
}

void *nn_slab_take(struct nn_slab **sp, size_t need, size_t *size)
{
	struct nn_slab *s = *sp;
	void *base = NULL;

	if (!s)
		return NULL;
	pthread_mutex_lock(&lock);
	if (!s->live) {
		*sp = NULL;
		if (need && need <= s->size) {
			base = s->base;
			*size = s->size;
			UNPOISON(base, s->size);
		}
		release(s, base != NULL);
	}
	pthread_mutex_unlock(&lock);
	return base;
}
