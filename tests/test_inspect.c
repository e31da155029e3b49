/* Introspection (docs/semantics.md rules 37 and 38;
 * include/weft/inspect.h): names, ids, current / root task, parent group
 * and children, the all_tasks snapshot, the text and JSON dump of the
 * tree (also from a plain thread during a spawn storm), done callbacks,
 * errors.  Every test runs at 1, 2 and 4 workers. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support.h"

/* Sleeps until cancelled (the group is cancelled at the end). */
static int park_until_cancelled(void *arg)
{
	atomic_int *parked = arg;
	if (parked)
		atomic_fetch_add(parked, 1);
	int rc = weft_sleep_until(WEFT_FOREVER);
	CHECK_EQ(rc, -ECANCELED);
	return rc;
}

/* {======================================================= JSON */

/* The dump's JSON is parsed with jansson (Debian's libjansson-dev): valid
 * JSON or not, and, for every object with a "name" string member, the
 * name and the object's nesting depth (1: the outermost object). */
struct js {
	/* Room for a name whose bad bytes became U+FFFD (3 bytes each). */
	char names[64][3 * WEFT_TASK_NAME_MAX];
	int name_depth[64];
	int nnames;
};

static void js_walk(struct js *j, json_t *v, int depth)
{
	if (json_is_object(v)) {
		depth++;
		json_t *name = json_object_get(v, "name");
		if (json_is_string(name) && j->nnames < 64) {
			snprintf(j->names[j->nnames], sizeof j->names[0], "%s",
				json_string_value(name));
			j->name_depth[j->nnames++] = depth;
		}
		const char *key;
		json_t *m;
		json_object_foreach(v, key, m) js_walk(j, m, depth);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) js_walk(j, e, depth);
	}
}

/* Parses text; returns 1 if it is one valid JSON value. */
static int js_parse(struct js *j, const char *text)
{
	memset(j, 0, sizeof *j);
	json_error_t err;
	json_t *root = json_loads(text, JSON_DECODE_ANY, &err);
	if (root == NULL) {
		fprintf(stderr, "dump JSON: %s at line %d column %d\n",
			err.text, err.line, err.column);
		return 0;
	}
	js_walk(j, root, 0);
	json_decref(root);
	return 1;
}

static int js_depth_of(const struct js *j, const char *name)
{
	for (int i = 0; i < j->nnames; i++)
		if (strcmp(j->names[i], name) == 0)
			return j->name_depth[i];
	return -1;
}

/* }======================================================= */

/* {======================================================= names */

struct names {
	atomic_int done;
	char seen[6][WEFT_TASK_NAME_MAX];
	uint64_t root_id;
};

static int name_probe(void *arg)
{
	struct names *n = arg;
	int slot = atomic_fetch_add(&n->done, 1);
	if (slot < 6)
		snprintf(n->seen[slot], sizeof n->seen[slot], "%s",
			weft_task_name(weft_current_task()));
	return 0;
}

static int a_function_with_a_name(void *arg)
{
	struct names *n = arg;
	snprintf(n->seen[5], sizeof n->seen[5], "%s",
		weft_task_name(weft_current_task()));
	return 0;
}

static int started_function(void *arg)
{
	struct names *n = arg;
	snprintf(n->seen[4], sizeof n->seen[4], "%s",
		weft_task_name(weft_current_task()));
	return weft_task_started(NULL);
}

static int names_root(void *arg)
{
	struct names *n = arg;
	CHECK(strcmp(weft_task_name(weft_current_task()), "main") == 0);
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, a_function_with_a_name, n), 0);
	CHECK_EQ(weft_group_start(g, started_function, n, NULL), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn_named(g, "custom", name_probe, n), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .name = NULL };
	CHECK_EQ(weft_group_spawn_opts(g, name_probe, n, &o), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static void test_inspect__default_names_come_from_the_function(void **state)
{
	struct names n;
	memset(&n, 0, sizeof n);
	weft_test_root(state, names_root, &n);
	assert_string_equal(n.seen[5], "a_function_with_a_name");
	assert_string_equal(n.seen[4], "started_function");
	assert_string_equal(n.seen[0], "custom");
	assert_string_equal(n.seen[1], "task");
}

struct rename {
	weft_task_t *child;
	atomic_int renamed, release;
	uint64_t child_id;
};

static int rename_child(void *arg)
{
	struct rename *r = arg;
	CHECK_EQ(weft_task_set_name("renamed"), 0);
	CHECK(strcmp(weft_task_name(weft_current_task()), "renamed") == 0);
	atomic_store(&r->renamed, 1);
	CHECK(weft_test_yield_until(&r->release, 1));
	/* Longer than the limit: cut at WEFT_TASK_NAME_MAX - 1 bytes. */
	char longname[100];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK_EQ(weft_task_set_name(longname), 0);
	CHECK_EQ(strlen(weft_task_name(weft_current_task())),
		WEFT_TASK_NAME_MAX - 1);
	return 0;
}

static int rename_root(void *arg)
{
	struct rename *r = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .handle = &r->child };
	CHECK_EQ(weft_group_spawn_opts(g, rename_child, r, &o), 0);
	CHECK(weft_test_yield_until(&r->renamed, 1));
	/* Snapshots see the new name. */
	weft_task_info_t info[8];
	size_t n = 0;
	CHECK_EQ(weft_group_children(g, info, 8, &n), 0);
	CHECK_EQ(n, 1);
	if (n == 1) {
		CHECK(strcmp(info[0].name, "renamed") == 0);
		CHECK_EQ(info[0].id, weft_task_id(r->child));
		CHECK_EQ(info[0].group_id, weft_group_id(g));
	}
	atomic_store(&r->release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	weft_task_release(r->child);
	return 0;
}

WEFT_TEST_ROOT(inspect, set_name_renames_the_calling_task, rename_root,
	&(struct rename){ 0 })

/* }======================================================= */

/* {======================================================= current, root, group */

struct family {
	weft_group_t *g;
	uint64_t root_id;
	weft_task_t *kept; /* a child's own handle, retained by itself */
};

static int family_grandchild(void *arg)
{
	struct family *f = arg;
	CHECK_EQ(weft_task_id(weft_root_task()), f->root_id);
	return 0;
}

static int family_child(void *arg)
{
	struct family *f = arg;
	weft_task_t *me = weft_current_task();
	CHECK(me != NULL);
	CHECK_EQ(weft_task_id(me), weft_current_task_id());
	CHECK(weft_task_group(me) == f->g);
	CHECK_EQ(weft_task_id(weft_root_task()), f->root_id);
	CHECK_EQ(weft_task_state(me), WEFT_TASK_PENDING);
	/* Keep our own record past our end, for the parent to read. */
	CHECK_EQ(weft_task_retain(me), 0);
	f->kept = me;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, family_grandchild, f), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_task_set_result((void *)f), 0);
	return 0;
}

