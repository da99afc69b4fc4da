/* services.h — what the unit tests that run against a service of
 * tests/services/ (radosgw for test-s3, PostgreSQL for test-pgindex)
 * share: whether the service can run here, and its env file. */
#ifndef MREG_TEST_SERVICES_H
#define MREG_TEST_SERVICES_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `sh TOP/tests/services/SCRIPT check`: true when the service can
 * run here, else false with the reason in why. */
static inline bool svc_can_run(const char *top, const char *script,
			       char *why, size_t size)
{
	char *cmd;
	FILE *p;

	if (asprintf(&cmd, "sh '%s/tests/services/%s' check", top, script) <
	    0)
		abort();
	p = popen(cmd, "r");
	free(cmd);
	why[0] = '\0';
	if (!p || !fgets(why, (int)size, p))
		why[0] = '\0';
	if (!p || pclose(p) != 0) {
		why[strcspn(why, "\n")] = '\0';
		return false;
	}
	return true;
}

/* Exports the KEY=VALUE lines of DIR/NAME (a service's env file); false
 * when it cannot be read. */
static inline bool svc_load_env(const char *dir, const char *name)
{
	char *path, line[512];
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	f = fopen(path, "r");
	free(path);
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || !eq || strchr(line, ' '))
			continue;
		*eq = '\0';
		setenv(line, eq + 1, 1);
	}
	fclose(f);
	return true;
}

#endif
