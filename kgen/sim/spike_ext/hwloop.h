// hwloop.h - XpulpV2 / CV32E40P hardware loops for the kgen Spike extension (included by
// xpulpv2.cc, inside its anonymous namespace, after the instruction table helpers).
//
// Instructions (custom-3 0x7b, [GW] MATCH_HWLP_*; L = bit 7 of the rd field, bits 11:8 zero;
// uimm = the unsigned 12-bit immediate):
//   lp.starti L, uimm     funct3 000   lpstart[L] = pc + (uimm << 1)
//   lp.endi   L, uimm     funct3 001   lpend[L]   = pc + (uimm << 1)
//   lp.count  L, rs1      funct3 010   lpcount[L] = rs1
//   lp.counti L, uimm     funct3 011   lpcount[L] = uimm
//   lp.setup  L, rs1, uimm   100       lpstart[L] = pc + 4, lpend[L] = pc + (uimm << 1), lpcount[L] = rs1
//   lp.setupi L, uimm, uimmS 101       lpstart[L] = pc + 4, lpend[L] = pc + (uimmS << 1) (uimmS: the
//                                      5-bit rs1 field), lpcount[L] = uimm
// Semantics (openhwgroup/cv32e40p docs/source/corev_hw_loop.rst): lpend is the address just after
// the last body instruction; each time the last body instruction (at lpend - 4) completes with
// lpcount[L] != 0, lpcount[L] is decremented and, if still non-zero, execution continues at
// lpstart[L].  Loop 0 (inner) has priority over loop 1.  A loop-back retires no instruction, so
// minstret and the per-PC histogram count the body instructions only.
//
// Spike has no per-instruction hook for extensions, but it decodes extension (custom)
// instructions before its own.  The extension therefore registers, besides its own
// instructions, a wrapper for every base instruction that may end a hardware-loop body (32-bit
// encodings of LOAD, OP-IMM, AUIPC, STORE, AMO, OP, LUI, SYSTEM): the wrapper runs Spike's own
// implementation and then applies the loop-end rule.  The constraints the hardware leaves
// undefined are checked where that is cheap, with an illegal-instruction trap instead of silently
// wrong behaviour: lp.setup*/lp.endi need lpend > lpstart, a body of at least 3 instructions
// (when both addresses are known), and a last body instruction that the extension wraps (so a
// compressed instruction, a branch or a jump there traps; the other body constraints — no
// branches or compressed instructions anywhere in the body — are the program's responsibility).

struct hwloop_regs {
  uint32_t start[2] = {0, 0};
  uint32_t end[2] = {0, 0};
  uint32_t count[2] = {0, 0};
};

constexpr int HW_MAX_HARTS = 64;

inline hwloop_regs& hwl(processor_t* p)
{
  static hwloop_regs regs[HW_MAX_HARTS];
  return regs[p->get_id() % HW_MAX_HARTS];
}

constexpr reg_t PC_SERIALIZE_BEFORE_ = 3;  // Spike's decode_macros.h

// The loop-end rule, applied after an instruction at `pc` returned `npc`.
inline reg_t hwloop_after(processor_t* p, reg_t pc, reg_t npc)
{
  hwloop_regs& h = hwl(p);
  if (__builtin_expect((h.count[0] | h.count[1]) == 0, 1)) return npc;
  if (npc == PC_SERIALIZE_BEFORE_) return npc;  // the instruction did not complete yet
  const bool special = npc & 1;                  // PC_SERIALIZE_AFTER: the next pc is in state.pc
  const uint32_t next = (uint32_t)(special ? p->get_state()->pc : npc);
  if (next != (uint32_t)pc + 4) return npc;      // a taken branch/jump is not a loop end
  for (int L = 0; L < 2; L++) {
    if (h.count[L] != 0 && next == h.end[L]) {
      if (--h.count[L] == 0) return npc;
      const reg_t target = addr(h.start[L]);
      if (special) {
        p->get_state()->pc = target;
        return npc;
      }
      return target;
    }
  }
  return npc;
}

// ---------------------------------------------------------------------- wrapped functions

constexpr size_t HW_WRAP_MAX = 512;

struct wrapped_fns {
  insn_func_t fast[HW_WRAP_MAX];
  insn_func_t logged[HW_WRAP_MAX];
  size_t n = 0;
};

inline wrapped_fns& wrapped()
{
  static wrapped_fns w;
  return w;
}

