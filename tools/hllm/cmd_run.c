#include <stdio.h>
#include "cli.h"

int hllm_cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "hllm run: not built yet\n");
    return 1;
}
