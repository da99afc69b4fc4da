/* webhook.h — a hook that is a URL: the rule for what URL may be one, the
 * signature of a delivery, and the delivery itself (an HTTP POST with
 * retries, libcurl). Below the registry and the config: it knows nothing
 * of events or of files; hooks.c (registry/) says what to send, config.c
 * takes the URL rule from here (one rule for a config file, for `mreg
 * policy hook` and for the runner).
 *
 * The signature is the one MLflow 3.3's webhooks send, to the letter, so
 * that a receiver written for MLflow verifies mreg's deliveries as they
 * are (mlflow/mlflow, mlflow/webhooks/constants.py and delivery.py,
 * _generate_hmac_signature(); https://mlflow.org/docs/latest/ml/webhooks):
 *
 *	X-MLflow-Delivery-Id  a UUID (random, version 4)
 *	X-MLflow-Timestamp    the attempt's time, Unix seconds, decimal
 *	X-MLflow-Signature    "v1," base64(HMAC-SHA256(secret,
 *	                          DELIVERY_ID "." TIMESTAMP "." BODY))
 *	Content-Type          application/json
 *
 * The delivery id is the same for every attempt of a delivery (and for a
 * delivery run again after its host died: the registry keeps it with the
 * event), so a receiver drops a duplicate by it.
 */
#ifndef MREG_WEBHOOK_H
#define MREG_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest URL (without its NUL): a hook's definition is kept in
 * 1024 bytes. */
#define WEBHOOK_URL_MAX 1023
/* A delivery id: 36 characters and a NUL. */
#define WEBHOOK_ID_LEN 37
/* "v1," and 44 characters of base64, and a NUL. */
#define WEBHOOK_SIG_LEN 48

/* Whether s is meant as a URL: "SCHEME://..." (any scheme, so that a URL
 * of another scheme is refused as a URL, not as a program path). */
bool webhook_is_url(const char *s);

/* The rule for a hook URL: https://HOST[:PORT][/PATH][?QUERY], or
 * http:// to a loopback address only (127.0.0.0/8 or [::1], written as
 * such: a name may resolve anywhere), at most WEBHOOK_URL_MAX bytes of
 * printable ASCII, without a user or password (the URL is logged and
 * audited, without its query). 0, or -EINVAL with the reason in why
 * (which may be NULL). */
int webhook_url_check(const char *url, char *why, size_t whylen);

/* url without its query string and fragment (what the log and the audit
 * show: a token in the query stays out of them), into buf (truncated to
 * size). Returns buf. */
const char *webhook_url_shown(const char *url, char *buf, size_t size);

/* A new delivery id (a random UUID, version 4) into id. 0, or -errno of
 * getrandom(). */
int webhook_new_id(char id[WEBHOOK_ID_LEN]);

/* The X-MLflow-Signature value of a delivery (see above) into sig. key
 * (keylen > 0 bytes) is the shared secret. 0, -EINVAL, -ENOMEM, -EIO
 * (libcrypto failed). */
int webhook_sign(const void *key, size_t keylen, const char *id,
		 const char *timestamp, const void *body, size_t len,
		 char sig[WEBHOOK_SIG_LEN]);

/* One delivery to make. */
struct webhook_req {
	const char *url;          /* webhook_url_check() holds */
	const char *ca_file;      /* CAs to trust (PEM), instead of the
				     system's; NULL: the system's */
	const void *secret;       /* the key of the signature */
	size_t secret_len;
	const char *id;           /* the delivery id */
	const char *body;         /* JSON */
	size_t body_len;
	unsigned attempts;        /* at most (>= 1) */
	unsigned attempt_ms;      /* one attempt's time at most */
	unsigned backoff_ms;      /* before the second attempt; doubled
				     before each next one */
	int64_t deadline_ns;      /* mono_ns(): no attempt runs past it */
};

/* What came of it. */
struct webhook_result {
	long status;              /* the last HTTP status; 0: no answer */
	unsigned attempts;        /* made */
	char why[256];            /* why the last attempt failed ("" when
				     it did not) */
};

/* POSTs req->body to req->url, signed, until it is taken: a 2xx answer.
 * A failure to connect, a timeout and a 5xx or 429 answer are tried
 * again, after req->backoff_ms, doubled each time (or the Retry-After
 * of the answer when longer), while attempts and time remain; another
 * answer is final. TLS is always verified; redirects are not followed.
 * Returns 0 (taken), -EREMOTEIO (the receiver refused it: an answer
 * that is not retried), -EAGAIN (every attempt failed in a way that is
 * retried, and none is left, or no time), -EPROTO (TLS failed: the
 * certificate did not verify, the CA file did not read), -EIO (libcurl
 * could not start, or failed in a way another attempt would not mend),
 * -EINVAL, -ENOMEM. ret is filled in every case but -EINVAL. Blocks the calling thread (sleeps between attempts),
 * never past req->deadline_ns by more than a moment. */
int webhook_post(const struct webhook_req *req, struct webhook_result *ret);

#endif
