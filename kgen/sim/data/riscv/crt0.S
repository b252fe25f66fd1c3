/* crt0.S - kgen bare-metal start-up for Spike (RV32, 1..16 harts).
 *
 * Every hart enters _start (Spike's boot ROM jumps here with a0 = mhartid).
 * Harts >= KGEN_NUM_CORES park in wfi for ever. Hart 0 zeroes .bss and then
 * releases the others; each hart gets its own stack, sets mtvec and mie.MSIE
 * (machine software interrupt = the barrier's wake-up IPI; mstatus.MIE stays 0,
 * so it only ends wfi and never traps) and calls __kgen_hart_main(hartid) in
 * harness.c, which calibrates the region markers, calls main() and reports.
 *
 * The region markers are written here so that their instruction sequences do
 * not depend on compiler flags: the empty-region overhead the harness subtracts
 * is `csrr, sw, ret` of kgen_region_begin plus the caller's 2-instruction call
 * (auipc + jalr; kgen builds use -mno-relax) of kgen_region_end = 5.
 */
#ifndef KGEN_NUM_CORES
#define KGEN_NUM_CORES 1
#endif
#define KGEN_MAX_HARTS 16
#define KGEN_STACK_SIZE 0x20000

  .option norelax

  /* Absolute symbol: the hart count this program was built for (read by riscv.py). */
  .globl __kgen_num_cores
  .set __kgen_num_cores, KGEN_NUM_CORES

  .section .text.init, "ax", @progbits
  .globl _start
_start:
  la gp, __global_pointer$
  csrr t0, mhartid
  li t1, KGEN_NUM_CORES
  bgeu t0, t1, __kgen_park
  li t1, KGEN_MAX_HARTS
  bgeu t0, t1, __kgen_park
  la sp, __stack_top
  li t1, KGEN_STACK_SIZE
  mul t1, t1, t0
  sub sp, sp, t1
  la t1, __kgen_trap_entry
  csrw mtvec, t1
  li t1, 8
  csrs mie, t1                      /* MSIE: wake wfi on a software interrupt */
  bnez t0, 2f
  la t1, __bss_start                /* hart 0: zero .bss, then release the others */
  la t2, __bss_end
1:
  bgeu t1, t2, 3f
  sw zero, 0(t1)
  addi t1, t1, 4
  j 1b
3:
  fence rw, rw
  la t1, __kgen_boot_flag
  li t2, 1
  sw t2, 0(t1)
  fence rw, rw
  j 4f
2:
  la t1, __kgen_boot_flag           /* other harts: wait for hart 0 */
5:
  lw t2, 0(t1)
  beqz t2, 5b
  fence rw, rw
4:
  csrr a0, mhartid
  call __kgen_hart_main
  .globl __kgen_park
__kgen_park:
  wfi
  j __kgen_park

  .text
/* void kgen_region_begin(void): start a counted region on this hart. */
  .globl kgen_region_begin
  .type kgen_region_begin, @function
  .p2align 2
kgen_region_begin:
  csrr t0, mhartid
  slli t0, t0, 2
  la t1, __kgen_rstart
  add t1, t1, t0
  .insn i 0x0b, 3, x0, x0, 1        /* kgen.marker begin (simulator-only, see xpulpv2.cc) */
  csrr t2, minstret
  sw t2, 0(t1)
  ret
  .size kgen_region_begin, . - kgen_region_begin

/* void kgen_region_end(void): end the region; harness.c records the count. */
  .globl kgen_region_end
  .type kgen_region_end, @function
  .p2align 2
kgen_region_end:
  csrr a0, minstret
  .insn i 0x0b, 3, x0, x0, 2        /* kgen.marker end */
  tail __kgen_region_record
  .size kgen_region_end, . - kgen_region_end

/* void __kgen_calibrate(void): one empty region, exactly as a caller makes it. */
  .globl __kgen_calibrate
  .type __kgen_calibrate, @function
  .p2align 2
__kgen_calibrate:
  addi sp, sp, -16
  sw ra, 12(sp)
  call kgen_region_begin
  call kgen_region_end
  lw ra, 12(sp)
  addi sp, sp, 16
  ret
  .size __kgen_calibrate, . - __kgen_calibrate

/* Any exception: report it and exit with status 255 (see harness.c). */
  .p2align 2
__kgen_trap_entry:
  csrr a0, mcause
  csrr a1, mepc
  csrr a2, mtval
  csrr a3, mhartid
  call __kgen_on_trap
  j __kgen_park

  .data
  .p2align 2
  .globl __kgen_boot_flag
__kgen_boot_flag:
  .word 0
