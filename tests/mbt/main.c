/* weft-mbt: model-based random testing (see mbt.h).
 *
 *   weft-mbt --count N [--seed S]   programs S .. S+N-1 (bounded; ctest)
 *   weft-mbt --long MINUTES [--seed S]
 *                                   programs until the time is up; keeps
 *                                   going after a divergence
 *   weft-mbt --replay SEED [-v]     one program, printed with the model's
 *                                   outcome, run and compared
 *
 * Every program runs at 1, 2 and 4 workers (--runs R times each, default
 * 1).  A divergence prints the program, its seed and both outcomes, then
 * shrinks the program (drop ops and children, splice scopes, drop
 * shields and deadlines while the divergence stays) and prints the small
 * reproducer.  Exit status 1 when any program diverged.
 * MBT_SCALE=percent scales --count (the ctest entry lowers it under the
 * sanitizers). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mbt.h"

static char model_out[MBT_OUT], real_out[MBT_OUT], text[MBT_OUT];
/* weft's outcome of the smallest divergent program found so far: later
 * candidates overwrite real_out, and the report must show the reproducer's
 * own outcome, not the last candidate's. */
static char kept_out[MBT_OUT];
static int runs = 1;
static long executions, programs, rejected;

/* The watchdog: an execution that takes more than MBT_HANG_S seconds of
 * real time (default 30) is a hang: print the program and stop. */
static atomic_long exec_start; /* time(NULL) of the running execution */
static const struct mbt_prog *exec_prog;
static atomic_int exec_workers;
static atomic_ullong exec_seed;

static void *watchdog(void *arg)
{
	(void)arg;
	const char *v = getenv("MBT_HANG_S");
	long limit = v && *v ? atol(v) : 30;
	for (;;) {
		sleep(1);
		long st = atomic_load(&exec_start);
		if (st && time(NULL) - st > limit) {
			static char t[MBT_OUT];
			mbt_print(exec_prog, t, sizeof t);
			printf("=== hang: seed %llu, %d workers: an execution "
			       "ran more than %ld s\n%s",
				(unsigned long long)atomic_load(&exec_seed),
				atomic_load(&exec_workers), limit, t);
			mbt_real_dump(atomic_load(&exec_workers));
			fflush(stdout);
			abort();
		}
	}
	return NULL;
}

/* The first workers count whose outcome differs from the model's, 0 if
 * none; real_out then holds weft's outcome. */
static int diverges(const struct mbt_prog *p, int tries)
{
	for (int k = 0; k < tries; k++)
		for (int w = 1; w <= 4; w *= 2) {
			exec_prog = p;
			atomic_store(&exec_workers, w);
			atomic_store(&exec_start, (long)time(NULL));
			mbt_real(p, w, real_out, sizeof real_out);
			atomic_store(&exec_start, 0);
			executions++;
			if (strcmp(model_out, real_out) != 0)
				return w;
		}
	return 0;
}

/* The model's outcome of p into model_out; 0, or -1 if unpredictable. */
static int predict(const struct mbt_prog *p)
{
	const char *why = NULL;
	return mbt_model(p, model_out, sizeof model_out, &why);
}

/* Generates the program of seed: the first predictable one of a short
 * series derived from it. */
static int gen_valid(struct mbt_prog *p, uint64_t seed)
{
	for (int a = 0; a < 64; a++) {
		mbt_gen(p, seed * 64 + (uint64_t)a);
		if (predict(p) == 0)
			return 0;
		rejected++;
		mbt_free(p);
	}
	return -1;
}

static void show_diff(void)
{
	/* Line by line: the model's line, then weft's, where they differ. */
	char *a = model_out, *b = real_out;
	while (*a || *b) {
		char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
		size_t la = ea ? (size_t)(ea - a) : strlen(a);
		size_t lb = eb ? (size_t)(eb - b) : strlen(b);
		if (la != lb || memcmp(a, b, la) != 0) {
			printf("  model: %.*s\n", (int)la, a);
			printf("  weft:  %.*s\n", (int)lb, b);
		}
		a += la + (ea ? 1 : 0);
		b += lb + (eb ? 1 : 0);
	}
}