static int family_root(void *arg)
{
	struct family *f = arg;
	weft_task_t *me = weft_current_task();
	f->root_id = weft_task_id(me);
	CHECK(weft_root_task() == me);
	CHECK(weft_task_group(me) == NULL);
	CHECK_EQ(weft_group_open(&f->g), 0);
	CHECK(weft_group_id(f->g) != 0);
	CHECK(weft_group_id(f->g) != weft_task_id(me));
	CHECK_EQ(weft_group_spawn(f->g, family_child, f), 0);
	CHECK_EQ(weft_group_join(f->g, NULL), 0);
	CHECK(f->kept != NULL);
	if (f->kept) {
		void *v = NULL;
		CHECK_EQ(weft_task_state(f->kept), WEFT_TASK_FINISHED);
		CHECK_EQ(weft_task_result(f->kept, &v), 0);
		CHECK(v == f);
		weft_task_release(f->kept);
	}
	return 0;
}

static void test_inspect__current_root_and_parent_group(void **state)
{
	struct family f;
	memset(&f, 0, sizeof f);
	weft_test_root(state, family_root, &f);
	/* A plain thread is not a task. */
	assert_null(weft_current_task());
	assert_null(weft_root_task());
	assert_null(weft_task_group(NULL));
	assert_int_equal(weft_group_id(NULL), 0);
	assert_int_equal(weft_task_retain(NULL), -EINVAL);
}

/* }======================================================= */

/* {======================================================= parents */

/* A snapshot names each task's parent: its group's owner, which is not
 * always the task that spawned it ("x" is spawned by "c1" into the root's
 * group, so its parent is the root), and 0 for the root. */
struct parents {
	weft_event_t *go;
	weft_group_t *g; /* the root's */
	atomic_int parked;
};

static int parents_wait(void *arg)
{
	struct parents *p = arg;
	atomic_fetch_add(&p->parked, 1);
	return weft_event_wait(p->go);
}

static int parents_c1(void *arg)
{
	struct parents *p = arg;
	CHECK_EQ(weft_group_spawn_named(p->g, "x", parents_wait, p), 0);
	weft_group_t *g2;
	CHECK_EQ(weft_group_open(&g2), 0);
	CHECK_EQ(weft_group_spawn_named(g2, "gc", parents_wait, p), 0);
	CHECK_EQ(weft_group_join(g2, NULL), 0);
	return 0;
}

/* The snapshot's entry for the task named name, or NULL. */
static const weft_task_info_t *parents_find(const weft_task_info_t *info,
	size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(info[i].name, name) == 0)
			return &info[i];
	return NULL;
}

static int parents_root(void *arg)
{
	struct parents *p = arg;
	CHECK_EQ(weft_event_create(&p->go), 0);
	CHECK_EQ(weft_group_open(&p->g), 0);
	CHECK_EQ(weft_group_spawn_named(p->g, "c1", parents_c1, p), 0);
	CHECK(weft_test_yield_until(&p->parked, 2));
	weft_task_info_t info[16];
	size_t n = 0;
	CHECK_EQ(weft_all_tasks(NULL, info, 16, &n), 0);
	CHECK_EQ(n, 4);
	const weft_task_info_t *root = parents_find(info, n, "main");
	const weft_task_info_t *c1 = parents_find(info, n, "c1");
	const weft_task_info_t *x = parents_find(info, n, "x");
	const weft_task_info_t *gc = parents_find(info, n, "gc");
	CHECK(root && c1 && x && gc);
	if (root && c1 && x && gc) {
		CHECK_EQ(root->id, weft_current_task_id());
		CHECK_EQ(root->parent_id, 0);
		CHECK_EQ(c1->parent_id, root->id);
		CHECK_EQ(x->parent_id, root->id);
		CHECK_EQ(x->group_id, weft_group_id(p->g));
		CHECK_EQ(gc->parent_id, c1->id);
	}
	CHECK_EQ(weft_event_set(p->go), 0);
	CHECK_EQ(weft_group_join(p->g, NULL), 0);
	CHECK_EQ(weft_event_destroy(p->go), 0);
	return 0;
}

