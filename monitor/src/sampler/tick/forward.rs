//! Looking ahead instead of stepping: from the interrupted instruction, decode
//! forward through the code the thread is about to run, keeping the registers and
//! flags it will have, until an instruction accesses watched memory (the sample,
//! found without running anything) or the outcome cannot be known here.
//!
//! Only what is exact is followed: moves, `lea`, additions, subtractions,
//! increments, compares and tests of 32- and 64-bit registers are carried out on a
//! copy of the registers; any other instruction that writes a register makes it
//! unknown, one that writes flags makes them unknown; direct jumps are followed,
//! conditional ones only when the flags they test are known. An address that needs
//! an unknown register, a call, a return, an indirect jump or an undecodable byte
//! stops the look-ahead: the handler then lets the processor step (trap flag) and
//! looks ahead again from there. A trap costs 10–20 µs in a VM; decoding an
//! instruction, well under one.

use iced_x86::{
    ConditionCode, Decoder, DecoderError, DecoderOptions, FlowControl, Instruction,
    InstructionInfoFactory, InstructionInfoOptions, Mnemonic, OpAccess, OpKind, Register,
};

use super::decode::{Hit, Regs};
use crate::sample::Access;

/// Registers and flags as the thread will have them, where known.
#[derive(Debug, Clone, Copy)]
struct Machine {
    gpr: [Option<u64>; 16],
    cf: Option<bool>,
    zf: Option<bool>,
    sf: Option<bool>,
    of: Option<bool>,
}

impl Machine {
    fn value(&self, reg: Register) -> Option<u64> {
        match reg {
            Register::None | Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
            r if r.is_gpr64() => self.gpr[r.number()],
            r if r.is_gpr32() => self.gpr[r.number()].map(|v| v & 0xffff_ffff),
            r if r.is_gpr16() => self.gpr[r.number()].map(|v| v & 0xffff),
            _ => None,
        }
    }

    fn forget_flags(&mut self) {
        (self.cf, self.zf, self.sf, self.of) = (None, None, None, None);
    }

    fn condition(&self, cc: ConditionCode) -> Option<bool> {
        use ConditionCode as C;
        Some(match cc {
            C::o => self.of?,
            C::no => !self.of?,
            C::b => self.cf?,
            C::ae => !self.cf?,
            C::e => self.zf?,
            C::ne => !self.zf?,
            C::be => self.cf? || self.zf?,
            C::a => !self.cf? && !self.zf?,
            C::s => self.sf?,
            C::ns => !self.sf?,
            C::l => self.sf? != self.of?,
            C::ge => self.sf? == self.of?,
            C::le => self.zf? || self.sf? != self.of?,
            C::g => !self.zf? && self.sf? == self.of?,
            _ => return None, // parity is not kept
        })
    }
}

/// A 32- or 64-bit general register operand: (its index, its width in bits).
fn gpr_operand(instr: &Instruction, op: u32) -> Option<(usize, u32)> {
    if instr.op_kind(op) != OpKind::Register {
        return None;
    }
    let r = instr.op_register(op);
    if r.is_gpr64() {
        Some((r.number(), 64))
    } else if r.is_gpr32() {
        Some((r.number(), 32))
    } else {
        None
    }
}

/// The value of source operand `op` (a register or an immediate), at `width`.
fn source(m: &Machine, instr: &Instruction, op: u32, width: u32) -> Option<u64> {
    let v = match instr.op_kind(op) {
        OpKind::Register => m.value(instr.op_register(op))?,
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => instr.immediate(op),
        _ => return None,
    };
    Some(mask(v, width))
}

fn mask(v: u64, width: u32) -> u64 {
    if width == 64 { v } else { v & 0xffff_ffff }
}

fn sign(v: u64, width: u32) -> bool {
    (v >> (width - 1)) & 1 == 1
}

