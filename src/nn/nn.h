/*
 * nn.h - petcut's neural-network runtime: load an ONNX model, plan it for the
 * shapes it is given, and run batches on the CPU through oneDNN.
 *
 * The runtime takes a model from a file or from memory, checks every node
 * against the operators and attribute values it implements (a model it cannot
 * run exactly is refused at load time with a message naming the node, the op
 * and the attribute), simplifies the graph (constant folding, Conv+eltwise and
 * Conv+Add fusion, dead-node removal) and, on the first run for a given set of
 * input shapes, builds an execution plan: oneDNN primitives with layouts of the
 * library's choosing, and one activation arena shared by all tensors according
 * to their lifetimes. Plans are cached per input shape.
 *
 * Conventions:
 *  - Every function that can fail returns an nn_status; NN_OK is 0, errors are
 *    negative. The message of the last failure on the calling thread is
 *    returned by nn_errmsg(). The library never prints and never exits.
 *  - Tensors crossing this interface are dense, row-major (NCHW for images)
 *    and little-endian.
 *  - An nn_model may be shared between threads; calls to nn_run on one model
 *    are serialised internally.
 */
#ifndef PETCUT_NN_H
#define PETCUT_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
typedef enum nn_status {
	NN_OK = 0,
	NN_ERR_NOMEM = -1,	 /* allocation failed */
	NN_ERR_IO = -2,		 /* the model file could not be read */
	NN_ERR_PARSE = -3,	 /* not a valid ONNX model */
	NN_ERR_UNSUPPORTED = -4, /* an op, attribute value or type petcut does not implement */
	NN_ERR_SHAPE = -5,	 /* inputs whose shapes the graph does not accept */
	NN_ERR_ARG = -6,	 /* a bad argument from the caller */
	NN_ERR_BACKEND = -7,	 /* oneDNN refused or failed */
} nn_status;

/* Element types (values follow ONNX's TensorProto.DataType). */
typedef enum nn_dtype {
	NN_DTYPE_UNDEFINED = 0,
	NN_DTYPE_F32 = 1,
	NN_DTYPE_U8 = 2,
	NN_DTYPE_I8 = 3,
	NN_DTYPE_I32 = 6,
	NN_DTYPE_I64 = 7,
	NN_DTYPE_BOOL = 9,
	NN_DTYPE_F16 = 10,
	NN_DTYPE_F64 = 11,
} nn_dtype;

#define NN_MAX_RANK 8

/* A tensor: element type, shape and data. */
struct nn_tensor {
	nn_dtype dtype;
	int rank;
	int64_t dims[NN_MAX_RANK];
	void *data; /* dense row-major elements */
};

/* The declared signature of a model input or output. A dimension that the
 * model leaves free (symbolic or unknown) is -1. name is owned by the model. */
struct nn_tensor_info {
	const char *name;
	nn_dtype dtype;
	int rank;
	int64_t dims[NN_MAX_RANK];
};

typedef struct nn_model nn_model;

/* Message of the last failed nn_* call on this thread ("" if none). */
const char *nn_errmsg(void);

/* Short name of a status code. */
const char *nn_strerror(nn_status st);

/* Bytes per element of a dtype (0 for undefined). */
size_t nn_dtype_size(nn_dtype t);

/* Number of elements of a tensor (product of dims; 1 for rank 0). */
int64_t nn_tensor_numel(const struct nn_tensor *t);

/* Sets how many threads oneDNN and the runtime's own loops use (process-wide).
 * n <= 0 means the number of online CPUs. */
void nn_set_threads(int n);

/* Sets the largest tensor a model may make (process-wide; default 8 GiB, 0
 * restores it). A model or input whose tensors would be larger fails with
 * NN_ERR_SHAPE before anything that size is allocated. */
void nn_set_max_tensor_bytes(size_t bytes);

/* Arithmetic of the convolutions and the tensors between them. */
typedef enum nn_precision {
	NN_PRECISION_FP32 = 0, /* the default */
	NN_PRECISION_BF16 = 1, /* bf16 weights and activations, fp32 accumulation */
	NN_PRECISION_INT8 = 2, /* int8 convolutions from a calibration, float between them */
} nn_precision;

/* Loads a model from a file or from a buffer (the buffer is not kept).
 * On success *out owns the model; free it with nn_model_free. */
nn_status nn_model_load_file(const char *path, nn_model **out);
nn_status nn_model_load_memory(const void *buf, size_t len, nn_model **out);
void nn_model_free(nn_model *m);

/* The model's inputs and outputs as declared (after nn_model_select_outputs,
 * the selected outputs, in the order selected). */
int nn_model_num_inputs(const nn_model *m);
int nn_model_num_outputs(const nn_model *m);
nn_status nn_model_input(const nn_model *m, int i, struct nn_tensor_info *out);
nn_status nn_model_output(const nn_model *m, int i, struct nn_tensor_info *out);

/* Keeps only the named outputs (in this order); nodes that no longer reach an
 * output are removed. Drops cached plans. */
nn_status nn_model_select_outputs(nn_model *m, const char *const *names, int n);

/* Sets the precision of later nn_run calls (plans are cached per precision,
 * so switching back and forth rebuilds nothing). bf16 needs a CPU with
 * AVX512_BF16 (or AMX): without it this returns NN_ERR_UNSUPPORTED and the
 * model stays fp32. Inputs and outputs are float32 either way. */
nn_status nn_model_set_precision(nn_model *m, nn_precision p);
nn_precision nn_model_precision(const nn_model *m);

