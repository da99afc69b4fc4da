/* s3store.h — the configuration of the S3 chunk store (backend "s3",
 * store/s3/s3store.c): what store_options.backend_cfg points to when
 * store_options.backend is "s3". The [s3] section of mreg.conf.
 *
 * What the backend does with store_options' other fields: pack_size is
 * the size past which an object ends (0: 64 MiB); dir is not read; sync
 * is not read either (an object must be in the object store before any
 * host can read it: every store_sync() uploads). store_open() errors of
 * this backend, besides -EINVAL (a bad or missing field, no credentials;
 * logged) and -ENOMEM: -EACCES (wrong keys, or a credentials file others
 * may read), -ENOENT (no such bucket), -ETIMEDOUT or -EIO (the object
 * store cannot be reached), each logged in one line that says what to
 * fix (s3_open() and s3_check() of s3.h).
 */
#ifndef MREG_STORE_S3STORE_H
#define MREG_STORE_S3STORE_H

#include <stdbool.h>
#include <stdint.h>

/* A zeroed field takes the default named beside it. */
struct s3_store_config {
	const char *endpoint;    /* "http[s]://host[:port]": required */
	const char *bucket;      /* required */
	const char *region;      /* "us-east-1" */
	bool path_style;         /* endpoint/bucket/key, else bucket.host */
	/* An AWS credentials file, refused when others may read it; NULL:
	 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
	const char *credentials;
	const char *profile;     /* its section: "default" */
	/* Keys start with this ("" or ending in '/'): PREFIX"packs/...".
	 * Several registries may share a bucket under distinct prefixes. */
	const char *key_prefix;
	/* Objects younger than this are busy: a writer may still name
	 * their chunks (gc leaves them). Seconds: 3600. */
	unsigned gc_grace_s;
	uint32_t part_size;      /* multipart part, >= 5 MiB: 8 MiB */
	unsigned parts_inflight; /* parts uploading at once: 2 */
	unsigned max_inflight;   /* requests at once: 8 */
	unsigned timeout_ms;     /* one request, retries included: 30000 */
	unsigned attempts;       /* per request, the first included: 6 */
	/* Sends nothing at open (else one LIST proves the endpoint, the
	 * keys and the bucket): the first request that fails says why. */
	bool lazy;
	/* Tests: the session prefix (40 bits) to try first; 0: random. */
	uint64_t try_session;
};

#endif
