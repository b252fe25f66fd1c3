/*
 * kgen_harness.h - the only interface between kgen test programs and the
 * bare-metal RISC-V runtime (crt0.S, harness.c, link.ld) run under Spike
 * (rv32imc / rv32imac + the project's XpulpV2 extension library).
 *
 * Contract (same as the Cortex-M side, plus multi-core):
 *   - main() returns its mismatch count. The process exit status is hart 0's
 *     return value, saturated to 0..254 (negative or larger values become 254);
 *     255 means a trap (illegal instruction, access fault, ...) or abort.
 *   - Counted regions: put the measured code between kgen_region_begin() and
 *     kgen_region_end() (assembly functions in crt0.S; never inlined). Each hart
 *     reads its own minstret; the constant marker overhead (an empty region,
 *     measured on every hart before main) is subtracted. Several regions per hart
 *     are allowed (up to 256, reported in order); regions must not nest. Keep the
 *     measured work in a noinline function or behind memory effects so that the
 *     compiler cannot move it across the marker calls. Build with -mno-relax (as
 *     kgen's cflags do) so every call is auipc + jalr, as in the calibration.
 *   - Text output goes through HTIF (fesvr's write syscall) to Spike's stdout.
 *     The runtime prints KGEN_* report lines after main; the Python side strips them.
 *
 * Multi-core (build with -DKGEN_NUM_CORES=N, 1 <= N <= 16, -march=rv32imac; run with
 * spike -pN): main() runs on every hart 0..N-1, each on its own 128 KiB stack.
 * This mirrors PMSIS on GAP9, where the cluster entry forked with
 * pi_cl_team_fork(N, entry, arg) runs on every core:
 *       PMSIS                         kgen harness
 *       pi_core_id()                  kgen_core_id()      (mhartid)
 *       pi_cl_cluster_nb_cores()      kgen_num_cores()    (KGEN_NUM_CORES)
 *       pi_cl_team_barrier()          kgen_barrier()
 *   The barrier is sense-reversing (amoadd.w on a shared counter); waiting harts
 *   sleep in wfi and the last arriver wakes them with a CLINT software interrupt,
 *   like the GAP9 event unit's clock-gated wait. A waiting hart therefore retires a
 *   few instructions per barrier (not a spin count), but barrier cost is still not
 *   a GAP9 model: compare per-hart counts of regions that contain no barrier.
 *   Typical pattern: hart 0 prepares data, kgen_barrier(), every hart runs its part
 *   inside a region, kgen_barrier(), hart 0 checks and returns the mismatch count.
 *   After main returns on every hart, hart 0 prints the per-hart region counts and
 *   exits with its own return value.
 */
#ifndef KGEN_HARNESS_H
#define KGEN_HARNESS_H

#include <stdint.h>
#include <stddef.h>

#ifndef KGEN_NUM_CORES
#define KGEN_NUM_CORES 1
#endif
#define KGEN_MAX_HARTS 16
#define KGEN_MAX_REGIONS 256

#if KGEN_NUM_CORES < 1 || KGEN_NUM_CORES > KGEN_MAX_HARTS
#error "KGEN_NUM_CORES must be in 1..16"
#endif
#if KGEN_NUM_CORES > 1 && !defined(__riscv_atomic)
#error "multi-core kgen builds need the A extension (-march=rv32imac)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Region markers (assembly; never inlined). */
void kgen_region_begin(void);
void kgen_region_end(void);

/* Text output through HTIF (serialised across harts). */
void kgen_puts(const char *s);        /* writes s as is (no newline added) */
void kgen_put_u32(uint32_t v);        /* decimal */
void kgen_put_i32(int32_t v);         /* decimal, with '-' when negative */

/* Multi-core runtime (see above). */
int kgen_core_id(void);
int kgen_num_cores(void);
void kgen_barrier(void);

/* Terminates the whole simulation at once with the given status (saturated as above). */
void kgen_exit(int code) __attribute__((noreturn));

/* Minimal C library provided by the runtime (the program links -nostdlib). */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KGEN_HARNESS_H */
