/* Semaphore and CapacityLimiter.
 *
 * Semaphore: a counter of permits with FIFO hand-off.
 *
 * State is {value, queue of waiters}, both under one spin lock, with the
 * invariant that waiters exist only while value == 0: acquire takes a
 * permit only when the queue is empty (so nobody overtakes a waiter), and
 * release gives its permit straight to the oldest waiter instead of
 * incrementing value (weft__waitq_grant).  Because the grant is decided
 * under the lock, a permit is always in exactly one place: the value, a
 * task that returned 0 from acquire, or the caller's hand that has not
 * released it yet.  A cancelled waiter removes its node before anybody
 * could grant it, so it took nothing; a waiter granted and cancelled at
 * the same moment returns 0 and owns the permit.
 *
 * release and try_acquire never park, so they work from any thread
 * (release from a plain thread readies the granted task through the
 * injection queue).  The bound check of release happens under the lock
 * and changes nothing when it fails.
 *
 * Lifetime: as in event.c, nwaiting keeps destroy away from a waiter
 * that has been woken but has not yet re-taken the lock.
 *
 * CapacityLimiter: the same hand-off with a count of borrowed tokens
 * against a changeable total, plus borrower tracking: a table of the
 * borrowers that hold or wait for a token, so that a borrower cannot
 * take two tokens and only a borrower can give one back.  Borrowers are
 * opaque pointers (a task, or whatever an offload thread uses), kept in
 * an open-addressing hash table (linear probing, backward-shift deletion,
 * load at most 1/2).
 *
 * A waiter's entry is inserted before it queues, and the table is grown
 * beforehand by the acquirer (allocation with the spin lock dropped), so
 * that a grant - done by a releaser or by set_total, possibly on a plain
 * thread - only flips the entry from waiting to borrowing and never
 * allocates: a grant cannot fail.  A cancelled waiter deletes its entry
 * under the same lock hold in which it left the queue.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "base/alloc.h"
#include "base/common.h"
#include "core/inspect.h"
#include "core/records.h"
#include "core/task.h"
#include "sync/waitq.h"
#include "weft/sync.h"

/* {======================================================= Semaphore */

struct weft_semaphore {
	weft__spin_t spin; /* guards everything below */
	size_t value;	   /* free permits; 0 while q is not empty */
	size_t max;	   /* upper bound of value; SIZE_MAX: none */
	weft__waitq_t q;
	size_t nwaiting; /* tasks inside acquire's slow path */
};

