/*
 * kgen example, bare-metal Cortex-M4 (release generated/armv7em) on QEMU mps2-an386 with
 * semihosting: matmul_nt_s8 64x64x64 and softmax_s8_u8 64x64.
 *
 * - The matmul takes its weights pre-packed (int16 pairs for SMLAD): pack them once with the
 *   packing companion kgen_matmul_nt_s8_pack_W_m64k64n64_armv7em() (or offline with
 *   python/kgen_armv7em_packing.py).
 * - A kernel with function-scope intermediate arrays takes a scratch buffer as its last argument, of
 *   <FUNCTION>_SCRATCH_BYTES bytes (= its _get_buffer_size()); the macro exists exactly for those
 *   kernels.  One static, 8-byte aligned buffer as large as the largest need serves every kernel in
 *   turn (its content does not survive a call), no heap.
 *
 * main() returns 0 on success; the runtime (kgen/sim/data/arm/startup.c) makes that QEMU's exit status.
 */
#include <stdint.h>

#include "kgen_armv7em.h"
#include "kgen_harness.h" /* kgen_puts / kgen_put_u32: semihosting output of the bare-metal runtime */
#include "example_checks.h"

static int8_t X[EX_M * EX_K], W[EX_N * EX_K], Y[EX_M * EX_N], S[EX_ROWS * EX_COLS];
static int16_t W_packed[EX_N * EX_K];
static int32_t bias[EX_N];
static uint8_t P[EX_ROWS * EX_COLS];
#define EX_MAX(a, b) ((a) > (b) ? (a) : (b))
#ifdef KGEN_MATMUL_NT_S8_M64K64N64_ARMV7EM_SCRATCH_BYTES /* this matmul variant has a scratch array */
#define SCRATCH_BYTES EX_MAX(KGEN_MATMUL_NT_S8_M64K64N64_ARMV7EM_SCRATCH_BYTES, \
                             KGEN_SOFTMAX_S8_U8_R64C64_ARMV7EM_SCRATCH_BYTES)
#define MATMUL_SCRATCH , scratch
#else
#define SCRATCH_BYTES KGEN_SOFTMAX_S8_U8_R64C64_ARMV7EM_SCRATCH_BYTES
#define MATMUL_SCRATCH
#endif
static uint64_t scratch[(SCRATCH_BYTES + 7u) / 8u]; /* uint64_t: 8-byte aligned */

int main(void)
{
    ex_make_inputs(X, W, bias, S);

    kgen_matmul_nt_s8_pack_W_m64k64n64_armv7em(W, W_packed); /* once, at start-up */
#ifdef KGEN_MATMUL_NT_S8_M64K64N64_ARMV7EM_SCRATCH_BYTES
    if (kgen_matmul_nt_s8_m64k64n64_armv7em_get_buffer_size() > sizeof scratch) return 3;
#endif
    kgen_matmul_nt_s8_m64k64n64_armv7em(X, W_packed, bias, EX_MUL, EX_SHIFT, Y MATMUL_SCRATCH);
    uint32_t bad_mm = ex_check_matmul(X, W, bias, Y);

    if (kgen_softmax_s8_u8_r64c64_armv7em_get_buffer_size() > sizeof scratch) return 3;
    kgen_softmax_s8_u8_r64c64_armv7em(S, EX_SM_A, EX_SM_B, EX_SM_C, EX_SM_LOG2, P, scratch);
    uint32_t bad_sm = ex_check_softmax(P);

    kgen_puts("matmul_nt_s8 64x64x64: ");
    kgen_put_u32(bad_mm);
    kgen_puts(" mismatches; softmax_s8_u8 64x64: ");
    kgen_puts(bad_sm ? "WRONG\n" : "ok\n");
    return bad_mm || bad_sm ? 1 : 0;
}
