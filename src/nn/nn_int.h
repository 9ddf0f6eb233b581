/*
 * nn_int.h - internals of the nn module, shared by its source files only.
 *
 * The model is held as a small graph IR: values (tensors: graph inputs,
 * constants, intermediate results) and nodes (one ONNX operator each, with
 * its attributes already parsed and checked). Everything refers to values and
 * nodes by index, so the arrays may grow while passes rewrite the graph.
 *
 * Files:
 *   nn.c        public API, errors, runs
 *   onnx_load.c ONNX protobuf -> IR
 *   ops.c       operator table: attribute checks, shape inference
 *   ops_ref.c   reference kernels on dense row-major data (used for constant
 *               folding and for the light ops)
 *   passes.c    graph passes (fp16 promotion, folding, size generalisation,
 *               fusion, dead-node removal)
 *   plan*.c     per-shape planning onto oneDNN primitives and the arena
 *               (plan_int.h)
 *   quant.c     int8: calibration ranges, their file, weight scales
 *   wino.c      bf16 Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions (wino.h)
 */
#ifndef PETCUT_NN_INT_H
#define PETCUT_NN_INT_H

#include <assert.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <oneapi/dnnl/dnnl.h>

#include "nn/nn.h"
#include "util/util.h"

/* ===== Operators ===== */

enum nn_op {
	NN_OP_ADD,
	NN_OP_CAST,
	NN_OP_CONCAT,
	NN_OP_CONV,
	NN_OP_CONVINTEGER,
	NN_OP_DQL, /* DynamicQuantizeLinear */
	NN_OP_IDENTITY,
	NN_OP_MAXPOOL,
	NN_OP_MUL,
	NN_OP_RELU,
	NN_OP_RESHAPE,
	NN_OP_RESIZE,
	NN_OP_SHAPE,
	NN_OP_SIGMOID,
	NN_OP_SLICE,
	NN_OP_COUNT
};

extern const char *const nn_op_names[NN_OP_COUNT];

#define NN_MAX_SPATIAL 3

/* Conv, ConvInteger and MaxPool geometry. Pads are per spatial axis. */
struct nn_conv_attr {
	int nsp;			  /* spatial dims, 1..3 (0 = from the weights) */
	int64_t kernel[NN_MAX_SPATIAL];	  /* 0 = from the weights */
	int64_t strides[NN_MAX_SPATIAL];
	int64_t dilations[NN_MAX_SPATIAL];
	int64_t pad_begin[NN_MAX_SPATIAL];
	int64_t pad_end[NN_MAX_SPATIAL];
	int64_t group;
	int auto_pad; /* NN_PAD_* */
	int ceil_mode;
};

/* the orders below are those of the attribute tables in onnx_load.c */
enum { NN_PAD_NOTSET, NN_PAD_SAME_UPPER, NN_PAD_SAME_LOWER, NN_PAD_VALID };

enum { NN_RESIZE_NEAREST, NN_RESIZE_LINEAR };
enum { NN_COORD_HALF_PIXEL, NN_COORD_PYTORCH_HALF_PIXEL, NN_COORD_ALIGN_CORNERS, NN_COORD_ASYMMETRIC };
enum { NN_NEAREST_ROUND_PREFER_FLOOR, NN_NEAREST_ROUND_PREFER_CEIL, NN_NEAREST_FLOOR, NN_NEAREST_CEIL };

struct nn_resize_attr {
	bool v10; /* Resize-10: inputs (X, scales) */
	int mode;
	int coord;
	int nearest;
};

struct nn_slice_attr { /* Slice before opset 10 takes these as attributes */
	int n;
	int64_t starts[NN_MAX_RANK], ends[NN_MAX_RANK], axes[NN_MAX_RANK];
	bool has_axes;
};

/* Operations fused into a convolution, applied in order to its result. */
enum { NN_POST_RELU, NN_POST_SIGMOID, NN_POST_ADD, NN_POST_MUL };
struct nn_postop {
	int kind;
	int value; /* NN_POST_ADD, NN_POST_MUL: the other operand (else -1) */
};
#define NN_MAX_POST 4

