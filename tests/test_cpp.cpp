// The C++ face (include/weft.hpp), each test at 1, 2 and 4 workers with
// the suite's leak check after every run.  Built with the C++ compiler of
// the build (g++, and clang++ in the clang build of tools/run test), under
// the same sanitizers as the rest.
//
// cmocka's asserts run on the main thread only, so the tasks record what
// they saw in a Seen and the main thread checks it after the run.
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

// Before cmocka.h, whose fail() is a macro.
#include <weft.hpp>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C" {
#include <cmocka.h>
}

// From tests/support.c (support.h is C11: <stdatomic.h>).
extern "C" int weft_test_run(unsigned workers, weft_fn fn, void *arg);
extern "C" int weft_test_run_err(unsigned workers, weft_fn fn, void *arg,
	weft_error_t **err);
extern "C" void weft_test_assert_no_leaks(void);

namespace
{

unsigned workers_of(void **state)
{
	return (unsigned)(uintptr_t)*state;
}

// Runs body() as the root task at the test's worker count through the
// C++ entry (exceptions become the root's result) and the suite's
// runner (leak check).  Returns the root's result.
template <class F> int run_root(void **state, F body, weft_error_t **err)
{
	auto *c = new F(std::move(body));
	return weft_test_run_err(workers_of(state), weft::detail::task_entry<F>,
		c, err);
}

// A capture that counts its live copies.
struct Tracked {
	explicit Tracked(std::atomic<int> *live) : live_(live)
	{
		live_->fetch_add(1);
	}
	Tracked(const Tracked &o) : live_(o.live_)
	{
		live_->fetch_add(1);
	}
	~Tracked()
	{
		live_->fetch_sub(1);
	}
	std::atomic<int> *live_;
};

} // namespace

// Captures are owned by the task and destroyed once, after it ran; also
// for a task cancelled before it first ran (it still runs, rule 30), and
// at once when the spawn fails.
static void test_cpp__captures_released_exactly_once(void **state)
{
	std::atomic<int> live{ 0 }, ran{ 0 }, spawn_failed{ 0 };
	int rc = run_root(
		state,
		[&] {
			weft::with_group([&](weft::Group &g) {
				for (int i = 0; i < 50; i++) {
					Tracked t(&live);
					g.spawn("child", [t, &ran] {
						ran.fetch_add(1);
						weft::sleep(1000);
					});
				}
			});
			// Cancelled before any child ran: each still runs.
			weft::with_group([&](weft::Group &g) {
				g.cancel("before they run");
				for (int i = 0; i < 20; i++) {
					Tracked t(&live);
					g.spawn("cancelled", [t, &ran] {
						ran.fetch_add(1);
						weft::sleep(1000000000);
					});
				}
			});
			// A joined group kept alive refuses spawns (rule 2).
			weft::Group g;
			weft_group_retain(g.get());
			g.join();
			try {
				Tracked t(&live);
				g.spawn([t] {});
			} catch (const weft::Error &e) {
				if (e.code() == WEFT_ECLOSED)
					spawn_failed.fetch_add(1);
			}
			weft_group_release(g.get());
		},
		nullptr);
	assert_int_equal(rc, 0);
	assert_int_equal(live.load(), 0);
	assert_int_equal(ran.load(), 70);
	assert_int_equal(spawn_failed.load(), 1);
}

