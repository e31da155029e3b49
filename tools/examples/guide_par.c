/* docs/guide.md, "Fork-join calls". */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

/* The sum of v[lo, hi), split in halves down to 4096 values. */
struct part {
	const int64_t *v;
	size_t lo, hi;
	int64_t sum;
};

static int sum_part(void *arg)
{
	struct part *p = arg;
	if (p->hi - p->lo <= 4096) {
		int64_t s = 0;
		for (size_t i = p->lo; i < p->hi; i++) {
			if (p->v[i] < 0)
				return weft_fail(-EINVAL,
					"negative value at %zu", i);
			s += p->v[i];
		}
		p->sum = s;
		return 0;
	}
	size_t mid = p->lo + (p->hi - p->lo) / 2;
	struct part a = { p->v, p->lo, mid, 0 };
	struct part b = { p->v, mid, p->hi, 0 };
	weft_error_t *err = NULL;
	int rc = weft_par(sum_part, &a, sum_part, &b, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err); /* nests under this half */
	p->sum = a.sum + b.sum;
	return rc;
}

/* Prints the failures at the leaves of e's tree. */
static void print_leaves(const weft_error_t *e)
{
	for (size_t i = 0; i < weft_error_count(e); i++) {
		const weft_error_t *nested = weft_error_nested_at(e, i);
		if (nested != NULL)
			print_leaves(nested);
		else
			printf("failed: %s: %s\n",
				weft_err_name(weft_error_code_at(e, i)),
				weft_error_message_at(e, i));
	}
}

static int main_task(void *arg)
{
	(void)arg;
	size_t n = 1000000;
	int64_t *v = malloc(n * sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = (int64_t)i + 1;
	struct part all = { v, 0, n, 0 };
	int rc = sum_part(&all);
	printf("sum: %lld (%s)\n", (long long)all.sum, weft_err_name(rc));

	/* One bad value: its failure reaches the top, wherever it ran. */
	v[123456] = -1;
	struct part left = { v, 0, n / 2, 0 }, right = { v, n / 2, n, 0 };
	weft_error_t *err = NULL;
	rc = weft_par(sum_part, &left, sum_part, &right, &err);
	if (rc == WEFT_ECHILD_FAILED)
		print_leaves(err);
	weft_error_free(err);
	free(v);
	return 0;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
