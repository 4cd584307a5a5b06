/* main.c - devbridge entry point.  Invoked as `devbridge-open` it behaves as
 * `devbridge open URL` (SPEC §1). */
#include "cli/cli.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct cli c = {0};
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	char **args = argv;
	char *open_argv[argc + 2];
	if (strcmp(base, "devbridge-open") == 0) {
		open_argv[0] = argv[0];
		open_argv[1] = "open";
		for (int i = 1; i < argc; i++)
			open_argv[i + 1] = argv[i];
		open_argv[argc + 1] = NULL;
		args = open_argv;
		argc++;
	}
	int code = cli_parse(&c, argc, args);
	if (code == 0)
		code = cli_run(&c);
	cli_free(&c);
	fflush(stdout);
	return code;
}
