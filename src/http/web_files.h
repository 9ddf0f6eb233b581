/*
 * web_files.h - the table of web files built into petcut (web/), generated
 * at build time by scripts/embed-web.sh.
 */
#ifndef PETCUT_HTTP_WEB_FILES_H
#define PETCUT_HTTP_WEB_FILES_H

#include <stddef.h>

struct http_web_file {
	const char *path; /* "/index.html" */
	const char *type; /* its Content-Type */
	const char *data;
	size_t len;
};

extern const struct http_web_file http_web_files[];
extern const int http_web_files_n;

#endif