WEFT_TEST_ROOT(inspect, snapshots_name_each_tasks_parent, parents_root,
	&(struct parents){ 0 })

/* }======================================================= */

/* {======================================================= all_tasks */

#define LIVE_PARKED 24
#define LIVE_SPINNING 8

struct live {
	weft_runtime_t *rt;
	atomic_int parked, spinning, stop_spin, plain_ok, plain_done;
	uint64_t ids[LIVE_PARKED + LIVE_SPINNING + 1];
	size_t nids;
	weft_group_t *g;
};

static int spin_until_stopped(void *arg)
{
	struct live *l = arg;
	atomic_fetch_add(&l->spinning, 1);
	while (!atomic_load(&l->stop_spin))
		weft_yield();
	return 0;
}

/* Every id of l->ids appears exactly once in info[0..n). */
static int live_exactly_once(struct live *l, const weft_task_info_t *info,
	size_t n, size_t from)
{
	int ok = 1;
	for (size_t i = from; i < l->nids; i++) {
		int seen = 0;
		for (size_t k = 0; k < n; k++)
			seen += info[k].id == l->ids[i];
		ok &= seen == 1;
	}
	for (size_t a = 0; a < n; a++)
		for (size_t b = a + 1; b < n; b++)
			ok &= info[a].id != info[b].id;
	return ok;
}

static void *live_plain_thread(void *arg)
{
	struct live *l = arg;
	weft_task_info_t *info = calloc(256, sizeof *info);
	int ok = info != NULL;
	for (int round = 0; ok && round < 20; round++) {
		size_t n = 0;
		ok &= weft_all_tasks(l->rt, info, 256, &n) == 0;
		ok &= n <= 256 && live_exactly_once(l, info, n, 0);
	}
	free(info);
	atomic_store(&l->plain_ok, ok);
	atomic_store(&l->plain_done, 1);
	return NULL;
}

