/*
 * startup.c - minimal bare-metal runtime for kgen test programs on
 * qemu-system-arm mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7).
 *
 * Provides the vector table, the reset handler (zero .bss, run the empty
 * calibration region, call main, exit through semihosting), the region
 * markers, semihosting text output and memcpy/memmove/memset (plus their
 * __aeabi_* forms, which clang emits for thumbv7em-none-eabi).
 * Compiled with the kernel's own flags, warning-free under -Wall -Wextra
 * with arm-none-eabi-gcc 12 and clang 19.
 */
#include "kgen_harness.h"

extern uint32_t __bss_start__[];
extern uint32_t __bss_end__[];
extern uint32_t __stack_top[];

int main(void);
void kgen_reset_handler(void) __attribute__((noreturn, used));
void kgen_fault_handler(void) __attribute__((noreturn, used));

/* ---------------------------------------------------------------- semihosting */

#define KGEN_SYS_WRITE0 0x04u
#define KGEN_SYS_EXIT_EXTENDED 0x20u
#define KGEN_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uint32_t kgen_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void kgen_puts(const char *s)
{
    (void)kgen_semihost(KGEN_SYS_WRITE0, s);
}

void kgen_put_u32(uint32_t v)
{
    char buf[12];
    unsigned i = sizeof buf - 1u;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    kgen_puts(&buf[i]);
}

void kgen_put_i32(int32_t v)
{
    if (v < 0) {
        kgen_puts("-");
        kgen_put_u32(0u - (uint32_t)v);
    } else {
        kgen_put_u32((uint32_t)v);
    }
}

void kgen_exit(int code)
{
    uint32_t block[2];
    block[0] = KGEN_ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (code < 0 || code > 254) ? 254u : (uint32_t)code;
    for (;;) {
        (void)kgen_semihost(KGEN_SYS_EXIT_EXTENDED, block);
    }
}

/* ------------------------------------------------------------ reset, faults */

void kgen_reset_handler(void)
{
    uint32_t *p;
    for (p = __bss_start__; p < __bss_end__; ++p) {
        *(volatile uint32_t *)p = 0u;
    }
    /* Empty calibration region: always region 0 of a counted run. */
    kgen_region_begin();
    kgen_region_end();
    kgen_exit(main());
}

void kgen_fault_handler(void)
{
    uint32_t block[2];
    kgen_puts("kgen: fault\n");
    block[0] = KGEN_ADP_STOPPED_APPLICATION_EXIT;
    block[1] = 255u;
    for (;;) {
        (void)kgen_semihost(KGEN_SYS_EXIT_EXTENDED, block);
    }
}

typedef void (*kgen_handler_t)(void);

struct kgen_vector_table {
    uint32_t *initial_sp;
    kgen_handler_t handlers[15];
};

__attribute__((section(".vectors"), used))
const struct kgen_vector_table kgen_vectors = {
    __stack_top,
    {
        kgen_reset_handler,  /* Reset */
        kgen_fault_handler,  /* NMI */
        kgen_fault_handler,  /* HardFault */
        kgen_fault_handler,  /* MemManage */
        kgen_fault_handler,  /* BusFault */
        kgen_fault_handler,  /* UsageFault */
        0, 0, 0, 0,          /* reserved */
        kgen_fault_handler,  /* SVCall */
        kgen_fault_handler,  /* DebugMonitor */
        0,                   /* reserved */
        kgen_fault_handler,  /* PendSV */
        kgen_fault_handler,  /* SysTick */
    },
};

/* ----------------------------------------------------- assembly: markers, libc
 * Written in assembly so that (a) every compiler and option set gives the
 * markers the identical one-instruction body and (b) the optimiser cannot turn
 * the copy loops into calls to themselves. Each function has its own section,
 * so -Wl,--gc-sections drops what a program does not use.
 */