// An exception escaping a task becomes its error leaf: the type and
// what() for a std::exception, the code and message of a weft::Error; a
// weft::Cancelled is a cancellation, not a failure.
static void test_cpp__exceptions_become_error_leaves(void **state)
{
	struct Seen {
		std::vector<weft::GroupError::Leaf> leaves;
		std::string what;
		bool threw = false;
	} seen;
	int rc = run_root(
		state,
		[&] {
			try {
				weft::with_group([&](weft::Group &g) {
					g.spawn("std", [] {
						throw std::runtime_error(
							"disk on fire");
					});
					g.spawn("weft", [] {
						throw weft::Error(-EIO,
							"read failed");
					});
					g.spawn("odd", [] { throw 42; });
					g.spawn("quiet", [] {
						throw weft::Cancelled();
					});
				});
			} catch (const weft::GroupError &e) {
				seen.threw = true;
				seen.leaves = e.leaves();
				seen.what = e.what();
			}
		},
		nullptr);
	assert_int_equal(rc, 0);
	assert_true(seen.threw);
	int found = 0;
	for (const auto &l : seen.leaves) {
		if (l.task_name == "std") {
			assert_int_equal(l.code, WEFT_EEXCEPTION);
			assert_string_equal(l.message.c_str(),
				"std::runtime_error: disk on fire");
			found |= 1;
		} else if (l.task_name == "weft") {
			assert_int_equal(l.code, -EIO);
			assert_string_equal(l.message.c_str(), "read failed");
			found |= 2;
		} else if (l.task_name == "odd") {
			assert_int_equal(l.code, WEFT_EEXCEPTION);
			assert_string_equal(l.message.c_str(),
				"unknown exception");
			found |= 4;
		} else {
			fail_msg("unexpected leaf %s", l.task_name.c_str());
		}
	}
	assert_int_equal(found, 7);
	assert_int_equal((int)seen.leaves.size(), 3);
	assert_non_null(std::strstr(seen.what.c_str(), "disk on fire"));
}

// A GroupError escaping a task nests under it in the parent's tree
// (rule 9); the body's own exception counts as a child's failure (rule
// 5) and comes back in the same GroupError as the children's.
static void test_cpp__nested_groups_and_body_failures(void **state)
{
	weft_error_t *err = nullptr;
	int rc = run_root(
		state,
		[] {
			weft::with_group([](weft::Group &g) {
				g.spawn("inner_owner", [] {
					weft::with_group([](weft::Group &h) {
						h.spawn("leaf", [] {
							throw weft::Error(
								-EPIPE,
								"peer gone");
						});
					});
				});
				// No checkpoint first: the children's failure
				// would cancel the body instead.
				throw std::logic_error("body gave up");
			});
		},
		&err);
	// main -> [inner_owner (nested: leaf EPIPE), main's body]
	bool one = false, nested = false, body = false;
	const weft_error_t *top = err ? weft_error_nested_at(err, 0) : nullptr;
	one = err && weft_error_count(err) == 1;
	for (size_t i = 0; top && i < weft_error_count(top); i++) {
		const weft_error_t *n = weft_error_nested_at(top, i);
		const char *name = weft_error_task_name_at(top, i);
		const char *msg = weft_error_message_at(top, i);
		if (n != nullptr)
			nested = std::strcmp(name, "inner_owner") == 0 &&
				weft_error_code_at(n, 0) == -EPIPE;
		else
			body = weft_error_code_at(top, i) == WEFT_EEXCEPTION &&
				msg &&
				std::strcmp(msg,
					"std::logic_error: body gave up") == 0;
	}
	if (!(one && nested && body)) {
		char text[2048];
		weft_error_format(err, text, sizeof text);
		print_message("%s\n", text);
	}
	weft_error_free(err);
	assert_int_equal(rc, WEFT_ECHILD_FAILED);
	assert_true(one);
	assert_true(nested);
	assert_true(body);
}

// Scope::run absorbs the scope's own cancellation and reports it; a
// deadline scope cuts a sleep; fail_after throws -ETIMEDOUT; a
// cancellation from further out passes through.
static void test_cpp__scopes(void **state)
{
	struct Seen {
		bool caught_own = false, moved_on = false, timed_out = false;
		bool outer_passed = false, not_cut = true;
	} seen;
	int rc = run_root(
		state,
		[&] {
			weft::Scope s;
			seen.caught_own = s.run([&] {
				s.cancel("enough");
				weft::sleep(1000000000);
			});
			seen.moved_on = weft::move_on_after(1000000,
				[] { weft::sleep(1000000000); });
			seen.not_cut = !weft::move_on_after(1000000000,
				[] { weft::sleep(1000); });
			try {
				weft::fail_after(1000000,
					[] { weft::sleep(1000000000); });
			} catch (const weft::Error &e) {
				seen.timed_out = e.code() == -ETIMEDOUT;
			}
			weft::Scope outer;
			outer.run([&] {
				weft::Scope inner;
				try {
					inner.run([&] {
						outer.cancel();
						weft::sleep(1000000000);
					});
				} catch (const weft::Cancelled &) {
					seen.outer_passed = true;
					throw;
				}
			});
		},
		nullptr);
	assert_int_equal(rc, 0);
	assert_true(seen.caught_own);
	assert_true(seen.moved_on);
	assert_true(seen.not_cut);
	assert_true(seen.timed_out);
	assert_true(seen.outer_passed);
}

