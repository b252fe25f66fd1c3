/* Host implementation of kgen_harness.h: text on stdout, no-op region markers, one core. */
#include <stdio.h>
#include "kgen_harness.h"

void kgen_region_begin(void) {}
void kgen_region_end(void) {}
void kgen_puts(const char *s) { fputs(s, stdout); }
void kgen_put_u32(uint32_t v) { printf("%lu", (unsigned long)v); }
void kgen_put_i32(int32_t v) { printf("%ld", (long)v); }
int kgen_core_id(void) { return 0; }
int kgen_num_cores(void) { return 1; }
void kgen_barrier(void) {}
