/* Stress: many senders and receivers on every worker, random capacities,
 * item sizes, clones, try_* calls, deadlines and cancellations, for a
 * fixed time budget.  Exactly-once accounting per item: every item whose
 * send returned 0 was either received exactly once or, when every
 * receiver gave up early, handed to the drop callback exactly once when
 * the channel was freed; an item whose send failed (-ECANCELED,
 * WEFT_EBROKEN) appears nowhere.  Items of one sender reach one receiver
 * in the order they were sent.
 *
 * WEFT_TEST_SEED chooses the seed (printed); WEFT_STRESS_SECONDS the
 * budget for the three worker counts together (default 6, a quarter of
 * that under sanitizers). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define MAX_SENDERS 10
#define MAX_RECEIVERS 10
#define MAX_PER_SENDER 3000
#define SLOTS (MAX_SENDERS + MAX_RECEIVERS)

struct item {
	uint32_t sender, seq;
	uint64_t check; /* derived from sender and seq: no torn copies */
	uint64_t pad;	/* only in the big-item rounds */
};

static uint64_t item_check(uint32_t sender, uint32_t seq)
{
	return ((uint64_t)sender << 32 | seq) * UINT64_C(0x9e3779b97f4a7c15);
}

struct slot {
	atomic_flag lock;
	weft_scope_t *cur; /* under lock */
};

struct round {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	size_t item_size;
	size_t capacity;
	int nsend, nrecv, per_sender;
	bool give_up; /* receivers stop early: senders see EBROKEN */
	uint64_t seed;
	/* Per item (sender * MAX_PER_SENDER + seq). */
	atomic_uchar sent[MAX_SENDERS * MAX_PER_SENDER];
	atomic_uchar received[MAX_SENDERS * MAX_PER_SENDER];
	atomic_uchar dropped[MAX_SENDERS * MAX_PER_SENDER];
	struct slot slot[SLOTS];
	atomic_int done;
	atomic_long cancels, tries, broken;
};

struct actor {
	struct round *r;
	int index;
	uint64_t rng;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
};

static size_t item_index(const struct item *it)
{
	return (size_t)it->sender * MAX_PER_SENDER + it->seq;
}

static bool item_ok(const struct round *r, const struct item *it)
{
	return it->sender < (uint32_t)r->nsend &&
		it->seq < (uint32_t)r->per_sender &&
		it->check == item_check(it->sender, it->seq);
}

static void on_drop(void *p, void *ctx)
{
	struct round *r = ctx;
	struct item it;
	memcpy(&it, p, r->item_size);
	if (CHECK(item_ok(r, &it)))
		atomic_fetch_add(&r->dropped[item_index(&it)], 1);
}

static void slot_set(struct slot *s, weft_scope_t *v)
{
	while (atomic_flag_test_and_set(&s->lock))
		;
	s->cur = v;
	atomic_flag_clear(&s->lock);
}

/* One operation: sometimes try_*, else a blocking call in a scope that
 * the canceller may cancel, sometimes with a short deadline. */
static int op(struct actor *a, int slot, struct item *it, bool send)
{
	struct round *r = a->r;
	uint64_t x = weft_test_rand(&a->rng);
	if (x % 8 == 0) {
		atomic_fetch_add(&r->tries, 1);
		int rc = send ? weft_channel_try_send(a->tx, it)
			      : weft_channel_try_receive(a->rx, it);
		if (rc == -EAGAIN)
			weft_yield();
		return rc == -EAGAIN ? -ECANCELED : rc;
	}
	weft_scope_t *s;
	int64_t deadline = x % 8 == 1
		? weft_now() + (int64_t)(x >> 40) % (2 * WEFT_MSEC)
		: WEFT_FOREVER;
	if (!CHECK_EQ(weft_scope_open(&s, deadline, 0), 0))
		return -EIO;
	slot_set(&r->slot[slot], s);
	int rc = send ? weft_channel_send(a->tx, it)
		      : weft_channel_receive(a->rx, it);
	slot_set(&r->slot[slot], NULL);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	if (rc == -ECANCELED)
		atomic_fetch_add(&r->cancels, 1);
	return rc;
}

static int sender(void *arg)
{
	struct actor *a = arg;
	struct round *r = a->r;
	for (int seq = 0; seq < r->per_sender; seq++) {
		struct item it = { (uint32_t)a->index, (uint32_t)seq,
			item_check((uint32_t)a->index, (uint32_t)seq), 0 };
		int rc;
		while ((rc = op(a, a->index, &it, true)) == -ECANCELED)
			;
		if (rc == WEFT_EBROKEN) {
			CHECK(r->give_up);
			atomic_fetch_add(&r->broken, 1);
			break;
		}
		if (!CHECK_EQ(rc, 0))
			break;
		atomic_fetch_add(&r->sent[item_index(&it)], 1);
	}
	weft_channel_tx_release(a->tx);
	return 0;
}

