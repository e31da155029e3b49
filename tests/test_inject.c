/* Tests for the paths by which work enters a runtime from outside its
 * workers: the injection queue (runtime/core/inject.c, a lock-free
 * multi-producer queue whose consumers take turns) and the foreign record
 * caches of threads that are not workers (runtime/core/records.c).
 *
 * The queue tests drive weft__inject_* directly with task records the
 * test owns (only their `next` link and `arg` are used) from several
 * producer threads, and check that every task comes out exactly once,
 * each producer's in its order, and that the emptiness hint ends false.
 * cmocka asserts only work on the main thread: the other threads record
 * failures in atomics.
 *
 * The foreign-cache tests spawn from a plain thread into a retained group
 * and look at the arena's fields (runtime.h): records are taken a batch
 * per lock, a cache still holding records when its runtime is destroyed
 * is emptied by the destroy (no leak, no record past the runtime), and a
 * thread's exit gives its records back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/inject.h"
#include "core/records.h"
#include "core/task.h"
#include "runtime.h"
#include "weft.h"

#include "support.h"

/* {======================================================= queue */

#define Q_PRODUCERS 4

struct q_fixture {
	weft__inject_t q;
	struct weft_task *tasks; /* Q_PRODUCERS x per */
	long per;		 /* tasks per producer */
	atomic_long popped;
	atomic_int failures;
	atomic_uchar *seen;	/* per task: times popped */
	long last[Q_PRODUCERS]; /* single consumer: last seq popped */
	atomic_int go;
};

struct q_producer {
	struct q_fixture *f;
	int id;
};

static long q_index(struct q_fixture *f, int producer, long seq)
{
	return (long)producer * f->per + seq;
}

/* Pushes its tasks in order: one at a time, and every fourth time a list
 * of three (weft__inject_push_list, the I/O thread's batch). */
static void *q_produce(void *arg)
{
	struct q_producer *p = arg;
	struct q_fixture *f = p->f;
	while (!atomic_load(&f->go))
		;
	long seq = 0;
	while (seq < f->per) {
		struct weft_task *t = &f->tasks[q_index(f, p->id, seq)];
		if (seq % 4 == 3 && seq + 3 <= f->per) {
			struct weft_task *b = t + 1, *c = t + 2;
			t->next = b;
			b->next = c;
			c->next = NULL;
			weft__inject_push_list(&f->q, t, c, 3);
			seq += 3;
		} else {
			weft__inject_push(&f->q, t);
			seq++;
		}
	}
	return NULL;
}

struct q_consumer {
	struct q_fixture *f;
	bool ordered; /* the only consumer: check each producer's order */
};

static void *q_consume(void *arg)
{
	struct q_consumer *c = arg;
	struct q_fixture *f = c->f;
	long total = Q_PRODUCERS * f->per;
	while (!atomic_load(&f->go))
		;
	while (atomic_load(&f->popped) < total) {
		struct weft_task *t = weft__inject_pop(&f->q);
		if (t == NULL)
			continue;
		long i = t - f->tasks;
		if (i < 0 || i >= total || t->next != NULL) {
			atomic_fetch_add(&f->failures, 1);
			continue;
		}
		atomic_fetch_add(&f->seen[i], 1);
		if (c->ordered) {
			int producer = (int)(i / f->per);
			long seq = i % f->per;
			if (seq != f->last[producer] + 1)
				atomic_fetch_add(&f->failures, 1);
			f->last[producer] = seq;
		}
		atomic_fetch_add(&f->popped, 1);
	}
	return NULL;
}

