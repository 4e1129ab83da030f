#include <stdio.h>
#include "cli.h"

int hllm_cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "hllm synth: not built yet\n");
    return 1;
}
