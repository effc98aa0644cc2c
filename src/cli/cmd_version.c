/* `whatstyle version`: prints the version of the binary. */
#include <stdio.h>

#include "cli/commands.h"

#include "core/version.h"

int ws_cmd_version(int argc, char **argv)
{
    printf("whatstyle %s\n", WS_VERSION);
    return 0;
}
