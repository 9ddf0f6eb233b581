/*
 * ops_int.h - what the operator files (ops.c, ops_ref.c) share.
 */
#ifndef PETCUT_NN_OPS_INT_H
#define PETCUT_NN_OPS_INT_H

#include "nn/nn_int.h"

static inline const char *op_name(enum nn_op op)
{
	return (unsigned)op < NN_OP_COUNT ? nn_op_names[op] : "?";
}

#define FAIL(st, n, ...) nn_fail(st, "node '%s' (%s): " __VA_ARGS__)
#define NODE(n) (n)->name, op_name((n)->op)

/* Reads element i of an integer tensor (i64 or i32) as int64. */
int64_t ops_get_int(const struct nn_tview *t, int64_t i);
/* Reads element i of a numeric tensor as a double. */
double ops_get_num(const struct nn_tview *t, int64_t i);

/* Resize: the scale per axis and the output dims. */
nn_status ops_resize_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
			    int64_t opset, double *scales, int64_t *odims);
/* Slice: the normalised start and step per axis, and the output dims. */
nn_status ops_slice_params(const struct nn_node *n, const struct nn_tview *const *in, int n_in,
			   int64_t *start, int64_t *step, int64_t *odims);

#endif