/* ===== Graph IR ===== */

struct nn_value {
	char *name;
	nn_dtype dtype;
	int rank; /* -1: unknown */
	int64_t dims[NN_MAX_RANK];
	void *data;   /* constant data (owned) or NULL */
	int producer; /* node index, -1 for inputs and constants */
	bool released; /* a constant whose data was freed once reordered (data NULL) */
};

struct nn_node {
	enum nn_op op;
	char *name;
	int n_in, n_out;
	int *in;  /* value indices; -1 for an omitted optional input */
	int *out; /* value indices; -1 for an omitted optional output */
	bool dead;
	union {
		struct nn_conv_attr conv;   /* CONV, CONVINTEGER, MAXPOOL */
		struct nn_resize_attr resize;
		struct nn_slice_attr slice; /* SLICE (old opsets) */
		int64_t axis;		    /* CONCAT */
		nn_dtype to;		    /* CAST */
		int64_t allowzero;	    /* RESHAPE */
		struct { int64_t start, end; bool has_end; } shape; /* SHAPE */
	} a;
	int n_post;
	struct nn_postop post[NN_MAX_POST];
	bool float_out; /* CONVINTEGER: its Cast to float is fused (float result) */
};

struct nn_graph_output {
	char *name; /* the name the model declares */
	int value;
};

struct nn_graph {
	struct nn_value *vals;
	int n_vals, cap_vals;
	struct nn_node *nodes;
	int n_nodes, cap_nodes;
	int *inputs; /* value indices of the graph's runtime inputs */
	int n_inputs;
	struct nn_graph_output *outputs;
	int n_outputs;
	/* declared signature, kept for nn_model_input/output */
	struct nn_tensor_info *in_info;
	int64_t opset;
	bool *in_value; /* per input: its values decide shapes, so plans depend on them */
	int *hash; /* open addressing: value index + 1 by name, 0 = empty */
	int hash_cap;
	struct nn_slab *slab; /* what the tensors were decoded into, or NULL */
};

/* ===== The memory a model is decoded into (slab.c) ===== */

/* A region of size bytes for decoded tensors, or NULL (out of memory). */
struct nn_slab *nn_slab_new(size_t size);
/* n bytes of s, 64-aligned, to be freed with nn_data_free; NULL if s is
 * NULL or full. */
void *nn_slab_alloc(struct nn_slab *s, size_t n);
/* Frees a value's data: a slab's block or malloc's (NULL: nothing). */
void nn_data_free(void *p);
/* The owner lets s go: it is released once its blocks are freed. */
void nn_slab_close(struct nn_slab *s);
/* Once every block of *sp is freed: its whole region, if it holds need
 * bytes (its size in *size; the caller free()s it), else NULL and the
 * region is released; either way *sp becomes NULL. NULL while blocks are
 * in use. need 0 only releases. */
void *nn_slab_take(struct nn_slab **sp, size_t need, size_t *size);

/* ===== Model and plans ===== */

struct nn_plan; /* plan.c */

#define NN_PRECISIONS 3 /* nn_precision's values */

/* A weight tensor reordered into the layout a primitive asked for (or an
 * int8 convolution's per-channel weight scales: one dimension of f32), kept
 * by the model and written to the weights file of its precision. */
struct nn_wcache {
	int node;
	dnnl_memory_desc_t md;
	dnnl_memory_t mem;
	void *buf;
	nn_precision prec; /* of the plan that made it (each has its weights file) */
	bool mapped; /* buf is in the weights file's mapping (wfile.c), read-only */
	bool saved;  /* written to the weights file */
	struct nn_wcache *next;
};

/* The range of an activation seen on calibration photos. */
struct nn_calib {
	float lo, hi;
	bool set;
};