/// Carries out `instr` on `m` if it is one of the exact cases; false otherwise.
fn emulate(m: &mut Machine, instr: &Instruction) -> bool {
    let Some((dst, width)) = gpr_operand(instr, 0) else {
        return instr.mnemonic() == Mnemonic::Nop;
    };
    let read_dst = m.gpr[dst].map(|v| mask(v, width));
    match instr.mnemonic() {
        Mnemonic::Mov if instr.op_count() == 2 => {
            m.gpr[dst] = source(m, instr, 1, width);
        }
        Mnemonic::Lea => {
            let value = |r: Register, _: usize, _: usize| m.value(r);
            m.gpr[dst] = instr.virtual_address(1, 0, value).map(|a| mask(a, width));
        }
        Mnemonic::Xor
            if instr.op_kind(1) == OpKind::Register
                && instr.op_register(1) == instr.op_register(0) =>
        {
            m.gpr[dst] = Some(0);
            (m.cf, m.zf, m.sf, m.of) = (Some(false), Some(true), Some(false), Some(false));
        }
        Mnemonic::Add | Mnemonic::Sub | Mnemonic::Cmp if instr.op_count() == 2 => {
            let (a, b) = (read_dst, source(m, instr, 1, width));
            let r = match (a, b) {
                (Some(a), Some(b)) => {
                    let add = instr.mnemonic() == Mnemonic::Add;
                    let r = mask(
                        if add {
                            a.wrapping_add(b)
                        } else {
                            a.wrapping_sub(b)
                        },
                        width,
                    );
                    m.cf = Some(if add { r < a } else { a < b });
                    m.of = Some(if add {
                        sign((a ^ r) & (b ^ r), width)
                    } else {
                        sign((a ^ b) & (a ^ r), width)
                    });
                    m.zf = Some(r == 0);
                    m.sf = Some(sign(r, width));
                    Some(r)
                }
                _ => {
                    m.forget_flags();
                    None
                }
            };
            if instr.mnemonic() != Mnemonic::Cmp {
                m.gpr[dst] = r;
            }
        }
        Mnemonic::Inc | Mnemonic::Dec => match read_dst {
            Some(a) => {
                let inc = instr.mnemonic() == Mnemonic::Inc;
                let r = mask(
                    if inc {
                        a.wrapping_add(1)
                    } else {
                        a.wrapping_sub(1)
                    },
                    width,
                );
                m.of = Some(if inc {
                    sign(!a & r, width)
                } else {
                    sign(a & !r, width)
                });
                m.zf = Some(r == 0);
                m.sf = Some(sign(r, width));
                m.gpr[dst] = Some(r);
            }
            None => {
                m.gpr[dst] = None;
                (m.zf, m.sf, m.of) = (None, None, None);
            }
        },
        Mnemonic::Test if instr.op_count() == 2 => match (read_dst, source(m, instr, 1, width)) {
            (Some(a), Some(b)) => {
                let r = a & b;
                (m.cf, m.of) = (Some(false), Some(false));
                m.zf = Some(r == 0);
                m.sf = Some(sign(r, width));
            }
            _ => m.forget_flags(),
        },
        _ => return false,
    }
    true
}

fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

/// Reads code: `read(ip, all, buf)` copies the bytes at `ip` into `buf` and returns
/// how many it copied (to the end of the page, or all 15 when `all`).
pub type ReadCode<'a> = dyn FnMut(u64, bool, &mut [u8; 15]) -> usize + 'a;

