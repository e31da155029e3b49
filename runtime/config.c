#define _GNU_SOURCE
/* weft_config_init: defaults, then environment overrides, validated
 * strictly.  A bad value is never replaced by a guess: the error names
 * the variable and the accepted range, and runtime creation fails. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "config.h"

/* weft_config_t.offload_threads: the pool limit of weft_to_thread
 * (offload.c).  40 is Trio's and AnyIO's default. */
#define CONFIG_OFFLOAD_DEFAULT 40
#define CONFIG_OFFLOAD_MAX 1024

static unsigned config_default_workers(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return n > (int)WEFT__WORKERS_MAX ? WEFT__WORKERS_MAX
							  : (unsigned)n;
	}
	return 1;
}

/* Parses decimal digits with an optional K/M suffix (x1024, x1048576)
 * when allow_suffix; nothing else (no sign, no spaces, no junk). */
static int config_parse(const char *s, int allow_suffix, uint64_t *out)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	uint64_t v = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (p == s)
		return -EINVAL;
	if (*p != '\0') {
		uint64_t mul;
		if (!allow_suffix)
			return -EINVAL;
		if (*p == 'k' || *p == 'K')
			mul = 1024;
		else if (*p == 'm' || *p == 'M')
			mul = 1024 * 1024;
		else
			return -EINVAL;
		if (p[1] != '\0')
			return -EINVAL;
		if (v > UINT64_MAX / mul)
			return -ERANGE;
		v *= mul;
	}
	*out = v;
	return 0;
}

/* Applies one environment variable; on error records the first one. */
static void config_env(weft_config_t *cfg, const char *name, uint64_t min,
	uint64_t max, int allow_suffix, uint64_t *value)
{
	const char *s = getenv(name);
	if (s == NULL)
		return;
	uint64_t v;
	if (config_parse(s, allow_suffix, &v) == 0 && v >= min && v <= max) {
		*value = v;
		return;
	}
	if (cfg->env_error == 0) {
		cfg->env_error = -EINVAL;
		snprintf(cfg->message, sizeof cfg->message,
			"%s='%.64s' is not valid: expected an integer from "
			"%llu to %llu%s",
			name, s, (unsigned long long)min,
			(unsigned long long)max,
			allow_suffix ? " (bytes; K and M suffixes allowed)"
				     : "");
	}
}

/* One accepted spelling of a WEFT_* variable that names a choice, and
 * the value it stands for. */
struct config_name {
	const char *name;
	int value;
};

/* Variable var, when set, must be one of names[0..n) exactly (no case
 * folding, no spaces, no number): *out gets its value.  Anything else is
 * an error, recorded if it is the first one, whose message lists the
 * accepted names (`expected`). */
static void config_env_name(weft_config_t *cfg, const char *var,
	const struct config_name *names, size_t n, const char *expected,
	int *out)
{
	const char *s = getenv(var);
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].value;
			return;
		}
	}
	if (cfg->env_error == 0) {
		cfg->env_error = -EINVAL;
		snprintf(cfg->message, sizeof cfg->message,
			"%s='%.64s' is not valid: expected %s", var, s,
			expected);
	}
}

static const struct config_name config_clocks[] = { { "real", WEFT_CLOCK_REAL },
	{ "virtual", WEFT_CLOCK_VIRTUAL } };

/* The signals weft_config_t.dump_signal accepts, and their names for
 * WEFT_DUMP_SIGNAL ("SIG" left out): ones a program may expect to be
 * asked for a report with, never one the runtime needs (SIGSEGV, SIGBUS:
 * stack overflows) nor one that cannot be caught. */
static const struct config_name config_dump_signals[] = { { "HUP", SIGHUP },
	{ "INT", SIGINT }, { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "WINCH", SIGWINCH } };

static const struct config_name config_deadlocks[] = {
	{ "error", WEFT_DEADLOCK_ERROR }, { "report", WEFT_DEADLOCK_REPORT },
	{ "off", WEFT_DEADLOCK_OFF }
};

