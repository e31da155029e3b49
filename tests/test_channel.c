/* Channels (include/weft/channel.h): docs/semantics.md rules 41-42.
 *
 * Every concurrent test runs at 1, 2 and 4 workers.  Waiting for another
 * task to reach a state (parked in a send, say) polls the channel's
 * statistics with yields, bounded in time only to prove liveness. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define LIVENESS (20 * WEFT_SEC)

static int join(weft_group_t *g)
{
	weft_error_t *err = NULL;
	int rc = weft_group_join(g, &err);
	weft_error_free(err);
	return rc;
}

enum stat_field { WAITING_SEND, WAITING_RECV, BUFFERED };

static size_t stat_of(weft_channel_rx_t *rx, enum stat_field f)
{
	weft_channel_stats_t st;
	CHECK_EQ(weft_channel_rx_stats(rx, &st), 0);
	switch (f) {
	case WAITING_SEND: return st.waiting_send;
	case WAITING_RECV: return st.waiting_recv;
	default: return st.buffered;
	}
}

/* Yields until the field equals want; CHECK-fails after LIVENESS. */
static int wait_stat(weft_channel_rx_t *rx, enum stat_field f, size_t want)
{
	int64_t end = weft_now() + LIVENESS;
	while (stat_of(rx, f) != want) {
		if (!CHECK(weft_now() < end))
			return -1;
		weft_yield();
	}
	return 0;
}

static const size_t capacities[] = { 0, 1, 5, WEFT_CHANNEL_UNBOUNDED };
#define NCAPS (sizeof capacities / sizeof capacities[0])

/* {======================================================= basic order */

struct pipe {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	long n;
	atomic_int done;
};

static int send_n_then_release(void *arg)
{
	struct pipe *p = arg;
	for (long i = 0; i < p->n; i++)
		CHECK_EQ(weft_channel_send(p->tx, &i), 0);
	atomic_store(&p->done, 1);
	weft_channel_tx_release(p->tx);
	return 0;
}

static int rendezvous_root(void *arg)
{
	(void)arg;
	struct pipe p = { .n = 1 };
	CHECK_EQ(weft_channel_open(&p.tx, &p.rx, sizeof(long), 0), 0);
	long v = 7;
	/* Nobody receives: a rendezvous cannot take the item. */
	CHECK_EQ(weft_channel_try_send(p.tx, &v), -EAGAIN);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, send_n_then_release, &p), 0);
	/* The sender parks until we receive: its send has not returned. */
	wait_stat(p.rx, WAITING_SEND, 1);
	CHECK_EQ(atomic_load(&p.done), 0);
	CHECK_EQ(stat_of(p.rx, BUFFERED), 0);
	CHECK_EQ(weft_channel_receive(p.rx, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(weft_channel_receive(p.rx, &v), WEFT_EEND);
	CHECK_EQ(atomic_load(&p.done), 1);
	CHECK_EQ(join(g), 0);
	weft_channel_rx_release(p.rx);
	return 0;
}

WEFT_TEST_ROOT(channel, rendezvous_send_completes_only_when_received,
	rendezvous_root, NULL)

static int bounded_root(void *arg)
{
	(void)arg;
	struct pipe p = { .n = 200 };
	CHECK_EQ(weft_channel_open(&p.tx, &p.rx, sizeof(long), 4), 0);
	weft_channel_stats_t st;
	CHECK_EQ(weft_channel_tx_stats(p.tx, &st), 0);
	CHECK_EQ(st.capacity, 4);
	CHECK_EQ(st.open_send_ends, 1);
	CHECK_EQ(st.open_recv_ends, 1);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, send_n_then_release, &p), 0);
	/* The sender fills the buffer and parks on the fifth item. */
	wait_stat(p.rx, WAITING_SEND, 1);
	CHECK_EQ(stat_of(p.rx, BUFFERED), 4);
	long v;
	for (long i = 0; i < p.n; i++) {
		CHECK_EQ(weft_channel_receive(p.rx, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(weft_channel_receive(p.rx, &v), WEFT_EEND);
	CHECK_EQ(join(g), 0);
	weft_channel_rx_release(p.rx);
	return 0;
}

WEFT_TEST_ROOT(channel, bounded_keeps_order_and_parks_when_full, bounded_root,
	NULL)

static int unbounded_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int),
			 WEFT_CHANNEL_UNBOUNDED),
		0);
	/* Move the ring's head first, so growing has to linearise. */
	int v;
	for (int i = 0; i < 10; i++)
		CHECK_EQ(weft_channel_send(tx, &i), 0);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(weft_channel_receive(rx, &v), 0);
		CHECK_EQ(v, i);
	}
	/* Never waits, however many items nobody receives yet. */
	for (int i = 0; i < 5000; i++)
		CHECK_EQ(weft_channel_send(tx, &i), 0);
	CHECK_EQ(stat_of(rx, BUFFERED), 5000);
	weft_channel_stats_t st;
	CHECK_EQ(weft_channel_rx_stats(rx, &st), 0);
	CHECK(st.capacity == WEFT_CHANNEL_UNBOUNDED);
	for (int i = 0; i < 5000; i++) {
		CHECK_EQ(weft_channel_receive(rx, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(weft_channel_try_receive(rx, &v), -EAGAIN);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, unbounded_never_parks_and_keeps_order, unbounded_root,
	NULL)

/* Items bigger than a word, and odd-sized, are copied whole. */
struct big {
	char tag[13];
	long seq;
};

static int big_items_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(struct big), 3), 0);
	struct big b = { .tag = "abcdefghijkl", .seq = 0 };
	for (long i = 0; i < 3; i++) {
		b.seq = i;
		b.tag[0] = (char)('a' + i);
		CHECK_EQ(weft_channel_send(tx, &b), 0);
	}
	for (long i = 0; i < 3; i++) {
		struct big out;
		memset(&out, 0, sizeof out);
		CHECK_EQ(weft_channel_receive(rx, &out), 0);
		CHECK_EQ(out.seq, i);
		CHECK_EQ(out.tag[0], 'a' + i);
		CHECK(strcmp(out.tag + 1, "bcdefghijkl") == 0);
	}
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, items_are_copied_whole_by_value, big_items_root, NULL)