struct nn_model {
	struct nn_graph g;
	struct nn_tensor_info *out_info; /* for the selected outputs */
	pthread_mutex_t lock;
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	struct nn_plan *plans; /* cached by input shapes and precision, most recent first */
	int n_plans;
	void *arena;		/* activations of the running plan */
	size_t arena_size;
	void *scratch;		/* oneDNN scratchpad shared by all primitives */
	size_t scratch_size;
	struct nn_wcache *wcache;
	nn_precision precision;
	/* the file the model came from (NULL: from memory): weights the primitives
	 * hold are released from the graph and reread from here when needed */
	char *src_path;
	struct stat src_stat; /* to notice a file replaced since loading */
	struct nn_calib *calib; /* per value (NULL: none) */
	float **wscales;	/* per node: int8 weight scales per output channel, once made */
	bool observing;		/* nn_model_observe's run: activations are measured */
	/* nn_model_profile: step times summed by kind over prof_runs runs */
	bool profiling;
	struct nn_profile_row prof[32];
	int n_prof, prof_runs;
	/* the file of reordered weights (wfile.c): its folder (NULL: none), the
	 * key of these weights on this machine, whether it was looked for since
	 * the last rest, whether it was then read through, and its mapping */
	char *wdir;
	char wkey[192];
	bool wtried[NN_PRECISIONS];
	bool wread[NN_PRECISIONS]; /* read through to check it (not on its check record) */
	void *wmap[NN_PRECISIONS];
	size_t wmap_len[NN_PRECISIONS];
	nn_precision building; /* the precision of the plan being built */
	bool one_pass;	       /* nn_model_set_one_pass */
};

/* ===== int8 (quant.c) ===== */

/* Widens value v's observed range by the n floats at x. */
void nn_quant_observe(nn_model *m, int v, const float *x, size_t n);
/* Value v's range (a Concat's spans its parts'); false if none was seen. */
bool nn_quant_range(const nn_model *m, int v, float *lo, float *hi);
/* The quantization step of a range: u8 (hi / 255) or s8 (max |x| / 127). */
float nn_quant_scale(float lo, float hi, bool is_signed);
/* Per-output-channel scales of node's weights w (oc x per_oc floats) with
 * input channel c's weights multiplied by sic[c] (cin of them; sic NULL: by
 * 1), made once and kept, a copy in the wcache for the weights file (w may
 * be NULL once they are made, or where that file had them); NULL if they
 * cannot be. */
const float *nn_quant_weight_scales(nn_model *m, int node, const float *w, int64_t oc, int64_t per_oc,
				    const float *sic, int64_t cin);
/* Drops the weight scales and the int8 weights made from the old ranges. */
void nn_quant_forget_weights(nn_model *m);
void nn_quant_free(nn_model *m);

/* ===== Reordered weights kept in a file (wfile.c) ===== */

/* Maps the file of this model's weights for plans at precision prec, if
 * there is a valid one, and adds its entries to the weight cache; once
 * after each rest. */
void nn_wfile_load(nn_model *m, nn_precision prec);
/* Writes the weights plans at precision prec made to their file, when it
 * lacks some. */
void nn_wfile_save(nn_model *m, nn_precision prec);
/* Unmaps the file (the weight cache's mapped entries already freed). */
void nn_wfile_forget(nn_model *m);
/* Lets the pages of [buf, buf + len) in the file's mapping go from the
 * process (they stay in the page cache; reading them faults them back). */
void nn_wfile_let_go(void *buf, size_t len);

/* Once weights graph value wval is kept in a layout: releases the graph's
 * copy when the model can reread its file (plan_conv.c). */
void nn_weights_release(nn_model *m, int wval);

/* Internal status: a plan needs weights that were released (see src_path). */
#define NN_RELOAD ((nn_status)-100)

/* Rereads the released weights from the model's file (nn.c). */
nn_status nn_model_reload_weights(nn_model *m);

/* ===== Errors (nn.c) ===== */