static int live_root(void *arg)
{
	struct live *l = arg;
	l->ids[l->nids++] = weft_current_task_id();
	CHECK_EQ(weft_group_open(&l->g), 0);
	for (int i = 0; i < LIVE_PARKED + LIVE_SPINNING; i++) {
		weft_task_t *h;
		weft_spawn_opts_t o = { .handle = &h };
		CHECK_EQ(weft_group_spawn_opts(l->g,
				 i < LIVE_PARKED ? park_until_cancelled
						 : spin_until_stopped,
				 i < LIVE_PARKED ? (void *)&l->parked
						 : (void *)l,
				 &o),
			0);
		l->ids[l->nids++] = weft_task_id(h);
		weft_task_release(h);
	}
	CHECK(weft_test_yield_until(&l->parked, LIVE_PARKED));
	CHECK(weft_test_yield_until(&l->spinning, LIVE_SPINNING));
	/* Tasks are parked and running on every worker: snapshots from here
	 * and from a plain thread each see every one exactly once. */
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, live_plain_thread, l), 0);
	weft_task_info_t info[64];
	for (int round = 0; round < 20; round++) {
		size_t n = 0;
		CHECK_EQ(weft_all_tasks(NULL, info, 64, &n), 0);
		CHECK(n <= 64 && live_exactly_once(l, info, n, 0));
		CHECK_EQ(weft_group_children(l->g, info, 64, &n), 0);
		CHECK_EQ(n, LIVE_PARKED + LIVE_SPINNING);
		CHECK(n <= 64 && live_exactly_once(l, info, n, 1));
		for (size_t k = 0; k < n && k < 64; k++)
			CHECK_EQ(info[k].group_id, weft_group_id(l->g));
	}
	/* A too-small array: the count says how many there were. */
	size_t n = 0;
	CHECK_EQ(weft_all_tasks(NULL, info, 2, &n), 0);
	CHECK(n >= LIVE_PARKED + LIVE_SPINNING + 1);
	CHECK_EQ(weft_all_tasks(NULL, NULL, 0, &n), 0);
	CHECK(n >= LIVE_PARKED + LIVE_SPINNING + 1);
	/* Parked ones say so.  A task counts itself in `parked` just before
	 * it parks, so give the last ones a moment to get there (bounded:
	 * the check still needs every one of them). */
	int sleeping = 0;
	for (int tries = 0; tries < 5000 && sleeping < LIVE_PARKED; tries++) {
		if (tries > 0)
			weft_sleep(WEFT_MSEC);
		CHECK_EQ(weft_group_children(l->g, info, 64, &n), 0);
		sleeping = 0;
		for (size_t k = 0; k < n && k < 64; k++)
			sleeping += info[k].parked_on &&
				strcmp(info[k].parked_on, "sleep") == 0;
	}
	CHECK(sleeping >= LIVE_PARKED);
	while (!atomic_load(&l->plain_done))
		weft_yield();
	CHECK_EQ(pthread_join(th, NULL), 0);
	atomic_store(&l->stop_spin, 1);
	weft_group_cancel(l->g, "done");
	CHECK_EQ(weft_group_join(l->g, NULL), 0);
	/* Ended tasks are gone from the snapshot. */
	CHECK_EQ(weft_all_tasks(NULL, info, 64, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(info[0].id, weft_current_task_id());
	CHECK_EQ(info[0].group_id, 0);
	CHECK(info[0].parked_on == NULL);
	CHECK(strcmp(info[0].name, "main") == 0);
	return 0;
}

static void test_inspect__all_tasks_sees_each_live_task_exactly_once(
	void **state)
{
	struct live *l = calloc(1, sizeof *l);
	assert_non_null(l);
	l->rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(l->rt, live_root, l, &err), 0);
	assert_null(err);
	assert_int_equal(weft_runtime_destroy(l->rt), 0);
	assert_int_equal(atomic_load(&l->plain_ok), 1);
	free(l);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= the dump */

struct tree {
	weft_group_t *g;
	weft_scope_t *shield;  /* the sleeper's shielded scope */
	weft_scope_t *cshield; /* cancelme's */
	int64_t deadline;      /* of the shielded scope */
	weft_task_t *sleeper, *cancelme;
	atomic_int parked, shield_ready, spinning, stop;
	uint64_t joiner_id, grandchild_id, root_id, sleeper_id, cancelme_id;
	char text[16384], json[32768];
	size_t text_len, json_len;
};

static int tree_sleeper(void *arg)
{
	struct tree *t = arg;
	CHECK_EQ(weft_scope_open(&t->shield, t->deadline, WEFT_SCOPE_SHIELD),
		0);
	atomic_fetch_add(&t->shield_ready, 1);
	CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
	CHECK_EQ(weft_scope_exit(t->shield), 0);
	weft_scope_destroy(t->shield);
	return 0;
}

static int tree_cancelme(void *arg)
{
	struct tree *t = arg;
	CHECK_EQ(weft_scope_open(&t->cshield, WEFT_FOREVER, WEFT_SCOPE_SHIELD),
		0);
	atomic_fetch_add(&t->shield_ready, 1);
	CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
	CHECK_EQ(weft_scope_exit(t->cshield), 0);
	weft_scope_destroy(t->cshield);
	return 0;
}

static int tree_waiter(void *arg)
{
	struct tree *t = arg;
	/* Ends either way at wind-down: cancelled, or the sleeper ended
	 * first. */
	int rc = weft_task_wait(t->sleeper);
	CHECK(rc == -ECANCELED || rc == 0);
	return 0;
}

static int tree_grandchild(void *arg)
{
	struct tree *t = arg;
	t->grandchild_id = weft_current_task_id();
	return park_until_cancelled(&t->parked);
}

static int tree_joiner(void *arg)
{
	struct tree *t = arg;
	t->joiner_id = weft_current_task_id();
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	CHECK_EQ(weft_group_spawn(g, tree_grandchild, t), 0);
	/* Cancelled from outside at the end. */
	CHECK_EQ(weft_group_join(g, NULL), -ECANCELED);
	return 0;
}

static int tree_spinner(void *arg)
{
	struct tree *t = arg;
	atomic_fetch_add(&t->spinning, 1);
	while (!atomic_load(&t->stop))
		weft_yield();
	return 0;
}

/* The task's parked_on once it is parked there (bounded wait). */
static int tree_wait_parked(weft_group_t *g, uint64_t id, const char *what)
{
	weft_task_info_t info[16];
	for (long i = 0; i < 5000000L; i++) {
		size_t n = 0;
		if (g)
			weft_group_children(g, info, 16, &n);
		else
			weft_all_tasks(NULL, info, 16, &n);
		for (size_t k = 0; k < n && k < 16; k++)
			if (info[k].id == id && info[k].parked_on &&
				strcmp(info[k].parked_on, what) == 0)
				return 1;
		weft_yield();
	}
	return 0;
}

/* The text line of the task named name, or NULL (" name=": not a
 * waits_on field such as task_name=). */
static const char *tree_line(const char *text, const char *name, char *line,
	size_t cap)
{
	char key[64];
	snprintf(key, sizeof key, " name=\"%s\"", name);
	const char *p = strstr(text, key);
	if (p == NULL)
		return NULL;
	const char *b = p;
	while (b > text && b[-1] != '\n')
		b--;
	const char *e = strchr(p, '\n');
	size_t n = e ? (size_t)(e - b) : strlen(b);
	if (n >= cap)
		n = cap - 1;
	memcpy(line, b, n);
	line[n] = '\0';
	return line;
}

static size_t tree_indent(const char *line)
{
	size_t n = 0;
	while (line[n] == ' ')
		n++;
	return n;
}

static int tree_root(void *arg)
{
	struct tree *t = arg;
	t->root_id = weft_current_task_id();
	t->deadline = weft_now() + (int64_t)3600 * 1000000000;
	CHECK_EQ(weft_group_open(&t->g), 0);
	weft_spawn_opts_t o = { .name = "sleeper", .handle = &t->sleeper };
	CHECK_EQ(weft_group_spawn_opts(t->g, tree_sleeper, t, &o), 0);
	o = (weft_spawn_opts_t){ .name = "cancelme", .handle = &t->cancelme };
	CHECK_EQ(weft_group_spawn_opts(t->g, tree_cancelme, t, &o), 0);
	weft_task_t *waiter, *joiner, *spinner;
	o = (weft_spawn_opts_t){ .name = "waiter", .handle = &waiter };
	CHECK_EQ(weft_group_spawn_opts(t->g, tree_waiter, t, &o), 0);
	o = (weft_spawn_opts_t){ .name = "joiner", .handle = &joiner };
	CHECK_EQ(weft_group_spawn_opts(t->g, tree_joiner, t, &o), 0);
	o = (weft_spawn_opts_t){ .name = "spinner", .handle = &spinner };
	CHECK_EQ(weft_group_spawn_opts(t->g, tree_spinner, t, &o), 0);
	CHECK(weft_test_yield_until(&t->shield_ready, 2));
	CHECK(weft_test_yield_until(&t->parked, 1));
	CHECK(weft_test_yield_until(&t->spinning, 1));
	CHECK(tree_wait_parked(t->g, weft_task_id(t->sleeper), "sleep"));
	CHECK(tree_wait_parked(t->g, weft_task_id(t->cancelme), "sleep"));
	CHECK(tree_wait_parked(t->g, weft_task_id(waiter), "task wait"));
	CHECK(tree_wait_parked(t->g, weft_task_id(joiner), "join"));
	CHECK(tree_wait_parked(NULL, t->grandchild_id, "sleep"));
	/* Cancel one task: its shield keeps it parked, but the request
	 * shows. */
	CHECK_EQ(weft_task_cancel(t->cancelme), 0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, t->text,
			 sizeof t->text, &t->text_len),
		0);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, t->json,
			 sizeof t->json, &t->json_len),
		0);
	CHECK(t->text_len < sizeof t->text);
	CHECK(t->json_len < sizeof t->json);
	/* Wind down: the shields are cancelled directly. */
	atomic_store(&t->stop, 1);
	weft_scope_cancel(t->shield, "test over");
	weft_scope_cancel(t->cshield, "test over");
	weft_group_cancel(t->g, "test over");
	CHECK_EQ(weft_group_join(t->g, NULL), 0);
	weft_task_release(waiter);
	weft_task_release(joiner);
	weft_task_release(spinner);
	t->sleeper_id = weft_task_id(t->sleeper);
	t->cancelme_id = weft_task_id(t->cancelme);
	weft_task_release(t->sleeper);
	weft_task_release(t->cancelme);
	return 0;
}

