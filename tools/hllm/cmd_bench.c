#include <stdio.h>
#include "cli.h"

int hllm_cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "hllm bench: not built yet\n");
    return 1;
}
