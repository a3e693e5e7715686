//! Which watched memory, if any, an instruction is about to access: decode the
//! bytes at the interrupted instruction pointer (iced-x86) and compute each memory
//! operand's address from the interrupted registers, as the processor will.
//!
//! Safe code on plain values: the handler copies the code bytes and the registers
//! out of the signal context first.

use iced_x86::{
    Decoder, DecoderError, DecoderOptions, FlowControl, InstructionInfoFactory,
    InstructionInfoOptions, Mnemonic, OpAccess, OpKind, Register,
};

use crate::sample::Access;

/// The registers an address can be computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8 ... R15 (the encoding order).
    pub gpr: [u64; 16],
    /// The instruction pointer.
    pub rip: u64,
}

/// An access to watched memory the instruction at `rip` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The operand's first byte.
    pub addr: usize,
    /// Read, or write (a read-modify-write counts as a write).
    pub access: Access,
}

/// What decoding the bytes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The instruction accesses watched memory.
    Hit(Hit),
    /// It does not (no memory operand, `lea`, a segment-relative or vector-indexed
    /// operand, or an address outside the watched ranges).
    Miss,
    /// The bytes end inside the instruction: give more (up to 15).
    NeedBytes,
    /// Not an instruction.
    Invalid,
}

/// The value of `reg` in `regs`, at the width the operand uses; `None` for registers
/// an address is not computed from here (FS/GS bases, vector registers).
fn value(regs: &Regs, reg: Register) -> Option<u64> {
    match reg {
        Register::None | Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
        Register::RIP => Some(regs.rip),
        Register::EIP => Some(regs.rip & 0xffff_ffff),
        r if r.is_gpr64() => Some(regs.gpr[r.number()]),
        r if r.is_gpr32() => Some(regs.gpr[r.number()] & 0xffff_ffff),
        r if r.is_gpr16() => Some(regs.gpr[r.number()] & 0xffff),
        _ => None,
    }
}

/// Decodes the instruction at `regs.rip` from `code` (its bytes) and returns its first
/// memory access that `watched` accepts.
pub fn watched_access(
    code: &[u8],
    regs: &Regs,
    factory: &mut InstructionInfoFactory,
    watched: impl Fn(usize) -> bool,
) -> Decoded {
    let mut decoder = Decoder::with_ip(64, code, regs.rip, DecoderOptions::NONE);
    let instr = decoder.decode();
    if instr.is_invalid() {
        return match decoder.last_error() {
            DecoderError::NoMoreBytes if code.len() < 15 => Decoded::NeedBytes,
            _ => Decoded::Invalid,
        };
    }
    // Operand accesses only: no register or memory lists are built, so nothing grows
    // (the handler must not allocate).
    let info = factory.info_options(
        &instr,
        InstructionInfoOptions::NO_MEMORY_USAGE | InstructionInfoOptions::NO_REGISTER_USAGE,
    );
    for op in 0..instr.op_count() {
        let memory = matches!(
            instr.op_kind(op),
            OpKind::Memory
                | OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemorySegRSI
                | OpKind::MemorySegDI
                | OpKind::MemorySegEDI
                | OpKind::MemorySegRDI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemoryESRDI
        );
        if !memory {
            continue;
        }
        let access = match info.op_access(op) {
            OpAccess::Read | OpAccess::CondRead => Access::Read,
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite => Access::Write,
            OpAccess::ReadCondWrite => Access::Write,
            _ => continue, // lea, prefetch-like no-access operands
        };
        if instr.is_vsib() {
            continue;
        }
        let Some(addr) = instr.virtual_address(op, 0, |reg, _, _| value(regs, reg)) else {
            continue;
        };
        let addr = addr as usize;
        if watched(addr) {
            return Decoded::Hit(Hit { addr, access });
        }
    }
    Decoded::Miss
}

