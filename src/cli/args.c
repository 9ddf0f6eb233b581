/*
 * args.c - small helpers shared by the command handlers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"
#include "nn/nn.h"

int cli_parse_int(const char *s, long lo, long hi, int *n)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*n = (int)v;
	return 0;
}

int cli_parse_precision(const char *s, int *p)
{
	static const char *const names[] = {"fp32", "bf16", "int8"};
	static const nn_precision values[] = {NN_PRECISION_FP32, NN_PRECISION_BF16, NN_PRECISION_INT8};

	for (int i = 0; i < 3; i++)
		if (!strcmp(s, names[i])) {
			*p = (int)values[i];
			return 0;
		}
	return -1;
}

int cli_set_precision(struct nn_model *m, const char *model_file, int p, char *why, unsigned long whylen)
{
	char calib[PATH_MAX + 64];

	if (p == NN_PRECISION_INT8) {
		if (model_calibration_path(model_file, calib, sizeof calib) != MODEL_OK) {
			snprintf(why, whylen, "%s", model_errmsg());
			return -1;
		}
		if (nn_model_load_calibration(m, calib) != NN_OK) {
			snprintf(why, whylen, "no int8 calibration (run: petcut model calibrate --images DIR): %s",
				 nn_errmsg());
			return -1;
		}
	}
	if (nn_model_set_precision(m, (nn_precision)p) != NN_OK) {
		snprintf(why, whylen, "%s", nn_errmsg());
		return -1;
	}
	return 0;
}