/* }======================================================= */

/* {======================================================= many to many */

#define MM_SENDERS 6
#define MM_RECEIVERS 5

struct mm {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	long per_sender;
	atomic_int *count; /* per item id */
	atomic_long received;
};

struct mm_sender {
	struct mm *m;
	weft_channel_tx_t *tx; /* own clone */
	int index;
};

static int mm_send(void *arg)
{
	struct mm_sender *s = arg;
	for (long i = 0; i < s->m->per_sender; i++) {
		long id = s->index * s->m->per_sender + i;
		CHECK_EQ(weft_channel_send(s->tx, &id), 0);
	}
	weft_channel_tx_release(s->tx);
	return 0;
}

static int mm_receive(void *arg)
{
	struct mm_sender *r = arg; /* index unused; tx unused */
	struct mm *m = r->m;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_rx_clone(m->rx, &rx), 0);
	/* Items of one sender reach one receiver in the order sent. */
	long last[MM_SENDERS];
	for (int i = 0; i < MM_SENDERS; i++)
		last[i] = -1;
	long id;
	int rc;
	while ((rc = weft_channel_receive(rx, &id)) == 0) {
		CHECK(id >= 0 && id < MM_SENDERS * m->per_sender);
		atomic_fetch_add(&m->count[id], 1);
		atomic_fetch_add(&m->received, 1);
		long sender = id / m->per_sender, seq = id % m->per_sender;
		CHECK(seq > last[sender]);
		last[sender] = seq;
	}
	CHECK_EQ(rc, WEFT_EEND);
	weft_channel_rx_release(rx);
	return 0;
}

static int mm_root(void *arg)
{
	(void)arg;
	for (size_t c = 0; c < NCAPS; c++) {
		struct mm m = { .per_sender = weft_test_scale(2000) };
		long total = MM_SENDERS * m.per_sender;
		m.count = calloc((size_t)total, sizeof *m.count);
		CHECK_EQ(weft_channel_open(&m.tx, &m.rx, sizeof(long),
				 capacities[c]),
			0);
		struct mm_sender s[MM_SENDERS], r[MM_RECEIVERS];
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < MM_RECEIVERS; i++) {
			r[i] = (struct mm_sender){ .m = &m, .index = i };
			CHECK_EQ(weft_group_spawn(g, mm_receive, &r[i]), 0);
		}
		for (int i = 0; i < MM_SENDERS; i++) {
			s[i] = (struct mm_sender){ .m = &m, .index = i };
			CHECK_EQ(weft_channel_tx_clone(m.tx, &s[i].tx), 0);
			CHECK_EQ(weft_group_spawn(g, mm_send, &s[i]), 0);
		}
		/* Our own ends: the senders' clones keep the channel open,
		 * the receivers cloned theirs (the original rx must stay
		 * until they have, so close it only after the join). */
		weft_channel_tx_release(m.tx);
		CHECK_EQ(join(g), 0);
		weft_channel_rx_release(m.rx);
		CHECK_EQ(atomic_load(&m.received), total);
		for (long i = 0; i < total; i++)
			if (!CHECK_EQ(atomic_load(&m.count[i]), 1))
				break;
		free(m.count);
	}
	return 0;
}

WEFT_TEST_ROOT(channel, many_senders_and_receivers_deliver_each_item_once,
	mm_root, NULL)

/* }======================================================= */

/* {======================================================= ends and close */

static int clone_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx, *tx2;
	weft_channel_rx_t *rx, *rx2;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 8), 0);
	CHECK_EQ(weft_channel_tx_clone(tx, &tx2), 0);
	CHECK_EQ(weft_channel_rx_clone(rx, &rx2), 0);
	weft_channel_stats_t st;
	CHECK_EQ(weft_channel_tx_stats(tx2, &st), 0);
	CHECK_EQ(st.open_send_ends, 2);
	CHECK_EQ(st.open_recv_ends, 2);
	int v = 1, out;
	/* Closing one send end leaves the channel open. */
	CHECK_EQ(weft_channel_tx_close(tx), 0);
	CHECK_EQ(weft_channel_send(tx2, &v), 0);
	CHECK_EQ(weft_channel_receive(rx, &out), 0);
	CHECK_EQ(out, 1);
	/* Closing one receive end leaves it open for sending. */
	CHECK_EQ(weft_channel_rx_close(rx), 0);
	v = 2;
	CHECK_EQ(weft_channel_send(tx2, &v), 0);
	CHECK_EQ(weft_channel_receive(rx2, &out), 0);
	CHECK_EQ(out, 2);
	CHECK_EQ(weft_channel_rx_stats(rx2, &st), 0);
	CHECK_EQ(st.open_send_ends, 1);
	CHECK_EQ(st.open_recv_ends, 1);
	/* A clone of a clone counts too. */
	weft_channel_tx_t *tx3;
	CHECK_EQ(weft_channel_tx_clone(tx2, &tx3), 0);
	weft_channel_tx_release(tx2);
	CHECK_EQ(weft_channel_try_receive(rx2, &out), -EAGAIN);
	weft_channel_tx_release(tx3);
	CHECK_EQ(weft_channel_try_receive(rx2, &out), WEFT_EEND);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	weft_channel_rx_release(rx2);
	return 0;
}

WEFT_TEST_ROOT(channel, clones_keep_each_side_open_until_all_close, clone_root,
	NULL)

