/* hooks.h — running the admin's programs after a change commits
 * ([hooks] on_register and on_promote in mreg.conf): how a CI/CD pipeline or
 * a serving fleet learns of a new version or a promotion.
 *
 * A hook runs on a thread of its own, never on the thread of the call that
 * made the change, with MREG_EVENT, MREG_MODEL, MREG_VERSION, MREG_STAGE,
 * MREG_PREVIOUS and MREG_UID in its environment; it is killed after the
 * configured timeout; its output and exit status go to the log.
 */
#ifndef MREG_HOOKS_H
#define MREG_HOOKS_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

enum hook_event { HOOK_REGISTER = 1, HOOK_PROMOTE };

struct hook_ev {
	enum hook_event event;
	char model[129], version[129], stage[65], previous[129];
	uid_t uid;
};

struct hooks;

/* Starts the runner when cfg names any hook; *ret is NULL otherwise (and
 * every other call takes NULL). -ENOMEM, -errno of pthread_create. */
int hooks_start(const struct mreg_config *cfg, struct hooks **ret);
/* Queues ev (copied). Never blocks on the hook; drops it with a warning
 * when 1024 are waiting already. */
void hooks_queue(struct hooks *h, const struct hook_ev *ev);
/* Waits for the queued hooks (each within its timeout) and stops. */
void hooks_stop(struct hooks *h);

#endif