static bool config_dump_signal_ok(int signum)
{
	for (size_t i = 0; i < WEFT__ARRAY_SIZE(config_dump_signals); i++)
		if (config_dump_signals[i].value == signum)
			return true;
	return false;
}

/* WEFT_TRACE (a path: not empty, not too long), WEFT_TRACE_EVENTS and
 * WEFT_TRACE_BUFFER. */
static void config_env_trace(weft_config_t *cfg)
{
	const char *s = getenv("WEFT_TRACE");
	if (s != NULL && *s != '\0' && strlen(s) < WEFT__TRACE_PATH_MAX) {
		cfg->trace_path = s;
	} else if (s != NULL && cfg->env_error == 0) {
		cfg->env_error = -EINVAL;
		snprintf(cfg->message, sizeof cfg->message,
			"WEFT_TRACE='%.64s' is not valid: expected a file path "
			"from 1 to %u bytes",
			s, WEFT__TRACE_PATH_MAX - 1);
	}
	uint64_t v = cfg->trace_events;
	config_env(cfg, "WEFT_TRACE_EVENTS", 0, 1, 0, &v);
	cfg->trace_events = (unsigned)v;
	v = cfg->trace_buffer;
	config_env(cfg, "WEFT_TRACE_BUFFER", WEFT__TRACE_BUFFER_MIN,
		WEFT__TRACE_BUFFER_MAX, 0, &v);
	cfg->trace_buffer = (unsigned)v;
}

/* WEFT_CPU_SAMPLE_US: 0 (off), or a period from the minimum up. */
static void config_env_cpu_sample(weft_config_t *cfg)
{
	cfg->cpu_sample_us = WEFT__CPU_SAMPLE_US_DEFAULT;
	const char *s = getenv("WEFT_CPU_SAMPLE_US");
	uint64_t v;
	if (s == NULL)
		return;
	if (config_parse(s, 0, &v) == 0 &&
		(v == 0 ||
			(v >= WEFT__CPU_SAMPLE_US_MIN &&
				v <= WEFT__CPU_SAMPLE_US_MAX))) {
		cfg->cpu_sample_us = (unsigned)v;
		return;
	}
	if (cfg->env_error == 0) {
		cfg->env_error = -EINVAL;
		snprintf(cfg->message, sizeof cfg->message,
			"WEFT_CPU_SAMPLE_US='%.64s' is not valid: expected 0 "
			"or an integer from %u to %u",
			s, WEFT__CPU_SAMPLE_US_MIN, WEFT__CPU_SAMPLE_US_MAX);
	}
}

/* {======================================================= misspelt names */

/* Every variable weft reads; a WEFT_ name near one of them (or a usual
 * guess) is most likely a typo that would otherwise be ignored in
 * silence. */
static const char *const config_known[] = { "WEFT_WORKERS", "WEFT_STACK_SIZE",
	"WEFT_GUARDED_STACKS", "WEFT_SPIN_US", "WEFT_OFFLOAD_THREADS",
	"WEFT_CLOCK", "WEFT_DUMP_SIGNAL", "WEFT_DEADLOCK", "WEFT_SEED",
	"WEFT_STALL_MS", "WEFT_TRACE", "WEFT_TRACE_EVENTS", "WEFT_TRACE_BUFFER",
	"WEFT_CPU_SAMPLE_US" };

/* Names other runtimes use for the same thing. */
static const char *const config_guesses[][2] = {
	{ "WEFT_THREADS", "WEFT_WORKERS" },
	{ "WEFT_NUM_THREADS", "WEFT_WORKERS" },
	{ "WEFT_NUM_WORKERS", "WEFT_WORKERS" },
	{ "WEFT_WORKER_THREADS", "WEFT_WORKERS" },
	{ "WEFT_STACK", "WEFT_STACK_SIZE" },
	{ "WEFT_BLOCKING_THREADS", "WEFT_OFFLOAD_THREADS" },
};