static int drain_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 4), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(weft_channel_send(tx, &i), 0);
	weft_channel_tx_release(tx);
	int v;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(weft_channel_receive(rx, &v), 0);
		CHECK_EQ(v, i);
	}
	/* End of channel, every time. */
	CHECK_EQ(weft_channel_receive(rx, &v), WEFT_EEND);
	CHECK_EQ(weft_channel_receive(rx, &v), WEFT_EEND);
	CHECK_EQ(weft_channel_try_receive(rx, &v), WEFT_EEND);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, closing_every_sender_drains_then_ends, drain_root, NULL)

struct parked {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	int rc;
};

static int receive_once(void *arg)
{
	struct parked *p = arg;
	int v = -1;
	p->rc = weft_channel_receive(p->rx, &v);
	if (p->rc != 0)
		CHECK_EQ(v, -1); /* untouched on failure */
	return 0;
}

static int send_once(void *arg)
{
	struct parked *p = arg;
	int v = 42;
	p->rc = weft_channel_send(p->tx, &v);
	return 0;
}

static int parked_end_root(void *arg)
{
	(void)arg;
	for (size_t c = 0; c < NCAPS; c++) {
		struct parked p[3];
		weft_channel_tx_t *tx;
		weft_channel_rx_t *rx;
		CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int),
				 capacities[c]),
			0);
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < 3; i++) {
			p[i] = (struct parked){ .rx = rx, .rc = 1 };
			CHECK_EQ(weft_group_spawn(g, receive_once, &p[i]), 0);
		}
		wait_stat(rx, WAITING_RECV, 3);
		/* The last send end closes: every parked receiver ends. */
		weft_channel_tx_release(tx);
		CHECK_EQ(join(g), 0);
		for (int i = 0; i < 3; i++)
			CHECK_EQ(p[i].rc, WEFT_EEND);
		weft_channel_rx_release(rx);
	}
	return 0;
}

WEFT_TEST_ROOT(channel, parked_receivers_end_when_last_sender_closes,
	parked_end_root, NULL)

static atomic_int dropped_sum;
static atomic_int dropped_count;

static void drop_int(void *item, void *ctx)
{
	CHECK(ctx == &dropped_sum);
	int v;
	memcpy(&v, item, sizeof v);
	atomic_fetch_add(&dropped_sum, v);
	atomic_fetch_add(&dropped_count, 1);
}

static int broken_root(void *arg)
{
	(void)arg;
	for (size_t c = 0; c < 3; c++) { /* bounded capacities only */
		atomic_store(&dropped_sum, 0);
		atomic_store(&dropped_count, 0);
		weft_channel_tx_t *tx;
		weft_channel_rx_t *rx;
		CHECK_EQ(weft_channel_open_drop(&tx, &rx, sizeof(int),
				 capacities[c], drop_int, &dropped_sum),
			0);
		/* Fill the buffer so that senders park. */
		int v = 1000;
		for (size_t i = 0; i < capacities[c]; i++)
			CHECK_EQ(weft_channel_send(tx, &v), 0);
		struct parked p[2];
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < 2; i++) {
			p[i] = (struct parked){ .tx = tx, .rc = 1 };
			CHECK_EQ(weft_group_spawn(g, send_once, &p[i]), 0);
		}
		wait_stat(rx, WAITING_SEND, 2);
		weft_channel_rx_release(rx);
		CHECK_EQ(join(g), 0);
		for (int i = 0; i < 2; i++)
			CHECK_EQ(p[i].rc, WEFT_EBROKEN);
		/* New sends are refused too, blocking or not. */
		CHECK_EQ(weft_channel_send(tx, &v), WEFT_EBROKEN);
		CHECK_EQ(weft_channel_try_send(tx, &v), WEFT_EBROKEN);
		weft_channel_stats_t st;
		CHECK_EQ(weft_channel_tx_stats(tx, &st), 0);
		CHECK_EQ(st.open_recv_ends, 0);
		CHECK_EQ(st.waiting_send, 0);
		CHECK_EQ(st.buffered, capacities[c]);
		CHECK_EQ(atomic_load(&dropped_count), 0);
		/* The parked senders' items were never delivered: only the
		 * buffered ones are dropped when the channel goes. */
		weft_channel_tx_release(tx);
		CHECK_EQ(atomic_load(&dropped_count), (int)capacities[c]);
		CHECK_EQ(atomic_load(&dropped_sum), 1000 * (int)capacities[c]);
	}
	return 0;
}

WEFT_TEST_ROOT(channel, closing_every_receiver_breaks_parked_and_new_senders,
	broken_root, NULL)

static int own_closed_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx, *txc;
	weft_channel_rx_t *rx, *rxc;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 2), 0);
	CHECK_EQ(weft_channel_tx_clone(tx, &txc), 0);
	CHECK_EQ(weft_channel_rx_clone(rx, &rxc), 0);
	int v = 5;
	CHECK_EQ(weft_channel_send(tx, &v), 0);
	CHECK_EQ(weft_channel_tx_close(tx), 0);
	CHECK_EQ(weft_channel_tx_close(tx), 0); /* idempotent */
	weft_channel_tx_t *x;
	CHECK_EQ(weft_channel_send(tx, &v), WEFT_ECLOSED);
	CHECK_EQ(weft_channel_try_send(tx, &v), WEFT_ECLOSED);
	CHECK_EQ(weft_channel_tx_clone(tx, &x), WEFT_ECLOSED);
	CHECK_EQ(weft_channel_rx_close(rx), 0);
	weft_channel_rx_t *y;
	CHECK_EQ(weft_channel_receive(rx, &v), WEFT_ECLOSED);
	CHECK_EQ(weft_channel_try_receive(rx, &v), WEFT_ECLOSED);
	CHECK_EQ(weft_channel_rx_clone(rx, &y), WEFT_ECLOSED);
	/* Statistics still work through a closed end. */
	weft_channel_stats_t st;
	CHECK_EQ(weft_channel_tx_stats(tx, &st), 0);
	CHECK_EQ(st.buffered, 1);
	/* The other ends are unaffected. */
	CHECK_EQ(weft_channel_receive(rxc, &v), 0);
	CHECK_EQ(v, 5);
	CHECK_EQ(weft_channel_send(txc, &v), 0);
	weft_channel_tx_release(tx);
	weft_channel_tx_release(txc);
	weft_channel_rx_release(rx);
	weft_channel_rx_release(rxc);
	return 0;
}

