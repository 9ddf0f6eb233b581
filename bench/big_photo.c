/*
 * big_photo.c - makes the benchmark's phone-sized photo: a real photo scaled
 * to exactly W x H (linear filter) and saved as a JPEG of quality 90.
 *
 *   big_photo IN OUT.jpg W H
 *
 * The result has a phone photo's pixel count, not its detail: an upscale is
 * smoother than a real 12 MP photo, and so compresses better.
 */
#include <stdio.h>
#include <stdlib.h>

#include <vips/vips.h>

int main(int argc, char **argv)
{
	VipsImage *in, *out;
	int w, h;

	if (argc != 5 || (w = atoi(argv[3])) <= 0 || (h = atoi(argv[4])) <= 0) {
		fprintf(stderr, "usage: big_photo IN OUT.jpg W H\n");
		return 2;
	}
	if (VIPS_INIT(argv[0]))
		vips_error_exit(NULL);
	if (!(in = vips_image_new_from_file(argv[1], NULL)) ||
	    vips_resize(in, &out, (double)w / in->Xsize, "vscale", (double)h / in->Ysize, "kernel",
			VIPS_KERNEL_LINEAR, NULL) ||
	    vips_jpegsave(out, argv[2], "Q", 90, "strip", TRUE, NULL))
		vips_error_exit("big_photo: %s", argv[1]);
	if (out->Xsize != w || out->Ysize != h) {
		fprintf(stderr, "big_photo: got %dx%d, not %dx%d\n", out->Xsize, out->Ysize, w, h);
		return 1;
	}
	g_object_unref(out);
	g_object_unref(in);
	return 0;
}