/* Levenshtein distance of a and b (each under 64 bytes), up to 3. */
static unsigned config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la >= 64 || lb >= 64)
		return 3;
	unsigned row[64], prev;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned del = row[j] + 1, ins = row[j - 1] + 1;
			unsigned sub = prev + (a[i - 1] != b[j - 1]);
			prev = row[j];
			row[j] = del < ins ? del : ins;
			if (sub < row[j])
				row[j] = sub;
		}
	}
	return row[lb] < 3 ? row[lb] : 3;
}

/* Warns on stderr about each WEFT_ variable of the environment that is
 * not one of weft's but is within two edits of one (or a usual guess):
 * "weft: WEFT_WROKERS is not a weft variable; did you mean
 * WEFT_WORKERS?".  Other WEFT_ names (a program's own) pass unremarked.
 * Reads environ as getenv does: not while another thread sets it. */
static void config_warn_misspelt(void)
{
	extern char **environ;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		size_t n = strcspn(*e, "=");
		if (strncmp(*e, "WEFT_", 5) != 0 || n >= 64)
			continue;
		char name[64];
		memcpy(name, *e, n);
		name[n] = '\0';
		const char *best = NULL;
		unsigned best_d = 3;
		for (size_t i = 0; i < WEFT__ARRAY_SIZE(config_known); i++) {
			unsigned d = config_distance(name, config_known[i]);
			if (d < best_d) {
				best_d = d;
				best = config_known[i];
			}
		}
		if (best_d == 0)
			continue;
		for (size_t i = 0; i < WEFT__ARRAY_SIZE(config_guesses); i++)
			if (strcmp(name, config_guesses[i][0]) == 0)
				best = config_guesses[i][1];
		if (best != NULL)
			fprintf(stderr,
				"weft: %s is not a weft variable; did you "
				"mean %s?\n",
				name, best);
	}
}

/* }======================================================= */

int weft_config_init(weft_config_t *cfg)
{
	if (cfg == NULL)
		return -EINVAL;
	memset(cfg, 0, sizeof *cfg);
	cfg->size = sizeof *cfg;
	cfg->workers = config_default_workers();
	cfg->stack_size = 64 * 1024;
	cfg->guarded_stacks = 8192;
	cfg->spin_us = 50;
	cfg->offload_threads = CONFIG_OFFLOAD_DEFAULT;
#ifdef WEFT_DEBUG
	cfg->abort_on_missing_join = 1;
#endif
	uint64_t v = cfg->workers;
	config_env(cfg, "WEFT_WORKERS", 1, WEFT__WORKERS_MAX, 0, &v);
	cfg->workers = (unsigned)v;
	v = cfg->stack_size;
	config_env(cfg, "WEFT_STACK_SIZE", WEFT__STACK_MIN, WEFT__STACK_MAX, 1,
		&v);
	cfg->stack_size = (size_t)v;
	v = cfg->guarded_stacks;
	config_env(cfg, "WEFT_GUARDED_STACKS", 0, WEFT__GUARDED_MAX, 0, &v);
	cfg->guarded_stacks = (size_t)v;
	v = cfg->spin_us;
	config_env(cfg, "WEFT_SPIN_US", 0, WEFT__SPIN_US_MAX, 0, &v);
	cfg->spin_us = (unsigned)v;
	v = cfg->offload_threads;
	config_env(cfg, "WEFT_OFFLOAD_THREADS", 1, CONFIG_OFFLOAD_MAX, 0, &v);
	cfg->offload_threads = (unsigned)v;
	int v_clock = WEFT_CLOCK_REAL, v_deadlock = WEFT_DEADLOCK_ERROR;
	config_env_name(cfg, "WEFT_CLOCK", config_clocks,
		WEFT__ARRAY_SIZE(config_clocks), "real or virtual", &v_clock);
	config_env_name(cfg, "WEFT_DUMP_SIGNAL", config_dump_signals,
		WEFT__ARRAY_SIZE(config_dump_signals),
		"HUP, INT, QUIT, USR1, USR2, TERM or WINCH", &cfg->dump_signal);
	config_env_name(cfg, "WEFT_DEADLOCK", config_deadlocks,
		WEFT__ARRAY_SIZE(config_deadlocks), "error, report or off",
		&v_deadlock);
	v = cfg->seed;
	config_env(cfg, "WEFT_SEED", 1, UINT64_MAX, 0, &v);
	cfg->seed = v;
	cfg->clock = (weft_clock_t)v_clock;
	cfg->deadlock = (weft_deadlock_t)v_deadlock;
	v = cfg->stall_ms;
	config_env(cfg, "WEFT_STALL_MS", 0, WEFT__STALL_MS_MAX, 0, &v);
	cfg->stall_ms = (unsigned)v;
	cfg->trace_buffer = WEFT__TRACE_BUFFER_DEFAULT;
	config_env_trace(cfg);
	config_env_cpu_sample(cfg);
	config_warn_misspelt();
	return cfg->env_error;
}

