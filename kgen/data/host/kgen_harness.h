/* kgen_harness.h (host): the harness interface of the embedded runtimes, implemented with stdio. */
#ifndef KGEN_HARNESS_H
#define KGEN_HARNESS_H
#include <stdint.h>
void kgen_region_begin(void);
void kgen_region_end(void);
void kgen_puts(const char *s);
void kgen_put_u32(uint32_t v);
void kgen_put_i32(int32_t v);
int kgen_core_id(void);
int kgen_num_cores(void);
void kgen_barrier(void);
#endif