// Handles (copies retain), start()/started(), Lock with std::lock_guard,
// Event.
static void test_cpp__handles_start_locks_events(void **state)
{
	struct Seen {
		uintptr_t started = 0;
		long counter = 0;
		bool cancelled_state = false, name_ok = false;
	} seen;
	int rc = run_root(
		state,
		[&] {
			weft::Lock lock;
			weft::Event ev;
			weft::with_group([&](weft::Group &g) {
				void *v = g.start("service", [&] {
					weft::started((void *)(uintptr_t)7);
					ev.wait();
				});
				seen.started = (uintptr_t)v;
				for (int i = 0; i < 8; i++)
					g.spawn("adder", [&] {
						for (int k = 0; k < 100; k++) {
							std::lock_guard<
								weft::Lock>
								hold(lock);
							long c = seen.counter;
							weft::checkpoint();
							seen.counter = c + 1;
						}
					});
				weft::Task t = g.spawn_task("sleeper",
					[] { weft::sleep(1000000000); });
				weft::Task copy = t;
				seen.name_ok = copy.name() == "sleeper";
				copy.cancel("no need");
				t.wait();
				seen.cancelled_state = t.state() ==
					WEFT_TASK_CANCELLED;
				ev.set();
			});
		},
		nullptr);
	assert_int_equal(rc, 0);
	assert_int_equal(seen.started, 7);
	assert_int_equal(seen.counter, 800);
	assert_true(seen.cancelled_state);
	assert_true(seen.name_ok);
}

// weft::Runtime and weft::run from a plain thread: the root's failure is
// thrown there.
static void test_cpp__runtime_from_a_plain_thread(void **state)
{
	weft_config_t cfg;
	weft_config_init(&cfg);
	cfg.workers = workers_of(state);
	{
		weft::Runtime rt(cfg);
		int value = 0;
		rt.run([&] { value = 42; });
		assert_int_equal(value, 42);
		bool threw = false;
		try {
			rt.run([] {
				weft::with_group([](weft::Group &g) {
					g.spawn("bad", [] {
						throw std::invalid_argument(
							"no");
					});
				});
			});
		} catch (const weft::GroupError &e) {
			auto leaves = e.leaves();
			threw = leaves.size() == 1 &&
				leaves[0].code == WEFT_ECHILD_FAILED;
		}
		assert_true(threw);
		// A positive return is a failure too (weft_fn), and a root
		// that fails with a code weft_runtime_run also uses for
		// "nothing ran" still ran: both come back as GroupError.
		for (int code : { 7, -EINVAL }) {
			threw = false;
			try {
				rt.run([code] { return code; });
			} catch (const weft::GroupError &e) {
				auto leaves = e.leaves();
				threw = leaves.size() == 1 &&
					leaves[0].code == code;
			}
			assert_true(threw);
		}
	}
	weft_test_assert_no_leaks();
}

