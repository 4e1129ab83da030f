#include <stdio.h>
#include "cli.h"

int hllm_cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "hllm info: not built yet\n");
    return 1;
}