WEFT_TEST_ROOT(channel, using_your_own_closed_end_gives_eclosed,
	own_closed_root, NULL)

static int close_parked_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx, *tx2;
	weft_channel_rx_t *rx, *rx2;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 0), 0);
	CHECK_EQ(weft_channel_tx_clone(tx, &tx2), 0);
	CHECK_EQ(weft_channel_rx_clone(rx, &rx2), 0);
	struct parked s = { .tx = tx2, .rc = 1 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, send_once, &s), 0);
	wait_stat(rx, WAITING_SEND, 1);
	/* Another task closes the end the sender is parked on. */
	CHECK_EQ(weft_channel_tx_close(tx2), 0);
	CHECK_EQ(join(g), 0);
	CHECK_EQ(s.rc, WEFT_ECLOSED);
	int v;
	CHECK_EQ(weft_channel_try_receive(rx, &v), -EAGAIN); /* not sent */
	struct parked r = { .rx = rx2, .rc = 1 };
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receive_once, &r), 0);
	wait_stat(rx, WAITING_RECV, 1);
	CHECK_EQ(weft_channel_rx_close(rx2), 0);
	CHECK_EQ(join(g), 0);
	CHECK_EQ(r.rc, WEFT_ECLOSED);
	weft_channel_tx_release(tx);
	weft_channel_tx_release(tx2);
	weft_channel_rx_release(rx);
	weft_channel_rx_release(rx2);
	return 0;
}

WEFT_TEST_ROOT(channel, closing_an_end_wakes_its_parked_calls_with_eclosed,
	close_parked_root, NULL)

/* }======================================================= */

/* {======================================================= try_* */

static int try_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 2), 0);
	int v = 1;
	CHECK_EQ(weft_channel_try_receive(rx, &v), -EAGAIN);
	CHECK_EQ(weft_channel_try_send(tx, &v), 0);
	v = 2;
	CHECK_EQ(weft_channel_try_send(tx, &v), 0);
	v = 3;
	CHECK_EQ(weft_channel_try_send(tx, &v), -EAGAIN); /* full */
	CHECK_EQ(stat_of(rx, BUFFERED), 2);
	CHECK_EQ(weft_channel_try_receive(rx, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(weft_channel_try_receive(rx, &v), 0);
	CHECK_EQ(v, 2);
	CHECK_EQ(weft_channel_try_receive(rx, &v), -EAGAIN);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);

	/* Rendezvous: try_* succeed exactly when a peer is parked. */
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 0), 0);
	struct parked r = { .rx = rx, .rc = 1 };
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, receive_once, &r), 0);
	wait_stat(rx, WAITING_RECV, 1);
	v = 9;
	CHECK_EQ(weft_channel_try_send(tx, &v), 0);
	CHECK_EQ(join(g), 0);
	CHECK_EQ(r.rc, 0);
	struct parked s = { .tx = tx, .rc = 1 };
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, send_once, &s), 0);
	wait_stat(rx, WAITING_SEND, 1);
	CHECK_EQ(weft_channel_try_receive(rx, &v), 0);
	CHECK_EQ(v, 42);
	CHECK_EQ(join(g), 0);
	CHECK_EQ(s.rc, 0);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, try_calls_never_wait, try_root, NULL)

#define PLAIN_ITEMS 2000

struct plain {
	weft_channel_tx_t *tx; /* the thread's: items */
	weft_channel_rx_t *rx; /* the thread's: replies */
	int blocking_rc[2];
	int bad;
	long sum;
};

/* A plain thread: try_send each item (it succeeds once the root is
 * parked in receive, which it then wakes), then try_receive the reply
 * (it succeeds once the root is parked in send).  Both directions are
 * rendezvous channels, so every success hands off to a parked task. */
static void *plain_thread(void *arg)
{
	struct plain *p = arg;
	int v = 0, rc;
	p->blocking_rc[0] = weft_channel_send(p->tx, &v);
	p->blocking_rc[1] = weft_channel_receive(p->rx, &v);
	for (int i = 0; i < PLAIN_ITEMS; i++) {
		while ((rc = weft_channel_try_send(p->tx, &i)) == -EAGAIN)
			sched_yield();
		if (rc < 0)
			p->bad++;
		while ((rc = weft_channel_try_receive(p->rx, &v)) == -EAGAIN)
			sched_yield();
		if (rc < 0 || v != i + 1)
			p->bad++;
		p->sum += v;
	}
	weft_channel_tx_release(p->tx);
	weft_channel_rx_release(p->rx);
	return NULL;
}

static int plain_root(void *arg)
{
	(void)arg;
	struct plain p = { .sum = 0 };
	weft_channel_tx_t *tx; /* ours: replies */
	weft_channel_rx_t *rx; /* ours: the thread's items */
	CHECK_EQ(weft_channel_open(&p.tx, &rx, sizeof(int), 0), 0);
	CHECK_EQ(weft_channel_open(&tx, &p.rx, sizeof(int), 0), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, plain_thread, &p), 0);
	int v, n = 0, rc;
	while ((rc = weft_channel_receive(rx, &v)) == 0) {
		CHECK_EQ(v, n);
		n++;
		v++;
		CHECK_EQ(weft_channel_send(tx, &v), 0);
	}
	CHECK_EQ(rc, WEFT_EEND);
	CHECK_EQ(n, PLAIN_ITEMS);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(p.blocking_rc[0], WEFT_ENOTFIBER);
	CHECK_EQ(p.blocking_rc[1], WEFT_ENOTFIBER);
	CHECK_EQ(p.bad, 0);
	CHECK_EQ(p.sum, (long)PLAIN_ITEMS * (PLAIN_ITEMS + 1) / 2);
	return 0;
}

