/* weft's C++ face: a header-only C++17 layer over the C API (<weft.h>).
 *
 * What it adds: lambdas (any callable) as tasks, whose captures the task
 * owns and destroys exactly once, after it ran (a spawned task always
 * runs, also when cancelled first: docs/semantics.md rule 30), or at once
 * when the spawn fails; C++ exceptions in both directions; and RAII for
 * groups, scopes, task handles, locks and events.  Everything else is the
 * C API, which stays callable alongside (weft::Group::get() and the like
 * give the C objects).
 *
 * Errors are exceptions here:
 *   - weft::Cancelled for -ECANCELED (a wait, a join or a scope reached by
 *     a cancellation), so a cancelled body unwinds like Trio's Cancelled;
 *   - weft::GroupError for WEFT_ECHILD_FAILED, holding the error tree
 *     (leaves(): every failure, with its task, code and message);
 *   - weft::Error for any other code (code() is the weft code or the
 *     negated errno; what() its message).
 * A task body may throw anything.  What escapes it is turned into the
 * task's result, never std::terminate: Cancelled becomes -ECANCELED (not
 * a failure, rule 10); GroupError becomes the task's nested failure
 * (weft_fail_group); Error its code with its message; any other
 * exception a failure with code WEFT_EEXCEPTION and the message
 * "<type>: <what()>" (the type demangled), or "unknown exception".
 * A task may wait anywhere, in a catch block or in a destructor run
 * while an exception unwinds included: the C++ runtime's per-thread
 * exception state (what `throw;` rethrows, std::uncaught_exceptions())
 * travels with the task from worker to worker.
 *
 * The block forms are the exact ones: weft::with_group runs a body with a
 * group open and joins it; a failure of the body (an exception) counts as
 * a child's (rule 5), so the body's exception and the children's
 * failures come back together in one GroupError.  weft::Scope::run
 * enters a scope for a body and absorbs the scope's own cancellation the
 * way leaving a C scope does (rules 23, 29).  The RAII weft::Group joins
 * in its destructor when join() was not called: if the block is being
 * left by an exception, it cancels the group first and the exception in
 * flight is what the caller sees (the children's failures go as below);
 * otherwise the destructor throws what join() would have thrown.  A C++
 * destructor cannot replace the exception in flight, so when the block
 * is left by one (the weft::Cancelled a child's failure causes at a
 * checkpoint of the block's own code included: the group cancels
 * itself, rule 4) the children's failures do not reach the block's
 * caller: they become the task's own failure (weft_fail_group), which
 * the task reports when it ends, whether the exception escapes it or is
 * caught on the way (a later ~Group of the same task that keeps failures
 * replaces these).  Where the block's caller must see them, use
 * weft::with_group, which throws them as a GroupError (its body's
 * Cancelled from the group's own cancellation is absorbed, rule 6), or
 * call join() before any checkpoint of the block's own.
 *
 * Threads: as the C calls they wrap (most need a weft task: WEFT_ENOTFIBER
 * otherwise).  Checkpoints: as the C calls. */
#ifndef WEFT_HPP
#define WEFT_HPP

#include <weft.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__GNUG__)
#include <cxxabi.h>
#endif

namespace weft
{

/* {======================================================= errors */

class Error : public std::exception
{
      public:
	Error(int code, std::string message)
	    : code_(code), message_(std::move(message))
	{
	}
	explicit Error(int code) : Error(code, weft_strerror(code))
	{
	}
	/* The weft code (WEFT_E*) or negated errno. */
	int code() const noexcept
	{
		return code_;
	}
	const char *what() const noexcept override
	{
		return message_.c_str();
	}

      private:
	int code_;
	std::string message_;
};

/* -ECANCELED: the operation did not happen (rule 42). */
class Cancelled : public Error
{
      public:
	Cancelled() : Error(-ECANCELED)
	{
	}
};

/* WEFT_ECHILD_FAILED: one or more tasks of a group failed.  Copies share
 * the error tree (the runtime's machinery may copy exceptions); it is
 * freed with the last copy, unless take() handed it to the C API. */
class GroupError : public Error
{
      public:
	struct Leaf {
		int code;
		std::string message;
		std::string task_name;
		uint64_t task_id;
		bool collateral;  /* failed after its group was cancelled */
		std::string path; /* the nested groups it came through */
		bool nested;	  /* the entry is a nested error group */
	};

