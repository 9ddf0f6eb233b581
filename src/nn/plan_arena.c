/*
 * plan_arena.c - where the intermediate tensors of a plan live.
 *
 * Every runtime tensor gets an offset in one arena, planned from the steps
 * that use it so that tensors that are never alive together share memory;
 * a tensor living inside another's storage (an in-place Concat, a sum into
 * its addend) lives as long as both.
 */
#include <stdlib.h>

#include "nn/plan_int.h"

/* ===== Arena ===== */

#define ARENA_ALIGN 64

struct block {
	size_t off, size;
	int first, last;
};

static int by_size_desc(const void *a, const void *b)
{
	const struct ptv *const *x = a, *const *y = b;
	return (*x)->bytes < (*y)->bytes ? 1 : (*x)->bytes > (*y)->bytes ? -1 : 0;
}

/* Places every runtime tensor at the lowest offset where it overlaps no
 * tensor alive at the same time, largest first. */
nn_status plan_arena(struct nn_plan *p)
{
	struct ptv **order = malloc(sizeof *order * (size_t)(p->n_tv + 1));
	struct block *placed = malloc(sizeof *placed * (size_t)(p->n_tv + 1));
	int n = 0, np = 0;

	if (!order || !placed) {
		free(order);
		free(placed);
		return nn_fail(NN_ERR_NOMEM, "out of memory");
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].kind == TV_RUN && p->tv[i].first >= 0 && p->tv[i].alias < 0)
			order[n++] = &p->tv[i];
	qsort(order, (size_t)n, sizeof *order, by_size_desc);
	p->arena_size = 0;
	for (int i = 0; i < n; i++) {
		struct ptv *v = order[i];
		size_t size = (v->bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN, off = 0;
		bool moved = true;
		/* first fit: bump past any live-overlapping block we collide with */
		while (moved) {
			moved = false;
			for (int j = 0; j < np; j++) {
				const struct block *b = &placed[j];
				if (b->last < v->first || b->first > v->last)
					continue;
				if (off < b->off + b->size && b->off < off + size) {
					off = b->off + b->size;
					moved = true;
				}
			}
		}
		v->off = off;
		placed[np++] = (struct block){off, size, v->first, v->last};
		if (off + size > p->arena_size)
			p->arena_size = off + size;
	}
	for (int i = 0; i < p->n_tv; i++)
		if (p->tv[i].alias >= 0) {
			size_t o;
			int r = plan_tv_root(p, i, &o);
			p->tv[i].off = p->tv[r].off + o;
		}
	free(order);
	free(placed);
	return NN_OK;
}

static void use_tv(struct nn_plan *p, int v, int step)
{
	if (v < 0)
		return;
	struct ptv *t = &p->tv[v];
	if (t->first < 0 || step < t->first)
		t->first = step;
	if (step > t->last)
		t->last = step;
}

void plan_liveness(struct nn_plan *p)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct step *s = &p->steps[i];
		for (int a = 0; a < s->nargs; a++)
			use_tv(p, s->arg_tv[a], i);
		for (int a = 0; a < s->n_ins; a++)
			use_tv(p, s->ins[a], i);
		for (int a = 0; a < s->n_outs; a++)
			use_tv(p, s->outs[a], i);
	}
	/* tensors sharing storage live as one */
	for (int i = 0; i < p->n_tv; i++) {
		if (p->tv[i].alias < 0 || p->tv[i].first < 0)
			continue;
		struct ptv *r = &p->tv[plan_tv_root(p, i, NULL)];
		if (r->first < 0 || p->tv[i].first < r->first)
			r->first = p->tv[i].first;
		if (p->tv[i].last > r->last)
			r->last = p->tv[i].last;
	}
}