/// The first access to watched memory the thread will make from `regs` (with
/// RFLAGS `rflags`) within `max_insns` instructions, if that can be known.
pub fn first_watched_access(
    regs: &Regs,
    rflags: u64,
    read: &mut ReadCode<'_>,
    factory: &mut InstructionInfoFactory,
    watched: &dyn Fn(usize) -> bool,
    max_insns: u32,
) -> Option<Hit> {
    let mut m = Machine {
        gpr: regs.gpr.map(Some),
        cf: Some(rflags & 1 != 0),
        zf: Some(rflags & (1 << 6) != 0),
        sf: Some(rflags & (1 << 7) != 0),
        of: Some(rflags & (1 << 11) != 0),
    };
    let mut ip = regs.rip;
    let mut buf = [0u8; 15];
    for _ in 0..max_insns {
        let got = read(ip, false, &mut buf);
        let mut instr = Decoder::with_ip(64, &buf[..got], ip, DecoderOptions::NONE).decode();
        if instr.is_invalid() && got < 15 {
            let mut d = Decoder::with_ip(64, &buf[..got], ip, DecoderOptions::NONE);
            let _ = d.decode();
            if d.last_error() != DecoderError::NoMoreBytes {
                return None;
            }
            let got = read(ip, true, &mut buf);
            instr = Decoder::with_ip(64, &buf[..got], ip, DecoderOptions::NONE).decode();
        }
        if instr.is_invalid() {
            return None;
        }
        let info = factory.info_options(&instr, InstructionInfoOptions::NO_MEMORY_USAGE);
        for op in 0..instr.op_count() {
            let memory = matches!(
                instr.op_kind(op),
                OpKind::Memory
                    | OpKind::MemorySegRSI
                    | OpKind::MemorySegESI
                    | OpKind::MemorySegSI
                    | OpKind::MemorySegRDI
                    | OpKind::MemorySegEDI
                    | OpKind::MemorySegDI
                    | OpKind::MemoryESRDI
                    | OpKind::MemoryESEDI
                    | OpKind::MemoryESDI
            );
            if !memory {
                continue;
            }
            let access = match info.op_access(op) {
                OpAccess::Read | OpAccess::CondRead => Access::Read,
                OpAccess::NoMemAccess | OpAccess::None => continue,
                _ => Access::Write,
            };
            if instr.is_vsib() || matches!(instr.memory_segment(), Register::FS | Register::GS) {
                return None;
            }
            let value = |r: Register, _: usize, _: usize| m.value(r);
            let addr = instr.virtual_address(op, 0, value)? as usize;
            if watched(addr) {
                return Some(Hit { addr, access });
            }
        }
        if !emulate(&mut m, &instr) {
            for u in info.used_registers() {
                let r = u.register();
                if writes(u.access())
                    && (r.is_gpr64() || r.is_gpr32() || r.is_gpr16() || r.is_gpr8())
                {
                    m.gpr[r.full_register().number()] = None;
                }
            }
            if instr.rflags_modified() != 0 {
                m.forget_flags();
            }
        }
        ip = match instr.flow_control() {
            FlowControl::Next => instr.next_ip(),
            FlowControl::UnconditionalBranch
                if matches!(
                    instr.op0_kind(),
                    OpKind::NearBranch64 | OpKind::NearBranch32
                ) =>
            {
                instr.near_branch_target()
            }
            FlowControl::ConditionalBranch
                if matches!(
                    instr.op0_kind(),
                    OpKind::NearBranch64 | OpKind::NearBranch32
                ) && !matches!(
                    instr.mnemonic(),
                    Mnemonic::Jrcxz
                        | Mnemonic::Jecxz
                        | Mnemonic::Loop
                        | Mnemonic::Loope
                        | Mnemonic::Loopne
                ) =>
            {
                if m.condition(instr.condition_code())? {
                    instr.near_branch_target()
                } else {
                    instr.next_ip()
                }
            }
            _ => return None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the look-ahead over `code` placed at 0x1000.
    fn ahead(code: &[u8], set: &[(usize, u64)], rflags: u64, rip_offset: u64) -> Option<Hit> {
        let mut regs = Regs {
            rip: 0x1000 + rip_offset,
            ..Regs::default()
        };
        for &(i, v) in set {
            regs.gpr[i] = v;
        }
        let mut read = |ip: u64, _all: bool, buf: &mut [u8; 15]| {
            let at = (ip - 0x1000) as usize;
            let n = code.len().saturating_sub(at).min(15);
            buf[..n].copy_from_slice(&code[at..at + n]);
            n
        };
        let mut f = InstructionInfoFactory::new();
        let watched = |a: usize| (0x10_0000..0x20_0000).contains(&a);
        first_watched_access(&regs, rflags, &mut read, &mut f, &watched, 64)
    }

    // A summing loop as compilers write it:
    //   0: mov rdx, [rdi+rcx*8]   48 8b 14 cf
    //   4: add rax, rdx           48 01 d0
    //   7: add rcx, 1             48 83 c1 01
    //  11: cmp rcx, rsi           48 39 f1
    //  14: jne 0                  75 f0
    const LOOP: &[u8] = &[
        0x48, 0x8b, 0x14, 0xcf, 0x48, 0x01, 0xd0, 0x48, 0x83, 0xc1, 0x01, 0x48, 0x39, 0xf1, 0x75,
        0xf0,
    ];
    const RCX: usize = 1;
    const RSI: usize = 6;
    const RDI: usize = 7;

    #[test]
    fn from_after_the_load_the_next_iterations_load_is_found() {
        // Interrupted at `add rax, rdx` with rcx = 5 of 100: the next access is the
        // load of element 6.
        let hit = ahead(LOOP, &[(RDI, 0x10_0000), (RCX, 5), (RSI, 100)], 0, 4).unwrap();
        assert_eq!(
            hit,
            Hit {
                addr: 0x10_0000 + 6 * 8,
                access: Access::Read
            }
        );
        // At the jne, with the flags of `cmp` already set (ZF clear): taken.
        let hit = ahead(LOOP, &[(RDI, 0x10_0000), (RCX, 9), (RSI, 100)], 0, 14).unwrap();
        assert_eq!(hit.addr, 0x10_0000 + 9 * 8);
    }

    #[test]
    fn a_loop_that_ends_falls_through_and_stops_at_the_end_of_the_code() {
        // rcx = 99 of 100: the loop ends, nothing after it is known here.
        assert_eq!(
            ahead(LOOP, &[(RDI, 0x10_0000), (RCX, 99), (RSI, 100)], 0, 4),
            None
        );
        // At the jne with ZF set (the compare found equality): not taken.
        assert_eq!(
            ahead(
                LOOP,
                &[(RDI, 0x10_0000), (RCX, 100), (RSI, 100)],
                1 << 6,
                14
            ),
            None
        );
    }

    #[test]
    fn unknown_registers_stop_the_look_ahead() {
        // mov rdi, [rax] (from unwatched memory: rdi unknown); mov rdx, [rdi]
        let code = [0x48, 0x8b, 0x38, 0x48, 0x8b, 0x17];
        assert_eq!(
            ahead(&code, &[(0, 0x50_0000), (RDI, 0x10_0000)], 0, 0),
            None
        );
        // call rel32 stops it.
        assert_eq!(ahead(&[0xe8, 0, 0, 0, 0], &[], 0, 0), None);
    }

    #[test]
    fn lea_xor_inc_and_32_bit_writes_are_carried_out() {
        // lea rdi, [rdi+0x40]; xor ecx, ecx; inc ecx; mov dword [rdi+rcx*4], 7
        let code = [
            0x48, 0x8d, 0x7f, 0x40, 0x31, 0xc9, 0xff, 0xc1, 0xc7, 0x04, 0x8f, 7, 0, 0, 0,
        ];
        let hit = ahead(&code, &[(RDI, 0x10_0000), (RCX, 0xdead_0000_0000)], 0, 0).unwrap();
        assert_eq!(
            hit,
            Hit {
                addr: 0x10_0044,
                access: Access::Write
            }
        );
    }

    #[test]
    fn signed_and_unsigned_conditions_follow_the_compare() {
        // cmp rcx, rsi; jl +4 (to the store at 13); mov [rdi], al (7..9, skipped if taken)
        //  0: 48 39 f1        cmp rcx, rsi
        //  3: 7c 04           jl 9
        //  5: 88 07           mov [rdi], al      (reached when not less)
        //  7: eb 02           jmp 11 (never reached)
        //  9: 88 06           mov [rsi], al      (reached when less: rsi is not an address here)
        let code = [
            0x48, 0x39, 0xf1, 0x7c, 0x04, 0x88, 0x07, 0xeb, 0x02, 0x88, 0x07,
        ];
        // rcx = -1 < rsi = 1 (signed): taken, lands on `mov [rdi], al` at 9.
        let hit = ahead(&code, &[(RCX, u64::MAX), (RSI, 1), (RDI, 0x10_0100)], 0, 0).unwrap();
        assert_eq!(hit.addr, 0x10_0100);
        // rcx = 2 > rsi = 1: not taken, the store at 5.
        let hit = ahead(&code, &[(RCX, 2), (RSI, 1), (RDI, 0x10_0200)], 0, 0).unwrap();
        assert_eq!(hit.addr, 0x10_0200);
    }
}