int weft_semaphore_create(weft_semaphore_t **out, size_t initial,
	size_t max_value)
{
	if (out == NULL || (max_value != 0 && initial > max_value))
		return -EINVAL;
	struct weft_semaphore *s = weft__alloc(sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	weft__spin_init(&s->spin);
	s->value = initial;
	s->max = max_value ? max_value : SIZE_MAX;
	s->q = (weft__waitq_t){ .what = "semaphore",
		.kind = WEFT__WAIT_SEMAPHORE };
	s->nwaiting = 0;
	*out = s;
	return 0;
}

int weft_semaphore_destroy(weft_semaphore_t *s)
{
	if (s == NULL)
		return -EINVAL;
	weft__spin_lock(&s->spin);
	bool busy = s->nwaiting != 0;
	weft__spin_unlock(&s->spin);
	if (busy)
		return -EBUSY;
	weft__free(s);
	return 0;
}

int weft_semaphore_acquire(weft_semaphore_t *s)
{
	if (s == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	weft__spin_lock(&s->spin);
	if (s->value > 0) {
		s->value--;
	} else {
		struct weft__wait_node n = { 0 };
		s->nwaiting++;
		rc = weft__waitq_wait(&s->spin, &s->q, &n, self);
		s->nwaiting--;
	}
	weft__spin_unlock(&s->spin);
	return rc;
}

int weft_semaphore_try_acquire(weft_semaphore_t *s)
{
	if (s == NULL)
		return -EINVAL;
	weft__spin_lock(&s->spin);
	int rc = -EAGAIN;
	if (s->value > 0) {
		s->value--;
		rc = 0;
	}
	weft__spin_unlock(&s->spin);
	return rc;
}

int weft_semaphore_release(weft_semaphore_t *s)
{
	if (s == NULL)
		return -EINVAL;
	weft__wakelist_t wl = { 0 };
	int rc = 0;
	weft__spin_lock(&s->spin);
	struct weft__wait_node *n = weft__waitq_first(&s->q);
	if (n)
		weft__waitq_grant(&s->q, n, &wl);
	else if (s->value < s->max)
		s->value++;
	else
		rc = WEFT_EMISUSE;
	weft__spin_unlock(&s->spin);
	weft__waitq_flush(&wl);
	return rc;
}

size_t weft_semaphore_value(const weft_semaphore_t *s)
{
	if (s == NULL)
		return 0;
	struct weft_semaphore *m = (struct weft_semaphore *)s;
	weft__spin_lock(&m->spin);
	size_t v = m->value;
	weft__spin_unlock(&m->spin);
	return v;
}

size_t weft_semaphore_waiting(const weft_semaphore_t *s)
{
	if (s == NULL)
		return 0;
	struct weft_semaphore *m = (struct weft_semaphore *)s;
	weft__spin_lock(&m->spin);
	size_t n = m->q.len;
	weft__spin_unlock(&m->spin);
	return n;
}
/* }======================================================= */

/* {======================================================= CapacityLimiter */

/* One borrower: holding a token, or queued for one (waiting). */
struct limiter_entry {
	const void *borrower; /* NULL: empty slot */
	bool waiting;
};

struct weft_limiter {
	weft__spin_t spin; /* guards everything below */
	size_t total;
	size_t borrowed; /* entries with !waiting */
	weft__waitq_t q; /* node->data is the borrower */
	size_t nwaiting; /* tasks inside acquire's slow path */
	/* Borrower table: cap is 0 or a power of two, and 2 * nentries <=
	 * cap; nentries == borrowed + q.len. */
	struct limiter_entry *tab;
	size_t cap, nentries;
};

static size_t limiter_home(const struct weft_limiter *l, const void *p)
{
	/* Fibonacci hashing: the low bits of a pointer are mostly zero. */
	uint64_t h = (uint64_t)(uintptr_t)p * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 29) & (l->cap - 1);
}

/* Slot of p, or SIZE_MAX. */
static size_t limiter_find(const struct weft_limiter *l, const void *p)
{
	if (l->cap == 0)
		return SIZE_MAX;
	/* Terminates: the load is at most 1/2, so an empty slot exists. */
	for (size_t i = limiter_home(l, p);; i = (i + 1) & (l->cap - 1)) {
		if (l->tab[i].borrower == p)
			return i;
		if (l->tab[i].borrower == NULL)
			return SIZE_MAX;
	}
}

/* p is not in the table and there is room for it. */
static void limiter_insert(struct weft_limiter *l, const void *p, bool waiting)
{
	size_t i = limiter_home(l, p);
	while (l->tab[i].borrower != NULL)
		i = (i + 1) & (l->cap - 1);
	l->tab[i] = (struct limiter_entry){ p, waiting };
	l->nentries++;
}

/* Backward-shift deletion: later entries of the probe run move up into
 * the hole unless their home lies cyclically in (hole, j]. */
static void limiter_erase(struct weft_limiter *l, size_t hole)
{
	size_t mask = l->cap - 1;
	for (size_t j = (hole + 1) & mask; l->tab[j].borrower != NULL;
		j = (j + 1) & mask) {
		size_t home = limiter_home(l, l->tab[j].borrower);
		bool stays = hole <= j ? (hole < home && home <= j)
				       : (hole < home || home <= j);
		if (!stays) {
			l->tab[hole] = l->tab[j];
			hole = j;
		}
	}
	l->tab[hole] = (struct limiter_entry){ NULL, false };
	l->nentries--;
}

/* Doubles the table.  Spin held on entry and return, dropped while
 * allocating, so the caller re-checks everything afterwards. */
static int limiter_grow(struct weft_limiter *l)
{
	size_t want = l->cap ? 2 * l->cap : 8;
	weft__spin_unlock(&l->spin);
	struct limiter_entry *fresh = weft__calloc(want, sizeof *fresh);
	weft__spin_lock(&l->spin);
	if (fresh == NULL)
		return -ENOMEM;
	struct limiter_entry *old = l->tab;
	size_t oldcap = l->cap;
	if (want <= oldcap) {
		/* Another acquirer grew it meanwhile. */
		old = fresh;
	} else {
		l->tab = fresh;
		l->cap = want;
		l->nentries = 0;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].borrower)
				limiter_insert(l, old[i].borrower,
					old[i].waiting);
	}
	/* Freed under the spin lock: rare (growth only), and free() waits
	 * on nothing that a holder of this lock could hold. */
	weft__free(old);
	return 0;
}