	/* Takes err. */
	explicit GroupError(weft_error_t *err)
	    : Error(WEFT_ECHILD_FAILED, describe(err)), tree_(hold(err))
	{
	}
	/* The tree, for the C accessors of weft/error.h (nullptr once
	 * taken). */
	const weft_error_t *get() const noexcept
	{
		return tree_->err;
	}
	/* The top level's entries (none once taken). */
	std::vector<Leaf> leaves() const
	{
		std::vector<Leaf> v;
		const weft_error_t *e = tree_->err;
		for (size_t i = 0; e && i < weft_error_count(e); i++) {
			const char *m = weft_error_message_at(e, i);
			const char *n = weft_error_task_name_at(e, i);
			const char *p = weft_error_path_at(e, i);
			v.push_back(Leaf{ weft_error_code_at(e, i), m ? m : "",
				n ? n : "", weft_error_task_id_at(e, i),
				weft_error_collateral_at(e, i) != 0, p ? p : "",
				weft_error_nested_at(e, i) != nullptr });
		}
		return v;
	}
	/* Hands the tree to the caller (weft_error_free, or
	 * weft_fail_group), for every copy; what() keeps its text. */
	weft_error_t *take() const noexcept
	{
		return std::exchange(tree_->err, nullptr);
	}

      private:
	struct Tree {
		explicit Tree(weft_error_t *e) : err(e)
		{
		}
		Tree(const Tree &) = delete;
		Tree &operator=(const Tree &) = delete;
		~Tree()
		{
			weft_error_free(err);
		}
		weft_error_t *err;
	};
	static std::shared_ptr<Tree> hold(weft_error_t *err)
	{
		try {
			return std::make_shared<Tree>(err);
		} catch (...) {
			weft_error_free(err);
			throw;
		}
	}
	static std::string describe(const weft_error_t *err)
	{
		char buf[1024];
		if (err && weft_error_format(err, buf, sizeof buf) >= 0)
			return buf;
		return weft_strerror(WEFT_ECHILD_FAILED);
	}
	std::shared_ptr<Tree> tree_;
};

/* Throws the exception of a negative C result; returns rc otherwise. */
inline int check(int rc)
{
	if (rc >= 0)
		return rc;
	if (rc == -ECANCELED)
		throw Cancelled();
	throw Error(rc);
}

/* }======================================================= */

/* {======================================================= tasks */

namespace detail
{

inline std::string type_name(const std::type_info &t)
{
#if defined(__GNUG__)
	int status = 0;
	char *d = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
	if (d != nullptr) {
		std::string s(d);
		std::free(d);
		return s;
	}
#endif
	return t.name();
}

/* What a body's escaping exception makes of the task's result.  Called
 * inside a catch handler. */
inline int result_of_current_exception() noexcept
{
	try {
		throw;
	} catch (const Cancelled &) {
		/* Children's failures a ~Group kept while this unwound (the
		 * group's own cancellation, rule 4, is what threw it): the
		 * task failed. */
		if (weft_fail_group_pending())
			return WEFT_ECHILD_FAILED;
		return -ECANCELED;
	} catch (const GroupError &e) {
		/* Nested in the parent's error group (rule 9). */
		weft_error_t *tree = e.take();
		if (tree == nullptr)
			return weft_fail(WEFT_ECHILD_FAILED, "%s", e.what());
		return weft_fail_group(tree);
	} catch (const Error &e) {
		return weft_fail(e.code(), "%s", e.what());
	} catch (const std::exception &e) {
		std::string t = type_name(typeid(e));
		return weft_fail(WEFT_EEXCEPTION, "%s: %s", t.c_str(),
			e.what());
	} catch (...) {
		return weft_fail(WEFT_EEXCEPTION, "unknown exception");
	}
}

/* Runs a body: its int result, or 0 for a body returning void. */
template <class F> int invoke(F &f)
{
	if constexpr (std::is_void_v<std::invoke_result_t<F &>>) {
		f();
		return 0;
	} else {
		return static_cast<int>(f());
	}
}

/* The task's entry: owns the closure from here on. */
template <class F> int task_entry(void *arg) noexcept
{
	std::unique_ptr<F> f(static_cast<F *>(arg));
	int rc;
	try {
		rc = invoke(*f);
		/* Children's failures a ~Group kept (see ~Group) while an
		 * exception the body then caught unwound: reported here,
		 * not lost. */
		if (rc == 0 && weft_fail_group_pending())
			rc = WEFT_ECHILD_FAILED;
	} catch (...) {
		rc = result_of_current_exception();
	}
	f.reset(); /* the captures go before the task ends */
	return rc;
}

} // namespace detail

/* A task handle (weft/task.h): copies retain, destruction releases. */
class Task
{
      public:
	Task() = default;
	/* Adopts h (one reference). */
	explicit Task(weft_task_t *h) noexcept : h_(h)
	{
	}
	Task(const Task &o) : h_(o.h_)
	{
		if (h_)
			weft_task_retain(h_);
	}
	Task(Task &&o) noexcept : h_(std::exchange(o.h_, nullptr))
	{
	}
	Task &operator=(Task o) noexcept
	{
		std::swap(h_, o.h_);
		return *this;
	}
	~Task()
	{
		if (h_)
			weft_task_release(h_);
	}
	weft_task_t *get() const noexcept
	{
		return h_;
	}
	explicit operator bool() const noexcept
	{
		return h_ != nullptr;
	}
	uint64_t id() const
	{
		return weft_task_id(h_);
	}
	std::string name() const
	{
		const char *n = weft_task_name(h_);
		return n ? n : "";
	}
	weft_task_state_t state() const
	{
		return weft_task_state(h_);
	}
	/* Cancels the task (rule 18); nothing once it ended. */
	void cancel(const char *reason = nullptr)
	{
		check(reason ? weft_task_cancel_with(h_, reason)
			     : weft_task_cancel(h_));
	}
	/* Waits until it ended (a checkpoint); does not report its
	 * failure, which goes to its group (rule 34). */
	void wait()
	{
		check(weft_task_wait(h_));
	}