static void test_inspect__dump_shows_the_tree_as_text_and_json(void **state)
{
	struct tree *t = calloc(1, sizeof *t);
	assert_non_null(t);
	weft_test_root(state, tree_root, t);
	/* Text: one line per node, children indented under parents. */
	if (getenv("WEFT_TEST_VERBOSE"))
		printf("%s\n%s\n", t->text, t->json);
	char line[512], want[128];
	const char *text = t->text;
	assert_non_null(strstr(text, "weft runtime: workers="));
	assert_non_null(tree_line(text, "main", line, sizeof line));
	assert_int_equal(tree_indent(line), 0);
	snprintf(want, sizeof want,
		"task id=%llu name=\"main\" state=active "
		"worker=",
		(unsigned long long)t->root_id); /* dumping */
	assert_non_null(strstr(line, want));
	snprintf(want, sizeof want, "owner=%llu",
		(unsigned long long)t->root_id);
	assert_non_null(strstr(text, want)); /* the root's group */
	assert_non_null(tree_line(text, "sleeper", line, sizeof line));
	size_t child_indent = tree_indent(line);
	assert_true(child_indent > 0);
	snprintf(want, sizeof want,
		"task id=%llu name=\"sleeper\" "
		"state=parked parked_on=\"sleep\"",
		(unsigned long long)t->sleeper_id);
	assert_non_null(strstr(line, want));
	assert_non_null(strstr(line, "shielded=1"));
	assert_non_null(strstr(line, "cancelled=0 cancel_requested=0"));
	assert_null(strstr(line, "deadline=none"));
	assert_non_null(tree_line(text, "cancelme", line, sizeof line));
	assert_int_equal(tree_indent(line), child_indent);
	assert_non_null(strstr(line,
		"cancelled=0 cancel_requested=1 "
		"shielded=1"));
	assert_non_null(tree_line(text, "waiter", line, sizeof line));
	assert_non_null(strstr(line, "parked_on=\"task wait\""));
	assert_non_null(tree_line(text, "joiner", line, sizeof line));
	assert_non_null(strstr(line, "parked_on=\"join\""));
	assert_int_equal(tree_indent(line), child_indent);
	assert_non_null(tree_line(text, "tree_grandchild", line, sizeof line));
	assert_true(tree_indent(line) > child_indent);
	assert_non_null(strstr(line, "parked_on=\"sleep\""));
	assert_non_null(tree_line(text, "spinner", line, sizeof line));
	assert_non_null(strstr(line, "state=active"));
	assert_non_null(strstr(text, "scope id=")); /* the shields */
	assert_non_null(strstr(text, "shield=1"));
	assert_non_null(strstr(text, "sleep id=")); /* the sleeps */
	/* JSON: valid, same tree. */
	struct js *j = calloc(1, sizeof *j);
	assert_non_null(j);
	assert_true(js_parse(j, t->json));
	int d_main = js_depth_of(j, "main");
	int d_sleeper = js_depth_of(j, "sleeper");
	assert_true(d_main > 0);
	assert_true(d_sleeper > d_main);
	assert_int_equal(js_depth_of(j, "joiner"), d_sleeper);
	assert_int_equal(js_depth_of(j, "waiter"), d_sleeper);
	assert_true(js_depth_of(j, "tree_grandchild") > d_sleeper);
	free(j);
	snprintf(want, sizeof want,
		"{\"type\":\"task\",\"id\":%llu,"
		"\"name\":\"sleeper\",\"state\":\"parked\","
		"\"parked_on\":\"sleep\"",
		(unsigned long long)t->sleeper_id);
	const char *s = strstr(t->json, want);
	assert_non_null(s);
	snprintf(want, sizeof want,
		"\"deadline\":%lld,\"cancelled\":false,"
		"\"cancel_requested\":false,\"shielded\":true",
		(long long)t->deadline);
	assert_non_null(strstr(s, want));
	assert_non_null(strstr(t->json, "\"name\":\"cancelme\""));
	assert_non_null(strstr(t->json, "\"cancel_requested\":true"));
	assert_non_null(strstr(t->json, "\"parked_on\":\"task wait\""));
	assert_non_null(strstr(t->json, "\"type\":\"group\""));
	assert_non_null(strstr(t->json, "\"type\":\"sleep\""));
	assert_non_null(strstr(t->json, "\"shield\":true"));
	free(t);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= dump storm */

struct storm {
	weft_runtime_t *rt;
	atomic_int stop, dumps, bad;
	long waves;
};

static int storm_count(void *ctx, const char *data, size_t len)
{
	(void)data;
	*(size_t *)ctx += len;
	return 0;
}

static void *storm_dumper(void *arg)
{
	struct storm *s = arg;
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	weft_task_info_t *info = calloc(4096, sizeof *info);
	struct js *j = calloc(1, sizeof *j);
	if (!buf || !info || !j) {
		atomic_store(&s->bad, 1);
	} else {
		while (!atomic_load(&s->stop)) {
			size_t len = 0, total = 0;
			if (weft_runtime_dump_buf(s->rt, WEFT_DUMP_JSON, buf,
				    cap, &len) != 0 ||
				(len < cap && !js_parse(j, buf)))
				atomic_store(&s->bad, 2);
			if (weft_runtime_dump(s->rt, WEFT_DUMP_TEXT,
				    storm_count, &total) != 0 ||
				total == 0)
				atomic_store(&s->bad, 3);
			size_t n = 0;
			if (weft_all_tasks(s->rt, info, 4096, &n) != 0)
				atomic_store(&s->bad, 4);
			for (size_t a = 0; a < n && a < 4096; a++)
				if (info[a].id == 0)
					atomic_store(&s->bad, 5);
			atomic_fetch_add(&s->dumps, 1);
		}
	}
	free(buf);
	free(info);
	free(j);
	return NULL;
}

static int storm_leaf(void *arg)
{
	(void)arg;
	weft_yield();
	return 0;
}

static int storm_mid(void *arg)
{
	struct storm *s = arg;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(weft_group_spawn(g, storm_leaf, s), 0);
	weft_sleep(0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	return 0;
}

static int storm_root(void *arg)
{
	struct storm *s = arg;
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, storm_dumper, s), 0);
	for (long w = 0; w < s->waves || atomic_load(&s->dumps) < 3; w++) {
		weft_group_t *g;
		CHECK_EQ(weft_group_open(&g), 0);
		for (int i = 0; i < 32; i++)
			CHECK_EQ(weft_group_spawn(g, storm_mid, s), 0);
		CHECK_EQ(weft_group_join(g, NULL), 0);
	}
	atomic_store(&s->stop, 1);
	CHECK_EQ(pthread_join(th, NULL), 0);
	return 0;
}

