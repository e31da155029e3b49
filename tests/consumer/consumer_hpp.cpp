// The installed C++ face (weft.hpp): a lambda as the root task.
#include <cstdio>
#include <string>

#include <weft.hpp>

int main()
{
	int flag = 0;
	try {
		weft::Runtime rt;
		rt.run([&] {
			weft::with_group([&](weft::Group &g) {
				g.spawn("set", [&] { flag = 42; });
			});
		});
	} catch (const weft::Error &e) {
		std::printf("weft::Error: %s\n", e.what());
		return 1;
	}
	std::string version = weft_version_string();
	std::printf("weft %s: weft_run returned 0, flag %d (weft.hpp)\n",
		version.c_str(), flag);
	return flag == 42 ? 0 : 1;
}