/* Q_PRODUCERS producers, `consumers` consumers, per tasks each. */
static void q_run(int consumers, long per)
{
	struct q_fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(weft__inject_init(&f->q), 0);
	assert_false(weft__inject_nonempty(&f->q));
	assert_null(weft__inject_pop(&f->q));
	f->per = per;
	f->tasks = calloc((size_t)(Q_PRODUCERS * per), sizeof *f->tasks);
	f->seen = calloc((size_t)(Q_PRODUCERS * per), sizeof *f->seen);
	assert_non_null(f->tasks);
	assert_non_null(f->seen);
	for (int i = 0; i < Q_PRODUCERS; i++)
		f->last[i] = -1;
	pthread_t pt[Q_PRODUCERS], ct[4];
	struct q_producer ps[Q_PRODUCERS];
	struct q_consumer cs[4];
	for (int i = 0; i < Q_PRODUCERS; i++) {
		ps[i] = (struct q_producer){ .f = f, .id = i };
		assert_int_equal(pthread_create(&pt[i], NULL, q_produce,
					 &ps[i]),
			0);
	}
	for (int i = 0; i < consumers; i++) {
		cs[i] = (struct q_consumer){ .f = f,
			.ordered = consumers == 1 };
		assert_int_equal(pthread_create(&ct[i], NULL, q_consume,
					 &cs[i]),
			0);
	}
	atomic_store(&f->go, 1);
	for (int i = 0; i < Q_PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	for (int i = 0; i < consumers; i++)
		pthread_join(ct[i], NULL);
	assert_int_equal(atomic_load(&f->failures), 0);
	for (long i = 0; i < Q_PRODUCERS * per; i++)
		assert_int_equal(atomic_load(&f->seen[i]), 1);
	if (consumers == 1)
		for (int i = 0; i < Q_PRODUCERS; i++)
			assert_int_equal(f->last[i], per - 1);
	/* Drained: the hint says so, and the stub is back at both ends. */
	assert_false(weft__inject_nonempty(&f->q));
	assert_null(weft__inject_pop(&f->q));
	weft__inject_fini(&f->q);
	free(f->seen);
	free(f->tasks);
	free(f);
}

static void test_inject__producers_one_consumer_fifo(void **state)
{
	(void)state;
	q_run(1, weft_test_scale(50000));
}

static void test_inject__producers_two_consumers_exactly_once(void **state)
{
	(void)state;
	q_run(2, weft_test_scale(50000));
}

/* The consumer's corner cases, single-threaded: the last task out puts
 * the stub back; a push after that is found; the hint follows. */
static void test_inject__last_task_and_refill(void **state)
{
	(void)state;
	weft__inject_t q;
	struct weft_task a, b, c;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	memset(&c, 0, sizeof c);
	assert_int_equal(weft__inject_init(&q), 0);
	weft__inject_push(&q, &a);
	assert_true(weft__inject_nonempty(&q));
	assert_ptr_equal(weft__inject_pop(&q), &a);
	assert_false(weft__inject_nonempty(&q));
	assert_null(weft__inject_pop(&q));
	weft__inject_push(&q, &b);
	weft__inject_push(&q, &c);
	assert_ptr_equal(weft__inject_pop(&q), &b);
	assert_true(weft__inject_nonempty(&q));
	weft__inject_push(&q, &a);
	assert_ptr_equal(weft__inject_pop(&q), &c);
	assert_ptr_equal(weft__inject_pop(&q), &a);
	assert_null(weft__inject_pop(&q));
	assert_false(weft__inject_nonempty(&q));
	weft__inject_fini(&q);
}

/* A pop during another consumer's turn returns at once, empty-handed,
 * and leaves the queue as it was: the next pop, in a turn of its own,
 * takes the task.  (With the mutex it replaces, the pop would wait.) */
static void test_inject__pop_in_another_turn_passes(void **state)
{
	(void)state;
	weft__inject_t q;
	struct weft_task a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	assert_int_equal(weft__inject_init(&q), 0);
	weft__inject_push(&q, &a);
	weft__inject_push(&q, &b);
	/* Another consumer's turn under way (white box: its flag). */
	atomic_store(&q.busy, true);
	assert_null(weft__inject_pop(&q));
	assert_true(weft__inject_nonempty(&q));
	atomic_store(&q.busy, false);
	assert_ptr_equal(weft__inject_pop(&q), &a);
	/* The pop ended its turn: the next one gets its own. */
	assert_false(atomic_load(&q.busy));
	assert_ptr_equal(weft__inject_pop(&q), &b);
	assert_null(weft__inject_pop(&q));
	assert_false(atomic_load(&q.busy));
	weft__inject_fini(&q);
}

/* }======================================================= */

/* {======================================================= foreign caches */

/* A plain thread that spawns on request: the main thread or a root task
 * posts (group, count, event), the thread spawns count tasks into the
 * group and sets the event. */
struct spawner {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	weft_group_t *g; /* under lock: a request */
	long count;
	weft_event_t *done;
	bool quit;
	long sets; /* under lock: weft_event_set calls that returned */
	atomic_long ran;
	int rc; /* the first failed spawn's code */
	/* Set by a root that wants every task of its round alive at once:
	 * the tasks wait for it, and the root sets it once the thread has
	 * spawned them all.  NULL otherwise. */
	weft_event_t *gate;
};

static int spawner_task(void *arg)
{
	struct spawner *s = arg;
	if (s->gate)
		CHECK_EQ(weft_event_wait(s->gate), 0);
	atomic_fetch_add(&s->ran, 1);
	return 0;
}

static void *spawner_thread(void *arg)
{
	struct spawner *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->g == NULL && !s->quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->g == NULL)
			break;
		weft_group_t *g = s->g;
		long n = s->count;
		weft_event_t *done = s->done;
		s->g = NULL;
		pthread_mutex_unlock(&s->lock);
		for (long i = 0; i < n; i++) {
			int rc = weft_group_spawn(g, spawner_task, s);
			if (rc < 0 && s->rc == 0)
				s->rc = rc;
		}
		weft_event_set(done);
		pthread_mutex_lock(&s->lock);
		/* Past the set: the event and the runtime may go now. */
		s->sets++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Root: has the spawner thread spawn `count` tasks into a retained group
 * of this task, waits until it has, and joins. */
struct spawn_req {
	struct spawner *s;
	long count;
	bool hold;	    /* every task alive at once (see `gate`) */
	weft_event_t *done; /* destroyed by the main thread */
};

static int spawn_root(void *arg)
{
	struct spawn_req *r = arg;
	struct spawner *s = r->s;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	weft_event_t *done;
	CHECK_EQ(weft_event_create(&done), 0);
	r->done = done;
	CHECK_EQ(weft_group_retain(g), 0);
	weft_event_t *gate = NULL;
	if (r->hold)
		CHECK_EQ(weft_event_create(&gate), 0);
	pthread_mutex_lock(&s->lock);
	s->g = g;
	s->count = r->count;
	s->done = done;
	/* Read by the tasks, which the thread spawns after taking the
	 * request under the lock. */
	s->gate = gate;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	CHECK_EQ(weft_event_wait(done), 0);
	if (gate)
		CHECK_EQ(weft_event_set(gate), 0);
	weft_group_release(g);
	rc = weft_group_join(g, NULL);
	/* Every task ended: nobody reads the gate any more. */
	s->gate = NULL;
	if (gate)
		weft_event_destroy(gate);
	return rc;
}

static void spawner_start(struct spawner *s, pthread_t *th)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	assert_int_equal(pthread_create(th, NULL, spawner_thread, s), 0);
}

