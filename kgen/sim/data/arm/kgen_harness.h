/*
 * kgen_harness.h - the only interface between kgen test programs and the
 * bare-metal Cortex-M runtime (startup.c, link.ld) run under qemu-system-arm
 * (mps2-an386 = Cortex-M4, mps2-an500 = Cortex-M7).
 *
 * Contract:
 *   - main() returns its mismatch count; the runtime exits through semihosting
 *     with that value as QEMU's exit status, saturated to 0..254 (values that
 *     do not fit, including negative ones, become 254 so that a large count
 *     can never wrap to 0). 255 means a fault (HardFault etc.) or abort.
 *   - Counted regions: put the measured code between kgen_region_begin() and
 *     kgen_region_end(). Both are bare `bx lr` functions written in assembly,
 *     so every build pays the same call overhead, which the Python side
 *     calibrates with an empty region executed by the runtime before main()
 *     and subtracts. Several regions per run are allowed (reported in order);
 *     regions must not nest. Keep the measured work in a noinline function or
 *     behind memory effects, so that the compiler cannot move it across the
 *     marker calls.
 *   - Text output goes through semihosting SYS_WRITE0 to QEMU's stdout.
 */
#ifndef KGEN_HARNESS_H
#define KGEN_HARNESS_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Region markers (assembly; never inlined). */
void kgen_region_begin(void);
void kgen_region_end(void);

/* Semihosting text output. */
void kgen_puts(const char *s);        /* writes s as is (no newline added) */
void kgen_put_u32(uint32_t v);        /* decimal */
void kgen_put_i32(int32_t v);         /* decimal, with '-' when negative */

/* Terminates the program at once with the given status (saturated as above). */
void kgen_exit(int code) __attribute__((noreturn));

/* Minimal C library provided by the runtime (the program links -nostdlib). */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KGEN_HARNESS_H */
