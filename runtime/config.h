/* Configuration validation shared by weft_config_init and
 * weft_runtime_create. */
#ifndef WEFT_RUNTIME_CONFIG_H
#define WEFT_RUNTIME_CONFIG_H

#include "weft/runtime.h"

#define WEFT__WORKERS_MAX 1024u
#define WEFT__STACK_MIN ((size_t)16 * 1024)
#define WEFT__STACK_MAX ((size_t)1 << 30)
#define WEFT__GUARDED_MAX 30000u
#define WEFT__SPIN_US_MAX 100000u
#define WEFT__STALL_MS_MAX 3600000u
#define WEFT__TRACE_BUFFER_MIN 16u
#define WEFT__TRACE_BUFFER_MAX (1u << 20)
#define WEFT__TRACE_BUFFER_DEFAULT 4096u
#define WEFT__TRACE_PATH_MAX 4096u
#define WEFT__CPU_SAMPLE_US_MIN 100u
#define WEFT__CPU_SAMPLE_US_MAX 1000000u
#define WEFT__CPU_SAMPLE_US_DEFAULT 1000u

/* 0 if every field is in range; else -EINVAL with cfg->message set.
 * Thread: any (it touches only cfg). */
int weft__config_validate(weft_config_t *cfg);

#endif
