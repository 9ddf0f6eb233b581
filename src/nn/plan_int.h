/*
 * plan_int.h - internals of the plans (plan*.c), shared by their files only.
 *
 * A plan is a list of steps over tensors (tvs): one tv per graph value, then
 * the temporaries the lowering adds (reordered copies, quantized inputs,
 * float copies of 8-bit data). Its files:
 *   plan.c        building a plan for a set of input shapes, the plans kept
 *                 by the model, running one, the figures
 *   plan_tensor.c tensors of a plan and the steps that bind them: memory
 *                 descriptors, layouts and reorders between them
 *   plan_conv.c   lowering Conv and ConvInteger: weights kept by the model,
 *                 int8 and Winograd convolutions
 *   plan_lower.c  lowering every other node, and which tensors int8 plans
 *                 hold as u8
 *   plan_arena.c  tensors' lifetimes and their offsets in the arena
 */
#ifndef PETCUT_NN_PLAN_INT_H
#define PETCUT_NN_PLAN_INT_H

#include "nn/nn_int.h"

struct wino_conv;

/* ===== Plan structures ===== */

enum { TV_NONE, TV_CONST, TV_IN, TV_RUN, TV_OUT };

struct ptv {
	struct nn_tview t; /* shape; data for TV_CONST */
	int kind;
	int ext; /* input index (TV_IN) or output index (TV_OUT) */
	bool has_md;
	dnnl_memory_desc_t md;
	size_t bytes;
	int first, last; /* steps using it */
	int alias;	 /* lives inside the storage of this tv (-1: its own) */
	size_t alias_off; /* ... at this byte offset */
	size_t off;	 /* arena offset (TV_RUN) */
	dnnl_memory_t mem;
	int deferred;	 /* Concat node + 1 whose copy the int8 conv reading this tensor makes as it quantizes */
	float q;	 /* int8 plans: held as u8, x = q * stored (0: float) */
};

enum { STEP_PRIM, STEP_REF, STEP_ZP_TO_F32, STEP_F32_TO_I32, STEP_COPY, STEP_WINO };

#define MAX_ARGS (NN_MAX_POST + 8)

struct step {
	int kind;
	int node;
	dnnl_primitive_t prim;
	dnnl_primitive_desc_t pd; /* while the plan is built: prim is made from it at the end */
	int nargs;
	dnnl_exec_arg_t args[MAX_ARGS];
	int arg_tv[MAX_ARGS]; /* the tv behind args[i], or -1 */
	int n_ins, n_outs;
	int *ins;    /* REF and helpers: tv per node input (-1 omitted) */
	int outs[4];
	const struct wino_conv *wino; /* STEP_WINO */
};

/* A tensor seen through another descriptor (a lower-rank operand padded
 * with ones, weights with their groups split out). */
struct view {
	int tv;
	dnnl_memory_t mem;
};

struct nn_plan {
	struct nn_plan *next;
	int n_inputs;
	int in_rank[16];
	int64_t in_dims[16][NN_MAX_RANK];
	void *in_copy[16]; /* values of the inputs that decide shapes */
	nn_precision precision;
	struct ptv *tv;
	int n_tv, cap_tv;
	struct step *steps;
	int n_steps, cap_steps;
	int *out_tv;
	size_t arena_size, scratch_size;
	int ref_convs; /* convolutions left to oneDNN's reference kernel */
	dnnl_memory_t scratch_mem;
	void **owned; /* plan-owned buffers (folded constants, prepared data) */
	int n_owned, cap_owned;
	dnnl_memory_t *consts; /* memories over constant data */
	int n_consts, cap_consts;
	struct view *views; /* memories that see a tv through another descriptor */
	int n_views, cap_views;
	bool *hold; /* int8 plans, per graph value: every reader can take it as u8 */
	/* weights in the weights file's mapping, by the last step that reads
	 * them, in step order: a one-pass model lets their pages go after it */
	struct plan_drop {
		int step;
		void *buf;
		size_t len;
	} *drops;
	int n_drops;
};

#define DNNL_TRY(call, what)                                                                   \
	do {                                                                                   \
		dnnl_status_t s_ = (call);                                                     \
		if (s_ != dnnl_success)                                                        \
			return nn_fail(NN_ERR_BACKEND, "%s: oneDNN status %d", (what), (int)s_); \
	} while (0)