template <size_t I, bool LOGGED>
reg_t hw_wrap(processor_t* p, insn_t insn, reg_t pc)
{
  const wrapped_fns& w = wrapped();
  return hwloop_after(p, pc, (LOGGED ? w.logged[I] : w.fast[I])(p, insn, pc));
}

template <bool LOGGED, size_t... I>
constexpr std::array<insn_func_t, sizeof...(I)> hw_wrap_table(std::index_sequence<I...>)
{
  return {&hw_wrap<I, LOGGED>...};
}

inline const std::array<insn_func_t, HW_WRAP_MAX>& hw_fast_wrappers()
{
  static const auto t = hw_wrap_table<false>(std::make_index_sequence<HW_WRAP_MAX>{});
  return t;
}

inline const std::array<insn_func_t, HW_WRAP_MAX>& hw_logged_wrappers()
{
  static const auto t = hw_wrap_table<true>(std::make_index_sequence<HW_WRAP_MAX>{});
  return t;
}

// Register `fast`/`logged` (rv32i variants) for wrapping; returns the wrapper descriptor.
inline bool hw_wrap_insn(insn_bits_t match, insn_bits_t mask, insn_func_t fast, insn_func_t logged,
                         insn_desc_t& out)
{
  wrapped_fns& w = wrapped();
  if (w.n >= HW_WRAP_MAX) return false;
  w.fast[w.n] = fast;
  w.logged[w.n] = logged;
  insn_func_t f = hw_fast_wrappers()[w.n], l = hw_logged_wrappers()[w.n];
  out = insn_desc_t{match, mask, f, f, f, f, l, l, l, l};
  w.n++;
  return true;
}

inline bool hw_is_wrapper(insn_func_t f)
{
  const size_t n = wrapped().n;
  for (size_t i = 0; i < n; i++)
    if (hw_fast_wrappers()[i] == f || hw_logged_wrappers()[i] == f) return true;
  return false;
}

// Base-ISA major opcodes whose 32-bit instructions may end a hardware-loop body.
inline bool hw_base_candidate(insn_bits_t match, insn_bits_t mask)
{
  if ((match & 3) != 3 || (mask & 0x7f) != 0x7f) return false;
  switch (match & 0x7f) {
    case 0x03: case 0x13: case 0x17: case 0x23: case 0x2f: case 0x33: case 0x37: case 0x73: return true;
    default: return false;
  }
}

// ---------------------------------------------------------------------- lp.* instructions

[[noreturn]] inline void hw_illegal(insn_t insn) { throw trap_illegal_instruction(insn.bits() & 0xffffffffu); }

inline uint32_t hw_uimm(insn_t insn) { return (uint32_t)(insn.bits() >> 20) & 0xfff; }
inline int hw_level(insn_t insn) { return (int)((insn.bits() >> 7) & 1); }

// The last body instruction (at end - 4) must be one the extension wraps, i.e. one after which
// the loop-end rule is applied.
inline void hw_check_end(processor_t* p, insn_t insn, uint32_t start, uint32_t end)
{
  if (end <= start || end - start < 12 || (start & 3) || (end & 3)) hw_illegal(insn);
  insn_bits_t last = p->get_mmu()->load<uint32_t>(addr(end - 4));
  if ((last & 3) != 3 || !hw_is_wrapper(p->decode_insn(insn_t(last)))) hw_illegal(insn);
}

template <int F3>
reg_t lp_insn(processor_t* p, insn_t insn, reg_t pc)
{
  hwloop_regs& h = hwl(p);
  const int L = hw_level(insn);
  const uint32_t here = (uint32_t)pc, u = hw_uimm(insn);
  switch (F3) {
    case 0: h.start[L] = here + (u << 1); break;                                 // lp.starti
    case 1: h.end[L] = here + (u << 1); hw_check_end(p, insn, h.start[L], h.end[L]); break;  // lp.endi
    case 2: h.count[L] = rx(p, insn.rs1()); break;                               // lp.count
    case 3: h.count[L] = u; break;                                               // lp.counti
    case 4:                                                                      // lp.setup
    case 5: {                                                                    // lp.setupi
      const uint32_t end = here + ((F3 == 4 ? u : (uint32_t)insn.rs1()) << 1);
      hw_check_end(p, insn, here + 4, end);
      h.start[L] = here + 4;
      h.end[L] = end;
      h.count[L] = F3 == 4 ? rx(p, insn.rs1()) : u;
      break;
    }
  }
  return pc + 4;
}
