/*
 * example_checks.h: the checks shared by the kgen examples (host, Cortex-M on QEMU, XpulpV2 on Spike).
 *
 * Inputs come from a small LCG so that no target needs data files.  The matmul result is checked
 * element by element against a plain-C implementation of the kernel's contract
 * (Y = clip((int32)(X·Wᵀ + bias)·mul >> shift, -128, 127), the product wrapping to 32 bits); the
 * softmax result against a checksum of the output that kgen's reference interpreter computed for
 * the same inputs (tests/test_examples.py recomputes it, so the constant cannot go stale) and
 * against a known answer: a row of equal inputs gives 255/64 ≈ 4 in every column.
 */
#ifndef KGEN_EXAMPLE_CHECKS_H
#define KGEN_EXAMPLE_CHECKS_H

#include <stdint.h>

#define EX_M 64
#define EX_K 64
#define EX_N 64
#define EX_MUL 3
#define EX_SHIFT 10
#define EX_ROWS 64
#define EX_COLS 64
/* I-BERT i-exp parameters for an input scale of ln2/16 (kernels/softmax_s8_u8.kg) */
#define EX_SM_A 1
#define EX_SM_B 31
#define EX_SM_C 511
#define EX_SM_LOG2 16
/* FNV-1a of the 64x64 softmax output, from kgen's reference interpreter (kgen.interp) */
#ifndef EX_SOFTMAX_FNV1A
#define EX_SOFTMAX_FNV1A 0x3e36ba87u
#endif

static uint32_t ex_lcg_state = 12345u;

static int8_t ex_rand_i8(void)
{
    ex_lcg_state = ex_lcg_state * 1664525u + 1013904223u;
    return (int8_t)(uint8_t)(ex_lcg_state >> 24);
}

/* Fill the matmul operands and the softmax input (in this order: X, W, bias, S). */
static void ex_make_inputs(int8_t *X, int8_t *W, int32_t *bias, int8_t *S)
{
    ex_lcg_state = 12345u;
    for (uint32_t i = 0; i < EX_M * EX_K; ++i) X[i] = ex_rand_i8();
    for (uint32_t i = 0; i < EX_N * EX_K; ++i) W[i] = ex_rand_i8();
    for (uint32_t i = 0; i < EX_N; ++i) bias[i] = (int32_t)ex_rand_i8() * 64;
    for (uint32_t i = 0; i < EX_ROWS * EX_COLS; ++i) S[i] = ex_rand_i8();
    for (uint32_t j = 0; j < EX_COLS; ++j) S[j] = 5; /* row 0: all equal (known answer) */
}

/* Number of elements of Y that differ from the plain-C matmul contract. */
static uint32_t ex_check_matmul(const int8_t *X, const int8_t *W, const int32_t *bias, const int8_t *Y)
{
    uint32_t bad = 0;
    for (uint32_t m = 0; m < EX_M; ++m) {
        for (uint32_t n = 0; n < EX_N; ++n) {
            int32_t acc = bias[n];
            for (uint32_t k = 0; k < EX_K; ++k) acc += (int32_t)X[m * EX_K + k] * (int32_t)W[n * EX_K + k];
            int32_t t = (int32_t)((uint32_t)acc * (uint32_t)EX_MUL) >> EX_SHIFT;
            int32_t y = t < -128 ? -128 : (t > 127 ? 127 : t);
            bad += (int32_t)Y[m * EX_N + n] != y;
        }
    }
    return bad;
}

static uint32_t ex_fnv1a(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* 0 when the softmax output has the reference checksum and row 0 (equal inputs) is all 4. */
static uint32_t ex_check_softmax(const uint8_t *Y)
{
    uint32_t bad = ex_fnv1a(Y, EX_ROWS * EX_COLS) != EX_SOFTMAX_FNV1A;
    for (uint32_t j = 0; j < EX_COLS; ++j) bad += Y[j] != 4;
    return bad;
}

#endif /* KGEN_EXAMPLE_CHECKS_H */
