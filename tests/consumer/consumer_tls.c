/* The installed libweft-tls: a client context made and freed, then a
 * run as consumer.c's. */
#include <stdio.h>

#include <weft.h>
#include <weft/tls.h>

static int main_task(void *arg)
{
	*(int *)arg = 42;
	return 0;
}

int main(void)
{
	weft_tls_ctx_options_t o = { 0 };
	weft_tls_ctx_t *ctx = NULL;
	char why[256];
	int rc = weft_tls_ctx_create(&ctx, &o, why, sizeof why);
	if (rc < 0) {
		printf("weft_tls_ctx_create: %s: %s\n", weft_strerror(rc), why);
		return 1;
	}
	weft_tls_ctx_destroy(ctx);
	int flag = 0;
	rc = weft_run(main_task, &flag);
	printf("weft %s: weft_run returned %d, flag %d (weft-tls)\n",
		weft_version_string(), rc, flag);
	return rc == 0 && flag == 42 ? 0 : 1;
}