/// Whether the instruction at `rip` (its bytes in `code`) enters the kernel:
/// `syscall`, `sysenter`, `int n`, `int3`, `int1`, `into`. The sampler must not step
/// over one: the trap flag would be copied into a thread that `clone(2)` creates,
/// which would then trap at its first instruction with no step of ours pending.
/// Bytes that do not decode count as entering (the caller stops stepping).
pub fn enters_kernel(code: &[u8], rip: u64) -> bool {
    let instr = Decoder::with_ip(64, code, rip, DecoderOptions::NONE).decode();
    instr.is_invalid()
        || instr.flow_control() == FlowControl::Interrupt
        || matches!(instr.mnemonic(), Mnemonic::Syscall | Mnemonic::Sysenter)
}

/// Warms the decoder's lazily built tables and grows the analyser's register list
/// to the longest an instruction has (`vzeroall`), outside any signal handler: in
/// the handler it then never allocates.
pub fn warm_up(factory: &mut InstructionInfoFactory) {
    // vzeroall, vzeroupper (missing, it let the analyser allocate in the handler:
    // every AVX2 string function of glibc ends with it, and CI's monitored Ocean hung
    // on its own arena lock), cpuid, movsq, enter, and the state saves of the dynamic
    // loader's lazy-binding trampoline (xsavec, xsave, xrstor, fxsave, fxrstor).
    for code in [
        &[0xc5u8, 0xfc, 0x77][..],
        &[0xc5, 0xf8, 0x77],
        &[0x0f, 0xa2],
        &[0x48, 0xa5],
        &[0xc8, 8, 0, 1],
        &[0x0f, 0xc7, 0x64, 0x24, 0x40],
        &[0x0f, 0xae, 0x64, 0x24, 0x40],
        &[0x0f, 0xae, 0x6c, 0x24, 0x40],
        &[0x0f, 0xae, 0x04, 0x24],
        &[0x0f, 0xae, 0x0c, 0x24],
    ] {
        let instr = Decoder::with_ip(64, code, 0, DecoderOptions::NONE).decode();
        let _ = factory.info(&instr);
        let _ = factory.info_options(&instr, InstructionInfoOptions::NO_MEMORY_USAGE);
    }
    // add [rdi+r12*8-0x5aa5edcc], esi; movsq; vmovdqu ymm0, [rax]
    let code = [
        0x42, 0x01, 0xb4, 0xe7, 0x34, 0x12, 0x5a, 0xa5, 0x48, 0xa5, 0xc5, 0xfe, 0x6f, 0x00,
    ];
    let regs = Regs::default();
    let mut at = 0;
    while at < code.len() {
        let r = Regs {
            rip: at as u64,
            ..regs
        };
        let _ = watched_access(&code[at..], &r, factory, |_| true);
        let mut d = Decoder::with_ip(64, &code[at..], at as u64, DecoderOptions::NONE);
        at += d.decode().len().max(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_entries_stop_the_stepping() {
        // syscall, sysenter, int 0x80, int3, int1
        for code in [
            &[0x0fu8, 0x05][..],
            &[0x0f, 0x34],
            &[0xcd, 0x80],
            &[0xcc],
            &[0xf1],
        ] {
            assert!(enters_kernel(code, 0x1000), "{code:x?}");
        }
        // mov rax, [rdi]; call rel32; ret; nop; and a cut-off instruction
        for code in [
            &[0x48u8, 0x8b, 0x07][..],
            &[0xe8, 0, 0, 0, 0],
            &[0xc3],
            &[0x90],
        ] {
            assert!(!enters_kernel(code, 0x1000), "{code:x?}");
        }
        assert!(enters_kernel(&[0x48, 0x8b], 0x1000));
    }

    use super::*;

    const RAX: usize = 0;
    const RCX: usize = 1;
    const RSI: usize = 6;
    const RDI: usize = 7;
    const R12: usize = 12;

    fn regs(set: &[(usize, u64)], rip: u64) -> Regs {
        let mut r = Regs {
            rip,
            ..Regs::default()
        };
        for &(i, v) in set {
            r.gpr[i] = v;
        }
        r
    }

    fn decode(code: &[u8], r: &Regs) -> Decoded {
        let mut f = InstructionInfoFactory::new();
        watched_access(code, r, &mut f, |a| (0x10_0000..0x20_0000).contains(&a))
    }

    #[test]
    fn a_load_with_base_index_scale_and_displacement() {
        // mov rdx, [rax+rcx*8+0x10]
        let r = regs(&[(RAX, 0x10_0000), (RCX, 3)], 0x40_0000);
        assert_eq!(
            decode(&[0x48, 0x8b, 0x54, 0xc8, 0x10], &r),
            Decoded::Hit(Hit {
                addr: 0x10_0000 + 3 * 8 + 0x10,
                access: Access::Read
            })
        );
    }

    #[test]
    fn a_store_and_a_read_modify_write_are_writes() {
        // mov [rdi], esi
        let r = regs(&[(RDI, 0x10_2000)], 0);
        assert_eq!(
            decode(&[0x89, 0x37], &r),
            Decoded::Hit(Hit {
                addr: 0x10_2000,
                access: Access::Write
            })
        );
        // add [rdi+r12*8-0x5aa5edcc], esi with registers that land inside.
        let r = regs(&[(RDI, 0x10_0000 + 0x5aa5_edcc), (R12, 2)], 0);
        assert_eq!(
            decode(&[0x42, 0x01, 0xb4, 0xe7, 0x34, 0x12, 0x5a, 0xa5], &r),
            Decoded::Hit(Hit {
                addr: 0x10_0010,
                access: Access::Write
            })
        );
    }

    #[test]
    fn rip_relative_addresses_count_from_the_next_instruction() {
        // mov eax, [rip+0x100] at 0x10_0000 (6 bytes long): address 0x10_0106.
        let r = regs(&[], 0x10_0000);
        assert_eq!(
            decode(&[0x8b, 0x05, 0x00, 0x01, 0x00, 0x00], &r),
            Decoded::Hit(Hit {
                addr: 0x10_0106,
                access: Access::Read
            })
        );
    }

    #[test]
    fn string_instructions_use_rsi_and_rdi() {
        // movsq: reads [rsi], writes [rdi]; only the destination is watched here.
        let r = regs(&[(RSI, 0x30_0000), (RDI, 0x10_0040)], 0);
        assert_eq!(
            decode(&[0x48, 0xa5], &r),
            Decoded::Hit(Hit {
                addr: 0x10_0040,
                access: Access::Write
            })
        );
    }

    #[test]
    fn lea_unwatched_addresses_and_register_moves_are_misses() {
        // lea rax, [rcx+8] computes an address it does not access.
        let r = regs(&[(RCX, 0x10_0000)], 0);
        assert_eq!(decode(&[0x48, 0x8d, 0x41, 0x08], &r), Decoded::Miss);
        // mov rdx, [rax] outside the watched range.
        let r = regs(&[(RAX, 0x50_0000)], 0);
        assert_eq!(decode(&[0x48, 0x8b, 0x10], &r), Decoded::Miss);
        // mov rax, rcx
        assert_eq!(decode(&[0x48, 0x89, 0xc8], &r), Decoded::Miss);
        // mov rax, fs:[0x28] (thread-local: its base is not computed)
        assert_eq!(
            decode(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], &r),
            Decoded::Miss
        );
    }

    #[test]
    fn cut_bytes_ask_for_more_and_garbage_is_invalid() {
        let r = regs(&[(RAX, 0x10_0000), (RCX, 3)], 0);
        assert_eq!(decode(&[0x48, 0x8b, 0x54], &r), Decoded::NeedBytes);
        // 0x06 (push es) is invalid in 64-bit mode.
        assert_eq!(decode(&[0x06; 15], &r), Decoded::Invalid);
    }

    #[test]
    fn warm_up_decodes_without_panicking() {
        let mut f = InstructionInfoFactory::new();
        warm_up(&mut f);
    }
}
