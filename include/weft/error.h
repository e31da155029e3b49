/* Error codes and error groups.
 *
 * Every weft call that can fail returns 0 (or a count) on success or a
 * negative code: a negated POSIX errno value (-EINVAL, -ENOMEM,
 * -ECANCELED, -ETIMEDOUT, ...) or one of the weft-only codes below, which
 * live in their own range (-3000 .. -3099) and are never renumbered.  weft
 * never reports errors through errno or any thread-local "last error":
 * fibers migrate between threads.
 *
 * Contract on failure: if a call fails, nothing happened (no task was
 * created, no ownership moved, the object is unchanged), unless its
 * documentation says otherwise. */
#ifndef WEFT_ERROR_H
#define WEFT_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "weft/export.h"

/* X(name, value, message).  The one table from which the enum,
 * weft_strerror and weft_err_name are generated. */
#define WEFT_ERRNO_MAP(X)                                                      \
	X(ECHILD_FAILED, -3000, "one or more tasks of the group failed")       \
	X(EMISUSE, -3001, "API misuse")                                        \
	X(ECLOSED, -3002, "the group or resource is closed")                   \
	X(EALREADY, -3003, "started() was already called for this task")       \
	X(ENOTSTARTED, -3004, "the task returned without calling started()")   \
	X(ENOTFINISHED, -3005, "the task has not finished yet")                \
	X(EFAILED, -3006, "the task failed")                                   \
	X(EMISNEST, -3007, "cancel scopes or groups exited out of order")      \
	X(EMISSINGJOIN, -3008, "a group was left without being joined")        \
	X(EPANIC, -3009, "a task panicked")                                    \
	X(ENOTFIBER, -3010, "must be called from inside a weft task")          \
	X(EEND, -3011, "end of channel: every sender closed")                  \
	X(EBROKEN, -3012, "broken channel: every receiver closed")             \
	X(ENOTFOUND, -3013, "host name not found")                             \
	X(EDNS, -3014, "name resolution failed")                               \
	X(ETLS_VERIFY, -3015,                                                  \
		"TLS: the peer's certificate failed verification")             \
	X(ETLS, -3016, "TLS protocol failure")                                 \
	X(ETLS_TRUNCATED, -3017, "TLS: the peer closed without close_notify")  \
	X(EEXCEPTION, -3018, "a C++ exception escaped the task (weft.hpp)")    \
	X(EINTENSITY, -3019, "a supervisor gave up: too many restarts")

enum {
#define WEFT__ERR_ENUM(name, value, msg) WEFT_##name = (value),
	WEFT_ERRNO_MAP(WEFT__ERR_ENUM)
#undef WEFT__ERR_ENUM
		WEFT_ERRNO_MIN_ = -3099
};

WEFT_BEGIN_DECLS

/* What it does: returns a human-readable message for a weft code or a
 * negated errno value (0 gives "success").
 * Ownership: a static string; never free it.
 * Errors: unknown codes give "unknown error".
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_strerror(int code);

/* What it does: returns the symbolic name of a code ("WEFT_ECLOSED",
 * "ECANCELED", "OK", or "UNKNOWN").
 * Ownership: a static string.  Errors: none.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_err_name(int code);

/* An error group: the owned aggregate of every failure of a task group.  A
 * tree: a leaf is one task's failure; a nested node is the error group of a
 * nested task group that failed inside a child.  Cancellations are never
 * leaves (they are not failures). */
typedef struct weft_error weft_error_t;

/* What it does: frees an error group and everything it holds.
 * Ownership: the caller gives up err; NULL is ignored.
 * Errors: none.  Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN void weft_error_free(weft_error_t *err);

/* What it does: number of direct entries (leaves and nested groups) in err.
 * Ownership: err stays the caller's.  Errors: NULL gives 0.
 * Checkpoint: no.  Threads: any thread (err must not be freed meanwhile). */
WEFT_EXTERN size_t weft_error_count(const weft_error_t *err);

/* What it does: number of leaves in the whole tree below err: every
 * failure, a panic that carries its reaped groups' failures counting
 * itself and them.
 * Ownership, errors, checkpoint, threads: as weft_error_count. */
WEFT_EXTERN size_t weft_error_leaf_count(const weft_error_t *err);