      private:
	weft_task_t *h_ = nullptr;
};

/* A task group (weft/group.h), open from construction. */
class Group
{
      public:
	Group() : uncaught_(std::uncaught_exceptions())
	{
		check(weft_group_open(&g_));
	}
	Group(const Group &) = delete;
	Group &operator=(const Group &) = delete;
	/* Joins if join() was not called (see the top of the file). */
	~Group() noexcept(false)
	{
		if (joined_)
			return;
		if (std::uncaught_exceptions() > uncaught_) {
			weft_group_cancel(g_, "block left by a C++ exception");
			weft_error_t *e = nullptr;
			/* A destructor cannot replace the exception in
			 * flight: the children's failures become the task's
			 * own (weft_fail_group), which its entry reports
			 * when the task ends (detail::task_entry). */
			if (weft_group_join(g_, &e) == WEFT_ECHILD_FAILED)
				weft_fail_group(e);
			else
				weft_error_free(e);
			return;
		}
		join();
	}

	/* Spawns f() (any callable, moved or copied into the task) as a
	 * child named name.  Throws Error (WEFT_ECLOSED, -ENOMEM, ...);
	 * then f was destroyed and never ran. */
	template <class F> void spawn(const char *name, F &&f)
	{
		spawn_opts(name, std::forward<F>(f), nullptr);
	}
	template <class F> void spawn(F &&f)
	{
		spawn("task", std::forward<F>(f));
	}
	/* The same, returning a handle to the child. */
	template <class F> Task spawn_task(const char *name, F &&f)
	{
		weft_task_t *h = nullptr;
		spawn_opts(name, std::forward<F>(f), &h);
		return Task(h);
	}
	/* Starts f() and waits until it calls weft::started() (rules
	 * 13-16); returns the value it passed.  Throws what the C call
	 * returns: the task's failure before started() (as Error with
	 * its code and message: a GroupError the task threw comes back as
	 * an Error with WEFT_ECHILD_FAILED and the tree's text, since the
	 * C call hands over no tree), WEFT_ENOTSTARTED, Cancelled. */
	template <class F> void *start(const char *name, F &&f)
	{
		using Fn = std::decay_t<F>;
		Fn *c = new Fn(std::forward<F>(f));
		void *value = nullptr;
		weft_task_t *h = nullptr;
		weft_spawn_opts_t o{};
		o.name = name;
		o.handle = &h;
		int rc = weft_group_start_opts(g_, detail::task_entry<Fn>, c,
			&o, &value);
		if (rc < 0 && h == nullptr)
			delete c; /* the task was never created */
		Task t(h);
		if (rc < 0 && rc != -ECANCELED && h != nullptr) {
			int code = 0;
			const char *msg = nullptr;
			if (weft_task_failure(h, &code, &msg) == 0 && msg)
				throw Error(rc, msg);
		}
		check(rc);
		return value;
	}

	/* Waits for every child (not a checkpoint for the group's own
	 * cancellation, rule 6).  Throws GroupError if any failed,
	 * Cancelled if a cancellation from outside reached the owner. */
	void join()
	{
		joined_ = true;
		weft_error_t *e = nullptr;
		int rc = weft_group_join(g_, &e);
		if (rc == WEFT_ECHILD_FAILED)
			throw GroupError(e);
		weft_error_free(e);
		check(rc);
	}
	/* Cancels every child and the owner's body (rule 4's mechanism). */
	void cancel(const char *reason = nullptr)
	{
		check(weft_group_cancel(g_, reason));
	}
	/* Records a failure of the owner's body (rule 5). */
	void fail_body(int code, const char *message)
	{
		check(weft_group_fail(g_, code, "%s", message));
	}
	weft_group_t *get() const noexcept
	{
		return g_;
	}

