/*
 * onnx_fp32.c - a true fp32 copy of an ONNX model, for the ONNX Runtime side
 * of the benchmark.
 *
 *   onnx_fp32 IN.onnx OUT.onnx
 *
 * The exported ISNet `medium` stores its weights as fp16 and computes in fp16
 * between Cast nodes, so ONNX Runtime on a CPU runs it as an fp16 graph, while
 * petcut promotes it to fp32. The copy has no fp16 anywhere: every FLOAT16
 * initializer and tensor attribute (Constant's value, ConstantOfShape's, ...)
 * becomes FLOAT, every Cast to FLOAT16 a Cast to FLOAT (a Cast whose input is
 * then already fp32 is left as a no-op, which ONNX Runtime's graph
 * optimisation removes), and every FLOAT16 value type (inputs, outputs,
 * value_info) FLOAT. Subgraphs are converted too. The protobuf is read and
 * written with the protobuf-c code petcut generates from onnx.proto.
 *
 * Prints one line on stdout: "initializers N constants N casts N types N"
 * (what was converted; all 0 means the model had no fp16). Exit status: 0
 * done, 1 the model could not be read, converted or written, 2 bad usage.
 * Built by bench/run.sh against BUILD/libpetcut.a; never installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "nn/nn_int.h"

#define T_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define T_FLOAT16 ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16

/* What was converted, for the report line. */
struct counts {
	size_t initializers, constants, casts, types;
};

/* Turns an fp16 TensorProto into an fp32 one with raw little-endian data.
 * Returns 0, or -1 when the data does not match the shape or memory ran out. */
static int tensor_to_f32(Onnx__TensorProto *tp)
{
	size_t n = 1;
	float *out;

	if (!tp->has_data_type || tp->data_type != T_FLOAT16)
		return 0;
	for (size_t i = 0; i < tp->n_dims; i++)
		n *= (size_t)tp->dims[i];
	if (tp->has_raw_data ? tp->raw_data.len != 2 * n : tp->n_int32_data != n) {
		fprintf(stderr, "onnx_fp32: tensor '%s': data does not match its shape\n",
			tp->name ? tp->name : "");
		return -1;
	}
	out = malloc(n ? 4 * n : 1);
	if (!out)
		return -1;
	for (size_t i = 0; i < n; i++) {
		/* raw_data is little-endian; int32_data holds the bits in its low 16 */
		uint16_t h = tp->has_raw_data
			? (uint16_t)(tp->raw_data.data[2 * i] | tp->raw_data.data[2 * i + 1] << 8)
			: (uint16_t)tp->int32_data[i];
		out[i] = nn_f16_to_f32(h);
	}
	free(tp->raw_data.data);
	free(tp->int32_data);
	tp->int32_data = NULL;
	tp->n_int32_data = 0;
	tp->raw_data.data = (uint8_t *)out;
	tp->raw_data.len = 4 * n;
	tp->has_raw_data = 1;
	tp->data_type = T_FLOAT;
	return 0;
}

/* FLOAT16 element type of a value (input, output, value_info) -> FLOAT. */
static void value_to_f32(Onnx__ValueInfoProto *v, struct counts *c)
{
	Onnx__TypeProto *t = v->type;

	if (t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type &&
	    t->tensor_type->has_elem_type && t->tensor_type->elem_type == T_FLOAT16) {
		t->tensor_type->elem_type = T_FLOAT;
		c->types++;
	}
}

static int graph_to_f32(Onnx__GraphProto *g, struct counts *c)
{
	for (size_t i = 0; i < g->n_initializer; i++) {
		if (g->initializer[i]->data_type == T_FLOAT16) {
			if (tensor_to_f32(g->initializer[i]))
				return -1;
			c->initializers++;
		}
	}
	for (size_t i = 0; i < g->n_input; i++)
		value_to_f32(g->input[i], c);
	for (size_t i = 0; i < g->n_output; i++)
		value_to_f32(g->output[i], c);
	for (size_t i = 0; i < g->n_value_info; i++)
		value_to_f32(g->value_info[i], c);
	for (size_t i = 0; i < g->n_node; i++) {
		Onnx__NodeProto *node = g->node[i];
		int cast = node->op_type && !strcmp(node->op_type, "Cast");

		for (size_t j = 0; j < node->n_attribute; j++) {
			Onnx__AttributeProto *a = node->attribute[j];

			if (cast && a->name && !strcmp(a->name, "to") && a->i == T_FLOAT16) {
				a->i = T_FLOAT;
				c->casts++;
			}
			if (a->t && a->t->data_type == T_FLOAT16) {
				if (tensor_to_f32(a->t))
					return -1;
				c->constants++;
			}
			for (size_t k = 0; k < a->n_tensors; k++) {
				if (a->tensors[k]->data_type == T_FLOAT16) {
					if (tensor_to_f32(a->tensors[k]))
						return -1;
					c->constants++;
				}
			}
			if (a->g && graph_to_f32(a->g, c))
				return -1;
			for (size_t k = 0; k < a->n_graphs; k++)
				if (graph_to_f32(a->graphs[k], c))
					return -1;
		}
	}
	return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	Onnx__ModelProto *mp = NULL;
	struct counts c = {0};
	uint8_t *buf = NULL, *out = NULL;
	size_t len = 0, olen;
	FILE *f = NULL;
	int rc = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: onnx_fp32 IN.onnx OUT.onnx\n");
		return 2;
	}
	buf = read_file(argv[1], &len);
	if (!buf) {
		fprintf(stderr, "onnx_fp32: cannot read %s\n", argv[1]);
		goto out;
	}
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp || !mp->graph) {
		fprintf(stderr, "onnx_fp32: %s is not an ONNX model\n", argv[1]);
		goto out;
	}
	if (graph_to_f32(mp->graph, &c))
		goto out;
	olen = onnx__model_proto__get_packed_size(mp);
	out = malloc(olen ? olen : 1);
	if (!out || onnx__model_proto__pack(mp, out) != olen) {
		fprintf(stderr, "onnx_fp32: cannot encode the copy\n");
		goto out;
	}
	f = fopen(argv[2], "wb");
	if (!f || fwrite(out, 1, olen, f) != olen) {
		fprintf(stderr, "onnx_fp32: cannot write %s\n", argv[2]);
		goto out;
	}
	rc = fclose(f);
	f = NULL;
	if (rc) {
		rc = 1;
		fprintf(stderr, "onnx_fp32: cannot write %s\n", argv[2]);
		goto out;
	}
	printf("initializers %zu constants %zu casts %zu types %zu\n", c.initializers, c.constants,
	       c.casts, c.types);
out:
	if (f)
		fclose(f);
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	free(buf);
	free(out);
	return rc;
}
