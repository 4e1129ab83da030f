/* hllm: the command-line front end of heterollm. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "hllm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm <command> [options]\n"
            "\n"
            "commands:\n"
            "  run     generate text from a prompt\n"
            "  bench   measure prompt processing and generation speed (llama-bench style)\n"
            "  synth   write a GGUF with random weights of a real model's shapes\n"
            "  info    print a GGUF's metadata and tensors\n"
            "  profile measure this machine's processors for the planner\n"
            "  plan    show how a model would be placed on CPU + GPU\n"
            "\n"
            "  hllm --version      version, commit and the processors compiled in\n"
            "  hllm <command> --help\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("hllm %s\n", hllm_version_string());
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", hllm_cmd_run}, {"bench", hllm_cmd_bench}, {"synth", hllm_cmd_synth}, {"info", hllm_cmd_info},
        {"profile", hllm_cmd_profile}, {"plan", hllm_cmd_plan},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hllm: unknown command '%s' (see hllm --help)\n", cmd);
    return 2;
}