static void spawner_stop(struct spawner *s, pthread_t th)
{
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(th, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	assert_int_equal(s->rc, 0);
}

static void spawn_from_thread_opt(weft_runtime_t *rt, struct spawner *s,
	long count, bool hold);

static void spawn_from_thread(weft_runtime_t *rt, struct spawner *s, long count)
{
	spawn_from_thread_opt(rt, s, count, false);
}

static void spawn_from_thread_opt(weft_runtime_t *rt, struct spawner *s,
	long count, bool hold)
{
	long before = atomic_load(&s->ran);
	pthread_mutex_lock(&s->lock);
	long sets = s->sets;
	pthread_mutex_unlock(&s->lock);
	struct spawn_req r = { .s = s, .count = count, .hold = hold };
	assert_int_equal(weft_runtime_run(rt, spawn_root, &r, NULL), 0);
	assert_int_equal(atomic_load(&s->ran) - before, count);
	/* The spawner may still be inside weft_event_set (it woke the root
	 * before returning): wait until it is out before the event or the
	 * runtime goes. */
	pthread_mutex_lock(&s->lock);
	while (s->sets == sets)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	weft_event_destroy(r.done);
}

/* rt's arena (runtime.h), read by the main thread while no root runs. */
static struct weft__record_arena *arena_of(weft_runtime_t *rt)
{
	return &((struct weft_runtime *)rt)->tasks;
}

/* How many foreign caches hold rt's records (main thread, no root
 * running: the threads that list them are idle or gone). */
static int foreign_count(weft_runtime_t *rt)
{
	int n = 0;
	for (struct weft__record_fcache *c = arena_of(rt)->foreign; c;
		c = c->next)
		n++;
	return n;
}

/* A plain thread takes its task records a batch per lock of the arena,
 * not one per spawn. */
static void test_inject__foreign_records_come_in_batches(void **state)
{
	weft_runtime_t *rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	struct spawner s;
	pthread_t th;
	spawner_start(&s, &th);
	/* The first round makes the records, all alive at once (with
	 * tasks that end as fast as they are spawned, a few hundred records
	 * would go round); they end free in the arena or in the workers'
	 * caches (at most WEFT__RECORD_CACHE_MAX each).  2000, not more:
	 * each live task holds a stack mapping, and TSan adds its own per
	 * fiber, under the process's map count. */
	spawn_from_thread_opt(rt, &s, 2000, true);
	/* The second takes half of what the arena holds now: recycled
	 * records only (WEFT_DEBUG builds hand out a record's first life
	 * one at a time, a fault-injection point: records.c). */
	pthread_mutex_lock(&arena_of(rt)->lock);
	long n = (long)arena_of(rt)->nfree / 2;
	pthread_mutex_unlock(&arena_of(rt)->lock);
	assert_true(n >= 2 * WEFT__RECORD_BATCH);
	size_t before = atomic_load(&arena_of(rt)->foreign_refills);
	spawn_from_thread(rt, &s, n);
	size_t refills = atomic_load(&arena_of(rt)->foreign_refills) - before;
	/* Batches of WEFT__RECORD_BATCH (a batch may come short when the
	 * workers hold many records: a bound of one per 16 spawns).  One
	 * lock per spawn would be n. */
	assert_true(refills * 16 <= (size_t)n);
	spawner_stop(&s, th);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

/* The known runs at the front of a's free list (records.c, "Segments"),
 * each checked against the list: its tail is where its length says.
 * Main thread, no root running. */
static size_t arena_segments_checked(struct weft__record_arena *a)
{
	pthread_mutex_lock(&a->lock);
	void *p = a->free;
	size_t checked = 0;
	for (size_t i = 0; i < a->nseg; i++) {
		const struct weft__record_seg
			*seg = &a->segs[(a->seg_top + WEFT__RECORD_SEGS - i) %
				WEFT__RECORD_SEGS];
		for (size_t j = 1; j < seg->n && p != NULL; j++)
			p = *(void **)p;
		if (p == NULL || p != seg->tail)
			break;
		p = *(void **)p;
		checked++;
	}
	size_t nseg = a->nseg;
	pthread_mutex_unlock(&a->lock);
	assert_int_equal(checked, nseg);
	return checked;
}

/* A plain thread's exit gives its cached records back as a known run at
 * the front of the free list: the runs after it stay known, and the
 * next refill takes the run whole instead of walking it record by
 * record. */
static void test_inject__a_foreign_threads_exit_keeps_the_runs_known(
	void **state)
{
	weft_runtime_t *rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	struct weft__record_arena *a = arena_of(rt);
	struct spawner s;
	pthread_t th;
	spawner_start(&s, &th);
	/* Records made first (first lives come one at a time in WEFT_DEBUG
	 * builds), then spawns from recycled ones, in batches: the cache
	 * keeps what its last batch had left. */
	spawn_from_thread_opt(rt, &s, 1000, true);
	spawn_from_thread(rt, &s, WEFT__RECORD_BATCH + 7);
	/* The spawner's cache, and the main thread's (it made the roots):
	 * the one that goes at the spawner's exit is the spawner's. */
	int caches = foreign_count(rt);
	struct weft__record_fcache *c[8];
	unsigned n[8];
	assert_true(caches >= 1 && caches <= 8);
	int k = 0;
	for (struct weft__record_fcache *x = a->foreign; x; x = x->next) {
		c[k] = x;
		n[k++] = x->n;
	}
	spawner_stop(&s, th);
	assert_int_equal(foreign_count(rt), caches - 1);
	unsigned left = 0;
	for (int i = 0; i < caches; i++) {
		bool listed = false;
		for (struct weft__record_fcache *x = a->foreign; x; x = x->next)
			listed |= x == c[i];
		if (!listed)
			left = n[i];
	}
	size_t known = arena_segments_checked(a);
	if (left > 0) {
		assert_true(known >= 1);
		assert_int_equal(a->segs[a->seg_top].n, left);
	}
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

/* A thread whose cache holds a runtime's records when the runtime is
 * destroyed loses them to the destroy (no leak: the leak check counts
 * them), and its next spawn, into a new runtime (perhaps at the same
 * address), starts a fresh cache; its exit gives that one back. */
static void test_inject__destroy_takes_foreign_records_back(void **state)
{
	unsigned workers = WEFT_TEST_WORKERS(state);
	weft_runtime_t *a = weft_test_runtime_create(workers);
	struct spawner s;
	pthread_t th;
	spawner_start(&s, &th);
	spawn_from_thread(a, &s, 4000);
	spawn_from_thread(a, &s, 300);
	/* The thread is idle between requests, its cache listed on a's
	 * arena (records taken and not all used). */
	assert_non_null(arena_of(a)->foreign);
	assert_int_equal(weft_runtime_destroy(a), 0);
	weft_test_assert_no_leaks();
	weft_runtime_t *b = weft_test_runtime_create(workers);
	spawn_from_thread(b, &s, 4000);
	spawn_from_thread(b, &s, 300);
	/* Two caches listed: the spawner's and this thread's (which made
	 * the root tasks of weft_runtime_run). */
	assert_int_equal(foreign_count(b), 2);
	/* The thread's exit returns its records and unlists its cache. */
	spawner_stop(&s, th);
	assert_int_equal(foreign_count(b), 1);
	assert_int_equal(weft_runtime_destroy(b), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= arena trim */

/* Readers that may look at any record at any time, run beside the trims
 * and the reuse of released chunks: snapshots of every live task, and the
 * counters (which scan the records too). */
struct snap_reader {
	weft_runtime_t *rt;
	atomic_bool stop;
	atomic_long scans;
	atomic_int bad;
};

static void *snap_reader_thread(void *arg)
{
	struct snap_reader *r = arg;
	weft_task_info_t info[64];
	while (!atomic_load(&r->stop)) {
		size_t n = 0;
		if (weft_all_tasks(r->rt, info, 64, &n) < 0)
			atomic_fetch_add(&r->bad, 1);
		for (size_t i = 0; i < n && i < 64; i++)
			if (info[i].id == 0)
				atomic_fetch_add(&r->bad, 1);
		weft_runtime_stats_t st;
		if (weft_runtime_stats(r->rt, &st) < 0)
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->scans, 1);
	}
	return NULL;
}

static int trim_child(void *arg)
{
	(void)arg;
	return 0;
}

/* Spawns n children at once (one worker: none runs before the join),
 * keeping a handle of the first, then joins. */
struct burst {
	long n;
	weft_task_t *first;
};

static int burst_root(void *arg)
{
	struct burst *b = arg;
	weft_group_t *g;
	int rc = weft_group_open(&g);
	if (rc < 0)
		return rc;
	weft_spawn_opts_t o = { .handle = &b->first };
	CHECK_EQ(weft_group_spawn_opts(g, trim_child, NULL, &o), 0);
	/* Named (a copied name): each child gets its record at the spawn,
	 * so that all of them exist at once (a plain owner spawn would be a
	 * frame until it starts: core/frame.c). */
	for (long i = 1; i < b->n; i++)
		CHECK_EQ(weft_group_spawn_named(g, "burst", trim_child, NULL),
			0);
	return weft_group_join(g, NULL);
}

/* Waits (boundedly) until the arena has released chunks and its resident
 * bytes are at most `most`: the worker trims as it goes idle. */
static bool arena_trimmed(struct weft__record_arena *a, size_t most)
{
	for (int i = 0; i < 1000; i++) {
		/* Under the lock: a pass updates both counters in it. */
		pthread_mutex_lock(&a->lock);
		bool done = atomic_load(&a->released_total) > 0 &&
			atomic_load(&a->resident) <= most;
		pthread_mutex_unlock(&a->lock);
		if (done)
			return true;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* How many chunks a has. */
static size_t arena_chunks(struct weft__record_arena *a)
{
	pthread_mutex_lock(&a->lock);
	size_t n = a->nchunks;
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* A record in the middle of a released chunk of a (whose pages were
 * given back), or NULL. */
static struct weft_task *released_record(struct weft__record_arena *a)
{
	struct weft_task *t = NULL;
	pthread_mutex_lock(&a->lock);
	for (struct weft__record_chunk *c = weft__record_arena_first(a); c;
		c = c->next)
		if (c->released)
			t = &c->recs[c->nrec / 2];
	pthread_mutex_unlock(&a->lock);
	return t;
}

/* After a burst of tasks that existed at once, the idle runtime gives the
 * pages of its free record chunks back (resident bytes drop); snapshots
 * running meanwhile see no task; a handle whose record was in a released
 * chunk is still reported stale, also after the chunk is used again by
 * the next burst, which works as the first did. */
static void test_inject__idle_arena_returns_pages(void **state)
{
	(void)state;
	weft_runtime_t *rt = weft_test_runtime_create(1);
	struct weft__record_arena *a = arena_of(rt);
	struct snap_reader r = { .rt = rt };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, snap_reader_thread, &r), 0);
	/* Not scaled down under the sanitizers: the chunks must outnumber
	 * what the worker's cache (up to WEFT__RECORD_CACHE_MAX records,
	 * from any chunk) can keep from being wholly free.  Empty tasks run
	 * inline by the join: cheap. */
	long n = 20000;
	struct burst b = { .n = n };
	assert_int_equal(weft_runtime_run(rt, burst_root, &b, NULL), 0);
	size_t peak = atomic_load(&a->resident);
	assert_true(peak >= (size_t)n * sizeof(struct weft_task));
	assert_true(arena_trimmed(a, peak / 2));
	/* The rebuilt free list's runs are measured again, a batch each
	 * from the front, as many as fit (records.c, the trim). */
	size_t fits = a->nfree / WEFT__RECORD_BATCH;
	assert_int_equal(arena_segments_checked(a),
		fits < WEFT__RECORD_SEGS ? fits : WEFT__RECORD_SEGS);
	/* The first child's record: freed when its handle goes, and the
	 * handle is stale from then on, whether or not its chunk was
	 * released (it is, unless it sits in the worker's cache). */
	weft_task_t *h = b.first;
	weft_task_release(h);
	bool was = weft__misuse_set_abort(false);
	assert_int_equal(weft_task_retain(h), WEFT_EMISUSE);
	/* A record whose pages were given back reads as zeros: not live,
	 * and the handle of its first life (generation 1) is stale. */
	struct weft_task *rec = released_record(a);
	assert_non_null(rec);
	assert_int_equal(atomic_load(&rec->insp_id), 0);
	weft_task_t *hr = weft__handle_make(rec, 1);
	assert_int_equal(weft_task_retain(hr), WEFT_EMISUSE);
	/* A second burst takes the released chunks back first: at most one
	 * new chunk, not the ~37 the first burst needed (this thread's
	 * foreign cache may now keep a batch of up to WEFT__RECORD_BATCH
	 * records aside, where the first burst's root took a single first
	 * life: records.c, record_fresh_head). */
	size_t released = atomic_load(&a->released_total);
	size_t chunks = arena_chunks(a);
	assert_int_equal(weft_runtime_run(rt, burst_root, &b, NULL), 0);
	assert_true(arena_chunks(a) <= chunks + 1);
	weft_task_release(b.first);
	assert_int_equal(weft_task_retain(h), WEFT_EMISUSE);
	/* Reused: its generation went on from above its old ones. */
	assert_true(atomic_load(&rec->gen) > 1);
	assert_int_equal(weft_task_retain(hr), WEFT_EMISUSE);
	/* And it is released again once idle. */
	assert_true(arena_trimmed(a, peak / 2));
	assert_true(atomic_load(&a->released_total) > released);
	assert_int_equal(weft_task_retain(h), WEFT_EMISUSE);
	weft__misuse_set_abort(was);
	for (int i = 0; i < 1000 && atomic_load(&r.scans) == 0; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&r.bad), 0);
	assert_true(atomic_load(&r.scans) > 0);
	size_t live = 1;
	assert_int_equal(weft_all_tasks(rt, NULL, 0, &live), 0);
	assert_int_equal(live, 0);
	assert_int_equal(weft_runtime_destroy(rt), 0);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inject__producers_one_consumer_fifo),
		cmocka_unit_test(
			test_inject__producers_two_consumers_exactly_once),
		cmocka_unit_test(test_inject__last_task_and_refill),
		cmocka_unit_test(test_inject__pop_in_another_turn_passes),
		WEFT_TEST(test_inject__foreign_records_come_in_batches),
		WEFT_TEST(test_inject__destroy_takes_foreign_records_back),
		WEFT_TEST(
			test_inject__a_foreign_threads_exit_keeps_the_runs_known),
		cmocka_unit_test(test_inject__idle_arena_returns_pages),
	};
	return WEFT_RUN_TESTS(tests);
}
