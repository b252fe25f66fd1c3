/*
 * kgen example, XpulpV2 (GAP9-class cluster, release generated/xpulpv2) on Spike with kgen's
 * XpulpV2 extension, 8 harts standing in for the 8 cluster cores.
 *
 * - matmul_nt_s8 64x64x64 runs as the 8-core variant (_c8): every core calls it with the same
 *   arguments, each computes a balanced share and the function ends with a barrier.  Its weights
 *   are packed once (int8 quads) by the packing companion, on one core, before a barrier.
 * - softmax_s8_u8 64x64 runs on core 0 with a static scratch buffer of
 *   KGEN_SOFTMAX_S8_U8_R64C64_XPULPV2_SCRATCH_BYTES bytes.
 *
 * kgen_core_id() / kgen_barrier() come from kgen/sim/data/riscv/harness.c here; on GAP9 build with
 * -DKGEN_PMSIS (gap_sdk.mk does) and they become pi_core_id() / pi_cl_team_barrier().
 * Every hart runs main(); hart 0's return value is Spike's exit status (0 = success).
 */
#include <stdint.h>

#include "kgen_xpulpv2.h"
#include "kgen_runtime.h"
#include "kgen_harness.h" /* kgen_puts / kgen_put_u32 of the Spike runtime */
#include "example_checks.h"

static int8_t X[EX_M * EX_K], W[EX_N * EX_K], W_packed[EX_N * EX_K], Y[EX_M * EX_N], S[EX_ROWS * EX_COLS];
static int32_t bias[EX_N];
static uint8_t P[EX_ROWS * EX_COLS];
static uint64_t scratch[(KGEN_SOFTMAX_S8_U8_R64C64_XPULPV2_SCRATCH_BYTES + 7u) / 8u]; /* 8-byte aligned */
#ifdef KGEN_MATMUL_NT_S8_M64K64N64_XPULPV2_C8_SCRATCH_BYTES /* the macro exists iff the kernel takes scratch */
static uint64_t mm_scratch[(KGEN_MATMUL_NT_S8_M64K64N64_XPULPV2_C8_SCRATCH_BYTES + 7u) / 8u]; /* shared by the cores */
#define MATMUL_SCRATCH , mm_scratch
#else
#define MATMUL_SCRATCH
#endif

int main(void)
{
    int core = kgen_core_id();
    if (core == 0) {
        ex_make_inputs(X, W, bias, S);
        kgen_matmul_nt_s8_pack_W_m64k64n64_xpulpv2(W, W_packed);
    }
    kgen_barrier();
    kgen_matmul_nt_s8_m64k64n64_xpulpv2_c8(X, W_packed, bias, EX_MUL, EX_SHIFT, Y MATMUL_SCRATCH); /* all 8 cores */
    if (core != 0) return 0;

    uint32_t bad_mm = ex_check_matmul(X, W, bias, Y);
    if (kgen_softmax_s8_u8_r64c64_xpulpv2_get_buffer_size() > sizeof scratch) return 3;
    kgen_softmax_s8_u8_r64c64_xpulpv2(S, EX_SM_A, EX_SM_B, EX_SM_C, EX_SM_LOG2, P, scratch);
    uint32_t bad_sm = ex_check_softmax(P);

    kgen_puts("matmul_nt_s8 64x64x64 on 8 cores: ");
    kgen_put_u32(bad_mm);
    kgen_puts(" mismatches; softmax_s8_u8 64x64: ");
    kgen_puts(bad_sm ? "WRONG\n" : "ok\n");
    return bad_mm || bad_sm ? 1 : 0;
}
