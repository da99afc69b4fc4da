/* s3store-int.h — private to store/s3/: the S3 store's state, shared by
 * s3store.c (sessions, writing, sync, batches) and s3store-read.c
 * (locations, reads, containers, housekeeping). See s3store.c for the
 * design, s3store.h for its configuration. */
#ifndef MREG_STORE_S3STORE_INT_H
#define MREG_STORE_S3STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3.h"
#include "s3store.h"
#include "store/backend.h"

#define S3S_LOC_LEN 20           /* u64 object, u64 data offset, u32 len */
#define S3S_KEY_MAX 1100         /* key_prefix (<= 1000) + "packs/" + id */
#define S3S_SEQ_BITS 24          /* objects of one session */
#define S3S_SESSION_BITS 40      /* random session prefix */

/* A part handed to the client and not yet waited for. */
struct s3s_part {
	struct s3_op *op;
	char *buf;
};

struct s3_store {
	struct mreg_store base;
	struct s3_client *c;
	char *root;              /* key_prefix */
	uint64_t pack_size;      /* objects end past this */
	uint32_t part_size;
	unsigned parts_max;
	uint64_t grace_ms;
	uint64_t try_session;

	/* Writing: mu guards everything below. */
	pthread_mutex_t mu;
	uint64_t session;        /* 40-bit prefix claimed; 0: none yet */
	uint32_t seq;            /* the next object of the session */
	bool have_cur;           /* an object is being written */
	uint64_t cur_id;
	uint64_t cur_size;       /* bytes put in it, header included */
	uint64_t cur_sent;       /* bytes of it handed out as parts */
	uint64_t cur_started;    /* monotonic ms of its first put */
	bool cur_loose;          /* a put outside any batch went into it */
	struct s3_upload *mpu;   /* its multipart upload, NULL before one */
	unsigned nparts;         /* parts started */
	char *buf;               /* bytes [cur_sent, cur_size) */
	size_t blen;
	struct s3s_part *fly;    /* parts in flight, oldest first */
	unsigned nfly;
	char **spare;            /* part buffers to reuse */
	unsigned nspare;
	unsigned nbatch;
	uint64_t batch_oldest;   /* start of the oldest object put into
				    while a batch was open; 0: none */
	int poison;              /* a failed object, while batches are open */
	int poison_forever;      /* ... with puts outside a batch in it */
};

/* The key of object id: ROOT"packs/%016llx" into key (S3S_KEY_MAX). */
void s3_store_key(const struct s3_store *s, uint64_t id, char *key);

/* Ends the object being written (mu held): its last part or single PUT,
 * then the completion, waiting for 200. 0 when nothing was being
 * written. On failure the object is given up (its chunks may never be
 * named, sync reports it: see s3store.c) and the error returned. */
int s3_store_end_object(struct s3_store *s);

/* Backend calls of s3store-read.c, in the vtable of s3store.c. */
int s3_store_get(struct mreg_store *ms, const struct chunk_loc *loc,
		 const struct mreg_id *id, void *buf);
int s3_store_get_run(struct mreg_store *ms, const struct chunk_loc *locs,
		     const struct mreg_id *ids, size_t n, void *const *bufs);
int s3_store_loc_span(const struct mreg_store *ms,
		      const struct chunk_loc *loc, struct store_span *ret);
const char *s3_store_loc_name(const struct mreg_store *ms,
			      const struct chunk_loc *loc, char *buf,
			      size_t size);
int s3_store_containers(struct mreg_store *ms,
			int (*fn)(void *arg, const struct store_container *c),
			void *arg);
int s3_store_iterate(struct mreg_store *ms, uint64_t container,
		     int (*fn)(void *arg, const struct mreg_id *id,
			       const struct chunk_loc *loc, const void *data,
			       uint32_t len),
		     void *arg);
int s3_store_claim(struct mreg_store *ms, uint64_t container);
void s3_store_unclaim(struct mreg_store *ms, uint64_t container);
int s3_store_container_size(struct mreg_store *ms, uint64_t container,
			    uint64_t *ret);
int s3_store_del(struct mreg_store *ms, uint64_t container);
int s3_store_bytes(struct mreg_store *ms, uint64_t *ret);
int s3_store_maint(struct mreg_store *ms);

/* Encodes a location (S3S_LOC_LEN bytes). */
void s3_store_loc_make(uint64_t container, uint64_t data_off, uint32_t len,
		       struct chunk_loc *ret);

#endif
