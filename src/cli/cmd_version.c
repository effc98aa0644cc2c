/* `whatstyle version`: prints the version of the binary. */
#include <stdio.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/version.h"

const ws_cli_spec ws_cli_spec_version = {.name = "version", .synopsis = ""};

int ws_cmd_version(int argc, char **argv)
{
    int pr = ws_cli_parse(&ws_cli_spec_version, argc, argv, NULL, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    printf("whatstyle %s\n", WS_VERSION);
    return 0;
}
