/*
 * fetch.c - image_url (and a background image's URL) from hosts outside
 * this deployment.
 *
 * By default image_url names only this server's own images (/v1/images/ID).
 * With --allow-fetch-host HOST,... petcut fetches from those hosts, and from
 * nothing else: the URL must be http or https with one of the listed host
 * names; the name is resolved by libcurl once per connection and the address
 * it connects to is checked in the socket callback, so a name that resolves
 * to a private address (or that starts to, DNS rebinding) is refused at
 * connect time. Refused: loopback, private, link-local, CGNAT (100.64/10),
 * multicast and reserved IPv4; and in IPv6 loopback, unique-local,
 * link-local, multicast, and every form that hides an IPv4 address
 * (::ffff:0:0/96, ::/96, 64:ff9b::/96, 2002::/16, 2001::/32). Redirects are
 * followed by hand, at most three, each checked as the first URL was.
 * Proxies from the environment are ignored, so the address checked is the
 * one connected to. The size is capped by --max-upload-mb (a Content-Length
 * over it is refused before the body) and the time by 10 s in all; the
 * pixels, like every upload's, by --max-megapixels from the header.
 *
 * --allow-fetch-private yes lets the listed hosts be at the addresses above
 * (an image host inside the deployment's own network); only the listed host
 * names are fetched from either way.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "http/http_int.h"

#define FETCH_REDIRECTS 3
#define FETCH_TIMEOUT_MS 10000L

static bool v4_blocked(const unsigned char a[4])
{
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 ||	   /* this net, private, loopback, multicast, reserved */
	       (a[0] == 100 && (a[1] & 0xc0) == 64) ||			   /* CGNAT 100.64/10 */
	       (a[0] == 169 && a[1] == 254) ||				   /* link-local */
	       (a[0] == 172 && (a[1] & 0xf0) == 16) ||			   /* 172.16/12 */
	       (a[0] == 192 && a[1] == 168) ||				   /* 192.168/16 */
	       (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) ||	   /* IETF, TEST-NET-1 */
	       (a[0] == 198 && (a[1] & 0xfe) == 18) ||			   /* benchmarking 198.18/15 */
	       (a[0] == 198 && a[1] == 51 && a[2] == 100) || (a[0] == 203 && a[1] == 0 && a[2] == 113);
}

static bool v6_blocked(const unsigned char a[16])
{
	static const unsigned char zero[12];
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};

	return !memcmp(a, zero, 12) ||	 /* ::, ::1, IPv4-compatible */
	       !memcmp(a, mapped, 12) || /* ::ffff:a.b.c.d */
	       !memcmp(a, nat64, 12) ||	 /* 64:ff9b::a.b.c.d */
	       (a[0] == 0x20 && a[1] == 0x02) ||				   /* 6to4 2002::/16 */
	       (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) ||	   /* Teredo 2001::/32 */
	       (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) || /* documentation */
	       (a[0] & 0xfe) == 0xfc ||					   /* unique-local fc00::/7 */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||			   /* link-local fe80::/10 */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) ||			   /* site-local fec0::/10 */
	       a[0] == 0xff;							   /* multicast */
}

int http_addr_blocked(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_blocked((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return v6_blocked(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return 1;
}

/* Whether host (as in the URL, lowercase) is one of the comma-separated list. */
static bool host_listed(const char *list, const char *host)
{
	size_t n = strlen(host);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, ", ");
		if (len == n && !strncasecmp(p, host, n))
			return true;
	}
	return false;
}

struct fetch {
	unsigned char *buf;
	size_t len, max;
	bool too_large, blocked, private_ok;
};

static size_t on_data(char *data, size_t size, size_t n, void *ctx)
{
	struct fetch *f = ctx;
	size_t add = size * n;
	unsigned char *b;

	if (f->len + add > f->max) {
		f->too_large = true;
		return 0;
	}
	if (!(b = realloc(f->buf, f->len + add + 1)))
		return 0;
	memcpy(b + f->len, data, add);
	f->buf = b;
	f->len += add;
	return add;
}

static curl_socket_t on_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct fetch *f = ctx;

	if (purpose != CURLSOCKTYPE_IPCXN || (!f->private_ok && http_addr_blocked(&a->addr))) {
		f->blocked = true;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* Checks url's scheme and host against the list; 0 or 400 with why
 * (naming the URL as what). */
static int check_url(const char *list, const char *url, const char *what, char *why, size_t wl)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int st = 400;

	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		snprintf(why, wl, "%s is not a URL", what);
	else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
		snprintf(why, wl, "%s must be http or https", what);
	else if (!host_listed(list, host))
		snprintf(why, wl, "%s's host is not one this server fetches from", what);
	else
		st = 0;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return st;
}

int http_fetch(struct http_server *s, const char *url, const char *what, unsigned char **out, size_t *out_len,
	       char *why, size_t wl)
{
	struct fetch f = {.max = s->cfg.max_upload_bytes, .private_ok = s->cfg.allow_fetch_private};
	char *next = NULL;
	int st = 0;

	*out = NULL;
	*out_len = 0;
	if (!s->cfg.allow_fetch_hosts) {
		snprintf(why, wl, "%s must be an image of this server (/v1/images/ID)", what);
		return 400;
	}
	const char *at = url;
	for (int hop = 0; !st; hop++) {
		long code = 0;
		CURL *h;
		CURLcode rc;

		if ((st = check_url(s->cfg.allow_fetch_hosts, at, what, why, wl)))
			break;
		if (hop > FETCH_REDIRECTS) {
			snprintf(why, wl, "%s redirects more than %d times", what, FETCH_REDIRECTS);
			st = 400;
			break;
		}
		if (!(h = curl_easy_init())) {
			snprintf(why, wl, "out of memory");
			st = 503;
			break;
		}
		free(f.buf);
		f.buf = NULL;
		f.len = 0;
		curl_easy_setopt(h, CURLOPT_URL, at);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(h, CURLOPT_PROXY, "");
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, FETCH_TIMEOUT_MS);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_socket);
		curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &f);
		/* a Content-Length over the limit is refused before its body */
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f.max);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "petcut");
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (f.blocked) {
			snprintf(why, wl, "%s's host resolves to an address this server does not fetch from", what);
			st = 400;
		} else if (f.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
			snprintf(why, wl, "the image at %s is over %zu MB", what, s->cfg.max_upload_bytes >> 20);
			st = 413;
		} else if (rc != CURLE_OK) {
			snprintf(why, wl, "%s could not be fetched (%s)", what, curl_easy_strerror(rc));
			st = 422;
		} else if (code >= 300 && code < 400) {
			char *loc = NULL;
			curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
			if (!loc) {
				snprintf(why, wl, "%s redirects nowhere", what);
				st = 422;
			} else {
				free(next);
				if (!(next = strdup(loc))) {
					snprintf(why, wl, "out of memory");
					st = 503;
				}
				at = next;
			}
			curl_easy_cleanup(h);
			continue;
		} else if (code != 200) {
			snprintf(why, wl, "%s answered %ld", what, code);
			st = 422;
		}
		curl_easy_cleanup(h);
		if (!st) {
			*out = f.buf;
			*out_len = f.len;
			f.buf = NULL;
			break;
		}
	}
	free(next);
	free(f.buf);
	return st;
}