// A task may park inside a catch block, and in a destructor run during
// unwinding (~Group joins there): the C++ runtime's exception state is
// per thread, and weft carries it along with each fiber (core/fiber.h).
// Without that, `throw;` rethrew another task's exception or called
// std::terminate, and std::uncaught_exceptions() drifted per worker.
static void test_cpp__exception_state_travels_with_the_task(void **state)
{
	std::atomic<int> rethrown{ 0 }, wrong{ 0 }, drift{ 0 };
	auto parks_in_catch = [&](std::string what) {
		try {
			try {
				throw std::runtime_error(what);
			} catch (const std::runtime_error &) {
				for (int i = 0; i < 3; i++)
					weft::sleep(WEFT_MSEC);
				throw;
			}
		} catch (const std::runtime_error &e) {
			if (what == e.what())
				rethrown++;
			else
				wrong++;
		}
	};
	int rc = run_root(
		state,
		[&] {
			weft::with_group([&](weft::Group &g) {
				for (int i = 0; i < 8; i++)
					g.spawn("catcher", [&, i] {
						parks_in_catch("task " +
							std::to_string(i));
					});
			});
			// Blocks left by an exception: ~Group joins a
			// sleeping child while it unwinds.
			for (int i = 0; i < 20; i++) {
				try {
					weft::Group g;
					g.spawn("sleeper",
						[] { weft::sleep(WEFT_MSEC); });
					throw std::logic_error("leave");
				} catch (const std::logic_error &) {
				}
			}
			weft::with_group([&](weft::Group &g) {
				for (int i = 0; i < 8; i++)
					g.spawn("counter", [&] {
						weft::sleep(WEFT_MSEC);
						if (std::uncaught_exceptions() !=
							0)
							drift++;
					});
			});
			if (std::uncaught_exceptions() != 0)
				drift++;
		},
		nullptr);
	assert_int_equal(rc, 0);
	assert_int_equal(rethrown.load(), 8);
	assert_int_equal(wrong.load(), 0);
	assert_int_equal(drift.load(), 0);
}

// The RAII Group left by an exception cannot throw its children's
// failures (a destructor cannot replace the exception in flight): they
// become the task's own failure, reported when it ends, whether the
// exception escapes the task or is caught on the way.  Found from
// outside: a child's failure cancels the block's own wait, the
// weft::Cancelled left the block, and the failure was reported nowhere.
static void test_cpp__raii_group_keeps_failures_it_cannot_throw(void **state)
{
	weft_error_t *err = nullptr;
	std::atomic<int> caught{ 0 };
	int rc = run_root(
		state,
		[&] {
			weft::with_group([&](weft::Group &outer) {
				// The Cancelled escapes the task.
				outer.spawn("escapes", [] {
					weft::Group g;
					g.spawn("child", [] {
						throw std::runtime_error(
							"child failed");
					});
					weft::sleep(3600 * WEFT_SEC);
				});
				// The Cancelled is caught, the task returns.
				outer.spawn("catches", [&] {
					try {
						weft::Group g;
						g.spawn("child", [] {
							throw std::
								runtime_error(
									"child "
									"faile"
									"d");
						});
						weft::sleep(3600 * WEFT_SEC);
					} catch (const weft::Cancelled &) {
						caught++;
					}
				});
			});
		},
		&err);
	assert_int_equal(rc, WEFT_ECHILD_FAILED);
	assert_int_equal(caught.load(), 1);
	// The root's one leaf nests with_group's tree, whose two entries
	// are the two tasks, each nesting its child's failure.
	const weft_error_t *top = weft_error_nested_at(err, 0);
	assert_non_null(top);
	assert_int_equal(weft_error_count(top), 2);
	for (size_t i = 0; i < 2; i++) {
		const weft_error_t *kids = weft_error_nested_at(top, i);
		assert_non_null(kids);
		assert_int_equal(weft_error_count(kids), 1);
		assert_int_equal(weft_error_code_at(kids, 0), WEFT_EEXCEPTION);
	}
	weft_error_free(err);
}

int main(void)
{
#define AT3(f)                                                                 \
	cmocka_unit_test_prestate(f, (void *)(uintptr_t)1),                    \
		cmocka_unit_test_prestate(f, (void *)(uintptr_t)2),            \
		cmocka_unit_test_prestate(f, (void *)(uintptr_t)4)
	const struct CMUnitTest tests[] = {
		AT3(test_cpp__captures_released_exactly_once),
		AT3(test_cpp__exceptions_become_error_leaves),
		AT3(test_cpp__nested_groups_and_body_failures),
		AT3(test_cpp__scopes),
		AT3(test_cpp__handles_start_locks_events),
		AT3(test_cpp__runtime_from_a_plain_thread),
		AT3(test_cpp__exception_state_travels_with_the_task),
		AT3(test_cpp__raii_group_keeps_failures_it_cannot_throw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