/* Runs the model. inputs[i] matches model input i (same dtype; any shape the
 * graph accepts, e.g. any batch N and any H x W for a conv net); the caller
 * keeps ownership of the input data. On success outputs[0..num_outputs-1] are
 * filled with newly allocated data (release each with nn_tensor_free). The
 * first run for a new set of input shapes builds and caches a plan. */
nn_status nn_run(nn_model *m, const struct nn_tensor *inputs, int n_inputs,
		 struct nn_tensor *outputs, int n_outputs);

/* int8 needs the range of each convolution's input, measured at fp32 on
 * typical inputs: nn_model_observe runs the model on inputs and widens the
 * ranges; the ranges are saved to and loaded from a small text file (by node
 * name). Convolutions without a range stay in float. Loading drops cached
 * plans. int8 needs a CPU with AVX512_VNNI: nn_model_set_precision and
 * nn_run_at refuse it (NN_ERR_UNSUPPORTED) without one, or without ranges. */
nn_status nn_model_observe(nn_model *m, const struct nn_tensor *inputs, int n_inputs);
nn_status nn_model_save_calibration(nn_model *m, const char *path);
nn_status nn_model_load_calibration(nn_model *m, const char *path);
int nn_model_has_calibration(const nn_model *m);

/* nn_run at precision prec, whatever the model's setting (NN_ERR_UNSUPPORTED
 * for bf16 on a CPU without it). */
nn_status nn_run_at(nn_model *m, nn_precision prec, const struct nn_tensor *inputs, int n_inputs,
		    struct nn_tensor *outputs, int n_outputs);

/* Figures of the most recently used plan. */
struct nn_plan_stats {
	int steps;		/* executed steps (primitives and reference kernels) */
	int reorders;		/* of which layout changes */
	size_t arena_bytes;	/* activation memory: one arena shared by lifetime */
	size_t tensor_bytes;	/* what the same tensors would take side by side */
	size_t scratch_bytes;	/* oneDNN scratchpad, shared by all primitives */
	size_t weight_bytes;	/* weights in the layouts the primitives want */
	int ref_convs;		/* convolutions oneDNN could only give its reference kernel */
	int weights_from_file;	/* weight tensors taken from the weights file, not reordered */
	int weights_file_read;	/* 1: that file was read through to check it; 0: its check record vouched for it */
};

/* Fills *out for the plan nn_run used last; NN_ERR_ARG before any run. */
nn_status nn_model_stats(nn_model *m, struct nn_plan_stats *out);

/* Where a forward pass's time goes. With profiling on, every step of the
 * later runs is timed and the times summed by kind: the operator (a
 * convolution with its kernel size, and whether petcut's Winograd kernel
 * or oneDNN runs it), layout changes, reference kernels, conversions. */
struct nn_profile_row {
	char what[48];
	int steps;	/* steps of this kind, summed over the runs */
	double ms;	/* their time, likewise */
	double gflop;	/* convolutions' arithmetic (2 x multiply-adds), likewise */
};

/* Turns profiling on (clearing the sums) or off. */
void nn_model_profile(nn_model *m, int on);

/* Copies up to max rows, the slowest first; returns how many there are and
 * sets *runs to the runs they sum. */
int nn_model_profile_rows(const nn_model *m, struct nn_profile_row *rows, int max, int *runs);

/* Builds and caches the plan for these input shapes without running it
 * (weights reordered, primitives made), so that the first nn_run of that
 * shape is as fast as the next. Only the dtype, rank and dims of inputs are
 * read, except for inputs whose values decide shapes (they need data). */
nn_status nn_model_prepare(nn_model *m, const struct nn_tensor *inputs, int n_inputs);

/* nn_model_prepare at precision prec, whatever the model's setting (for
 * nn_run_at). */
nn_status nn_model_prepare_at(nn_model *m, nn_precision prec, const struct nn_tensor *inputs, int n_inputs);

/* Hands back what the model keeps for its first pass: the memory it was
 * decoded into, which that pass would take as its activations once the
 * plans hold every weight (src/nn/slab.c). For a process that prepared its
 * plans and may wait long before it runs them (a server before its first
 * request), so that it waits with less memory. */
void nn_model_trim(nn_model *m);

/* Keeps the weights that plans reorder for this machine (all but int8's)
 * in a file under dir (made if missing; NULL: none, the default), and takes
 * them from there when a plan of a later process needs them: its first run
 * then skips reordering. The file is named by a checksum of the model's
 * weights, the oneDNN version, the CPU's instruction set and the thread
 * count; one that does not match or is damaged is ignored and written
 * anew. Failing to read or write it only costs the reordering. Set it
 * before the first run. */
nn_status nn_model_set_weight_cache(nn_model *m, const char *dir);

/* For a process that runs one pass (a photo's mask, then other work): the
 * weights its plans take from the weights file are let go of as that pass
 * goes, each once the last step reading them has run, and all of them once
 * the file is checked, so that the process does not hold the whole file
 * while the pass's activations grow. They stay in the page cache; a later
 * pass reads them back from there (a few ms more). Off by default. */
void nn_model_set_one_pass(nn_model *m, int on);

/* Frees what running holds: the plans, the weights in the primitives'
 * layouts and the activation memory, for a process that has nothing more
 * to run for now (it needs the memory for other work). The model stays
 * usable: the next run builds its plan again, rereading the weights from
 * the model's file where they were released from the graph (a model
 * loaded from memory keeps its graph's copy). oneDNN's cache of primitives,
 * which the whole process shares, is emptied too. */
void nn_model_rest(nn_model *m);

/* Frees a tensor's data allocated by the runtime and clears it. */
void nn_tensor_free(struct nn_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