WEFT_TEST_ROOT(channel, try_calls_work_from_a_plain_thread, plain_root, NULL)

/* No runtime at all: the blocking calls refuse, the others work. */
static void test_channel__blocking_calls_outside_a_task_give_enotfiber(
	void **state)
{
	(void)state;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	assert_int_equal(weft_channel_open(&tx, &rx, sizeof(int), 1), 0);
	int v = 3;
	assert_int_equal(weft_channel_send(tx, &v), WEFT_ENOTFIBER);
	assert_int_equal(weft_channel_receive(rx, &v), WEFT_ENOTFIBER);
	assert_int_equal(weft_channel_try_send(tx, &v), 0);
	v = 0;
	assert_int_equal(weft_channel_try_receive(rx, &v), 0);
	assert_int_equal(v, 3);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= cancellation */

static int cancelled_entry_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 4), 0);
	int v = 8;
	CHECK_EQ(weft_channel_send(tx, &v), 0);
	weft_scope_t *s;
	CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0);
	CHECK_EQ(weft_scope_cancel(s, NULL), 0);
	/* Both could complete at once, but a checkpoint in a cancelled scope
	 * fails first - and then nothing happened. */
	int w = 9;
	CHECK_EQ(weft_channel_send(tx, &w), -ECANCELED);
	CHECK_EQ(weft_channel_receive(rx, &w), -ECANCELED);
	CHECK_EQ(w, 9);
	CHECK_EQ(stat_of(rx, BUFFERED), 1);
	/* try_* are not checkpoints. */
	CHECK_EQ(weft_channel_try_receive(rx, &w), 0);
	CHECK_EQ(w, 8);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, send_and_receive_in_a_cancelled_scope_do_nothing,
	cancelled_entry_root, NULL)

static int deadline_root(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int), 1), 0);
	weft_scope_t *s;
	int v = -1;
	CHECK_EQ(weft_move_on_after(&s, 3 * WEFT_MSEC), 0);
	CHECK_EQ(weft_channel_receive(rx, &v), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), 0);
	CHECK(weft_scope_cancelled_caught(s));
	weft_scope_destroy(s);
	CHECK_EQ(v, -1);
	CHECK_EQ(stat_of(rx, WAITING_RECV), 0);
	/* A full channel: the parked send times out and delivered nothing. */
	v = 1;
	CHECK_EQ(weft_channel_send(tx, &v), 0);
	CHECK_EQ(weft_fail_after(&s, 3 * WEFT_MSEC), 0);
	v = 2;
	CHECK_EQ(weft_channel_send(tx, &v), -ECANCELED);
	CHECK_EQ(weft_scope_exit(s), -ETIMEDOUT);
	weft_scope_destroy(s);
	CHECK_EQ(stat_of(rx, WAITING_SEND), 0);
	CHECK_EQ(weft_channel_receive(rx, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(weft_channel_try_receive(rx, &v), -EAGAIN);
	/* The channel still works. */
	v = 3;
	CHECK_EQ(weft_channel_send(tx, &v), 0);
	CHECK_EQ(weft_channel_receive(rx, &v), 0);
	CHECK_EQ(v, 3);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

WEFT_TEST_ROOT(channel, deadline_ends_a_parked_send_or_receive, deadline_root,
	NULL)

/* A parked receiver is cancelled while another task hands it an item:
 * either it got the item, or the item is still in the channel. */
struct race {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	weft_task_t *victim;
	int victim_rc;
	int peer_rc;
	int item;
	atomic_int go;
};

static int race_receiver(void *arg)
{
	struct race *r = arg;
	r->item = -1;
	r->victim_rc = weft_channel_receive(r->rx, &r->item);
	return 0;
}

static int race_sender(void *arg)
{
	struct race *r = arg;
	int v = 77;
	r->victim_rc = weft_channel_send(r->tx, &v);
	return 0;
}

static int race_canceller(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->go))
		weft_yield();
	weft_task_cancel(r->victim);
	return 0;
}

static int race_peer_send(void *arg)
{
	struct race *r = arg;
	int v = 77;
	while (!atomic_load(&r->go))
		weft_yield();
	r->peer_rc = weft_channel_try_send(r->tx, &v);
	return 0;
}

static int race_peer_receive(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->go))
		weft_yield();
	r->item = -1;
	r->peer_rc = weft_channel_try_receive(r->rx, &r->item);
	return 0;
}

static int race_root(void *arg)
{
	(void)arg;
	long rounds = weft_test_scale(300);
	long got[2] = { 0, 0 }, cancelled[2] = { 0, 0 };
	for (long i = 0; i < rounds; i++) {
		int receiving = (int)(i & 1);
		struct race r = { .victim_rc = 1 };
		CHECK_EQ(weft_channel_open(&r.tx, &r.rx, sizeof(int), 0), 0);
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		r.victim = weft_test_spawn(g,
			receiving ? race_receiver : race_sender, &r);
		wait_stat(r.rx, receiving ? WAITING_RECV : WAITING_SEND, 1);
		/* Order of the two spawns alternates to vary who wins. */
		weft_fn peer = receiving ? race_peer_send : race_peer_receive;
		if (i & 2) {
			CHECK_EQ(weft_group_spawn(g, race_canceller, &r), 0);
			CHECK_EQ(weft_group_spawn(g, peer, &r), 0);
		} else {
			CHECK_EQ(weft_group_spawn(g, peer, &r), 0);
			CHECK_EQ(weft_group_spawn(g, race_canceller, &r), 0);
		}
		atomic_store(&r.go, 1);
		CHECK_EQ(join(g), 0);
		weft_task_release(r.victim);
		/* Exactly one of: transferred (both sides 0), or not at all
		 * (victim -ECANCELED, peer -EAGAIN). */
		if (r.victim_rc == 0) {
			CHECK_EQ(r.peer_rc, 0);
			CHECK_EQ(r.item, 77);
			got[receiving]++;
		} else {
			CHECK_EQ(r.victim_rc, -ECANCELED);
			CHECK_EQ(r.peer_rc, -EAGAIN);
			if (receiving)
				CHECK_EQ(r.item, -1);
			cancelled[receiving]++;
		}
		CHECK_EQ(stat_of(r.rx, WAITING_SEND) +
				stat_of(r.rx, WAITING_RECV),
			0);
		weft_channel_tx_release(r.tx);
		weft_channel_rx_release(r.rx);
	}
	CHECK_EQ(got[0] + got[1] + cancelled[0] + cancelled[1], rounds);
	return 0;
}