__asm__(
    "  .pushsection .text.kgen_region_begin,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 1\n"
    "  .global kgen_region_begin\n"
    "  .type kgen_region_begin, %function\n"
    "  .thumb_func\n"
    "kgen_region_begin:\n"
    "  bx lr\n"
    "  .size kgen_region_begin, . - kgen_region_begin\n"
    "  .popsection\n"

    "  .pushsection .text.kgen_region_end,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 1\n"
    "  .global kgen_region_end\n"
    "  .type kgen_region_end, %function\n"
    "  .thumb_func\n"
    "kgen_region_end:\n"
    "  bx lr\n"
    "  .size kgen_region_end, . - kgen_region_end\n"
    "  .popsection\n"

    /* void *memcpy(void *dst, const void *src, size_t n): words when both
       pointers are word aligned, then bytes. Forward copy, so it also serves
       memmove when dst <= src. */
    "  .pushsection .text.memcpy,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global memcpy\n"
    "  .global __aeabi_memcpy\n"
    "  .global __aeabi_memcpy4\n"
    "  .global __aeabi_memcpy8\n"
    "  .type memcpy, %function\n"
    "  .type __aeabi_memcpy, %function\n"
    "  .type __aeabi_memcpy4, %function\n"
    "  .type __aeabi_memcpy8, %function\n"
    "  .thumb_func\n"
    "__aeabi_memcpy:\n"
    "  .thumb_func\n"
    "__aeabi_memcpy4:\n"
    "  .thumb_func\n"
    "__aeabi_memcpy8:\n"
    "  .thumb_func\n"
    "memcpy:\n"
    "  mov r12, r0\n"
    "  orr r3, r0, r1\n"
    "  lsls r3, r3, #30\n"
    "  bne 2f\n"
    "1:\n"
    "  cmp r2, #4\n"
    "  blo 2f\n"
    "  ldr r3, [r1], #4\n"
    "  str r3, [r12], #4\n"
    "  subs r2, r2, #4\n"
    "  b 1b\n"
    "2:\n"
    "  cbz r2, 3f\n"
    "  ldrb r3, [r1], #1\n"
    "  strb r3, [r12], #1\n"
    "  subs r2, r2, #1\n"
    "  b 2b\n"
    "3:\n"
    "  bx lr\n"
    "  .size memcpy, . - memcpy\n"
    "  .size __aeabi_memcpy, . - __aeabi_memcpy\n"
    "  .size __aeabi_memcpy4, . - __aeabi_memcpy4\n"
    "  .size __aeabi_memcpy8, . - __aeabi_memcpy8\n"
    "  .popsection\n"

    /* void *memmove(void *dst, const void *src, size_t n) */
    "  .pushsection .text.memmove,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global memmove\n"
    "  .global __aeabi_memmove\n"
    "  .global __aeabi_memmove4\n"
    "  .global __aeabi_memmove8\n"
    "  .type memmove, %function\n"
    "  .type __aeabi_memmove, %function\n"
    "  .type __aeabi_memmove4, %function\n"
    "  .type __aeabi_memmove8, %function\n"
    "  .thumb_func\n"
    "__aeabi_memmove:\n"
    "  .thumb_func\n"
    "__aeabi_memmove4:\n"
    "  .thumb_func\n"
    "__aeabi_memmove8:\n"
    "  .thumb_func\n"
    "memmove:\n"
    "  cmp r0, r1\n"
    "  bls memcpy\n"
    "  adds r3, r1, r2\n"
    "  cmp r0, r3\n"
    "  bhs memcpy\n"
    "  add r12, r0, r2\n"
    "1:\n"
    "  cbz r2, 2f\n"
    "  ldrb r1, [r3, #-1]!\n"
    "  strb r1, [r12, #-1]!\n"
    "  subs r2, r2, #1\n"
    "  b 1b\n"
    "2:\n"
    "  bx lr\n"
    "  .size memmove, . - memmove\n"
    "  .size __aeabi_memmove, . - __aeabi_memmove\n"
    "  .size __aeabi_memmove4, . - __aeabi_memmove4\n"
    "  .size __aeabi_memmove8, . - __aeabi_memmove8\n"
    "  .popsection\n"

    /* void *memset(void *dst, int c, size_t n); the AEABI forms take
       (dst, n, c) and (dst, n) and return nothing. */
    "  .pushsection .text.memset,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global memset\n"
    "  .global __aeabi_memset\n"
    "  .global __aeabi_memset4\n"
    "  .global __aeabi_memset8\n"
    "  .global __aeabi_memclr\n"
    "  .global __aeabi_memclr4\n"
    "  .global __aeabi_memclr8\n"
    "  .type memset, %function\n"
    "  .type __aeabi_memset, %function\n"
    "  .type __aeabi_memset4, %function\n"
    "  .type __aeabi_memset8, %function\n"
    "  .type __aeabi_memclr, %function\n"
    "  .type __aeabi_memclr4, %function\n"
    "  .type __aeabi_memclr8, %function\n"
    "  .thumb_func\n"
    "__aeabi_memclr:\n"
    "  .thumb_func\n"
    "__aeabi_memclr4:\n"
    "  .thumb_func\n"
    "__aeabi_memclr8:\n"
    "  mov r2, r1\n"
    "  movs r1, #0\n"
    "  b memset\n"
    "  .thumb_func\n"
    "__aeabi_memset:\n"
    "  .thumb_func\n"
    "__aeabi_memset4:\n"
    "  .thumb_func\n"
    "__aeabi_memset8:\n"
    "  mov r3, r1\n"
    "  mov r1, r2\n"
    "  mov r2, r3\n"
    "  .thumb_func\n"
    "memset:\n"
    "  mov r12, r0\n"
    "  uxtb r1, r1\n"
    "  orr r1, r1, r1, lsl #8\n"
    "  orr r1, r1, r1, lsl #16\n"
    "1:\n"
    "  cbz r2, 4f\n"
    "  tst r12, #3\n"
    "  beq 2f\n"
    "  strb r1, [r12], #1\n"
    "  subs r2, r2, #1\n"
    "  b 1b\n"
    "2:\n"
    "  cmp r2, #4\n"
    "  blo 3f\n"
    "  str r1, [r12], #4\n"
    "  subs r2, r2, #4\n"
    "  b 2b\n"
    "3:\n"
    "  cbz r2, 4f\n"
    "  strb r1, [r12], #1\n"
    "  subs r2, r2, #1\n"
    "  b 3b\n"
    "4:\n"
    "  bx lr\n"
    "  .size memset, . - memset\n"
    "  .size __aeabi_memset, . - __aeabi_memset\n"
    "  .size __aeabi_memset4, . - __aeabi_memset4\n"
    "  .size __aeabi_memset8, . - __aeabi_memset8\n"
    "  .size __aeabi_memclr, . - __aeabi_memclr\n"
    "  .size __aeabi_memclr4, . - __aeabi_memclr4\n"
    "  .size __aeabi_memclr8, . - __aeabi_memclr8\n"
    "  .popsection\n");