int weft__config_validate(weft_config_t *cfg)
{
	const char *bad = NULL;
	if (cfg->size != sizeof *cfg)
		bad = "config was not initialised with weft_config_init";
	else if (cfg->env_error != 0)
		return cfg->env_error; /* message already set */
	else if (cfg->workers < 1 || cfg->workers > WEFT__WORKERS_MAX)
		bad = "workers must be from 1 to 1024";
	else if (cfg->stack_size < WEFT__STACK_MIN ||
		cfg->stack_size > WEFT__STACK_MAX)
		bad = "stack_size must be from 16384 to 1073741824 bytes";
	else if (cfg->guarded_stacks > WEFT__GUARDED_MAX)
		bad = "guarded_stacks must be from 0 to 30000";
	else if (cfg->spin_us > WEFT__SPIN_US_MAX)
		bad = "spin_us must be from 0 to 100000";
	else if (cfg->abort_on_missing_join > 1)
		bad = "abort_on_missing_join must be 0 or 1";
	else if (cfg->offload_threads < 1 ||
		cfg->offload_threads > CONFIG_OFFLOAD_MAX)
		bad = "offload_threads must be from 1 to 1024";
	else if (cfg->clock != WEFT_CLOCK_REAL &&
		cfg->clock != WEFT_CLOCK_VIRTUAL)
		bad = "clock must be WEFT_CLOCK_REAL or WEFT_CLOCK_VIRTUAL";
	else if (cfg->dump_signal != 0 &&
		!config_dump_signal_ok(cfg->dump_signal))
		bad = "dump_signal must be 0, SIGHUP, SIGINT, SIGQUIT, "
		      "SIGUSR1, SIGUSR2, SIGTERM or SIGWINCH";
	else if (cfg->deadlock != WEFT_DEADLOCK_ERROR &&
		cfg->deadlock != WEFT_DEADLOCK_REPORT &&
		cfg->deadlock != WEFT_DEADLOCK_OFF)
		bad = "deadlock must be WEFT_DEADLOCK_ERROR, _REPORT or _OFF";
	else if (cfg->stall_ms > WEFT__STALL_MS_MAX)
		bad = "stall_ms must be from 0 to 3600000";
	else if (cfg->trace_path != NULL &&
		(cfg->trace_path[0] == '\0' ||
			strnlen(cfg->trace_path, WEFT__TRACE_PATH_MAX) >=
				WEFT__TRACE_PATH_MAX))
		bad = "trace_path must be NULL or a path from 1 to 4095 bytes";
	else if (cfg->trace_events > 1)
		bad = "trace_events must be 0 or 1";
	else if (cfg->trace_buffer < WEFT__TRACE_BUFFER_MIN ||
		cfg->trace_buffer > WEFT__TRACE_BUFFER_MAX)
		bad = "trace_buffer must be from 16 to 1048576";
	else if (cfg->cpu_sample_us != 0 &&
		(cfg->cpu_sample_us < WEFT__CPU_SAMPLE_US_MIN ||
			cfg->cpu_sample_us > WEFT__CPU_SAMPLE_US_MAX))
		bad = "cpu_sample_us must be 0 or from 100 to 1000000";
	if (bad == NULL)
		return 0;
	snprintf(cfg->message, sizeof cfg->message, "%s", bad);
	return -EINVAL;
}
