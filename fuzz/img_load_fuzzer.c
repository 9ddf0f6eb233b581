/*
 * img_load_fuzzer.c - fuzz target for image input: any bytes given to
 * img_probe and img_load_buffer_opts must give an image or an error, never a
 * crash, a leak or an allocation the pixel limit should have stopped. An
 * image that loads also goes through the network tensor and a thumbnail.
 *
 * Built with libFuzzer by `make fuzz`, and with replay.c as a plain program
 * that `make test` runs over the committed corpus.
 */
#include <stdint.h>
#include <stdlib.h>

#include "img/img.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct img_load_opts o = {.max_pixels = 4000000}; /* keeps each run small */
	struct img_info info;
	struct img *im = NULL, *th = NULL;
	float tensor[3 * 32 * 32];

	if (!ready) {
		if (img_init() != IMG_OK)
			abort();
		ready = 1;
	}
	img_probe(data, size, &o, &info);
	if (img_load_buffer_opts(data, size, &o, &im) != IMG_OK)
		return 0;
	img_to_tensor(im, 32, 32, tensor);
	if (img_thumbnail(im, 48, &th) == IMG_OK)
		img_free(th);
	img_free(im);
	return 0;
}