static void test_inspect__dump_from_a_plain_thread_during_a_spawn_storm(
	void **state)
{
	struct storm s;
	memset(&s, 0, sizeof s);
	s.waves = weft_test_scale(300);
	s.rt = weft_test_runtime_create(WEFT_TEST_WORKERS(state));
	weft_error_t *err = NULL;
	assert_int_equal(weft_runtime_run(s.rt, storm_root, &s, &err), 0);
	assert_null(err);
	assert_int_equal(weft_runtime_destroy(s.rt), 0);
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_true(atomic_load(&s.dumps) >= 3);
	weft_test_assert_no_leaks();
}

/* }======================================================= */

/* {======================================================= done callbacks */

struct done {
	atomic_int calls;
	atomic_int order; /* registration order check */
	int first, second;
	int state_seen;
	void *result_seen;
	int result_rc;
	atomic_int release;
};

static void done_cb(weft_task_t *h, void *arg)
{
	struct done *d = arg;
	atomic_fetch_add(&d->calls, 1);
	d->state_seen = weft_task_state(h);
	d->result_rc = weft_task_result(h, &d->result_seen);
}

static void done_first(weft_task_t *h, void *arg)
{
	(void)h;
	struct done *d = arg;
	d->first = atomic_fetch_add(&d->order, 1);
}

static void done_second(weft_task_t *h, void *arg)
{
	(void)h;
	struct done *d = arg;
	d->second = atomic_fetch_add(&d->order, 1);
}

static int done_task(void *arg)
{
	struct done *d = arg;
	CHECK(weft_test_yield_until(&d->release, 1));
	weft_task_set_result(d);
	return 0;
}

