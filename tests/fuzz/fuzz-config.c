/* fuzz-config.c — libFuzzer entry point for the mreg.conf parser.
 *
 * The input is a config file. Beyond the sanitizers it checks the
 * contract of config_parse() (config.h): a refusal is -EINVAL (or -EFBIG,
 * -ENOMEM) with "NAME:LINE: reason", LINE within the file, and leaves the
 * config as it was; an accepted file gives a config the program can use
 * (chunk sizes that pass chunker_params_check(), an absolute store path
 * and hook programs, stage names by SPEC §1's rule, each found by
 * config_stage(), every require_metric parsing). `make fuzz` builds and
 * runs it; `make test` replays tests/fuzz/config/ through it.
 */
#include "config/config.h"
#include "registry/registry.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void accepted(const struct mreg_config *cfg)
{
	struct metric_rule rule;
	size_t i;

	if (chunker_params_check(&cfg->chunker) < 0)
		abort();
	if (cfg->store && cfg->store[0] != '/')
		abort();
	if ((cfg->on_register && cfg->on_register[0] != '/') ||
	    (cfg->on_promote && cfg->on_promote[0] != '/'))
		abort(); /* hooks run as root: never a relative program */
	if (cfg->allow_other && !cfg->default_permissions)
		abort();
	for (i = 0; i < cfg->nstages; i++) {
		const struct stage_policy *p = &cfg->stages[i];

		if (reg_check_stage(p->name) < 0)
			abort();
		if (config_stage(cfg, p->name) != p)
			abort(); /* two policies for one stage */
		if (p->require_stage[0] &&
		    (reg_check_stage(p->require_stage) < 0 ||
		     strcmp(p->require_stage, p->name) == 0))
			abort();
		if (p->require_metric &&
		    config_parse_metric_rule(p->require_metric, &rule) < 0)
			abort();
	}
}

static void refused(const struct mreg_config *cfg,
		    const struct mreg_config *def, const char *err,
		    const uint8_t *data, size_t size, int r)
{
	unsigned long line, lines = 1;
	char *end;
	size_t i;

	if (r != -EINVAL && r != -EFBIG && r != -ENOMEM)
		abort();
	if (strncmp(err, "fuzz.conf:", 10) != 0)
		abort();
	if (r == -EINVAL) {
		for (i = 0; i < size; i++)
			lines += data[i] == '\n';
		line = strtoul(err + 10, &end, 10);
		if (end == err + 10 || end[0] != ':' || end[1] != ' ' ||
		    !end[2] || line < 1 || line > lines)
			abort();
	}
	/* "On any error cfg is left as it was." */
	if (cfg->store || cfg->path || cfg->nstages ||
	    cfg->pack_size != def->pack_size ||
	    cfg->dedup_verify != def->dedup_verify ||
	    cfg->durability != def->durability ||
	    cfg->map_size != def->map_size ||
	    memcmp(&cfg->chunker, &def->chunker, sizeof(cfg->chunker)) ||
	    cfg->allow_other != def->allow_other ||
	    cfg->log_level != def->log_level ||
	    cfg->on_register || cfg->on_promote)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mreg_config cfg, def;
	char err[512];
	int r;

	config_init(&cfg);
	config_init(&def);
	memset(err, 'x', sizeof(err));
	r = config_parse(&cfg, "fuzz.conf", (const char *)data, size, err,
			 sizeof(err));
	if (!memchr(err, '\0', sizeof(err)))
		abort(); /* err always ends up a string */
	if (r == 0)
		accepted(&cfg);
	else
		refused(&cfg, &def, err, data, size, r);
	config_release(&cfg);
	config_release(&def);
	return 0;
}