      private:
	template <class F>
	void spawn_opts(const char *name, F &&f, weft_task_t **h)
	{
		using Fn = std::decay_t<F>;
		Fn *c = new Fn(std::forward<F>(f));
		weft_spawn_opts_t o{};
		o.name = name;
		o.handle = h;
		int rc = weft_group_spawn_opts(g_, detail::task_entry<Fn>, c,
			&o);
		if (rc < 0) {
			delete c; /* no task: the closure is ours */
			check(rc);
		}
	}

	weft_group_t *g_ = nullptr;
	bool joined_ = false;
	int uncaught_;
};

/* Runs body(group) with a group open, then joins it.  An exception out
 * of the body is the body's failure (rule 5): the group is cancelled and
 * the failure joins the children's in the GroupError thrown at the end;
 * a Cancelled from the body is left to the join, which absorbs the
 * group's own cancellation (rule 6) and passes on an outer one. */
template <class F> void with_group(F &&body)
{
	Group g;
	try {
		body(g);
	} catch (const Cancelled &) {
		/* The join decides. */
	} catch (const GroupError &e) {
		/* Nests under the owner's leaf: the C owner's
		 * weft_group_fail cannot take a tree, so the text. */
		weft_group_fail(g.get(), WEFT_ECHILD_FAILED, "%s", e.what());
	} catch (const Error &e) {
		weft_group_fail(g.get(), e.code(), "%s", e.what());
	} catch (const std::exception &e) {
		std::string t = detail::type_name(typeid(e));
		weft_group_fail(g.get(), WEFT_EEXCEPTION, "%s: %s", t.c_str(),
			e.what());
	} catch (...) {
		weft_group_fail(g.get(), WEFT_EEXCEPTION, "unknown exception");
	}
	g.join();
}

/* weft_task_started (rules 13-15).  Throws Error(WEFT_EALREADY) on a
 * second call. */
inline void started(void *value = nullptr)
{
	check(weft_task_started(value));
}

/* }======================================================= */

/* {======================================================= scopes */

/* A cancel scope (weft/cancel.h): created by the constructor, destroyed
 * by the destructor; run() enters it for a body. */
class Scope
{
      public:
	explicit Scope(int64_t deadline = WEFT_FOREVER, unsigned flags = 0)
	{
		check(weft_scope_create(&s_, deadline, flags));
	}
	Scope(const Scope &) = delete;
	Scope &operator=(const Scope &) = delete;
	~Scope()
	{
		weft_scope_destroy(s_);
	}
	/* Runs body() inside the scope.  Returns true when the scope
	 * caught its own cancellation (cancelled_caught: the body was cut
	 * short by it, which is absorbed here, rule 23).  A fail_after
	 * scope (WEFT_SCOPE_FAIL) that caught its deadline throws
	 * Error(-ETIMEDOUT) instead (rule 27).  Any other exception, and a
	 * Cancelled from further out, goes on. */
	template <class F> bool run(F &&body)
	{
		check(weft_scope_enter(s_));
		try {
			body();
		} catch (const Cancelled &) {
			int rc = weft_scope_exit(s_);
			if (rc == -ETIMEDOUT)
				throw Error(rc);
			if (!weft_scope_cancelled_caught(s_))
				throw;
			return true;
		} catch (...) {
			weft_scope_exit(s_);
			throw;
		}
		check(weft_scope_exit(s_));
		return weft_scope_cancelled_caught(s_) != 0;
	}
	void cancel(const char *reason = nullptr)
	{
		check(weft_scope_cancel(s_, reason));
	}
	void set_deadline(int64_t deadline)
	{
		check(weft_scope_set_deadline(s_, deadline));
	}
	bool cancel_called() const
	{
		return weft_scope_cancel_called(s_) != 0;
	}
	bool cancelled_caught() const
	{
		return weft_scope_cancelled_caught(s_) != 0;
	}
	weft_scope_t *get() const noexcept
	{
		return s_;
	}

