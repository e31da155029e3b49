// The README's tour in C++ (include/weft.hpp).
#include <cstdio>
#include <stdexcept>

#include <weft.hpp>

static void fetch(int i)
{
	weft::sleep(500 * WEFT_MSEC);
	if (i == 3)
		throw std::runtime_error("no");
}

int main()
{
	weft::Runtime rt; // WEFT_* from the environment
	rt.run([] {
		try {
			// A nursery: joined at the end of the block.
			weft::with_group([](weft::Group &g) {
				for (int i = 0; i < 5; i++)
					g.spawn("fetch", [i] { fetch(i); });
			});
		} catch (const weft::GroupError &e) {
			// Prints "fetch: std::runtime_error: no".
			for (const auto &leaf : e.leaves())
				std::printf("%s: %s\n", leaf.task_name.c_str(),
					leaf.message.c_str());
		}
		// Cut short by the deadline: prints "cut short: 1".
		bool cut = weft::move_on_after(WEFT_SEC,
			[] { weft::sleep(10 * WEFT_SEC); });
		std::printf("cut short: %d\n", cut);
	});
}