static int done_root(void *arg)
{
	struct done *d = arg;
	weft_group_t *g;
	weft_task_t *h;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, done_task, d, &o), 0);
	/* Before completion: runs once the result is published. */
	CHECK_EQ(weft_task_on_done(h, done_cb, d), 0);
	CHECK_EQ(weft_task_on_done(h, done_first, d), 0);
	CHECK_EQ(weft_task_on_done(h, done_second, d), 0);
	CHECK_EQ(atomic_load(&d->calls), 0);
	atomic_store(&d->release, 1);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(atomic_load(&d->calls), 1);
	CHECK_EQ(d->state_seen, WEFT_TASK_FINISHED);
	CHECK_EQ(d->result_rc, 0);
	CHECK(d->result_seen == d);
	CHECK_EQ(d->first, 0);
	CHECK_EQ(d->second, 1);
	/* After completion: runs at once, in the caller. */
	CHECK_EQ(weft_task_on_done(h, done_cb, d), 0);
	CHECK_EQ(atomic_load(&d->calls), 2);
	weft_task_release(h);
	return 0;
}

static void test_inspect__done_callbacks_run_once_before_and_after_completion(
	void **state)
{
	struct done d;
	memset(&d, 0, sizeof d);
	weft_test_root(state, done_root, &d);
	assert_int_equal(atomic_load(&d.calls), 2);
	/* From a plain thread, after the end: at once as well. */
}

#define RACE_TASKS 400

struct race {
	atomic_int calls[RACE_TASKS];
	atomic_int bad_state;
};

struct race_arg {
	struct race *r;
	int i;
};

static void race_cb(weft_task_t *h, void *arg)
{
	struct race_arg *a = arg;
	if (weft_task_state(h) != WEFT_TASK_FAILED)
		atomic_store(&a->r->bad_state, 1);
	atomic_fetch_add(&a->r->calls[a->i], 1);
}

static int race_task(void *arg)
{
	struct race_arg *a = arg;
	if (a->i % 3 == 0)
		weft_yield();
	return weft_fail(-EIO, "task %d", a->i);
}

static int race_root(void *arg)
{
	struct race *r = arg;
	struct race_arg *args = calloc(RACE_TASKS, sizeof *args);
	CHECK(args != NULL);
	if (args == NULL)
		return 0;
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < RACE_TASKS; i++) {
		args[i] = (struct race_arg){ r, i };
		weft_task_t *h;
		weft_spawn_opts_t o = { .handle = &h };
		/* Failures keep the group from cancelling the rest only via
		 * its first failure; every task still ends. */
		CHECK_EQ(weft_group_spawn_opts(g, race_task, &args[i], &o), 0);
		/* The task may finish before, during or after this. */
		CHECK_EQ(weft_task_on_done(h, race_cb, &args[i]), 0);
		weft_task_release(h);
	}
	weft_error_t *err = NULL;
	CHECK_EQ(weft_group_join(g, &err), WEFT_ECHILD_FAILED);
	weft_error_free(err);
	for (int i = 0; i < RACE_TASKS; i++)
		CHECK_EQ(atomic_load(&r->calls[i]), 1);
	free(args);
	return 0;
}

static void test_inspect__done_callbacks_racing_completion_run_exactly_once(
	void **state)
{
	struct race *r = calloc(1, sizeof *r);
	assert_non_null(r);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < RACE_TASKS; i++)
			atomic_store(&r->calls[i], 0);
		weft_test_root(state, race_root, r);
		assert_int_equal(atomic_load(&r->bad_state), 0);
	}
	free(r);
}

/* }======================================================= */

/* {======================================================= errors */

static int fail_writer(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return -EIO;
}

static int errors_child(void *arg)
{
	(void)arg;
	return 0;
}

static int errors_root(void *arg)
{
	(void)arg;
	size_t n;
	weft_task_info_t info[4];
	char buf[64];
	CHECK_EQ(weft_task_set_name(NULL), -EINVAL);
	CHECK_EQ(weft_all_tasks(NULL, info, 4, NULL), -EINVAL);
	CHECK_EQ(weft_all_tasks(NULL, NULL, 4, &n), -EINVAL);
	CHECK_EQ(weft_group_children(NULL, info, 4, &n), -EINVAL);
	CHECK_EQ(weft_runtime_dump(NULL, WEFT_DUMP_TEXT, NULL, NULL), -EINVAL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, 77, buf, sizeof buf, &n), -EINVAL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, sizeof buf,
			 NULL),
		-EINVAL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, NULL, 4, &n),
		-EINVAL);
	/* The writer's error stops the dump and comes back. */
	CHECK_EQ(weft_runtime_dump(NULL, WEFT_DUMP_JSON, fail_writer, NULL),
		-EIO);
	/* snprintf semantics: cut, NUL-terminated, full length reported. */
	memset(buf, 'z', sizeof buf);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, 16, &n), 0);
	CHECK(n > 16);
	CHECK_EQ(strlen(buf), 15);
	CHECK_EQ(buf[16], 'z');
	size_t n0 = 0;
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, NULL, 0, &n0), 0);
	CHECK_EQ(n0, n);
	CHECK_EQ(weft_task_on_done(NULL, done_cb, NULL), -EINVAL);
	/* Allocation failure: nothing registered, nothing dumped. */
	weft_group_t *g;
	weft_task_t *h;
	CHECK_EQ(weft_group_open(&g), 0);
	weft_spawn_opts_t o = { .handle = &h };
	CHECK_EQ(weft_group_spawn_opts(g, errors_child, NULL, &o), 0);
	CHECK_EQ(weft_task_on_done(h, NULL, NULL), -EINVAL);
