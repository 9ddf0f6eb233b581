/*
 * cli.h - the petcut command's handlers. Each takes argc/argv starting at its
 * own name (argv[0] is the command name) and returns the process exit code:
 * 0 success, 1 failure while working, 2 bad usage or bad input.
 */
#ifndef PETCUT_CLI_H
#define PETCUT_CLI_H

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

/* Parses a whole number from lo to hi into *n; -1 if it is not one
 * (args.c). */
int cli_parse_int(const char *s, long lo, long hi, int *n);

struct nn_model;
/* Parses a --precision value (fp32, bf16, int8) into *p; -1 if unknown. */
int cli_parse_precision(const char *s, int *p);
/* Sets model m (loaded from model_file) to precision p; int8 first loads the
 * calibration kept beside the model file. When that precision cannot run
 * here the model stays at fp32: returns -1 after writing why to why (so
 * callers decide whether to say it), else 0. */
int cli_set_precision(struct nn_model *m, const char *model_file, int p, char *why, unsigned long whylen);

int cmd_remove(int argc, char **argv);     /* cmd_remove.c */
int cmd_remove_dir(int argc, char **argv); /* cmd_remove.c */
int cmd_infer(int argc, char **argv);      /* cmd_infer.c */
int cmd_convert(int argc, char **argv);    /* cmd_convert.c */
int cmd_serve(int argc, char **argv);      /* cmd_serve.c */
int cmd_worker(int argc, char **argv);     /* cmd_serve.c: serve with job consumers */
int cmd_model(int argc, char **argv);      /* cmd_model.c */

#endif