/* Records a message for nn_errmsg() and returns st. */
extern _Thread_local struct util_err nn_err;
#define nn_fail(st, ...) ((nn_status)util_fail(&nn_err, (st), __VA_ARGS__))

/* ===== Graph helpers (passes.c) ===== */

int nn_graph_add_value(struct nn_graph *g, const char *name, nn_dtype dt);
int nn_graph_add_node(struct nn_graph *g, enum nn_op op, const char *name, int n_in, int n_out);
int nn_graph_find_value(const struct nn_graph *g, const char *name);
void nn_graph_free(struct nn_graph *g);
int nn_graph_count_uses(const struct nn_graph *g, int value);
bool nn_graph_is_output(const struct nn_graph *g, int value);
/* Whether value v is read, and only as the weights of live Conv nodes (not
 * a post-op's operand nor a graph output). */
bool nn_graph_only_conv_weights(const struct nn_graph *g, int v);
bool nn_graph_is_input(const struct nn_graph *g, int value);

/* Runs all load-time passes. */
nn_status nn_graph_optimize(struct nn_graph *g);
/* Marks nodes that no longer reach an output as dead, drops unused constants. */
void nn_graph_remove_dead(struct nn_graph *g);

/* ===== Loader (onnx_load.c) ===== */

nn_status nn_onnx_load(const void *buf, size_t len, struct nn_graph *g);

/* ===== Operators (ops.c, ops_ref.c) ===== */

/* Checks a node's attribute values and input count once, at load. */
nn_status nn_op_check(const struct nn_graph *g, const struct nn_node *n);

/* A tensor seen by shape inference and the reference kernels. data may be
 * NULL during inference when the value is not known before running. */
struct nn_tview {
	nn_dtype dtype;
	int rank;
	int64_t dims[NN_MAX_RANK];
	void *data;
};

/* Infers output dtypes and shapes from the inputs (NULL for omitted ones).
 * Inputs that decide shapes (Reshape's shape, Resize's sizes...) must have
 * data. */
nn_status nn_op_infer(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out);

/* Runs the reference kernel: dense row-major data, outputs preallocated with
 * the inferred shapes. */
nn_status nn_op_ref(const struct nn_node *n, const struct nn_tview *const *in, struct nn_tview *out);

/* Helpers shared by the module. */
int64_t nn_numel(int rank, const int64_t *dims);
size_t nn_tview_bytes(const struct nn_tview *t);
float nn_f16_to_f32(uint16_t h);
/* n of them at once (vectorised where the CPU can: a model's weights). */
void nn_f16_to_f32_n(const uint16_t *in, float *out, size_t n);
uint16_t nn_f32_to_f16(float f);
/* Output size and padding of a conv/pool axis, from ONNX rules. */
nn_status nn_conv_out_dims(const struct nn_node *n, int nsp, const int64_t *in_dims, const int64_t *kernel,
			   int64_t *out_sp, int64_t *pb, int64_t *pe);

/* Shape walk: shapes of every value for given input shapes, with every
 * value that can be known before running (constants, and what Shape and
 * its consumers compute from shapes) folded into data. tv has one entry per
 * graph value; owned[v] marks data the walk allocated. */
struct nn_walk {
	struct nn_tview *tv;
	bool *owned;
	bool *known; /* shape known (value reached by the walk) */
	int n;
};
nn_status nn_graph_walk(const struct nn_graph *g, const struct nn_tview *inputs, struct nn_walk *w);
void nn_walk_free(struct nn_walk *w);
/* True if a node is computed during the walk rather than at run time. */
bool nn_walk_folds(const struct nn_graph *g, const struct nn_walk *w, const struct nn_node *n);

/* ===== Plans (plan.c) ===== */

nn_status nn_plan_get(nn_model *m, const struct nn_tensor *inputs, nn_precision prec, struct nn_plan **out);
nn_status nn_plan_exec(nn_model *m, struct nn_plan *p, const struct nn_tensor *inputs, struct nn_tensor *outputs);
void nn_plans_free(nn_model *m);

#endif