/* What it does: the code of entry i: the task's failure code.  For a
 * nested group passed on with weft_fail_group that is WEFT_ECHILD_FAILED;
 * a task that failed by itself while groups it opened were still open (a
 * panic, a missing join) keeps its own code, with their failures nested
 * under it.
 * Errors: NULL err or i out of range gives -EINVAL.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_error_code_at(const weft_error_t *err, size_t i);

/* What it does: the failure message of leaf i ("" when the task gave none);
 * the name of the failing task; its task id; whether it failed while
 * already cancelled (a "collateral" failure during cleanup).  For a nested
 * group, the name is that of the task whose group failed and the message
 * is the one that task gave ("" when none).
 * Ownership: strings stay owned by err.
 * Errors: NULL err or out-of-range i gives "" / 0 / false.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_error_message_at(const weft_error_t *err,
	size_t i);
WEFT_EXTERN const char *weft_error_task_name_at(const weft_error_t *err,
	size_t i);
WEFT_EXTERN uint64_t weft_error_task_id_at(const weft_error_t *err, size_t i);
WEFT_EXTERN int weft_error_collateral_at(const weft_error_t *err, size_t i);

/* What it does: the context of entry i.
 * weft_error_path_at: where the failing task sat in the task tree, root
 * first, each task as "<name>#<id>", joined by '/' (for example
 * "main#1/serve#3/conn#17"; the last one is the failing task).
 * weft_error_cancel_reason_at: for a collateral entry, the reason text of
 * the cancellation it failed under (weft_cancel_reason_t.text: for a
 * sibling's failure "task '<name>'#<id> failed"); "" otherwise.
 * weft_error_time_at: the failure's logical time, a per-runtime counter
 * taken when the task failed: of two entries of one runtime, the smaller
 * failed first (weft_error_primary picks the earliest by it).
 * Ownership: strings stay owned by err.
 * Errors: NULL err or out-of-range i gives "" / 0; a context string that
 * could not be allocated when the task failed reads as "".
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const char *weft_error_path_at(const weft_error_t *err, size_t i);
WEFT_EXTERN const char *weft_error_cancel_reason_at(const weft_error_t *err,
	size_t i);
WEFT_EXTERN uint64_t weft_error_time_at(const weft_error_t *err, size_t i);

/* What it does: entry i's nested error group, or NULL for a leaf.
 * Ownership: still owned by err.  Errors: out of range gives NULL.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN const weft_error_t *weft_error_nested_at(const weft_error_t *err,
	size_t i);

/* What it does: the primary failure, anywhere in the tree: the earliest
 * (by logical time) fatal-class leaf (-ENOMEM, WEFT_EPANIC), else the
 * earliest non-collateral leaf, else the earliest leaf.  An entry with a
 * nested group counts as a leaf itself when its code is its own (not
 * WEFT_ECHILD_FAILED: a panic with its reaped groups under it).  The other
 * leaves stay in err.  Writes its code, and its message if msg is not NULL.
 * Ownership: *msg points into err.
 * Errors: returns 0 and leaves outputs untouched for NULL or empty err.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_error_primary(const weft_error_t *err, const char **msg);

/* What it does: splits err into the leaves for which pred returns nonzero
 * (*match) and the others (*rest), keeping the tree shape; a side with no
 * leaves is NULL.  An entry whose code is its own (see
 * weft_error_code_at) goes to the side its code chooses, with its nested
 * group whole.  err itself is consumed (freed) on success.
 * Ownership: the caller owns *match and *rest.
 * Errors: -EINVAL for NULL err/pred/match/rest; -ENOMEM on allocation
 * failure, in which case err is untouched and still the caller's.
 * Checkpoint: no.  Threads: any thread. */
typedef int (*weft_error_pred_fn)(int code, const char *message, void *arg);
WEFT_EXTERN int weft_error_split(weft_error_t *err, weft_error_pred_fn pred,
	void *arg, weft_error_t **match, weft_error_t **rest);

/* What it does: formats the whole tree into buf as indented text, one
 * entry per line, two spaces of indent per nesting level:
 *
 *     <task name>#<id>: <ERRNAME>[: <message>][ (while cancelled[: <why>])]
 *
 * ": <message>" is left out when the message is empty; the parenthesis
 * marks a collateral entry, with why it was cancelled when known
 * (weft_error_cancel_reason_at).  An entry with a nested group shows its
 * code (weft_error_code_at: WEFT_ECHILD_FAILED for a group passed on with
 * weft_fail_group) and is followed by the nested entries, indented.
 * Always NUL-terminates when size > 0.
 * Returns: the length the full text needs (like snprintf), or -EINVAL for
 * NULL err.
 * Checkpoint: no.  Threads: any thread. */
WEFT_EXTERN int weft_error_format(const weft_error_t *err, char *buf,
	size_t size);

WEFT_END_DECLS

#endif
