/*
 * onnx_load_fuzzer.c - fuzz target for the nn runtime's model loader: any
 * bytes given to nn_model_load_memory must give a model or an error, never a
 * crash, a leak or an oversized allocation. A model that loads is also
 * planned and run once when its inputs are small float tensors, so the graph
 * passes and the planner see hostile graphs too.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* Keeps each run cheap: no input over this many elements, no tensor over
 * 64 MB anywhere in the graph. */
#define MAX_INPUT_ELEMS 4096

static void try_run(nn_model *m)
{
	struct nn_tensor in[4] = {0}, out[16] = {0};
	int ni = nn_model_num_inputs(m), no = nn_model_num_outputs(m);

	if (ni < 1 || ni > 4 || no < 1 || no > 16)
		return;
	for (int i = 0; i < ni; i++) {
		struct nn_tensor_info info;
		int64_t n = 1;
		if (nn_model_input(m, i, &info) != NN_OK || info.dtype != NN_DTYPE_F32 || info.rank > NN_MAX_RANK)
			goto out;
		in[i].dtype = info.dtype;
		in[i].rank = info.rank;
		for (int d = 0; d < info.rank; d++) {
			int64_t v = info.dims[d] < 0 ? 1 : info.dims[d];
			if (v > MAX_INPUT_ELEMS || (n *= v) > MAX_INPUT_ELEMS)
				goto out;
			in[i].dims[d] = v;
		}
		in[i].data = calloc((size_t)(n ? n : 1), sizeof(float));
		if (!in[i].data)
			goto out;
		for (int64_t k = 0; k < n; k++)
			((float *)in[i].data)[k] = (float)(k % 7) - 3.0f;
	}
	if (nn_run(m, in, ni, out, no) == NN_OK)
		for (int j = 0; j < no; j++)
			nn_tensor_free(&out[j]);
out:
	for (int i = 0; i < ni; i++)
		free(in[i].data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	nn_model *m = NULL;

	if (!init) {
		nn_set_threads(1);
		nn_set_max_tensor_bytes((size_t)64 << 20);
		init = 1;
	}
	if (nn_model_load_memory(data, size, &m) != NN_OK)
		return 0;
	try_run(m);
	nn_model_free(m);
	return 0;
}