static int receiver(void *arg)
{
	struct actor *a = arg;
	struct round *r = a->r;
	int64_t last[MAX_SENDERS];
	for (int i = 0; i < MAX_SENDERS; i++)
		last[i] = -1;
	long quota = r->give_up ? (long)(weft_test_rand(&a->rng) % 200) : -1;
	for (long n = 0; quota < 0 || n < quota; n++) {
		struct item it;
		memset(&it, 0xee, sizeof it);
		int rc = op(a, MAX_SENDERS + a->index, &it, false);
		if (rc == -ECANCELED) {
			n--;
			continue;
		}
		if (rc == WEFT_EEND)
			break;
		if (!CHECK_EQ(rc, 0) || !CHECK(item_ok(r, &it)))
			break;
		atomic_fetch_add(&r->received[item_index(&it)], 1);
		CHECK((int64_t)it.seq > last[it.sender]);
		last[it.sender] = it.seq;
	}
	/* Giving up early: close our end (the others may go on). */
	weft_channel_rx_release(a->rx);
	return 0;
}

static int canceller(void *arg)
{
	struct round *r = arg;
	uint64_t rng = r->seed ^ 0x5555;
	while (!atomic_load(&r->done)) {
		for (int i = 0; i < SLOTS; i++) {
			if (weft_test_rand(&rng) % 4)
				continue;
			struct slot *s = &r->slot[i];
			while (atomic_flag_test_and_set(&s->lock))
				;
			if (s->cur)
				weft_scope_cancel(s->cur, "stress");
			atomic_flag_clear(&s->lock);
		}
		weft_yield();
	}
	return 0;
}

static int round_root(void *arg)
{
	struct round *r = arg;
	CHECK_EQ(weft_channel_open_drop(&r->tx, &r->rx, r->item_size,
			 r->capacity, on_drop, r),
		0);
	struct actor s[MAX_SENDERS], q[MAX_RECEIVERS];
	weft_group_t *outer, *g;
	CHECK_EQ(weft_group_open(&outer), 0);
	CHECK_EQ(weft_group_spawn(outer, canceller, r), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < r->nrecv; i++) {
		q[i] = (struct actor){ r, i, r->seed + 100 + (uint64_t)i, r->tx,
			NULL };
		CHECK_EQ(weft_channel_rx_clone(r->rx, &q[i].rx), 0);
		CHECK_EQ(weft_group_spawn(g, receiver, &q[i]), 0);
	}
	for (int i = 0; i < r->nsend; i++) {
		s[i] = (struct actor){ r, i, r->seed + 200 + (uint64_t)i, NULL,
			NULL };
		CHECK_EQ(weft_channel_tx_clone(r->tx, &s[i].tx), 0);
		CHECK_EQ(weft_group_spawn(g, sender, &s[i]), 0);
	}
	weft_channel_tx_release(r->tx);
	weft_channel_rx_release(r->rx);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	atomic_store(&r->done, 1);
	CHECK_EQ(weft_group_join(outer, NULL), 0);
	return 0;
}

static const size_t caps[] = { 0, 1, 2, 7, 64, WEFT_CHANNEL_UNBOUNDED };

static void stress_run(unsigned workers, double seconds, unsigned seed)
{
	int64_t end = weft_now() + (int64_t)(seconds * 1e9);
	long rounds = 0, items = 0, cancels = 0, tries = 0, dropped = 0;
	struct round *r = malloc(sizeof *r);
	uint64_t rng = ((uint64_t)seed << 16) + workers;
	while (weft_now() < end) {
		memset(r, 0, sizeof *r);
		for (int i = 0; i < SLOTS; i++)
			atomic_flag_clear(&r->slot[i].lock);
		r->seed = weft_test_rand(&rng);
		r->capacity = caps[weft_test_rand(&rng) %
			(sizeof caps / sizeof caps[0])];
		r->item_size = weft_test_rand(&rng) % 2 ? 16
							: sizeof(struct item);
		r->nsend = 1 + (int)(weft_test_rand(&rng) % MAX_SENDERS);
		r->nrecv = 1 + (int)(weft_test_rand(&rng) % MAX_RECEIVERS);
		r->per_sender = 1 +
			(int)(weft_test_rand(&rng) %
				(uint64_t)weft_test_scale(MAX_PER_SENDER));
		r->give_up = weft_test_rand(&rng) % 4 == 0;
		assert_int_equal(weft_test_run(workers, round_root, r), 0);
		/* Exactly once: sent = received + dropped, each 0 or 1. */
		long total = 0;
		for (int snd = 0; snd < r->nsend; snd++) {
			for (int k = 0; k < r->per_sender; k++) {
				size_t i = (size_t)snd * MAX_PER_SENDER +
					(size_t)k;
				int sent = r->sent[i], got = r->received[i],
				    drop = r->dropped[i];
				if (sent > 1 || got + drop != sent)
					fail_msg("round %ld (seed %u): item "
						 "%d/%d sent %d received %d "
						 "dropped %d",
						rounds, seed, snd, k, sent, got,
						drop);
				total += sent;
				dropped += drop;
				if (!r->give_up)
					assert_int_equal(sent, 1);
			}
		}
		items += total;
		cancels += atomic_load(&r->cancels);
		tries += atomic_load(&r->tries);
		rounds++;
	}
	print_message("workers %u: %ld rounds, %ld items delivered exactly "
		      "once (%ld dropped at free), %ld cancelled operations, "
		      "%ld "
		      "try calls\n",
		workers, rounds, items, dropped, cancels, tries);
	free(r);
}

static void test_stress__channel_items_arrive_exactly_once(void **state)
{
	unsigned seed = weft_test_seed();
	stress_run(WEFT_TEST_WORKERS(state), weft_test_stress_seconds(6.0) / 3,
		seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_stress__channel_items_arrive_exactly_once),
	};
	return WEFT_RUN_TESTS(tests);
}
