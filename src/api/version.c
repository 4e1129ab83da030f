#include "hllm.h"

const char *hllm_version_string(void) {
    return HLLM_VERSION " (commit " HLLM_COMMIT ")\nprocessors: " HLLM_PROCESSORS;
}
