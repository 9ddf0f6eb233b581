/*
 * test_webhook.c - the signing of job callbacks (http/webhook.c) against
 * Standard Webhooks: the specification's own example (secret, id,
 * timestamp, payload and the signature it gives), and the secrets a
 * --webhook-secret-file line may hold (whsec_ and the base64 of 24 to 64
 * bytes, padded or not) and those it may not.
 */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

#include "check.h"

static void sign_example(void)
{
	unsigned char key[64];
	size_t len = 0;
	char sig[HTTP_WEBHOOK_SIG_LEN];
	const char *body = "{\"test\": 2432232314}";

	int st = http_webhook_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &len);
	CHECK(st == 0 && len == 24, "the specification's secret decodes to 24 bytes (%zu)", len);
	CHECK(http_webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig) == 0 &&
		      !strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
	      "its example signs as the specification says (%s)", sig);
	CHECK(http_webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), sig) == 0 &&
		      strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
	      "another timestamp, another signature");
}

static void secrets(void)
{
	static const struct {
		const char *text;
		int ok;
		size_t len;
	} cases[] = {
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1, 24},
		/* 32 bytes, padded and not */
		{"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1, 32},
		{"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 1, 32},
		/* 64 bytes */
		{"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==", 1,
		 64},
		/* 65 bytes: too long */
		{"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=", 0, 0},
		/* 16 bytes: too short */
		{"whsec_AAECAwQFBgcICQoLDA0ODw==", 0, 0},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0, 0}, /* no whsec_ */
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-aSw", 0, 0}, /* not base64 */
		{"whsec_MfKQ9r8GKYqrTwjUPD8I=PZIo2LaLaSw", 0, 0}, /* '=' inside */
		{"whsec_", 0, 0},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned char key[64];
		size_t len = 0;
		int ok = http_webhook_secret_parse(cases[i].text, key, &len) == 0;
		CHECK(ok == cases[i].ok && (!ok || len == cases[i].len), "'%s': %s (%zu bytes)", cases[i].text,
		      cases[i].ok ? "taken" : "refused", len);
	}
	unsigned char key[64];
	size_t len = 0;
	CHECK(http_webhook_secret_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key, &len) == 0 &&
		      key[0] == 0 && key[31] == 31,
	      "the bytes are the decoded ones");
}

int main(void)
{
	sign_example();
	secrets();
	return failures ? 1 : 0;
}
