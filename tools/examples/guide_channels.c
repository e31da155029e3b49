/* docs/guide.md, "Channels and offload": producers and a consumer over a
 * bounded channel that ends when every sender closed, and a blocking call
 * on an offload thread. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <weft.h>

/* Each producer owns a clone of the send end, and closes it. */
static int producer(void *arg)
{
	weft_channel_tx_t *tx = arg;
	int rc = 0;
	for (long i = 1; i <= 100 && rc == 0; i++)
		rc = weft_channel_send(tx, &i);
	weft_channel_tx_close(tx);
	weft_channel_tx_release(tx);
	return rc;
}

/* A blocking call that would stall a worker: it runs on an offload
 * thread while the calling task parks. */
static int blocking_read(void *arg, void **result)
{
	(void)arg;
	usleep(10 * 1000);
	*result = (void *)42;
	return 0;
}

static int main_task(void *arg)
{
	(void)arg;
	weft_channel_tx_t *tx;
	weft_channel_rx_t *rx;
	int rc = weft_channel_open(&tx, &rx, sizeof(long), 8);
	if (rc < 0)
		return rc;
	weft_group_t *g;
	if ((rc = weft_group_open(&g)) < 0) {
		weft_channel_tx_release(tx);
		weft_channel_rx_release(rx);
		return rc;
	}
	for (int p = 0; p < 3 && rc == 0; p++) {
		weft_channel_tx_t *mine;
		if ((rc = weft_channel_tx_clone(tx, &mine)) == 0 &&
			(rc = weft_group_spawn(g, producer, mine)) < 0)
			weft_channel_tx_release(mine);
	}
	/* The consumer's own send end goes, or the channel never ends. */
	weft_channel_tx_close(tx);
	weft_channel_tx_release(tx);
	long item, sum = 0;
	while (rc == 0 && weft_channel_receive(rx, &item) == 0)
		sum += item;
	weft_channel_rx_release(rx);
	printf("channel: sum %ld\n", sum);
	void *value = NULL;
	if (rc == 0 &&
		(rc = weft_to_thread(blocking_read, NULL, &value, NULL)) == 0)
		printf("to_thread: %ld\n", (long)(intptr_t)value);
	if (rc < 0)
		weft_group_fail(g, rc, "main");
	weft_error_t *err = NULL;
	rc = weft_group_join(g, &err);
	if (rc == WEFT_ECHILD_FAILED)
		return weft_fail_group(err);
	return rc;
}

int main(void)
{
	return weft_run(main_task, NULL) == 0 ? 0 : 1;
}
