/* rgw.h — what the unit tests that need a real S3 server share: radosgw
 * started by tests/services/rgw.sh in a scratch directory (or the one in
 * MREG_RGW_DIR) and stopped at exit or on SIGINT/SIGTERM, the fault proxy
 * tests/services/faultproxy.py in front of it, a log capture, and a
 * pseudo-random filler. Call rgw_setup() first in main(). Included by one
 * .c file per test program.
 */
#ifndef MREG_TEST_RGW_H
#define MREG_TEST_RGW_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "services.h"
#include "util.h"

static char *top;		/* the source tree */
static char *tmp;		/* our scratch directory */
static char *rgw_dir;		/* the radosgw instance */
static bool rgw_ours;		/* started here: stop it at the end */
static char *endpoint;
static unsigned rgw_port;
static pid_t proxy_pid;
static unsigned proxy_port, proxy_ctl;
static const char *rgw_tag = "s3";	/* of the scratch directory */

/* ---- the services ---- */

/* A child with the signals this process blocks (see signal_main)
 * unblocked: the daemons it starts must die of SIGTERM. */
static inline pid_t spawn(void)
{
	pid_t pid = fork();
	sigset_t none;

	if (pid == 0) {
		sigemptyset(&none);
		pthread_sigmask(SIG_SETMASK, &none, NULL);
	}
	return pid;
}

/* Runs a shell command; its exit status, or -1. */
static inline int sh(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	pid_t pid;
	int st = -1;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	pid = spawn();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		st = -1;
	free(cmd);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void cleanup(void)
{
	if (proxy_pid > 0) {
		kill(proxy_pid, SIGTERM);
		waitpid(proxy_pid, NULL, 0);
		proxy_pid = 0;
	}
	if (rgw_ours) {
		sh("sh '%s/tests/services/rgw.sh' stop '%s'", top, rgw_dir);
		rgw_ours = false;
	}
	if (tmp) {
		check_rmtree(tmp);
		free(tmp);
		tmp = NULL;
	}
}

/* SIGINT and SIGTERM are blocked in every thread but this one, which
 * stops the services before the test dies of the signal. */
static inline void *signal_main(void *arg)
{
	sigset_t *set = arg;
	int sig;

	if (sigwait(set, &sig) == 0) {
		cleanup();
		signal(sig, SIG_DFL);
		pthread_sigmask(SIG_UNBLOCK, set, NULL);
		raise(sig);
	}
	return NULL;
}

/* Exports the KEY=VALUE lines of DIR/rgw.env; false without an
 * endpoint and a port there. */
static inline bool load_env(const char *dir)
{
	if (!svc_load_env(dir, "rgw.env"))
		return false;
	endpoint = getenv("MREG_S3_ENDPOINT");
	rgw_port = (unsigned)atoi(getenv("MREG_RGW_PORT") ?: "0");
	return endpoint && rgw_port;
}

/* Starts radosgw (or finds MREG_RGW_DIR's); false with the reason in
 * why when it cannot run here. */
static inline bool services_up(char *why, size_t size)
{
	top = getenv("MREG_TOP");
	if (!top) {
		snprintf(why, size, "MREG_TOP is not set (tests/run.sh "
			 "sets it)");
		return false;
	}
	tmp = check_tmpdir(rgw_tag);
	if (getenv("MREG_RGW_DIR")) {
		rgw_dir = getenv("MREG_RGW_DIR");
	} else {
		if (!svc_can_run(top, "rgw.sh", why, size))
			return false;
		if (asprintf(&rgw_dir, "%s/rgw", tmp) < 0)
			abort();
		rgw_ours = true;
		if (sh("sh '%s/tests/services/rgw.sh' start '%s' >/dev/null",
		       top, rgw_dir)) {
			printf("Bail out! radosgw does not start\n");
			exit(1);
		}
	}
	if (!load_env(rgw_dir)) {
		printf("Bail out! no endpoint in '%s/rgw.env'\n", rgw_dir);
		exit(1);
	}
	return true;
}

/* radosgw dies at once, as in a crash (its OSD, and the data, stay). */
static inline void rgw_kill(void)
{
	sh("sh '%s/tests/services/rgw.sh' kill '%s'", top, rgw_dir);
}

static inline void rgw_start(void)
{
	sh("sh '%s/tests/services/rgw.sh' start '%s' >/dev/null", top,
	   rgw_dir);
}

/* Starts the fault proxy in front of radosgw. */
static inline void proxy_up(void)
{
	char *ports, *up, line[64];
	FILE *f = NULL;
	int i;

	if (asprintf(&ports, "%s/proxy.ports", tmp) < 0 ||
	    asprintf(&up, "127.0.0.1:%u", rgw_port) < 0)
		abort();
	proxy_pid = spawn();
	if (proxy_pid == 0) {
		char *script;

		if (asprintf(&script, "%s/tests/services/faultproxy.py",
			     top) < 0)
			_exit(127);
		execl("/usr/bin/python3", "python3", script, "--upstream", up,
		      "--port-file", ports, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !f; i++) {
		f = fopen(ports, "r");
		if (!f)
			usleep(50000);
	}
	if (!f || !fgets(line, sizeof(line), f) ||
	    sscanf(line, "%u %u", &proxy_port, &proxy_ctl) != 2) {
		printf("Bail out! the fault proxy does not start\n");
		exit(1);
	}
	fclose(f);
	free(ports);
	free(up);
}

/* Sends one command to the proxy; returns N of "ok [N]", -1 on error. */
static inline int proxy(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int proxy(const char *fmt, ...)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char cmd[256], reply[128];
	va_list ap;
	ssize_t n;
	int fd, r = -1;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	strcat(cmd, "\n");
	a.sin_port = htons((uint16_t)proxy_ctl);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		goto out;
	n = read(fd, reply, sizeof(reply) - 1);
	if (n <= 0)
		goto out;
	reply[n] = '\0';
	if (!strncmp(reply, "ok", 2))
		r = atoi(reply + 2);
	else
		printf("#   proxy: %s: %s", cmd, reply);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* ---- helpers ---- */

static char logged[4096];

static inline void sink(UNUSED void *arg, UNUSED enum log_level lvl,
			const char *msg)
{
	size_t n = strlen(logged);

	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

static inline void capture(void)
{
	logged[0] = '\0';
	log_set_sink(sink, NULL);
}

static inline unsigned lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static inline void fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Blocks SIGINT and SIGTERM in every thread (the daemons started are
 * stopped by the signal thread first), registers the clean-up, and
 * starts radosgw: false with the reason in why when it cannot run here. */
static inline bool rgw_setup(const char *tag, char *why, size_t size)
{
	static sigset_t set;
	pthread_t sig_thread;

	rgw_tag = tag;
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(cleanup);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&sig_thread, NULL, signal_main, &set);
	return services_up(why, size);
}

#endif
