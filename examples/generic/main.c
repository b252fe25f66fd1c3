/*
 * kgen example, host (portable C release, generated/generic): matmul_nt_s8 64x64x64 and
 * softmax_s8_u8 64x64 with run-time sizes.  The softmax needs scratch memory: ask
 * kgen_softmax_s8_u8_generic_get_buffer_size() how much, for these sizes, and pass it.
 * Returns 0 when both results are right.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kgen_generic.h"
#include "example_checks.h"

static int8_t X[EX_M * EX_K], W[EX_N * EX_K], Y[EX_M * EX_N], S[EX_ROWS * EX_COLS];
static int32_t bias[EX_N];
static uint8_t P[EX_ROWS * EX_COLS];

int main(void)
{
    ex_make_inputs(X, W, bias, S);

    /* Generic kernels take the sizes as trailing arguments; no weight packing on this ISA. */
    kgen_matmul_nt_s8_generic(X, W, bias, EX_MUL, EX_SHIFT, Y, EX_M, EX_K, EX_N);
    uint32_t bad_mm = ex_check_matmul(X, W, bias, Y);

    size_t bytes = kgen_softmax_s8_u8_generic_get_buffer_size(EX_ROWS, EX_COLS);
    void *scratch = malloc(bytes); /* malloc's alignment satisfies the 8-byte requirement */
    if (scratch == NULL) return 2;
    kgen_softmax_s8_u8_generic(S, EX_SM_A, EX_SM_B, EX_SM_C, EX_SM_LOG2, P, EX_ROWS, EX_COLS, scratch);
    free(scratch);
    uint32_t bad_sm = ex_check_softmax(P);

    printf("matmul_nt_s8 64x64x64: %u mismatches; softmax_s8_u8 64x64 (%zu scratch bytes): %s\n",
           (unsigned)bad_mm, bytes, bad_sm ? "WRONG" : "ok");
    return bad_mm || bad_sm ? 1 : 0;
}