WEFT_TEST_ROOT(channel, cancel_racing_a_hand_off_transfers_all_or_nothing,
	race_root, NULL)

/* Random cancellation of every operation of many senders and receivers:
 * each operation runs in its own scope, which a canceller task cancels at
 * random moments (before, during or after the park).  A sender retries an
 * item whose send was cancelled, so each item must arrive exactly once:
 * a cancelled send that delivered would duplicate it, a cancelled
 * receive that took it would lose it. */
#define RC_SENDERS 4
#define RC_RECEIVERS 4
#define RC_SLOTS (RC_SENDERS + RC_RECEIVERS)

struct rc_slot {
	atomic_flag lock;
	weft_scope_t *cur; /* under lock */
};

struct rc {
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	long per_sender;
	atomic_int *count;
	struct rc_slot slot[RC_SLOTS];
	atomic_int done;
	atomic_long cancels;
};

struct rc_task {
	struct rc *c;
	int index;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
};

static void slot_set(struct rc_slot *s, weft_scope_t *v)
{
	while (atomic_flag_test_and_set(&s->lock))
		;
	s->cur = v;
	atomic_flag_clear(&s->lock);
}

/* One send (rx == NULL) or receive in a fresh cancellable scope. */
static int rc_op(struct rc *c, int slot, weft_channel_tx_t *tx,
	weft_channel_rx_t *rx, long *item)
{
	weft_scope_t *s;
	if (!CHECK_EQ(weft_scope_open(&s, WEFT_FOREVER, 0), 0))
		return -EIO;
	slot_set(&c->slot[slot], s);
	int rc = rx ? weft_channel_receive(rx, item)
		    : weft_channel_send(tx, item);
	slot_set(&c->slot[slot], NULL);
	CHECK_EQ(weft_scope_exit(s), 0);
	weft_scope_destroy(s);
	if (rc == -ECANCELED)
		atomic_fetch_add(&c->cancels, 1);
	return rc;
}

static int rc_sender(void *arg)
{
	struct rc_task *t = arg;
	struct rc *c = t->c;
	for (long i = 0; i < c->per_sender; i++) {
		long id = t->index * c->per_sender + i;
		int rc;
		if (i % 7 == 0)
			weft_yield();
		while ((rc = rc_op(c, t->index, t->tx, NULL, &id)) ==
			-ECANCELED)
			;
		if (!CHECK_EQ(rc, 0))
			break;
	}
	weft_channel_tx_release(t->tx);
	return 0;
}

static int rc_receiver(void *arg)
{
	struct rc_task *t = arg;
	struct rc *c = t->c;
	long last[RC_SENDERS];
	for (int i = 0; i < RC_SENDERS; i++)
		last[i] = -1;
	for (;;) {
		long id = -1;
		int rc = rc_op(c, RC_SENDERS + t->index, NULL, t->rx, &id);
		if (rc == -ECANCELED) {
			CHECK_EQ(id, -1);
			continue;
		}
		if (rc == WEFT_EEND)
			break;
		if (!CHECK_EQ(rc, 0) ||
			!CHECK(id >= 0 && id < RC_SENDERS * c->per_sender))
			break;
		atomic_fetch_add(&c->count[id], 1);
		long sender = id / c->per_sender, seq = id % c->per_sender;
		CHECK(seq > last[sender]); /* retries keep per-sender order */
		last[sender] = seq;
	}
	weft_channel_rx_release(t->rx);
	return 0;
}

/* Each turn: cancel the operation in flight in about half of the slots,
 * then let the others run. */
static int rc_canceller(void *arg)
{
	struct rc *c = arg;
	uint64_t rng = 0x9e3779b97f4a7c15u;
	while (!atomic_load(&c->done)) {
		for (int i = 0; i < RC_SLOTS; i++) {
			if (weft_test_rand(&rng) & 1)
				continue;
			struct rc_slot *s = &c->slot[i];
			while (atomic_flag_test_and_set(&s->lock))
				;
			if (s->cur)
				weft_scope_cancel(s->cur, "random");
			atomic_flag_clear(&s->lock);
		}
		weft_yield();
	}
	return 0;
}

static int rc_run(struct rc *c, size_t capacity)
{
	long total = RC_SENDERS * c->per_sender;
	CHECK_EQ(weft_channel_open(&c->tx, &c->rx, sizeof(long), capacity), 0);
	struct rc_task s[RC_SENDERS], r[RC_RECEIVERS];
	weft_group_t *outer, *g;
	CHECK_EQ(weft_group_open(&outer), 0);
	CHECK_EQ(weft_group_spawn(outer, rc_canceller, c), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < RC_RECEIVERS; i++) {
		r[i] = (struct rc_task){ .c = c, .index = i };
		CHECK_EQ(weft_channel_rx_clone(c->rx, &r[i].rx), 0);
		CHECK_EQ(weft_group_spawn(g, rc_receiver, &r[i]), 0);
	}
	for (int i = 0; i < RC_SENDERS; i++) {
		s[i] = (struct rc_task){ .c = c, .index = i };
		CHECK_EQ(weft_channel_tx_clone(c->tx, &s[i].tx), 0);
		CHECK_EQ(weft_group_spawn(g, rc_sender, &s[i]), 0);
	}
	weft_channel_tx_release(c->tx);
	weft_channel_rx_release(c->rx);
	CHECK_EQ(join(g), 0);
	atomic_store(&c->done, 1);
	CHECK_EQ(join(outer), 0);
	for (long i = 0; i < total; i++)
		if (!CHECK_EQ(atomic_load(&c->count[i]), 1))
			break;
	return 0;
}

