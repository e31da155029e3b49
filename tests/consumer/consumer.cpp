// The C++ twin of consumer.c: <weft.h> used from C++17.
#include <cstdio>
#include <string>

#include <weft.h>

static int main_task(void *arg)
{
	*static_cast<int *>(arg) = 42;
	return 0;
}

int main()
{
	int flag = 0;
	int rc = weft_run(main_task, &flag);
	std::string version = weft_version_string();
	std::printf("weft %s: weft_run returned %d, flag %d (C++)\n",
		version.c_str(), rc, flag);
	return rc == 0 && flag == 42 ? 0 : 1;
}
