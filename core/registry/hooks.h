/* hooks.h — running the admin's programs after a change commits (the
 * on_register and on_promote hooks stored in the registry, see
 * policy.c): how a CI/CD pipeline or a serving fleet learns of a new
 * version or a promotion.
 *
 * A hook runs on a thread of its own, never on the thread of the call that
 * made the change, in a process group of its own, with the environment
 * below and nothing else; it is killed (with its group) after the
 * configured timeout; its output and exit status go to the log.
 *
 *	MREG_EVENT     register or promote
 *	MREG_MODEL     the model
 *	MREG_VERSION   the version registered, or the stage's new target
 *	MREG_STAGE     the stage (empty for register)
 *	MREG_PREVIOUS  the version the stage pointed at before (or empty)
 *	MREG_USER      who made the change: a user name (or the uid)
 *	MREG_UID       who made the change: the uid
 *	MREG_STORE     the store directory
 *	MREG_MOUNT     the mount point (empty when the CLI made the change)
 *	PATH           /usr/sbin:/usr/bin:/sbin:/bin
 *	LANG           C
 *	HOME           the home directory of the daemon's user
 *
 * A hook may also be a URL (webhook.h: https://, or http:// to a loopback
 * address): the event is POSTed to it as one JSON object with the fields
 * above, lower case and without MREG_ (event, model, version, stage,
 * previous, user, uid — a number —, store, mount), and delivery_id and
 * timestamp (ISO 8601, UTC), signed as MLflow signs its webhooks with
 * the secret of [hooks] secret_file, and tried again on a failure to
 * connect, a timeout, a 5xx or 429 answer ([hooks] attempts, each within
 * attempt_timeout), all within the timeout. Every delivery is reported
 * (hook_report_fn, with struct hook_delivery): taken (ok), refused by
 * the receiver (error: an answer not retried, such as 401), or not
 * delivered (failed).
 *
 * Events wait in one queue per user, served in turn, promotions before
 * registrations. Memory is bounded: HOOK_USER_MAX events a user,
 * HOOK_QUEUE_MAX in all. When a user's queue is full, its newest
 * registration is dropped (to make room for one of its promotions, or the
 * new registration itself); when all are full, the user with the most
 * registrations waiting loses its newest one, so one user's registrations
 * never drop another user's promotion or fair share. A hook that is
 * dropped or cannot run is reported (audit log and metrics, hook_report_fn)
 * and counted (hooks_counts()).
 */
#ifndef MREG_HOOKS_H
#define MREG_HOOKS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "webhook/webhook.h"

#define HOOK_USER_MAX 1024
#define HOOK_QUEUE_MAX 4096

enum hook_event { HOOK_REGISTER = 1, HOOK_PROMOTE };

/* Longest program path or URL a hook may have (with its NUL). */
#define HOOK_PROGRAM_MAX 1024

struct hook_ev {
	enum hook_event event;
	char program[HOOK_PROGRAM_MAX]; /* what to run: the definition in
					   force when the change committed */
	char model[129], version[129], stage[65], previous[129];
	uid_t uid;              /* who made the change */
	gid_t gid;
	pid_t pid;
	uint64_t qid;           /* its record in the registry's queue (0:
				   none): reported whatever the outcome */
	char delivery[WEBHOOK_ID_LEN]; /* a URL hook's delivery id, made with
					  the event ("": made when it runs) */
};

/* What became of a hook (of a URL hook: ok, the receiver took it with a
 * 2xx; error, it answered with a status that is not retried; failed, it
 * was not delivered: no secret, TLS, or no attempt left). */
enum hook_result {
	HOOK_OK = 0,            /* ran and exited 0 */
	HOOK_ERROR,             /* ran, exited non-zero or by a signal */
	HOOK_FAILED,            /* could not start, or killed at its timeout */
	HOOK_DROPPED,           /* never ran: its user's queue was full */
	HOOK_NRESULTS
};

/* A URL hook's delivery, as reported. */
struct hook_delivery {
	const char *url;        /* without its query string */
	const char *id;         /* the delivery id (X-MLflow-Delivery-Id) */
	long status;            /* the last HTTP status; 0: none came */
	unsigned attempts;      /* made */
};

/* Tells the owner of the runner that ev's hook was dropped or failed
 * (result "dropped" or "failed", reason a sentence), or how a URL hook's
 * delivery ended (d not NULL; result as hooks_result_name(); reason ""
 * when it was taken). Called without any lock of the runner held: on the
 * thread that queued ev (dropped), or on the runner's. */
typedef void hook_report_fn(void *arg, const struct hook_ev *ev,
			    const char *result, const char *reason,
			    const struct hook_delivery *d);

struct hooks;

/* Starts the runner (cfg gives the timeout, and a URL hook's secret
 * file, CA file and attempts; every other call takes NULL). store is the
 * store directory (MREG_STORE); report, which may be NULL, hears of drops
 * and failures, of every delivery of a URL hook, and of every outcome of
 * an event with a qid. Each run checks the event's program
 * (config_program_trusted()) or URL (webhook_url_check()), and reads the
 * secret again (config_secret_read()). -EINVAL, -ENOMEM, -errno of
 * pthread_create. */
int hooks_start(const struct mreg_config *cfg, const char *store,
		hook_report_fn *report, void *arg, struct hooks **ret);
/* Sets MREG_MOUNT for later hooks (NULL or "" for none). -ENOMEM. */
int hooks_set_mount(struct hooks *h, const char *mount);
/* Queues ev (copied; nothing when it names no program). Never blocks on
 * a hook; drops a registration as above (reported and counted). */
void hooks_queue(struct hooks *h, const struct hook_ev *ev);
/* Waits for the queued hooks (each within its timeout) and stops. */
void hooks_stop(struct hooks *h);

/* How many hooks ended each way since the start (all 0 for NULL). */
struct hook_counts {
	uint64_t n[HOOK_NRESULTS];
	uint64_t queued;        /* waiting now */
};
void hooks_counts(struct hooks *h, struct hook_counts *ret);
/* "ok", "error", "failed", "dropped". */
const char *hooks_result_name(enum hook_result r);


#endif
