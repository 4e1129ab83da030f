#include "core/types.h"
#include <stdio.h>
#include <strings.h>

static const hllm_type_traits k_traits[HLLM_TYPE_COUNT] = {
    [HLLM_TYPE_F32] = {"f32", 1, 4, true},
    [HLLM_TYPE_F16] = {"f16", 1, 2, true},
    [HLLM_TYPE_Q4_0] = {"q4_0", 32, 18, true},
    [HLLM_TYPE_Q4_1] = {"q4_1", 32, 20, false},
    [HLLM_TYPE_Q5_0] = {"q5_0", 32, 22, false},
    [HLLM_TYPE_Q5_1] = {"q5_1", 32, 24, false},
    [HLLM_TYPE_Q8_0] = {"q8_0", 32, 34, true},
    [HLLM_TYPE_Q8_1] = {"q8_1", 32, 36, false},
    [HLLM_TYPE_Q2_K] = {"q2_K", 256, 84, false},
    [HLLM_TYPE_Q3_K] = {"q3_K", 256, 110, false},
    [HLLM_TYPE_Q4_K] = {"q4_K", 256, 144, true},
    [HLLM_TYPE_Q5_K] = {"q5_K", 256, 176, false},
    [HLLM_TYPE_Q6_K] = {"q6_K", 256, 210, true},
    [HLLM_TYPE_Q8_K] = {"q8_K", 256, 292, false},
    [16] = {"iq2_xxs", 256, 66, false},
    [17] = {"iq2_xs", 256, 74, false},
    [18] = {"iq3_xxs", 256, 98, false},
    [19] = {"iq1_s", 256, 50, false},
    [20] = {"iq4_nl", 32, 18, false},
    [21] = {"iq3_s", 256, 110, false},
    [22] = {"iq2_s", 256, 82, false},
    [23] = {"iq4_xs", 256, 136, false},
    [HLLM_TYPE_I8] = {"i8", 1, 1, false},
    [HLLM_TYPE_I16] = {"i16", 1, 2, false},
    [HLLM_TYPE_I32] = {"i32", 1, 4, false},
    [HLLM_TYPE_I64] = {"i64", 1, 8, false},
    [HLLM_TYPE_F64] = {"f64", 1, 8, false},
    [29] = {"iq1_m", 256, 56, false},
    [HLLM_TYPE_BF16] = {"bf16", 1, 2, true},
    [34] = {"tq1_0", 256, 54, false},
    [35] = {"tq2_0", 256, 66, false},
    [39] = {"mxfp4", 32, 17, false},
};

static const hllm_type_traits k_unknown = {"unknown", 1, 0, false};

const hllm_type_traits *hllm_type_info(int type) {
    if (type < 0 || type >= HLLM_TYPE_COUNT || k_traits[type].block_bytes == 0) return &k_unknown;
    return &k_traits[type];
}

const char *hllm_type_name(int type) {
    static char buf[32];
    const hllm_type_traits *t = hllm_type_info(type);
    if (t->block_bytes) return t->name;
    snprintf(buf, sizeof buf, "type#%d", type);
    return buf;
}

int hllm_type_from_name(const char *name) {
    for (int i = 0; i < HLLM_TYPE_COUNT; i++)
        if (k_traits[i].block_bytes && strcasecmp(k_traits[i].name, name) == 0) return i;
    return -1;
}

size_t hllm_row_bytes(int type, int64_t n) {
    const hllm_type_traits *t = hllm_type_info(type);
    if (!t->block_bytes || n < 0 || n % t->block_size) return 0;
    return (size_t)(n / t->block_size) * (size_t)t->block_bytes;
}
