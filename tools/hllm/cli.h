/* The hllm command line: one file per subcommand, each `int hllm_cmd_NAME(int argc, char **argv)`
 * with argv[0] = the subcommand name; the return value is the process exit code. */
#ifndef HLLM_CLI_H
#define HLLM_CLI_H

int hllm_cmd_run(int argc, char **argv);
int hllm_cmd_bench(int argc, char **argv);
int hllm_cmd_synth(int argc, char **argv);
int hllm_cmd_info(int argc, char **argv);
int hllm_cmd_profile(int argc, char **argv);
int hllm_cmd_plan(int argc, char **argv);

#endif