#ifdef WEFT_DEBUG
	struct done d;
	memset(&d, 0, sizeof d);
	if (weft_task_state(h) == WEFT_TASK_PENDING) {
		weft_debug_fail_alloc(1);
		int rc = weft_task_on_done(h, done_cb, &d);
		weft_debug_fail_alloc(0);
		/* (If the task ended meanwhile, the callback ran at once
		 * without allocating.) */
		CHECK(rc == -ENOMEM || atomic_load(&d.calls) == 1);
	}
#endif
	CHECK_EQ(weft_group_join(g, NULL), 0);
#ifdef WEFT_DEBUG
	CHECK_EQ(atomic_load(&d.calls) <= 1, 1);
	weft_debug_fail_alloc(1);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, buf, sizeof buf,
			 &n),
		-ENOMEM);
	weft_debug_fail_alloc(0);
	for (long k = 2; k < 12; k++) {
		weft_debug_fail_alloc(k);
		int rc = weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, buf,
			sizeof buf, &n);
		weft_debug_fail_alloc(0);
		CHECK(rc == 0 || rc == -ENOMEM);
	}
#endif
	weft_task_release(h);
	return 0;
}

/* JSON text is UTF-8 (jansson refuses anything else): a name cut inside
 * a character, or of bytes that are not UTF-8 (an overlong form, a
 * surrogate, a stray byte), has each bad byte written as U+FFFD, and a
 * well-formed name comes back as it was.  The cut name once made the
 * whole dump invalid JSON. */
#define REPL "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

static const char *const odd_names[][2] = {
	/* 38 bytes, then a 3-byte character cut after its first byte. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82\xac",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" REPL },
	{ "\xff ok \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80",
		REPL " ok " REPL REPL " " REPL REPL REPL
		     " " REPL REPL REPL REPL },
	{ "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82",
		"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82" },
};
enum { NODD = sizeof odd_names / sizeof odd_names[0] };

struct odd {
	weft_event_t *go;
	atomic_int named;
};

static int odd_child(void *arg)
{
	struct odd *o = *(struct odd **)arg;
	const char *name = ((const char **)arg)[1];
	CHECK_EQ(weft_task_set_name(name), 0);
	atomic_fetch_add(&o->named, 1);
	return weft_event_wait(o->go);
}

static int odd_names_root(void *arg)
{
	(void)arg;
	struct odd o = { 0 };
	CHECK_EQ(weft_event_create(&o.go), 0);
	const void *args[NODD][2];
	weft_group_t *g;
	CHECK_EQ(weft_group_open(&g), 0);
	for (int i = 0; i < NODD; i++) {
		args[i][0] = &o;
		args[i][1] = odd_names[i][0];
		CHECK_EQ(weft_group_spawn(g, odd_child, args[i]), 0);
	}
	while (atomic_load(&o.named) < NODD)
		CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
	size_t size = 1 << 16, len = 0;
	char *text = malloc(size);
	CHECK(text != NULL);
	CHECK_EQ(weft_runtime_dump_buf(NULL, WEFT_DUMP_JSON, text, size, &len),
		0);
	CHECK(len < size);
	struct js *j = calloc(1, sizeof *j);
	CHECK(j != NULL);
	if (CHECK(js_parse(j, text)))
		for (int i = 0; i < NODD; i++)
			if (!CHECK(js_depth_of(j, odd_names[i][1]) > 0))
				fprintf(stderr, "name %d is not in: %s\n", i,
					text);
	free(j);
	free(text);
	CHECK_EQ(weft_event_set(o.go), 0);
	CHECK_EQ(weft_group_join(g, NULL), 0);
	CHECK_EQ(weft_event_destroy(o.go), 0);
	return 0;
}

static void test_inspect__json_names_are_utf8_whatever_the_bytes(void **state)
{
	weft_test_root(state, odd_names_root, NULL);
}

static void test_inspect__errors(void **state)
{
	size_t n;
	weft_task_info_t info[4];
	/* Fiber-only calls from a plain thread. */
	assert_int_equal(weft_task_set_name("x"), WEFT_ENOTFIBER);
	assert_int_equal(weft_all_tasks(NULL, info, 4, &n), WEFT_ENOTFIBER);
	assert_int_equal(weft_runtime_dump_buf(NULL, WEFT_DUMP_TEXT, NULL, 0,
				 &n),
		WEFT_ENOTFIBER);
	weft_test_root(state, errors_root, NULL);
}

/* }======================================================= */

int main(void)
{
	const struct CMUnitTest tests[] = {
		WEFT_TEST(test_inspect__default_names_come_from_the_function),
		WEFT_TEST(test_inspect__set_name_renames_the_calling_task),
		WEFT_TEST(test_inspect__snapshots_name_each_tasks_parent),
		WEFT_TEST(test_inspect__current_root_and_parent_group),
		WEFT_TEST(
			test_inspect__all_tasks_sees_each_live_task_exactly_once),
		WEFT_TEST(test_inspect__dump_shows_the_tree_as_text_and_json),
		WEFT_TEST(
			test_inspect__dump_from_a_plain_thread_during_a_spawn_storm),
		WEFT_TEST(
			test_inspect__done_callbacks_run_once_before_and_after_completion),
		WEFT_TEST(
			test_inspect__done_callbacks_racing_completion_run_exactly_once),
		WEFT_TEST(test_inspect__json_names_are_utf8_whatever_the_bytes),
		WEFT_TEST(test_inspect__errors),
	};
	return WEFT_RUN_TESTS(tests);
}
