/* harness.c - kgen RISC-V runtime for Spike: HTIF I/O and exit, region bookkeeping,
 * multi-hart start/finish protocol, barrier, and a minimal C library.
 * See kgen_harness.h for the contract and crt0.S for the start-up code.
 */
#include "kgen_harness.h"

/* HTIF mailbox: fesvr finds these two symbols in the ELF. */
volatile uint64_t tohost __attribute__((section(".tohost"), aligned(64)));
volatile uint64_t fromhost __attribute__((section(".tohost"), aligned(64)));

#define CLINT_MSIP ((volatile uint32_t *)0x02000000u)  /* Spike's CLINT, one word per hart */

uint32_t __kgen_rstart[KGEN_MAX_HARTS];                 /* written by kgen_region_begin */
static uint32_t region_count[KGEN_MAX_HARTS][KGEN_MAX_REGIONS];
static uint32_t region_n[KGEN_MAX_HARTS];
static uint32_t region_overflow[KGEN_MAX_HARTS];
static uint32_t overhead[KGEN_MAX_HARTS];
static uint8_t calibrated[KGEN_MAX_HARTS];
static int results[KGEN_MAX_HARTS];
static volatile uint32_t done_count;
static volatile uint32_t print_lock;
#if KGEN_NUM_CORES > 1
static volatile uint32_t barrier_count;
static volatile uint32_t barrier_sense;
static uint32_t local_sense[KGEN_MAX_HARTS];
#endif

int main(void);
void __kgen_calibrate(void);
void __kgen_park(void) __attribute__((noreturn));

static inline uint32_t hart_id(void)
{
  uint32_t h;
  __asm__ volatile("csrr %0, mhartid" : "=r"(h));
  return h;
}

int kgen_core_id(void) { return (int)hart_id(); }
int kgen_num_cores(void) { return KGEN_NUM_CORES; }

/* ---- HTIF ------------------------------------------------------------------------- */

static void htif_syscall(uint64_t which, uint64_t a0, uint64_t a1, uint64_t a2)
{
  static volatile uint64_t magic[8] __attribute__((aligned(64)));
  magic[0] = which;
  magic[1] = a0;
  magic[2] = a1;
  magic[3] = a2;
  __asm__ volatile("fence rw, rw" ::: "memory");
  tohost = (uint64_t)(uintptr_t)magic;
  while (fromhost == 0) {
  }
  fromhost = 0;
  __asm__ volatile("fence rw, rw" ::: "memory");
}

static void lock(void)
{
#if KGEN_NUM_CORES > 1
  while (__atomic_exchange_n(&print_lock, 1u, __ATOMIC_ACQUIRE) != 0) {
  }
#endif
}

static void unlock(void)
{
#if KGEN_NUM_CORES > 1
  __atomic_store_n(&print_lock, 0u, __ATOMIC_RELEASE);
#endif
}

static void write_raw(const char *s, size_t n)
{
  if (n) htif_syscall(64 /* SYS_write */, 1 /* stdout */, (uintptr_t)s, n);
}

void kgen_puts(const char *s)
{
  size_t n = 0;
  while (s[n]) n++;
  lock();
  write_raw(s, n);
  unlock();
}

