// xpulpv2.cc - Spike extension library implementing the XpulpV2 subset kgen uses,
// with GAP9 / PULP GCC's own encodings (not the ratified CORE-V "cv.*" ones).
//
// Load with:  spike --isa=rv32imc_zicntr_xpulpv2 --extlib=libxpulpv2.so prog.elf
// (Spike strips the leading 'x' of an ISA-string extension, so it is registered as "pulpv2".)
// Build (kgen/sim/riscv.py does this on demand):
//   g++ -std=c++20 -O2 -shared -fPIC -D_GLIBCXX_USE_CXX11_ABI=0 \
//       -include <spike>/include/fesvr/config.h -I<spike>/include -o libxpulpv2.so xpulpv2.cc
//
// Encoding sources (every MATCH/MASK value below was checked against them):
//  [GW] GreenWaves-Technologies/riscv-binutils-gdb (GAP8/GAP9 toolchain binutils),
//       include/opcode/riscv-opc.h "PULP specific instructions" (MATCH_*/MASK_* values)
//       and opcodes/riscv-opc.c (mnemonic -> MATCH mapping, sections Xgap8/Xpulpv2/Xpulpv3).
//       NB: in riscv-opc.c the SIMD dot products use confusingly named macros, e.g.
//       pv.sdotsp = MATCH_V_OP_SDOTUSP (0xB8000000), pv.dotsp = MATCH_V_OP_DOTUP.
//       The values, not the macro names, are what count.
//  [CV] openhwgroup/cv32e40p docs/source/instruction_set_extensions.rst (revision that
//       still used the PULP encodings): semantics and bit-field tables; its funct5/funct3
//       tables agree with [GW] for every instruction implemented here.
//
// Hardware loops (lp.setup, lp.setupi, lp.starti, lp.endi, lp.count, lp.counti; two levels) are
// implemented in hwloop.h: the extension wraps every instruction that may end a loop body.
//
// Conventions: RV32 register values are kept sign-extended to 64 bits by Spike, so
// every write goes through wr(); addresses are sign-extended before use (Spike keeps
// RV32 addresses sign-extended). For post-increment accesses the memory access is done
// first (so a trap leaves rs1 unchanged), then rs1 is updated, then rd is written
// (rd == rs1 is not a valid combination on the real core; here the loaded value wins).
//
// Simulator-only instruction (not XpulpV2; only the kgen harness emits it):
//   kgen.marker imm  = custom-0 (0x0b), funct3 011, rd = rs1 = x0, imm 1 = region begin,
//   imm 2 = region end. It retires like a nop; when the environment variable
//   KGEN_SPIKE_HIST names a file, begin/end switch Spike's per-PC histogram on/off for
//   the executing hart and each end appends that region's histogram to the file.

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

// Spike keeps the PC histogram private; the marker needs to read and reset it.
#define private public
#include "riscv/extension.h"
#include "riscv/processor.h"
#include "riscv/mmu.h"
#include "riscv/disasm.h"
#undef private

