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

/// Stores the look-ahead keeps track of (their values where known).
const STORES: usize = 16;

/// Registers and flags as the thread will have them, where known, and the stores
/// it will have made on the way.
#[derive(Debug, Clone, Copy)]
struct Machine {
    gpr: [Option<u64>; 16],
    cf: Option<bool>,
    zf: Option<bool>,
    sf: Option<bool>,
    of: Option<bool>,
    /// (address, length, value) of each store made so far.
    stores: [(u64, u64, Option<u64>); STORES],
    nstores: usize,
    /// A store whose address is not known, or more than [`STORES`]: memory is no
    /// longer what it is now.
    stores_lost: bool,
}

/// Reads memory as it is now: `read_mem(addr, buf)` fills `buf` or says it cannot.
pub type ReadMem<'a> = dyn FnMut(u64, &mut [u8]) -> bool + 'a;

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

    fn store(&mut self, addr: Option<u64>, len: u64, value: Option<u64>) {
        match addr {
            Some(a) if self.nstores < STORES => {
                self.stores[self.nstores] = (a, len, value);
                self.nstores += 1;
            }
            _ => self.stores_lost = true,
        }
    }

    /// The `len`-byte value at `addr` when the thread gets there: the last store to
    /// exactly that place, or memory as it is now if nothing was stored over it.
    fn load(&self, addr: u64, len: u64, read_mem: &mut ReadMem<'_>) -> Option<u64> {
        for &(a, l, v) in self.stores[..self.nstores].iter().rev() {
            if a == addr && l == len {
                return v;
            }
            if a < addr.saturating_add(len) && addr < a.saturating_add(l) {
                return None;
            }
        }
        if self.stores_lost {
            return None;
        }
        let mut buf = [0u8; 8];
        let n = len as usize;
        if n > 8 || !read_mem(addr, &mut buf[..n]) {
            return None;
        }
        Some(u64::from_le_bytes(buf))
    }

    fn push(&mut self, value: Option<u64>) {
        let rsp = self.gpr[4].map(|v| v.wrapping_sub(8));
        self.gpr[4] = rsp;
        self.store(rsp, 8, value);
    }

    fn pop(&mut self, read_mem: &mut ReadMem<'_>) -> Option<u64> {
        let rsp = self.gpr[4]?;
        let v = self.load(rsp, 8, read_mem);
        self.gpr[4] = Some(rsp.wrapping_add(8));
        v
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
/// `mem` is the address of its memory operand, where it has one and it is known.
fn emulate(
    m: &mut Machine,
    instr: &Instruction,
    mem: Option<u64>,
    read_mem: &mut ReadMem<'_>,
) -> bool {
    match instr.mnemonic() {
        Mnemonic::Push if instr.op_count() == 1 => {
            let v = match instr.op_kind(0) {
                OpKind::Register if instr.op_register(0).is_gpr64() => {
                    m.gpr[instr.op_register(0).number()]
                }
                OpKind::Immediate8to64 | OpKind::Immediate32to64 => Some(instr.immediate(0)),
                _ => return false,
            };
            m.push(v);
            return true;
        }
        Mnemonic::Pop if instr.op_count() == 1 && instr.op_kind(0) == OpKind::Register => {
            let r = instr.op_register(0);
            if !r.is_gpr64() {
                return false;
            }
            let v = m.pop(read_mem);
            m.gpr[r.number()] = v;
            return true;
        }
        _ => {}
    }
    let Some((dst, width)) = gpr_operand(instr, 0) else {
        if instr.mnemonic() == Mnemonic::Nop {
            return true;
        }
        // A plain store of a register or an immediate: remember what it wrote.
        if instr.mnemonic() == Mnemonic::Mov
            && instr.op_count() == 2
            && instr.op0_kind() == OpKind::Memory
        {
            let len = instr.memory_size().size() as u64;
            let v = match instr.op_kind(1) {
                OpKind::Register => {
                    let r = instr.op_register(1);
                    if r.is_gpr64() || r.is_gpr32() {
                        m.value(r)
                    } else {
                        None
                    }
                }
                _ => source(m, instr, 1, 64).map(|v| {
                    if len == 8 {
                        v
                    } else {
                        v & ((1 << (8 * len)) - 1)
                    }
                }),
            };
            m.store(mem, len, v);
            return true;
        }
        return false;
    };
    let read_dst = m.gpr[dst].map(|v| mask(v, width));
    match instr.mnemonic() {
        Mnemonic::Mov if instr.op_count() == 2 && instr.op_kind(1) == OpKind::Memory => {
            let len = u64::from(width / 8);
            m.gpr[dst] = mem
                .and_then(|a| m.load(a, len, read_mem))
                .map(|v| mask(v, width));
        }
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
#[allow(clippy::too_many_arguments)]
pub fn first_watched_access(
    regs: &Regs,
    rflags: u64,
    read: &mut ReadCode<'_>,
    read_mem: &mut ReadMem<'_>,
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
        stores: [(0, 0, None); STORES],
        nstores: 0,
        stores_lost: false,
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
        // The address of the (last) memory operand, for the emulation below.
        let mut mem: Option<u64> = None;
        let mut wrote_memory = false;
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
            mem = Some(addr as u64);
            wrote_memory |= access == Access::Write;
        }
        let flow = instr.flow_control();
        let emulated = matches!(flow, FlowControl::Next) && emulate(&mut m, &instr, mem, read_mem);
        if !emulated && wrote_memory {
            let len = instr.memory_size().size() as u64;
            m.store(mem, len, None);
        }
        if !emulated && matches!(flow, FlowControl::Next) {
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
        ip = match flow {
            FlowControl::Next => instr.next_ip(),
            FlowControl::Call
                if matches!(
                    instr.op0_kind(),
                    OpKind::NearBranch64 | OpKind::NearBranch32
                ) =>
            {
                m.push(Some(instr.next_ip()));
                instr.near_branch_target()
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                let target = match instr.op0_kind() {
                    OpKind::Register if instr.op_register(0).is_gpr64() => {
                        m.value(instr.op_register(0))?
                    }
                    OpKind::Memory => m.load(mem?, 8, read_mem)?,
                    _ => return None,
                };
                if flow == FlowControl::IndirectCall {
                    m.push(Some(instr.next_ip()));
                }
                target
            }
            FlowControl::Return if instr.mnemonic() == Mnemonic::Ret => {
                let target = m.pop(read_mem)?;
                if instr.op_count() == 1 {
                    m.gpr[4] = m.gpr[4].map(|v| v.wrapping_add(instr.immediate(0)));
                }
                target
            }
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
        // Memory as it is now: every word at 0x50_0000.. holds its own address / 8
        // (a table of indices); nothing else is readable.
        let mut read_mem = |addr: u64, buf: &mut [u8]| {
            if !(0x50_0000..0x60_0000).contains(&addr) {
                return false;
            }
            let v = (addr - 0x50_0000) / 8;
            buf.copy_from_slice(&v.to_le_bytes()[..buf.len()]);
            true
        };
        first_watched_access(
            &regs,
            rflags,
            &mut read,
            &mut read_mem,
            &mut f,
            &watched,
            64,
        )
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
    fn loads_from_unwatched_memory_are_read_and_unreadable_ones_stop() {
        // mov rcx, [rax] (an index from a table: 0x50_0010 holds 2);
        // mov rdx, [rdi+rcx*8]
        let code = [0x48, 0x8b, 0x08, 0x48, 0x8b, 0x14, 0xcf];
        let hit = ahead(&code, &[(0, 0x50_0010), (RDI, 0x10_0000)], 0, 0).unwrap();
        assert_eq!(hit.addr, 0x10_0000 + 2 * 8);
        // The table unreadable: the index is unknown, the look-ahead stops.
        assert_eq!(
            ahead(&code, &[(0, 0x70_0000), (RDI, 0x10_0000)], 0, 0),
            None
        );
        // A store over the table entry first (48 89 30: mov [rax], rsi with rsi = 5):
        // the load sees the stored value, not memory.
        let code = [0x48, 0x89, 0x30, 0x48, 0x8b, 0x08, 0x48, 0x8b, 0x14, 0xcf];
        let hit = ahead(&code, &[(0, 0x50_0010), (RSI, 5), (RDI, 0x10_0000)], 0, 0).unwrap();
        assert_eq!(hit.addr, 0x10_0000 + 5 * 8);
    }

    #[test]
    fn calls_and_returns_are_followed() {
        //  0: e8 05 00 00 00   call 10
        //  5: 48 8b 17         mov rdx, [rdi]        (after the return)
        //  8: 90 90
        // 10: 48 83 c7 08      add rdi, 8
        // 14: c3               ret
        let code = [
            0xe8, 0x05, 0, 0, 0, 0x48, 0x8b, 0x17, 0x90, 0x90, 0x48, 0x83, 0xc7, 0x08, 0xc3,
        ];
        let hit = ahead(&code, &[(RDI, 0x10_0000), (4, 0x7000_0000)], 0, 0).unwrap();
        assert_eq!(hit.addr, 0x10_0008);
        // Interrupted inside the callee: its return address comes from the stack as
        // it is now (unreadable here: stop).
        assert_eq!(
            ahead(&code, &[(RDI, 0x10_0000), (4, 0x7000_0000)], 0, 10),
            None
        );
        // An indirect call through a register (ff d0: call rax, to 0x1004), then a load.
        let code = [0xff, 0xd0, 0x90, 0x90, 0x48, 0x8b, 0x17];
        let hit = ahead(
            &code,
            &[(0, 0x1004), (RDI, 0x10_0040), (4, 0x7000_0000)],
            0,
            0,
        )
        .unwrap();
        assert_eq!(hit.addr, 0x10_0040);
    }

    #[test]
    fn what_cannot_be_known_stops_the_look_ahead() {
        // mov rdi, [rax] from memory that cannot be read; mov rdx, [rdi]
        let code = [0x48, 0x8b, 0x38, 0x48, 0x8b, 0x17];
        assert_eq!(
            ahead(&code, &[(0, 0x70_0000), (RDI, 0x10_0000)], 0, 0),
            None
        );
        // syscall: the kernel may change anything.
        assert_eq!(
            ahead(&[0x0f, 0x05, 0x48, 0x8b, 0x17], &[(RDI, 0x10_0000)], 0, 0),
            None
        );
        // A jump on parity, which is not kept (7a 00: jp +0).
        assert_eq!(
            ahead(&[0x7a, 0x00, 0x48, 0x8b, 0x17], &[(RDI, 0x10_0000)], 0, 0),
            None
        );
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

    /// The analyser runs in the tick signal handler, which may interrupt `malloc`:
    /// once warmed up it must never allocate. Every byte offset of the C library and
    /// the dynamic loader is analysed ahead (garbage and real code alike). Before
    /// `vzeroupper` joined the warm-up, this counted an allocation at glibc's AVX2
    /// string functions: what CI's monitored Ocean hung in.
    #[test]
    fn the_warmed_analyser_never_allocates() {
        let mut f = InstructionInfoFactory::new();
        crate::sampler::tick::decode::warm_up(&mut f);
        let mut n = 0;
        let mut files = 0;
        for path in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ] {
            let Ok(code) = std::fs::read(path) else {
                continue;
            };
            files += 1;
            let code = &code[..code.len().min(16 << 20)];
            let mut read = |ip: u64, _all: bool, buf: &mut [u8; 15]| {
                let at = (ip as usize).min(code.len());
                let k = (code.len() - at).min(15);
                buf[..k].copy_from_slice(&code[at..at + k]);
                k
            };
            let mut read_mem = |_: u64, _: &mut [u8]| false;
            let watched = |_: usize| false;
            let ((), here) = crate::test_alloc::counting(|| {
                for at in 0..code.len().saturating_sub(16) {
                    let regs = Regs {
                        rip: at as u64,
                        ..Regs::default()
                    };
                    std::hint::black_box(first_watched_access(
                        &regs,
                        0,
                        &mut read,
                        &mut read_mem,
                        &mut f,
                        &watched,
                        4,
                    ));
                }
            });
            n += here;
        }
        assert!(files >= 1);
        let mut read_mem = |_: u64, _: &mut [u8]| false;
        let watched = |_: usize| false;
        assert_eq!(n, 0, "{n} allocations in the warmed analyser");
        // The count is real: an analyser not warmed up grows its lists (vzeroall
        // names 16 registers).
        let vzeroall = [0xc5u8, 0xfc, 0x77, 0x90];
        let mut cold = InstructionInfoFactory::new();
        let mut read_v = |ip: u64, _all: bool, buf: &mut [u8; 15]| {
            let at = (ip as usize).min(vzeroall.len());
            let n = vzeroall.len() - at;
            buf[..n].copy_from_slice(&vzeroall[at..]);
            n
        };
        let (_, cold_n) = crate::test_alloc::counting(|| {
            first_watched_access(
                &Regs::default(),
                0,
                &mut read_v,
                &mut read_mem,
                &mut cold,
                &watched,
                2,
            )
        });
        assert!(
            cold_n > 0,
            "a cold analyser did not allocate: the count is not counting"
        );
    }
}