static void report(const char *title, const struct mbt_prog *p, uint64_t seed,
	int w)
{
	mbt_print(p, text, sizeof text);
	printf("=== %s: seed %llu, %d worker%s, %d ops\n%s", title,
		(unsigned long long)seed, w, w > 1 ? "s" : "",
		mbt_count_nodes(p), text);
	printf("--- model:\n%s--- weft:\n%s--- differences:\n", model_out,
		real_out);
	show_diff();
	fflush(stdout);
}

/* Greedy delta debugging: apply each shrinking move to a copy; keep it
 * when the program stays predictable and still diverges. */
static void shrink(struct mbt_prog *p, uint64_t seed, int w)
{
	int progress = 1;
	memcpy(kept_out, real_out, sizeof kept_out);
	while (progress) {
		progress = 0;
		for (int i = 0;; i++) {
			struct mbt_prog q;
			mbt_copy(&q, p);
			if (!mbt_shrink_step(&q, i)) {
				mbt_free(&q);
				break;
			}
			int d = 0;
			if (predict(&q) == 0)
				d = diverges(&q, 3);
			if (d) {
				mbt_free(p);
				*p = q;
				w = d;
				memcpy(kept_out, real_out, sizeof kept_out);
				progress = 1;
				i--;
			} else {
				mbt_free(&q);
			}
		}
	}
	predict(p);
	memcpy(real_out, kept_out, sizeof real_out);
	report("shrunk reproducer", p, seed, w);
}

static int check_one(uint64_t seed, int verbose)
{
	struct mbt_prog p;
	atomic_store(&exec_seed, (unsigned long long)seed);
	if (gen_valid(&p, seed) < 0) {
		if (verbose)
			printf("seed %llu: no predictable program\n",
				(unsigned long long)seed);
		return 0;
	}
	programs++;
	if (verbose) {
		mbt_print(&p, text, sizeof text);
		printf("%s--- model:\n%s", text, model_out);
	}
	int w = diverges(&p, runs);
	if (w) {
		report("divergence", &p, seed, w);
		shrink(&p, seed, w);
	} else if (verbose) {
		printf("weft agrees at 1, 2 and 4 workers\n");
	}
	mbt_free(&p);
	return w != 0;
}

int main(int argc, char **argv)
{
	long count = 0, minutes = -1;
	uint64_t seed = (uint64_t)time(NULL);
	int replay = 0, verbose = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--long") && i + 1 < argc)
			minutes = atol(argv[++i]);
		else if (!strcmp(argv[i], "--replay") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
			replay = 1;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else {
			fprintf(stderr,
				"usage: %s --count N [--seed S] | --long "
				"MINUTES "
				"[--seed S] | --replay SEED [-v]  [--runs R]\n",
				argv[0]);
			return 2;
		}
	}
	const char *scale = getenv("MBT_SCALE");
	if (scale && *scale && count > 0) {
		count = count * atol(scale) / 100;
		if (count < 1)
			count = 1;
	}
	mbt_real_init();
	pthread_t wd;
	pthread_create(&wd, NULL, watchdog, NULL);
	pthread_detach(wd);
	long failed = 0;
	if (replay) {
		failed = check_one(seed, 1);
	} else if (minutes >= 0) {
		time_t end = time(NULL) + minutes * 60, next = time(NULL) + 60;
		printf("mbt: long mode, %ld min, first seed %llu\n", minutes,
			(unsigned long long)seed);
		for (uint64_t s = seed; time(NULL) < end; s++) {
			failed += check_one(s, verbose);
			if (time(NULL) >= next) {
				next += 60;
				printf("mbt: %ld programs, %ld executions, %ld "
				       "divergent, %ld rejected\n",
					programs, executions, failed, rejected);
				fflush(stdout);
			}
		}
	} else {
		if (count <= 0)
			count = 1000;
		printf("mbt: %ld programs from seed %llu\n", count,
			(unsigned long long)seed);
		for (long i = 0; i < count; i++)
			failed += check_one(seed + (uint64_t)i, verbose);
	}
	printf("mbt: %ld programs, %ld executions, %ld divergent, %ld "
	       "generated programs rejected as unpredictable\n",
		programs, executions, failed, rejected);
	mbt_real_fini();
	return failed ? 1 : 0;
}