/* ===== Tensors and steps (plan_tensor.c) ===== */

/* Keeps buf until the plan is freed. */
bool plan_own(struct nn_plan *p, void *buf);

extern const dnnl_format_tag_t plan_plain_tags[];
void plan_fill_dims(dnnl_dims_t d, int n, const int64_t *v);
bool plan_plain_md(nn_dtype t, int rank, const int64_t *dims, dnnl_memory_desc_t *md);
bool plan_any_md(int rank, const int64_t *dims, dnnl_data_type_t dt, dnnl_memory_desc_t *md);
bool plan_is_dense(const struct ptv *v);
dnnl_memory_desc_t plan_md_as(const dnnl_memory_desc_t *md, nn_dtype t);
bool plan_is_plain(const struct ptv *v);

int plan_tv_new(struct nn_plan *p, const struct nn_tview *t, int kind);
int plan_tv_root(const struct nn_plan *p, int v, size_t *off);
void plan_tv_set_md(struct ptv *v, const dnnl_memory_desc_t *md);
void plan_tv_default_md(struct ptv *v);
nn_status plan_const_mem(nn_model *m, struct nn_plan *p, const dnnl_memory_desc_t *md, void *data,
			 dnnl_memory_t *out);

struct step *plan_step_new(struct nn_plan *p, int kind, int node);
void plan_arg_tv(struct step *s, int arg, int tv);
void plan_arg_mem(struct step *s, int arg, dnnl_memory_t mem);
nn_status plan_prim_create(nn_model *m, struct nn_plan *p, const_dnnl_op_desc_t desc, dnnl_primitive_attr_t attr,
			   dnnl_primitive_desc_t *pd, const char *what);
/* True if oneDNN gave pd its reference (unoptimised) implementation. */
bool plan_prim_is_ref(const_dnnl_primitive_desc_t pd);
void plan_prim_prefer(nn_model *m, const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
		      dnnl_primitive_desc_t *pd, const char *from, const char *to);
void plan_prim_finish(struct nn_plan *p, struct step *s, dnnl_primitive_desc_t pd);
int plan_reorder_scaled(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md,
			float scale);
int plan_reorder_into(nn_model *m, struct nn_plan *p, int src, int dst, const dnnl_memory_desc_t *src_md);
int plan_add_quantized(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md, float scale);
int plan_add_quantized_concat(nn_model *m, struct nn_plan *p, int cnode, int x, const dnnl_memory_desc_t *md,
			      const float *sic);
int plan_add_reorder(nn_model *m, struct nn_plan *p, int src, const dnnl_memory_desc_t *md);
int plan_in_layout(nn_model *m, struct nn_plan *p, int v, const dnnl_memory_desc_t *md);
int plan_in_plain(nn_model *m, struct nn_plan *p, int v);
nn_status plan_bind_value(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			  const dnnl_memory_desc_t *md_if_const);
nn_status plan_bind_view(nn_model *m, struct nn_plan *p, struct step *s, int arg, int v,
			 const dnnl_memory_desc_t *md);

/* ===== Convolutions (plan_conv.c) ===== */

bool plan_conv_runs_int8(nn_model *m, const struct nn_plan *p, int node);
int plan_sum_post(const struct nn_plan *p, const struct nn_node *n, int out);
bool plan_wino_fits(nn_model *m, const struct nn_plan *p, int node, int *relu, int *sum, int *relu_after);
nn_status plan_lower_conv(nn_model *m, struct nn_plan *p, int node);
nn_status plan_lower_convinteger(nn_model *m, struct nn_plan *p, int node);

/* ===== Other nodes (plan_lower.c) ===== */

nn_status plan_holds(nn_model *m, struct nn_plan *p);
/* Adds the steps of node i. */
nn_status plan_lower_node(nn_model *m, struct nn_plan *p, int i);

/* ===== Arena (plan_arena.c) ===== */

/* Sets every tensor's first and last step. */
void plan_liveness(struct nn_plan *p);
nn_status plan_arena(struct nn_plan *p);

#endif