      private:
	weft_scope_t *s_ = nullptr;
};

/* Trio's move_on_after: runs body, cut short after ns; true if it was. */
template <class F> bool move_on_after(int64_t ns, F &&body)
{
	int64_t now = weft_now();
	int64_t d = ns >= WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
	return Scope(d).run(std::forward<F>(body));
}

/* Trio's fail_after: runs body; throws Error(-ETIMEDOUT) if cut short by
 * the deadline. */
template <class F> void fail_after(int64_t ns, F &&body)
{
	int64_t now = weft_now();
	int64_t d = ns >= WEFT_FOREVER - now ? WEFT_FOREVER : now + ns;
	Scope(d, WEFT_SCOPE_FAIL).run(std::forward<F>(body));
}

inline void sleep(int64_t ns)
{
	check(weft_sleep(ns));
}

inline void checkpoint()
{
	check(weft_checkpoint());
}

/* }======================================================= */

/* {======================================================= primitives */

/* weft_lock_t; BasicLockable, so std::lock_guard and std::unique_lock
 * work.  lock() is a checkpoint and throws Cancelled or Error (-EDEADLK
 * when it would close a cycle of Locks). */
class Lock
{
      public:
	Lock()
	{
		check(weft_lock_create(&l_));
	}
	Lock(const Lock &) = delete;
	Lock &operator=(const Lock &) = delete;
	~Lock()
	{
		weft_lock_destroy(l_);
	}
	void lock()
	{
		check(weft_lock_acquire(l_));
	}
	bool try_lock()
	{
		return weft_lock_try_acquire(l_) == 0;
	}
	void unlock()
	{
		check(weft_lock_release(l_));
	}
	weft_lock_t *get() const noexcept
	{
		return l_;
	}

      private:
	weft_lock_t *l_ = nullptr;
};

/* weft_event_t: set once, waited for by any number of tasks. */
class Event
{
      public:
	Event()
	{
		check(weft_event_create(&e_));
	}
	Event(const Event &) = delete;
	Event &operator=(const Event &) = delete;
	~Event()
	{
		weft_event_destroy(e_);
	}
	void set()
	{
		check(weft_event_set(e_));
	}
	bool is_set() const
	{
		return weft_event_is_set(e_) != 0;
	}
	void wait()
	{
		check(weft_event_wait(e_));
	}
	weft_event_t *get() const noexcept
	{
		return e_;
	}

      private:
	weft_event_t *e_ = nullptr;
};

/* }======================================================= */

/* {======================================================= running */

/* Runs f() as the root task of rt (weft_runtime_run) from a plain
 * thread; throws what the root's failure is: GroupError with
 * weft_runtime_run's error group, whose one leaf is the root's failure
 * (a weft::Error(-EIO) thrown by f comes back as a GroupError with an
 * -EIO leaf, as does an int f returned that is not 0), Cancelled when
 * the root was cancelled, and Error when nothing ran (-EINVAL, -ENOMEM,
 * WEFT_EMISUSE, -EBUSY) or for -EDEADLK (virtual clock). */
template <class F> void run(weft_runtime_t *rt, F &&f)
{
	using Fn = std::decay_t<F>;
	Fn *c = new Fn(std::forward<F>(f));
	weft_error_t *e = nullptr;
	int rc = weft_runtime_run(rt, detail::task_entry<Fn>, c, &e);
	/* A root that ran and failed always has its error group, whatever
	 * its code: without one, these codes mean nothing ran. */
	if (e == nullptr &&
		(rc == -EINVAL || rc == -ENOMEM || rc == WEFT_EMISUSE ||
			rc == -EBUSY)) {
		delete c;
		throw Error(rc);
	}
	/* Any nonzero code is a failure, a positive one too (weft_fn). */
	if (rc != 0 && rc != -ECANCELED && e != nullptr)
		throw GroupError(e);
	weft_error_free(e);
	if (rc > 0)
		throw Error(rc);
	check(rc);
}

/* A runtime (weft/runtime.h) with the environment's configuration, or
 * cfg's. */
class Runtime
{
      public:
	Runtime()
	{
		weft_config_t cfg;
		weft_config_init(&cfg);
		create(&cfg);
	}
	explicit Runtime(weft_config_t &cfg)
	{
		create(&cfg);
	}
	Runtime(const Runtime &) = delete;
	Runtime &operator=(const Runtime &) = delete;
	~Runtime()
	{
		weft_runtime_destroy(rt_);
	}
	template <class F> void run(F &&f)
	{
		weft::run(rt_, std::forward<F>(f));
	}
	weft_runtime_t *get() const noexcept
	{
		return rt_;
	}

      private:
	void create(weft_config_t *cfg)
	{
		int rc = weft_runtime_create(&rt_, cfg);
		if (rc < 0)
			throw Error(rc,
				cfg->message[0] ? cfg->message
						: weft_strerror(rc));
	}
	weft_runtime_t *rt_ = nullptr;
};

/* }======================================================= */

} // namespace weft

#endif