namespace {

constexpr reg_t PC_SERIALIZE_AFTER = 5;  // Spike's decode_macros.h: retire, then re-check slow path

inline uint32_t rx(processor_t* p, uint64_t r) { return (uint32_t)p->get_state()->XPR[r]; }

inline void wr(processor_t* p, uint64_t rd, uint32_t v)
{
  reg_t val = (reg_t)(int64_t)(int32_t)v;
  state_t* s = p->get_state();
  s->XPR.write(rd, val);
  if (p->get_log_commits_enabled())
    s->log_reg_write[rd << 4] = {val, 0};
}

inline reg_t addr(uint32_t a) { return (reg_t)(int64_t)(int32_t)a; }

inline int32_t sx(uint32_t v, int bits) { return (int32_t)(v << (32 - bits)) >> (32 - bits); }
inline uint32_t lane(uint32_t v, int i, int w) { return (v >> (i * w)) & ((1u << w) - 1); }

// ---------------------------------------------------------------------------------------
// SIMD (major opcode OP-V 0x57). funct5 = bits 31:27, bit 26 = 0, bit 25 = 0,
// funct3: 000 .h, 001 .b, 100 .sc.h, 101 .sc.b  ([GW] MATCH_V_OP_{H,B}_{VV,VR}).
// ---------------------------------------------------------------------------------------
enum VOp { V_ADD = 0, V_SUB = 1, V_MIN = 4, V_MINU = 5, V_MAX = 6, V_MAXU = 7, V_SRL = 8,
           V_SRA = 9, V_SLL = 10, V_OR = 11, V_XOR = 12, V_AND = 13, V_ABS = 14,
           V_DOTUP = 16, V_DOTUSP = 17, V_DOTSP = 19, V_SDOTUP = 20, V_SDOTUSP = 21,
           V_SDOTSP = 23 };

template <int OP, int W, bool SC>
reg_t simd(processor_t* p, insn_t insn, reg_t pc)
{
  const int n = 32 / W;
  uint32_t a = rx(p, insn.rs1());
  uint32_t b = rx(p, insn.rs2());
  if (SC) {  // scalar replication: lane 0 of rs2 in every lane
    uint32_t l0 = lane(b, 0, W);
    b = 0;
    for (int i = 0; i < n; i++) b |= l0 << (i * W);
  }
  if (OP >= V_DOTUP) {
    uint32_t acc = (OP >= V_SDOTUP) ? rx(p, insn.rd()) : 0;
    for (int i = 0; i < n; i++) {
      uint32_t ua = lane(a, i, W), ub = lane(b, i, W);
      int64_t x = (OP == V_DOTSP || OP == V_SDOTSP) ? sx(ua, W) : (int64_t)ua;       // rs1 signed only for *sp
      int64_t y = (OP == V_DOTUP || OP == V_SDOTUP) ? (int64_t)ub : sx(ub, W);       // rs2 signed for *sp, *usp
      acc += (uint32_t)(x * y);
    }
    wr(p, insn.rd(), acc);
    return pc + 4;
  }
  uint32_t r = 0;
  const uint32_t m = (1u << W) - 1;
  for (int i = 0; i < n; i++) {
    uint32_t ua = lane(a, i, W), ub = lane(b, i, W);
    int32_t sa = sx(ua, W), sb = sx(ub, W);
    uint32_t v;
    switch (OP) {
      case V_ADD: v = ua + ub; break;
      case V_SUB: v = ua - ub; break;
      case V_MIN: v = (uint32_t)(sa < sb ? sa : sb); break;
      case V_MINU: v = ua < ub ? ua : ub; break;
      case V_MAX: v = (uint32_t)(sa > sb ? sa : sb); break;
      case V_MAXU: v = ua > ub ? ua : ub; break;
      case V_SRL: v = ua >> (ub & (W - 1)); break;
      case V_SRA: v = (uint32_t)(sa >> (ub & (W - 1))); break;
      case V_SLL: v = ua << (ub & (W - 1)); break;
      case V_OR: v = ua | ub; break;
      case V_XOR: v = ua ^ ub; break;
      case V_AND: v = ua & ub; break;
      case V_ABS: v = (uint32_t)(sa < 0 ? -sa : sa); break;
      default: v = 0;
    }
    r |= (v & m) << (i * W);
  }
  wr(p, insn.rd(), r);
  return pc + 4;
}

// pv.pack.h rD, rs1, rs2: rD[31:16] = rs1[15:0], rD[15:0] = rs2[15:0]   ([CV] "pack", bit 25 = 0)
reg_t pv_pack_h(processor_t* p, insn_t insn, reg_t pc)
{
  wr(p, insn.rd(), (rx(p, insn.rs1()) << 16) | (rx(p, insn.rs2()) & 0xffff));
  return pc + 4;
}
// pv.packhi.b: rD[31:24] = rs1[7:0], rD[23:16] = rs2[7:0], rD[15:0] kept
reg_t pv_packhi_b(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t d = rx(p, insn.rd());
  d = (d & 0x0000ffffu) | ((rx(p, insn.rs1()) & 0xff) << 24) | ((rx(p, insn.rs2()) & 0xff) << 16);
  wr(p, insn.rd(), d);
  return pc + 4;
}
// pv.packlo.b: rD[15:8] = rs1[7:0], rD[7:0] = rs2[7:0], rD[31:16] kept
reg_t pv_packlo_b(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t d = rx(p, insn.rd());
  d = (d & 0xffff0000u) | ((rx(p, insn.rs1()) & 0xff) << 8) | (rx(p, insn.rs2()) & 0xff);
  wr(p, insn.rd(), d);
  return pc + 4;
}

// ---------------------------------------------------------------------------------------
// Scalar ALU in OP (0x33)   [GW] MATCH_AVG.., MATCH_CLIP.., MATCH_MAC32/MSU32
// ---------------------------------------------------------------------------------------
enum AOp { A_ABS, A_SLET, A_SLETU, A_MIN, A_MINU, A_MAX, A_MAXU, A_ROR, A_FF1, A_FL1, A_CLB,
           A_CNT, A_EXTHS, A_EXTHZ, A_EXTBS, A_EXTBZ, A_CLIP, A_CLIPU, A_CLIPR, A_CLIPUR,
           A_MAC, A_MSU };

template <int OP>
reg_t alu(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t a = rx(p, insn.rs1());
  uint32_t b = rx(p, insn.rs2());
  int32_t sa = (int32_t)a, sb = (int32_t)b;
  uint32_t r = 0;
  switch (OP) {
    case A_ABS: r = sa < 0 ? 0u - a : a; break;
    case A_SLET: r = sa <= sb; break;
    case A_SLETU: r = a <= b; break;
    case A_MIN: r = (uint32_t)(sa < sb ? sa : sb); break;
    case A_MINU: r = a < b ? a : b; break;
    case A_MAX: r = (uint32_t)(sa < sb ? sb : sa); break;
    case A_MAXU: r = a < b ? b : a; break;
    case A_ROR: { uint32_t s = b & 31; r = s ? (a >> s) | (a << (32 - s)) : a; break; }
    case A_FF1: r = a ? (uint32_t)__builtin_ctz(a) : 32; break;
    case A_FL1: r = a ? 31u - (uint32_t)__builtin_clz(a) : 32; break;
    case A_CLB: r = a ? (uint32_t)__builtin_clrsb(sa) : 0; break;
    case A_CNT: r = (uint32_t)__builtin_popcount(a); break;
    case A_EXTHS: r = (uint32_t)sx(a & 0xffff, 16); break;
    case A_EXTHZ: r = a & 0xffff; break;
    case A_EXTBS: r = (uint32_t)sx(a & 0xff, 8); break;
    case A_EXTBZ: r = a & 0xff; break;
    case A_CLIP: case A_CLIPU: {  // Is2 is the rs2 field: bounds -2^(Is2-1) .. 2^(Is2-1)-1 ([CV])
      uint32_t is2 = (uint32_t)insn.rs2();
      int32_t hi = is2 ? (int32_t)((1u << (is2 - 1)) - 1) : 0;
      int32_t lo = OP == A_CLIPU ? 0 : (is2 ? -(int32_t)(1u << (is2 - 1)) : -1);
      r = (uint32_t)(sa <= lo ? lo : sa >= hi ? hi : sa);
      break;
    }
    case A_CLIPR: {  // if rs1 <= -(rs2+1) -> -(rs2+1); else if rs1 >= rs2 -> rs2; else rs1
      int32_t lo = (int32_t)(0u - (b + 1u));
      r = (uint32_t)(sa <= lo ? lo : sa >= sb ? sb : sa);
      break;
    }
    case A_CLIPUR: r = (uint32_t)(sa <= 0 ? 0 : sa >= sb ? sb : sa); break;
    case A_MAC: r = rx(p, insn.rd()) + a * b; break;
    case A_MSU: r = rx(p, insn.rd()) - a * b; break;
  }
  wr(p, insn.rd(), r);
  return pc + 4;
}

// ---------------------------------------------------------------------------------------
// custom-2 (0x5b): 16x16 multiply / MAC with normalisation, add/sub with normalisation.
// funct3 000 mulN, 100 mulRN, 001 macN, 101 macRN, 010 addN, 110 addRN, 011 subN, 111 subRN;
// bits 31:30 select the variant, bits 29:25 hold Is3 ([GW] MATCH_MULSN.., MATCH_ADDN..).
// The rounding constant is 2^(Is3-1) (0 when Is3 = 0), as in the RTL's {1'b0, bmask[31:1]}.
// Multiplies and MACs keep the full-width intermediate before the shift (the RTL's
// multiplier result is wider than 32 bits); add/sub wrap to 32 bits first (32-bit adder).
// ---------------------------------------------------------------------------------------
inline uint32_t rnd(uint32_t sh) { return sh ? (1u << (sh - 1)) : 0; }

template <bool MAC, bool ROUND>
reg_t mulN(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t f2 = (uint32_t)(insn.bits() >> 30) & 3;  // 00 u, 01 hhu, 10 s, 11 hhs
  uint32_t sh = (uint32_t)(insn.bits() >> 25) & 31;
  uint32_t a = rx(p, insn.rs1()), b = rx(p, insn.rs2());
  bool hh = f2 & 1, sgn = f2 & 2;
  uint32_t ha = hh ? a >> 16 : a & 0xffff, hb = hh ? b >> 16 : b & 0xffff;
  int64_t prod = sgn ? (int64_t)sx(ha, 16) * sx(hb, 16) : (int64_t)ha * (int64_t)hb;
  int64_t acc = 0;
  if (MAC) acc = sgn ? (int64_t)(int32_t)rx(p, insn.rd()) : (int64_t)rx(p, insn.rd());
  int64_t t = prod + acc + (ROUND ? rnd(sh) : 0);
  uint32_t r = sgn ? (uint32_t)(t >> sh) : (uint32_t)((uint64_t)t >> sh);
  wr(p, insn.rd(), r);
  return pc + 4;
}

template <bool SUB, bool ROUND>
reg_t addN(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t f2 = (uint32_t)(insn.bits() >> 30) & 3;  // 00 N, 10 uN, 01 Nr (register), 11 uNr
  bool reg = f2 & 1, uns = f2 & 2;
  uint32_t x, y, sh;
  if (reg) { x = rx(p, insn.rd()); y = rx(p, insn.rs1()); sh = rx(p, insn.rs2()) & 31; }
  else { x = rx(p, insn.rs1()); y = rx(p, insn.rs2()); sh = (uint32_t)(insn.bits() >> 25) & 31; }
  uint32_t t = (SUB ? x - y : x + y) + (ROUND ? rnd(sh) : 0);
  uint32_t r = uns ? t >> sh : (uint32_t)((int32_t)t >> sh);
  wr(p, insn.rd(), r);
  return pc + 4;
}

// ---------------------------------------------------------------------------------------
// Loads and stores.  [GW] MATCH_L*POST (custom-0 0x0b, imm post-increment),
// MATCH_L*RRPOST (0x0b funct3 111, register post-increment), MATCH_L*RR (LOAD 0x03
// funct3 111, register offset), MATCH_S*POST (custom-1 0x2b, imm post-increment),
// MATCH_S*RRPOST (0x2b funct3 100..110, rs3 = bits 11:7), MATCH_S*RR (STORE 0x23 funct3 100..110).
// ---------------------------------------------------------------------------------------
enum LKind { L_B, L_H, L_W, L_BU, L_HU };

template <int K>
uint32_t do_load(processor_t* p, uint32_t a)
{
  mmu_t* m = p->get_mmu();
  switch (K) {
    case L_B: return (uint32_t)(int32_t)m->load<int8_t>(addr(a));
    case L_H: return (uint32_t)(int32_t)m->load<int16_t>(addr(a));
    case L_W: return m->load<uint32_t>(addr(a));
    case L_BU: return m->load<uint8_t>(addr(a));
    default: return m->load<uint16_t>(addr(a));
  }
}

template <int K>
reg_t ld_post_imm(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t base = rx(p, insn.rs1());
  uint32_t v = do_load<K>(p, base);
  wr(p, insn.rs1(), base + (uint32_t)insn.i_imm());
  wr(p, insn.rd(), v);
  return pc + 4;
}

template <int K>
reg_t ld_post_reg(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t base = rx(p, insn.rs1());
  uint32_t inc = rx(p, insn.rs2());
  uint32_t v = do_load<K>(p, base);
  wr(p, insn.rs1(), base + inc);
  wr(p, insn.rd(), v);
  return pc + 4;
}

template <int K>
reg_t ld_reg(processor_t* p, insn_t insn, reg_t pc)
{
  wr(p, insn.rd(), do_load<K>(p, rx(p, insn.rs1()) + rx(p, insn.rs2())));
  return pc + 4;
}

template <int BYTES>
void do_store(processor_t* p, uint32_t a, uint32_t v)
{
  mmu_t* m = p->get_mmu();
  if (BYTES == 1) m->store<uint8_t>(addr(a), (uint8_t)v);
  else if (BYTES == 2) m->store<uint16_t>(addr(a), (uint16_t)v);
  else m->store<uint32_t>(addr(a), v);
}

template <int BYTES>
reg_t st_post_imm(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t base = rx(p, insn.rs1());
  do_store<BYTES>(p, base, rx(p, insn.rs2()));
  wr(p, insn.rs1(), base + (uint32_t)insn.s_imm());
  return pc + 4;
}

template <int BYTES>
reg_t st_post_reg(processor_t* p, insn_t insn, reg_t pc)
{
  uint32_t base = rx(p, insn.rs1());
  uint32_t inc = rx(p, insn.rd());  // rs3 lives in the rd field
  do_store<BYTES>(p, base, rx(p, insn.rs2()));
  wr(p, insn.rs1(), base + inc);
  return pc + 4;
}

template <int BYTES>
reg_t st_reg(processor_t* p, insn_t insn, reg_t pc)
{
  do_store<BYTES>(p, rx(p, insn.rs1()) + rx(p, insn.rd()), rx(p, insn.rs2()));
  return pc + 4;
}

// ---------------------------------------------------------------------------------------
// Hardware loops (lp.*): see hwloop.h.
// ---------------------------------------------------------------------------------------
#include "hwloop.h"

// ---------------------------------------------------------------------------------------
// kgen region marker (simulator only) and per-region PC histograms.
// ---------------------------------------------------------------------------------------
FILE* hist_file()
{
  static FILE* f = nullptr;
  static bool tried = false;
  if (!tried) {
    tried = true;
    const char* path = std::getenv("KGEN_SPIKE_HIST");
    if (path && *path) f = std::fopen(path, "w");
  }
  return f;
}

reg_t kgen_marker(processor_t* p, insn_t insn, reg_t pc)
{
  FILE* f = hist_file();
  if (f) {
    if (insn.i_imm() == 1) {
      p->pc_histogram.clear();
      p->histogram_enabled = true;
    } else if (insn.i_imm() == 2 && p->histogram_enabled) {
      p->histogram_enabled = false;
      std::fprintf(f, "H %u %zu\n", p->get_id(), p->pc_histogram.size());
      for (const auto& kv : p->pc_histogram)
        std::fprintf(f, "%llx %llu\n", (unsigned long long)(kv.first & 0xffffffffu),
                     (unsigned long long)kv.second);
      std::fflush(f);
      p->pc_histogram.clear();
    }
  }
  // Serialise so that Spike re-evaluates its fast/slow (histogram) path right here.
  p->get_state()->pc = pc + 4;
  return PC_SERIALIZE_AFTER;
}

// ---------------------------------------------------------------------------------------
// Disassembly (for spike -l / -d)
// ---------------------------------------------------------------------------------------
struct xreg_arg : arg_t {
  int which;  // 0 rd, 1 rs1, 2 rs2
  explicit xreg_arg(int w) : which(w) {}
  std::string to_string(insn_t i) const override
  {
    return xpr_name[which == 0 ? i.rd() : which == 1 ? i.rs1() : i.rs2()];
  }
};
struct imm_arg : arg_t {
  int kind;  // 0 i_imm, 1 s_imm, 2 rs2 field (Is2), 3 bits 29:25 (Is3)
  explicit imm_arg(int k) : kind(k) {}
  std::string to_string(insn_t i) const override
  {
    int64_t v = kind == 0 ? i.i_imm() : kind == 1 ? i.s_imm() : kind == 2 ? (int64_t)i.rs2()
                                                              : (int64_t)((i.bits() >> 25) & 31);
    return std::to_string(v);
  }
};
struct mem_arg : arg_t {
  int kind;  // 0 imm(rs1!), 1 s_imm(rs1!), 2 rs2(rs1!), 3 rs2(rs1), 4 rd(rs1!), 5 rd(rs1)
  explicit mem_arg(int k) : kind(k) {}
  std::string to_string(insn_t i) const override
  {
    std::string off = kind == 0 ? std::to_string(i.i_imm()) : kind == 1 ? std::to_string(i.s_imm())
                    : (kind == 2 || kind == 3) ? xpr_name[i.rs2()] : xpr_name[i.rd()];
    bool post = kind == 0 || kind == 1 || kind == 2 || kind == 4;
    return off + "(" + xpr_name[i.rs1()] + (post ? "!" : "") + ")";
  }
};

struct hwl_arg : arg_t {
  int kind;  // 0 loop level, 1 uimm (12 bits, shown << 1 for offsets), 2 uimmS (rs1 field << 1)
  explicit hwl_arg(int k) : kind(k) {}
  std::string to_string(insn_t i) const override
  {
    if (kind == 0) return std::to_string((i.bits() >> 7) & 1);
    return std::to_string(kind == 1 ? (i.bits() >> 20) & 0xfff : i.rs1());
  }
};

const xreg_arg RD(0), RS1(1), RS2(2);
const hwl_arg HW_L(0), HW_U(1), HW_S(2);
const imm_arg IMM_I(0), IS2(2), IS3(3);
const mem_arg M_LPI(0), M_SPI(1), M_LPR(2), M_LRR(3), M_SPR(4), M_SRR(5);

struct entry {
  const char* name;
  uint32_t match, mask;
  insn_func_t fn;
  std::vector<const arg_t*> args;
};

std::vector<entry> build_table()
{
  std::vector<entry> t;
  const uint32_t MV = 0xfe00707f;  // MASK_V_OP / MASK_PALU / MASK_LRR
  auto V = [&](const char* nm, uint32_t f5, uint32_t f3, insn_func_t fn) {
    t.push_back({nm, (f5 << 27) | (f3 << 12) | 0x57u, MV, fn, {&RD, &RS1, &RS2}});
  };
#define VFAM(NAME, OP)                                                    \
  V("pv." NAME ".h", OP, 0, simd<OP, 16, false>);                         \
  V("pv." NAME ".b", OP, 1, simd<OP, 8, false>);                          \
  V("pv." NAME ".sc.h", OP, 4, simd<OP, 16, true>);                       \
  V("pv." NAME ".sc.b", OP, 5, simd<OP, 8, true>);
  VFAM("add", V_ADD) VFAM("sub", V_SUB) VFAM("min", V_MIN) VFAM("minu", V_MINU)
  VFAM("max", V_MAX) VFAM("maxu", V_MAXU) VFAM("srl", V_SRL) VFAM("sra", V_SRA)
  VFAM("sll", V_SLL) VFAM("or", V_OR) VFAM("xor", V_XOR) VFAM("and", V_AND)
  VFAM("dotup", V_DOTUP) VFAM("dotusp", V_DOTUSP) VFAM("dotsp", V_DOTSP)
  VFAM("sdotup", V_SDOTUP) VFAM("sdotusp", V_SDOTUSP) VFAM("sdotsp", V_SDOTSP)
#undef VFAM
  t.push_back({"pv.abs.h", (14u << 27) | 0x57u, 0xfff0707f, simd<V_ABS, 16, false>, {&RD, &RS1}});
  t.push_back({"pv.abs.b", (14u << 27) | (1u << 12) | 0x57u, 0xfff0707f, simd<V_ABS, 8, false>, {&RD, &RS1}});
  t.push_back({"pv.pack.h", 0xD0000057u, MV, pv_pack_h, {&RD, &RS1, &RS2}});
  t.push_back({"pv.packhi.b", 0xD8001057u, MV, pv_packhi_b, {&RD, &RS1, &RS2}});
  t.push_back({"pv.packlo.b", 0xE0001057u, MV, pv_packlo_b, {&RD, &RS1, &RS2}});

  const uint32_t MS = 0xfff0707f;  // MASK_PALUS
  t.push_back({"p.abs", 0x04000033u, MS, alu<A_ABS>, {&RD, &RS1}});
  t.push_back({"p.slet", 0x04002033u, MV, alu<A_SLET>, {&RD, &RS1, &RS2}});
  t.push_back({"p.sletu", 0x04003033u, MV, alu<A_SLETU>, {&RD, &RS1, &RS2}});
  t.push_back({"p.min", 0x04004033u, MV, alu<A_MIN>, {&RD, &RS1, &RS2}});
  t.push_back({"p.minu", 0x04005033u, MV, alu<A_MINU>, {&RD, &RS1, &RS2}});
  t.push_back({"p.max", 0x04006033u, MV, alu<A_MAX>, {&RD, &RS1, &RS2}});
  t.push_back({"p.maxu", 0x04007033u, MV, alu<A_MAXU>, {&RD, &RS1, &RS2}});
  t.push_back({"p.ror", 0x08005033u, MV, alu<A_ROR>, {&RD, &RS1, &RS2}});
  t.push_back({"p.ff1", 0x10000033u, MS, alu<A_FF1>, {&RD, &RS1}});
  t.push_back({"p.fl1", 0x10001033u, MS, alu<A_FL1>, {&RD, &RS1}});
  t.push_back({"p.clb", 0x10002033u, MS, alu<A_CLB>, {&RD, &RS1}});
  t.push_back({"p.cnt", 0x10003033u, MS, alu<A_CNT>, {&RD, &RS1}});
  t.push_back({"p.exths", 0x10004033u, MS, alu<A_EXTHS>, {&RD, &RS1}});
  t.push_back({"p.exthz", 0x10005033u, MS, alu<A_EXTHZ>, {&RD, &RS1}});
  t.push_back({"p.extbs", 0x10006033u, MS, alu<A_EXTBS>, {&RD, &RS1}});
  t.push_back({"p.extbz", 0x10007033u, MS, alu<A_EXTBZ>, {&RD, &RS1}});
  t.push_back({"p.clip", 0x14001033u, MV, alu<A_CLIP>, {&RD, &RS1, &IS2}});
  t.push_back({"p.clipu", 0x14002033u, MV, alu<A_CLIPU>, {&RD, &RS1, &IS2}});
  t.push_back({"p.clipr", 0x14005033u, MV, alu<A_CLIPR>, {&RD, &RS1, &RS2}});
  t.push_back({"p.clipur", 0x14006033u, MV, alu<A_CLIPUR>, {&RD, &RS1, &RS2}});
  t.push_back({"p.mac", 0x42000033u, MV, alu<A_MAC>, {&RD, &RS1, &RS2}});
  t.push_back({"p.msu", 0x42001033u, MV, alu<A_MSU>, {&RD, &RS1, &RS2}});

  const uint32_t MN = 0xc000707f;  // MASK_MACMULNR
  static const char* mul_names[4] = {"u", "hhu", "s", "hhs"};
  static std::vector<std::string> names;  // keep the strings alive
  names.reserve(64);
  for (uint32_t f2 = 0; f2 < 4; f2++) {
    std::string v = mul_names[f2];
    names.push_back("p.mul" + v + "N");
    t.push_back({names.back().c_str(), (f2 << 30) | 0x005bu, MN, mulN<false, false>, {&RD, &RS1, &RS2, &IS3}});
    names.push_back("p.mul" + v + "RN");
    t.push_back({names.back().c_str(), (f2 << 30) | 0x405bu, MN, mulN<false, true>, {&RD, &RS1, &RS2, &IS3}});
    names.push_back("p.mac" + v + "N");
    t.push_back({names.back().c_str(), (f2 << 30) | 0x105bu, MN, mulN<true, false>, {&RD, &RS1, &RS2, &IS3}});
    names.push_back("p.mac" + v + "RN");
    t.push_back({names.back().c_str(), (f2 << 30) | 0x505bu, MN, mulN<true, true>, {&RD, &RS1, &RS2, &IS3}});
  }
  t.push_back({"p.addN", 0x0000205bu, MN, addN<false, false>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.adduN", 0x8000205bu, MN, addN<false, false>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.addRN", 0x0000605bu, MN, addN<false, true>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.adduRN", 0x8000605bu, MN, addN<false, true>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.subN", 0x0000305bu, MN, addN<true, false>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.subuN", 0x8000305bu, MN, addN<true, false>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.subRN", 0x0000705bu, MN, addN<true, true>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.subuRN", 0x8000705bu, MN, addN<true, true>, {&RD, &RS1, &RS2, &IS3}});
  t.push_back({"p.addNr", 0x4000205bu, MV, addN<false, false>, {&RD, &RS1, &RS2}});
  t.push_back({"p.adduNr", 0xc000205bu, MV, addN<false, false>, {&RD, &RS1, &RS2}});
  t.push_back({"p.addRNr", 0x4000605bu, MV, addN<false, true>, {&RD, &RS1, &RS2}});
  t.push_back({"p.adduRNr", 0xc000605bu, MV, addN<false, true>, {&RD, &RS1, &RS2}});
  t.push_back({"p.subNr", 0x4000305bu, MV, addN<true, false>, {&RD, &RS1, &RS2}});
  t.push_back({"p.subuNr", 0xc000305bu, MV, addN<true, false>, {&RD, &RS1, &RS2}});
  t.push_back({"p.subRNr", 0x4000705bu, MV, addN<true, true>, {&RD, &RS1, &RS2}});
  t.push_back({"p.subuRNr", 0xc000705bu, MV, addN<true, true>, {&RD, &RS1, &RS2}});

  const uint32_t MP = 0x707f;  // MASK_LPOST / MASK_SPOST
  t.push_back({"p.lb", 0x000bu, MP, ld_post_imm<L_B>, {&RD, &M_LPI}});
  t.push_back({"p.lh", 0x100bu, MP, ld_post_imm<L_H>, {&RD, &M_LPI}});
  t.push_back({"p.lw", 0x200bu, MP, ld_post_imm<L_W>, {&RD, &M_LPI}});
  t.push_back({"p.lbu", 0x400bu, MP, ld_post_imm<L_BU>, {&RD, &M_LPI}});
  t.push_back({"p.lhu", 0x500bu, MP, ld_post_imm<L_HU>, {&RD, &M_LPI}});
  t.push_back({"p.lb", 0x0000700bu, MV, ld_post_reg<L_B>, {&RD, &M_LPR}});
  t.push_back({"p.lh", 0x1000700bu, MV, ld_post_reg<L_H>, {&RD, &M_LPR}});
  t.push_back({"p.lw", 0x2000700bu, MV, ld_post_reg<L_W>, {&RD, &M_LPR}});
  t.push_back({"p.lbu", 0x4000700bu, MV, ld_post_reg<L_BU>, {&RD, &M_LPR}});
  t.push_back({"p.lhu", 0x5000700bu, MV, ld_post_reg<L_HU>, {&RD, &M_LPR}});
  t.push_back({"p.lb", 0x00007003u, MV, ld_reg<L_B>, {&RD, &M_LRR}});
  t.push_back({"p.lh", 0x10007003u, MV, ld_reg<L_H>, {&RD, &M_LRR}});
  t.push_back({"p.lw", 0x20007003u, MV, ld_reg<L_W>, {&RD, &M_LRR}});
  t.push_back({"p.lbu", 0x40007003u, MV, ld_reg<L_BU>, {&RD, &M_LRR}});
  t.push_back({"p.lhu", 0x50007003u, MV, ld_reg<L_HU>, {&RD, &M_LRR}});
  t.push_back({"p.sb", 0x002bu, MP, st_post_imm<1>, {&RS2, &M_SPI}});
  t.push_back({"p.sh", 0x102bu, MP, st_post_imm<2>, {&RS2, &M_SPI}});
  t.push_back({"p.sw", 0x202bu, MP, st_post_imm<4>, {&RS2, &M_SPI}});
  t.push_back({"p.sb", 0x402bu, MV, st_post_reg<1>, {&RS2, &M_SPR}});
  t.push_back({"p.sh", 0x502bu, MV, st_post_reg<2>, {&RS2, &M_SPR}});
  t.push_back({"p.sw", 0x602bu, MV, st_post_reg<4>, {&RS2, &M_SPR}});
  t.push_back({"p.sb", 0x4023u, MV, st_reg<1>, {&RS2, &M_SRR}});
  t.push_back({"p.sh", 0x5023u, MV, st_reg<2>, {&RS2, &M_SRR}});
  t.push_back({"p.sw", 0x6023u, MV, st_reg<4>, {&RS2, &M_SRR}});

  // hardware loops ([GW] MATCH_HWLP_*); lp.starti/endi/counti ignore rs1, lp.count the immediate
  t.push_back({"lp.starti", 0x007bu, 0x000ff07fu, lp_insn<0>, {&HW_L, &HW_U}});
  t.push_back({"lp.endi", 0x107bu, 0x000ff07fu, lp_insn<1>, {&HW_L, &HW_U}});
  t.push_back({"lp.count", 0x207bu, 0xfff0707fu, lp_insn<2>, {&HW_L, &RS1}});
  t.push_back({"lp.counti", 0x307bu, 0x000ff07fu, lp_insn<3>, {&HW_L, &HW_U}});
  t.push_back({"lp.setup", 0x407bu, 0x0000707fu, lp_insn<4>, {&HW_L, &RS1, &HW_U}});
  t.push_back({"lp.setupi", 0x507bu, 0x0000707fu, lp_insn<5>, {&HW_L, &HW_U, &HW_S}});

  t.push_back({"kgen.marker", 0x300bu, 0xfffff, kgen_marker, {&IMM_I}});
  return t;
}

const std::vector<entry>& table()
{
  static const std::vector<entry> t = build_table();
  return t;
}

class xpulpv2_t : public extension_t
{
 public:
  const char* name() const override { return "pulpv2"; }

  // Every hart registers the extension; the descriptors (own instructions first, then the
  // wrapped base instructions, see hwloop.h) are built once, from the first hart's base table.
  std::vector<insn_desc_t> get_instructions(const processor_t& proc) override
  {
    static std::vector<insn_desc_t> v;
    if (v.empty()) {
      insn_desc_t d;
      for (const entry& e : table()) {
        if (!hw_wrap_insn(e.match, e.mask, e.fn, e.fn, d))
          d = insn_desc_t{e.match, e.mask, e.fn, e.fn, e.fn, e.fn, e.fn, e.fn, e.fn, e.fn};
        v.push_back(d);
      }
      for (const insn_desc_t& b : proc.instructions)
        if (hw_base_candidate(b.match, b.mask) && hw_wrap_insn(b.match, b.mask, b.fast_rv32i, b.logged_rv32i, d))
          v.push_back(d);
    }
    return v;
  }

  std::vector<disasm_insn_t*> get_disasms(const processor_t*) override
  {
    std::vector<disasm_insn_t*> v;
    for (const entry& e : table()) v.push_back(new disasm_insn_t(e.name, e.match, e.mask, e.args));
    return v;
  }
};

}  // namespace

REGISTER_EXTENSION(pulpv2, []() { return new xpulpv2_t; })