/* Grants free tokens to the oldest waiters.  Spin held. */
static void limiter_grant(struct weft_limiter *l, weft__wakelist_t *wl)
{
	struct weft__wait_node *n;
	while (l->borrowed < l->total && (n = weft__waitq_first(&l->q))) {
		size_t i = limiter_find(l, n->data);
		WEFT_ASSERT(i != SIZE_MAX && l->tab[i].waiting,
			"limiter waiter without its borrower entry");
		l->tab[i].waiting = false;
		l->borrowed++;
		weft__waitq_grant(&l->q, n, wl);
	}
}

/* Acquire for borrower; self is the waiting task (NULL only with try). */
static WEFT_FIBER_FN int limiter_acquire(struct weft_limiter *l,
	const void *borrower, struct weft_task *self, bool try)
{
	int rc = 0;
	weft__spin_lock(&l->spin);
	for (;;) {
		if (limiter_find(l, borrower) != SIZE_MAX) {
			rc = WEFT_EMISUSE;
			break;
		}
		/* FIFO: a free token goes to a queued waiter first; the
		 * cancelled ones queued do not count (they leave). */
		bool now = weft__waitq_first(&l->q) == NULL &&
			l->borrowed < l->total;
		if (!now && try) {
			rc = -EAGAIN;
			break;
		}
		if (2 * (l->nentries + 1) <= l->cap) {
			limiter_insert(l, borrower, !now);
			break;
		}
		rc = limiter_grow(l);
		if (rc < 0)
			break;
	}
	if (rc == 0) {
		bool waiting = l->tab[limiter_find(l, borrower)].waiting;
		if (!waiting) {
			l->borrowed++;
		} else {
			struct weft__wait_node n = { .data = (void *)borrower };
			l->nwaiting++;
			rc = weft__waitq_wait(&l->spin, &l->q, &n, self);
			l->nwaiting--;
			/* Not granted: nobody can grant us any more. */
			if (rc < 0)
				limiter_erase(l, limiter_find(l, borrower));
		}
	}
	weft__spin_unlock(&l->spin);
	return rc;
}

int weft_limiter_create(weft_limiter_t **out, size_t total)
{
	if (out == NULL || total == 0)
		return -EINVAL;
	struct weft_limiter *l = weft__alloc(sizeof *l);
	if (l == NULL)
		return -ENOMEM;
	*l = (struct weft_limiter){ .total = total };
	weft__spin_init(&l->spin);
	l->q.what = "capacity limiter";
	l->q.kind = WEFT__WAIT_LIMITER;
	*out = l;
	return 0;
}

int weft_limiter_destroy(weft_limiter_t *l)
{
	if (l == NULL)
		return -EINVAL;
	weft__spin_lock(&l->spin);
	bool busy = l->borrowed != 0 || l->nwaiting != 0;
	weft__spin_unlock(&l->spin);
	if (busy)
		return -EBUSY;
	weft__free(l->tab);
	weft__free(l);
	return 0;
}

