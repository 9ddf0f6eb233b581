/*
 * remove.h - what `petcut remove` (cmd_remove.c) shares with `petcut
 * remove-dir` (cmd_remove_dir.c): the options, their parsing, and the work
 * on one photo. Internal to src/cli.
 */
#ifndef PETCUT_CLI_REMOVE_H
#define PETCUT_CLI_REMOVE_H

#include "img/img.h"
#include "pipeline/pipeline.h"

/* Outputs one `remove` may write. */
#define MAX_OUTS PIPE_MAX_OUTS

struct remove_opts {
	struct pipe_request req;	/* the removal, as the pipeline takes it */
	struct pipe_engine_opts engine; /* model, precision, guard */
	int keep_gps;			/* keep EXIF GPS tags in outputs */
	int timings;			/* print per-stage times on stderr */
	int json;			/* print each output's subject on stdout */
	int recursive;			/* remove-dir: the folders in IN_DIR too, their tree kept */
	int watch;			/* remove-dir: then each file that comes, until stopped */
	const char *in;			/* IN or IN_DIR (group: the first photo) */
	const char *ins[IMG_GROUP_MAX];	/* group: the photos */
	int nins;
	const char *outs[MAX_OUTS];	/* OUT files, or OUT_DIR */
	int nouts;
};

/* Whether remove-dir's progress bar is on stderr's current line. */
extern int bar_shown;

/* Prints one message line on stderr, first clearing the progress bar if it
 * is drawn: the bar is drawn again, below, for the next file. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses argv (argv[0] the command's name) into o. Returns -1 when help was
 * printed, 0 when the arguments are good, 2 after printing a usage error. */
int remove_parse_args(int argc, char **argv, struct remove_opts *o);

/* Loads the background image if one is asked for (*bg, the caller's);
 * libvips is otherwise started with the first photo (remove_photo, before
 * the model's loading starts beside it). Returns 0, or 1 or 2 after saying
 * why not. */
int remove_start(struct remove_opts *o, struct img **bg);

/* Cuts the photo in into the n outputs outs[i], each in format fmts[i],
 * opening *e on first use. Returns 0; 2 when in is not a usable image or an
 * output cannot be made as asked (then none is written); 1 when the work
 * fails. Says why on stderr either way. */
int remove_photo(struct pipe_engine **e, const struct remove_opts *o, const char *in, const char *const *outs,
		 const enum img_format *fmts, int n);

#endif