static char *fmt_u32(char *end, uint32_t v)
{
  *--end = 0;
  do {
    *--end = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  return end;
}

void kgen_put_u32(uint32_t v)
{
  char buf[12];
  kgen_puts(fmt_u32(buf + sizeof buf, v));
}

void kgen_put_i32(int32_t v)
{
  char buf[13];
  char *p = fmt_u32(buf + sizeof buf, v < 0 ? 0u - (uint32_t)v : (uint32_t)v);
  if (v < 0) *--p = '-';
  kgen_puts(p);
}

void kgen_exit(int code)
{
  uint32_t c = (code < 0 || code > 254) ? 254u : (uint32_t)code;
  __asm__ volatile("fence rw, rw" ::: "memory");
  tohost = ((uint64_t)c << 1) | 1u;
  for (;;) {
  }
}

/* ---- regions ------------------------------------------------------------------------ */

void __kgen_region_record(uint32_t now)
{
  uint32_t h = hart_id();
  uint32_t diff = now - __kgen_rstart[h];
  if (!calibrated[h]) {
    overhead[h] = diff;
    calibrated[h] = 1;
  } else if (region_n[h] < KGEN_MAX_REGIONS) {
    region_count[h][region_n[h]++] = diff - overhead[h];
  } else {
    region_overflow[h]++;
  }
}

static void put_line(const char *tag, uint32_t a, uint32_t b, uint32_t c, int n)
{
  char buf[64];
  char *p = buf;
  for (const char *t = tag; *t; t++) *p++ = *t;
  uint32_t v[3] = {a, b, c};
  for (int i = 0; i < n; i++) {
    char tmp[12];
    *p++ = ' ';
    for (char *q = fmt_u32(tmp + sizeof tmp, v[i]); *q; q++) *p++ = *q;
  }
  *p++ = '\n';
  *p = 0;
  kgen_puts(buf);
}

static void report(void)
{
  put_line("KGEN_HARTS", KGEN_NUM_CORES, 0, 0, 1);
  for (uint32_t h = 0; h < KGEN_NUM_CORES; h++) {
    put_line("KGEN_OVERHEAD", h, overhead[h], 0, 2);
    for (uint32_t i = 0; i < region_n[h]; i++) put_line("KGEN_REGION", h, i, region_count[h][i], 3);
    if (region_overflow[h]) put_line("KGEN_ERROR region_overflow", h, region_overflow[h], 0, 2);
    put_line("KGEN_RESULT", h, (uint32_t)results[h], 0, 2);
  }
}

/* ---- start / finish ------------------------------------------------------------------- */

void __kgen_hart_main(uint32_t h)
{
  __kgen_calibrate();
  int r = main();
  results[h] = r;
#if KGEN_NUM_CORES > 1
  __atomic_fetch_add(&done_count, 1u, __ATOMIC_ACQ_REL);
  if (h != 0) __kgen_park();
  while (__atomic_load_n(&done_count, __ATOMIC_ACQUIRE) != KGEN_NUM_CORES) {
  }
#else
  done_count = 1;
#endif
  report();
  kgen_exit(results[0]);
}

void __kgen_on_trap(uint32_t mcause, uint32_t mepc, uint32_t mtval, uint32_t h)
{
  print_lock = 0; /* a trap while printing must not deadlock the report */
  kgen_puts("KGEN_TRAP hart=");
  kgen_put_u32(h);
  kgen_puts(" mcause=");
  kgen_put_u32(mcause);
  kgen_puts(" mepc=");
  kgen_put_u32(mepc);
  kgen_puts(" mtval=");
  kgen_put_u32(mtval);
  kgen_puts("\n");
  tohost = (255u << 1) | 1u;
  for (;;) {
  }
}

/* ---- barrier ------------------------------------------------------------------------- */

void kgen_barrier(void)
{
#if KGEN_NUM_CORES > 1
  uint32_t h = hart_id();
  uint32_t s = local_sense[h] ^ 1u;
  local_sense[h] = s;
  if (__atomic_fetch_add(&barrier_count, 1u, __ATOMIC_ACQ_REL) == KGEN_NUM_CORES - 1) {
    barrier_count = 0;
    __atomic_store_n(&barrier_sense, s, __ATOMIC_RELEASE);
    __asm__ volatile("fence rw, rw" ::: "memory");
    for (uint32_t i = 0; i < KGEN_NUM_CORES; i++)
      if (i != h) CLINT_MSIP[i] = 1u;
  } else {
    for (;;) {
      CLINT_MSIP[h] = 0u;
      __asm__ volatile("fence rw, rw" ::: "memory");
      if (__atomic_load_n(&barrier_sense, __ATOMIC_ACQUIRE) == s) break;
      __asm__ volatile("wfi" ::: "memory");
    }
  }
#endif
}

/* ---- minimal C library ------------------------------------------------------------------ */

void *memcpy(void *dst, const void *src, size_t n)
{
  unsigned char *d = dst;
  const unsigned char *s = src;
  if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
    for (; n >= 4; n -= 4, d += 4, s += 4) *(uint32_t *)d = *(const uint32_t *)s;
  }
  while (n--) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d == s || n == 0) return dst;
  if (d < s || d >= s + n) return memcpy(dst, src, n);
  while (n--) d[n] = s[n];
  return dst;
}

void *memset(void *dst, int c, size_t n)
{
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