int weft_limiter_acquire(weft_limiter_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	/* The borrower is the task's handle (weft/sync.h; records.h). */
	return limiter_acquire(l, weft__task_handle(self), self, false);
}

int weft_limiter_acquire_on_behalf(weft_limiter_t *l, const void *borrower)
{
	if (l == NULL || borrower == NULL)
		return -EINVAL;
	struct weft_task *self;
	int rc = weft__waitq_begin(&self);
	if (rc < 0)
		return rc;
	return limiter_acquire(l, borrower, self, false);
}

int weft_limiter_try_acquire(weft_limiter_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	return limiter_acquire(l, weft__task_handle(self), NULL, true);
}

int weft_limiter_try_acquire_on_behalf(weft_limiter_t *l, const void *borrower)
{
	if (l == NULL || borrower == NULL)
		return -EINVAL;
	return limiter_acquire(l, borrower, NULL, true);
}

int weft_limiter_release_on_behalf(weft_limiter_t *l, const void *borrower)
{
	if (l == NULL || borrower == NULL)
		return -EINVAL;
	weft__wakelist_t wl = { 0 };
	int rc = 0;
	weft__spin_lock(&l->spin);
	size_t i = limiter_find(l, borrower);
	if (i == SIZE_MAX || l->tab[i].waiting) {
		rc = WEFT_EMISUSE;
	} else {
		limiter_erase(l, i);
		l->borrowed--;
		limiter_grant(l, &wl);
	}
	weft__spin_unlock(&l->spin);
	weft__waitq_flush(&wl);
	return rc;
}

int weft_limiter_release(weft_limiter_t *l)
{
	if (l == NULL)
		return -EINVAL;
	struct weft_task *self = weft__task_current();
	if (self == NULL)
		return WEFT_ENOTFIBER;
	return weft_limiter_release_on_behalf(l, weft__task_handle(self));
}

int weft_limiter_set_total(weft_limiter_t *l, size_t total)
{
	if (l == NULL || total == 0)
		return -EINVAL;
	weft__wakelist_t wl = { 0 };
	weft__spin_lock(&l->spin);
	l->total = total;
	limiter_grant(l, &wl);
	weft__spin_unlock(&l->spin);
	weft__waitq_flush(&wl);
	return 0;
}

int weft_limiter_stats(const weft_limiter_t *l, weft_limiter_stats_t *out)
{
	if (l == NULL || out == NULL)
		return -EINVAL;
	struct weft_limiter *m = (struct weft_limiter *)l;
	weft__spin_lock(&m->spin);
	out->total = m->total;
	out->borrowed = m->borrowed;
	out->available = m->total > m->borrowed ? m->total - m->borrowed : 0;
	out->waiting = m->q.len;
	weft__spin_unlock(&m->spin);
	return 0;
}

/* }======================================================= */

/* {======================================================= dump */

void weft__semaphore_describe(const void *on, struct weft__wait_desc *d)
{
	struct weft_semaphore *s = WEFT__CONTAINER_OF((weft__waitq_t *)on,
		struct weft_semaphore, q);
	d->obj = s;
	weft__spin_lock(&s->spin);
	size_t value = s->value, queued = s->q.len;
	weft__spin_unlock(&s->spin);
	snprintf(d->text, sizeof d->text, "value=%zu waiters=%zu", value,
		queued);
}

void weft__limiter_describe(const void *on, struct weft__wait_desc *d)
{
	struct weft_limiter *l = WEFT__CONTAINER_OF((weft__waitq_t *)on,
		struct weft_limiter, q);
	d->obj = l;
	weft__spin_lock(&l->spin);
	size_t total = l->total, borrowed = l->borrowed;
	size_t queued = l->q.len;
	weft__spin_unlock(&l->spin);
	snprintf(d->text, sizeof d->text, "borrowed=%zu total=%zu waiters=%zu",
		borrowed, total, queued);
}

/* }======================================================= */
