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
	int beside_image_work; /* runs the network beside other work: OpenMP's threads sleep when idle */
};

/* Parses a whole number from lo to hi into *n; -1 if it is not one
 * (args.c). */
int cli_parse_int(const char *s, long lo, long hi, int *n);

/* The regular files of dir (symlinks followed), and with recursive those
 * of its folders (not through symlinks to folders), as paths relative to
 * dir, sorted, hidden ones left out (they are not photos people put there,
 * and they include other runs' temporary outputs): their count, with
 * *names (each and the array malloc'd); -1 with errno set when a folder
 * cannot be read (args.c). */
int cli_list_files(const char *dir, int recursive, char ***names);

int cmd_remove(int argc, char **argv);     /* cmd_remove.c */
int cmd_remove_dir(int argc, char **argv); /* cmd_remove_dir.c */
int cmd_group(int argc, char **argv);	   /* cmd_remove.c */
int cmd_infer(int argc, char **argv);      /* cmd_infer.c */
int cmd_convert(int argc, char **argv);    /* cmd_convert.c */
int cmd_serve(int argc, char **argv);      /* cmd_serve.c */
int cmd_worker(int argc, char **argv);     /* cmd_serve.c: serve with job consumers */
int cmd_model(int argc, char **argv);      /* cmd_model.c */
int cmd_version(int argc, char **argv);    /* cmd_version.c */

#endif