static int random_cancel_root(void *arg)
{
	(void)arg;
	long cancels = 0;
	for (size_t k = 0; k < NCAPS; k++) {
		struct rc *c = calloc(1, sizeof *c);
		c->per_sender = weft_test_scale(1000);
		c->count = calloc((size_t)(RC_SENDERS * c->per_sender),
			sizeof *c->count);
		for (int i = 0; i < RC_SLOTS; i++)
			atomic_flag_clear(&c->slot[i].lock);
		rc_run(c, capacities[k]);
		cancels += atomic_load(&c->cancels);
		free(c->count);
		free(c);
	}
	/* The canceller cancels operations in flight on every turn, and it
	 * gets turns (everybody yields): the test did cancel something. */
	CHECK(cancels > 0);
	print_message("%ld operations cancelled\n", cancels);
	return 0;
}

WEFT_TEST_ROOT(channel, random_cancellation_loses_and_duplicates_nothing,
	random_cancel_root, NULL)

/* }======================================================= */

/* {======================================================= drop, errors */

static int drop_root(void *arg)
{
	(void)arg;
	atomic_store(&dropped_sum, 0);
	atomic_store(&dropped_count, 0);
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open_drop(&tx, &rx, sizeof(int),
			 WEFT_CHANNEL_UNBOUNDED, drop_int, &dropped_sum),
		0);
	/* 40 items sent, 5 received: 35 left, across a grown ring. */
	for (int i = 1; i <= 40; i++)
		CHECK_EQ(weft_channel_send(tx, &i), 0);
	int v;
	for (int i = 1; i <= 5; i++)
		CHECK_EQ(weft_channel_receive(rx, &v), 0);
	weft_channel_rx_release(rx);
	CHECK_EQ(atomic_load(&dropped_count), 0); /* not freed yet */
	weft_channel_tx_release(tx);
	CHECK_EQ(atomic_load(&dropped_count), 35);
	CHECK_EQ(atomic_load(&dropped_sum), 40 * 41 / 2 - 15);
	return 0;
}

WEFT_TEST_ROOT(channel, drop_callback_sees_every_item_left_at_free, drop_root,
	NULL)

/* Pointers inside items: the drop callback frees them (the leak check
 * would catch a missed one... of malloc's heap, so count instead). */
static atomic_int freed_pointers;

static void drop_free(void *item, void *ctx)
{
	(void)ctx;
	int *p;
	memcpy(&p, item, sizeof p);
	free(p);
	atomic_fetch_add(&freed_pointers, 1);
}

static void test_channel__drop_callback_frees_pointers_left_in_items(
	void **state)
{
	(void)state;
	atomic_store(&freed_pointers, 0);
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	assert_int_equal(weft_channel_open_drop(&tx, &rx, sizeof(int *), 8,
				 drop_free, NULL),
		0);
	for (int i = 0; i < 6; i++) {
		int *p = malloc(sizeof *p);
		*p = i;
		assert_int_equal(weft_channel_try_send(tx, &p), 0);
	}
	int *q;
	assert_int_equal(weft_channel_try_receive(rx, &q), 0);
	assert_int_equal(*q, 0);
	free(q);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	assert_int_equal(atomic_load(&freed_pointers), 5);
	weft_test_assert_no_leaks();
}

static void test_channel__bad_arguments_give_einval(void **state)
{
	(void)state;
	weft_channel_tx_t *tx = NULL, *tx2;
	weft_channel_rx_t *rx = NULL, *rx2;
	int v = 0;
	assert_int_equal(weft_channel_open(NULL, &rx, 4, 1), -EINVAL);
	assert_int_equal(weft_channel_open(&tx, NULL, 4, 1), -EINVAL);
	assert_int_equal(weft_channel_open(&tx, &rx, 0, 1), -EINVAL);
	assert_null(tx);
	assert_null(rx);
	/* A buffer whose size overflows. */
	assert_int_equal(weft_channel_open(&tx, &rx, 16, SIZE_MAX / 8),
		-EINVAL);
	assert_int_equal(weft_channel_open(&tx, &rx, SIZE_MAX, 2), -EINVAL);
	assert_null(tx);
	assert_int_equal(weft_channel_open(&tx, &rx, sizeof v, 1), 0);
	assert_int_equal(weft_channel_send(NULL, &v), -EINVAL);
	assert_int_equal(weft_channel_send(tx, NULL), -EINVAL);
	assert_int_equal(weft_channel_try_send(NULL, &v), -EINVAL);
	assert_int_equal(weft_channel_try_send(tx, NULL), -EINVAL);
	assert_int_equal(weft_channel_receive(NULL, &v), -EINVAL);
	assert_int_equal(weft_channel_receive(rx, NULL), -EINVAL);
	assert_int_equal(weft_channel_try_receive(NULL, &v), -EINVAL);
	assert_int_equal(weft_channel_try_receive(rx, NULL), -EINVAL);
	assert_int_equal(weft_channel_tx_clone(NULL, &tx2), -EINVAL);
	assert_int_equal(weft_channel_tx_clone(tx, NULL), -EINVAL);
	assert_int_equal(weft_channel_rx_clone(NULL, &rx2), -EINVAL);
	assert_int_equal(weft_channel_rx_clone(rx, NULL), -EINVAL);
	assert_int_equal(weft_channel_tx_close(NULL), -EINVAL);
	assert_int_equal(weft_channel_rx_close(NULL), -EINVAL);
	weft_channel_stats_t st;
	assert_int_equal(weft_channel_tx_stats(NULL, &st), -EINVAL);
	assert_int_equal(weft_channel_tx_stats(tx, NULL), -EINVAL);
	assert_int_equal(weft_channel_rx_stats(NULL, &st), -EINVAL);
	assert_int_equal(weft_channel_rx_stats(rx, NULL), -EINVAL);
	weft_channel_tx_release(NULL);
	weft_channel_rx_release(NULL);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	weft_test_assert_no_leaks();
}

static void test_channel__allocation_failure_gives_enomem_and_changes_nothing(
	void **state)
{
	(void)state;
	weft_channel_tx_t *tx = NULL, *tx2 = NULL;
	weft_channel_rx_t *rx = NULL, *rx2 = NULL;
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_channel_open(&tx, &rx, sizeof(int), 4), -ENOMEM);
	weft_debug_fail_alloc(0);
	assert_null(tx);
	assert_null(rx);
	assert_int_equal(weft_channel_open(&tx, &rx, sizeof(int),
				 WEFT_CHANNEL_UNBOUNDED),
		0);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_channel_tx_clone(tx, &tx2), -ENOMEM);
	weft_debug_fail_alloc(1);
	assert_int_equal(weft_channel_rx_clone(rx, &rx2), -ENOMEM);
	weft_debug_fail_alloc(0);
	assert_null(tx2);
	assert_null(rx2);
	weft_channel_stats_t st;
	assert_int_equal(weft_channel_tx_stats(tx, &st), 0);
	assert_int_equal(st.open_send_ends, 1);
	assert_int_equal(st.open_recv_ends, 1);
	/* Fill the first ring (16 items), then make its growth fail. */
	int n = 0;
	for (;;) {
		weft_debug_fail_alloc(1);
		int rc = weft_channel_try_send(tx, &n);
		weft_debug_fail_alloc(0);
		if (rc == -ENOMEM)
			break;
		assert_int_equal(rc, 0);
		n++;
		assert_true(n < 1000);
	}
	assert_int_equal(n, 16);
	/* Nothing was delivered by the failed send; the next one works. */
	assert_int_equal(weft_channel_tx_stats(tx, &st), 0);
	assert_int_equal(st.buffered, 16);
	assert_int_equal(weft_channel_try_send(tx, &n), 0);
	for (int k = 0; k <= n; k++) {
		int v = -1;
		assert_int_equal(weft_channel_try_receive(rx, &v), 0);
		assert_int_equal(v, k);
	}
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	weft_test_assert_no_leaks();
}

/* A producer whose sends never wait (unbounded channel) still lets the
 * other task of its worker run: every WEFT__COOP_BUDGET-th call that
 * completes at once yields (the cooperative budget).  One worker, so the
 * other task cannot run anywhere else: without the budget it would run
 * only after the loop, and see `sent` at 10,000. */
struct coop {
	int sent;
	int sent_seen; /* by the other task, when it ran: -1 never */
};

static int coop_other(void *arg)
{
	struct coop *c = arg;
	c->sent_seen = c->sent;
	return 0;
}

static int coop_root(void *arg)
{
	struct coop *c = arg;
	c->sent_seen = -1;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	CHECK_EQ(weft_channel_open(&tx, &rx, sizeof(int),
			 WEFT_CHANNEL_UNBOUNDED),
		0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, coop_other, c), 0);
	for (int i = 0; i < 10000; i++) {
		CHECK_EQ(weft_channel_send(tx, &i), 0);
		c->sent++;
	}
	/* Ran before the loop ended, after at most one budget of sends. */
	CHECK(c->sent_seen >= 0 && c->sent_seen < 10000);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_channel_tx_release(tx);
	weft_channel_rx_release(rx);
	return 0;
}

static void test_channel__sends_that_never_wait_still_let_others_run(
	void **state)
{
	(void)state;
	struct coop c = { 0 };
	assert_int_equal(weft_test_run(1, coop_root, &c), 0);
	assert_true(c.sent_seen >= 0 && c.sent_seen <= 128);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(
			test_channel__rendezvous_send_completes_only_when_received),
		WEFT_TEST(
			test_channel__bounded_keeps_order_and_parks_when_full),
		WEFT_TEST(test_channel__unbounded_never_parks_and_keeps_order),
		WEFT_TEST(test_channel__items_are_copied_whole_by_value),
		WEFT_TEST(
			test_channel__many_senders_and_receivers_deliver_each_item_once),
		WEFT_TEST(
			test_channel__clones_keep_each_side_open_until_all_close),
		WEFT_TEST(test_channel__closing_every_sender_drains_then_ends),
		WEFT_TEST(
			test_channel__parked_receivers_end_when_last_sender_closes),
		WEFT_TEST(
			test_channel__closing_every_receiver_breaks_parked_and_new_senders),
		WEFT_TEST(
			test_channel__using_your_own_closed_end_gives_eclosed),
		WEFT_TEST(
			test_channel__closing_an_end_wakes_its_parked_calls_with_eclosed),
		WEFT_TEST(test_channel__try_calls_never_wait),
		WEFT_TEST(test_channel__try_calls_work_from_a_plain_thread),
		cmocka_unit_test(
			test_channel__blocking_calls_outside_a_task_give_enotfiber),
		WEFT_TEST(
			test_channel__send_and_receive_in_a_cancelled_scope_do_nothing),
		WEFT_TEST(test_channel__deadline_ends_a_parked_send_or_receive),
		WEFT_TEST(
			test_channel__cancel_racing_a_hand_off_transfers_all_or_nothing),
		WEFT_TEST(
			test_channel__random_cancellation_loses_and_duplicates_nothing),
		WEFT_TEST(
			test_channel__drop_callback_sees_every_item_left_at_free),
		cmocka_unit_test(
			test_channel__drop_callback_frees_pointers_left_in_items),
		cmocka_unit_test(test_channel__bad_arguments_give_einval),
		cmocka_unit_test(
			test_channel__sends_that_never_wait_still_let_others_run),
		cmocka_unit_test(
			test_channel__allocation_failure_gives_enomem_and_changes_nothing),
	};
	return WEFT_RUN_TESTS(tests);
}
