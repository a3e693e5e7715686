//! A parser for the records of a perf_event mmap ring buffer, as used by memory
//! sampling (`perf mem`): pure parsing of bytes, no system calls.
//!
//! The kernel writes records at `data_head` and the reader consumes from `data_tail`;
//! both count bytes from the start of the session and wrap modulo the data area's
//! size (a power of two). Each record starts with
//! `struct perf_event_header { u32 type; u16 misc; u16 size; }` and may wrap around the
//! end of the area: such a record is copied into a scratch buffer before decoding.
//!
//! [`RingReader`] yields [`PerfRecord::Sample`] (`PERF_RECORD_SAMPLE`, decoded by the
//! [`SampleFormat`] the event was opened with), [`PerfRecord::Lost`]
//! (`PERF_RECORD_LOST`), [`PerfRecord::LostSamples`] (`PERF_RECORD_LOST_SAMPLES`), and
//! [`PerfRecord::Other`] for every other type (skipped, so that the caller may count
//! them). Malformed input is a typed error, never a panic nor an endless loop: a record
//! of size 0 or smaller than its header, or larger than what is left before
//! `data_head`, ends the iteration with an error (the stream cannot be resynchronised;
//! the caller should move `data_tail` to `data_head`); a sample too short for its
//! format is an error for that record only.
//!
//! # References
//! `perf_event_open(2)`, "MMAP layout" and "PERF_RECORD_SAMPLE"; `union
//! perf_mem_data_src` in `<linux/perf_event.h>`.

use crate::sample::{Access, DataSource, Sample};

/// `PERF_RECORD_LOST`: the kernel dropped records (`id`, `lost`).
pub const PERF_RECORD_LOST: u32 = 2;
/// `PERF_RECORD_SAMPLE`.
pub const PERF_RECORD_SAMPLE: u32 = 9;
/// `PERF_RECORD_LOST_SAMPLES`: samples dropped before reaching the ring (`lost`).
pub const PERF_RECORD_LOST_SAMPLES: u32 = 13;

/// The size of `struct perf_event_header`.
pub const HEADER_SIZE: usize = 8;

/// `PERF_SAMPLE_*` bits of `perf_event_attr.sample_type`.
pub mod sample_type {
    /// `PERF_SAMPLE_IP`.
    pub const IP: u64 = 1 << 0;
    /// `PERF_SAMPLE_TID`.
    pub const TID: u64 = 1 << 1;
    /// `PERF_SAMPLE_TIME`.
    pub const TIME: u64 = 1 << 2;
    /// `PERF_SAMPLE_ADDR`.
    pub const ADDR: u64 = 1 << 3;
    /// `PERF_SAMPLE_READ` (not supported here).
    pub const READ: u64 = 1 << 4;
    /// `PERF_SAMPLE_CALLCHAIN` (not supported here).
    pub const CALLCHAIN: u64 = 1 << 5;
    /// `PERF_SAMPLE_ID`.
    pub const ID: u64 = 1 << 6;
    /// `PERF_SAMPLE_CPU`.
    pub const CPU: u64 = 1 << 7;
    /// `PERF_SAMPLE_PERIOD`.
    pub const PERIOD: u64 = 1 << 8;
    /// `PERF_SAMPLE_STREAM_ID`.
    pub const STREAM_ID: u64 = 1 << 9;
    /// `PERF_SAMPLE_RAW` (not supported here).
    pub const RAW: u64 = 1 << 10;
    /// `PERF_SAMPLE_BRANCH_STACK` (not supported here).
    pub const BRANCH_STACK: u64 = 1 << 11;
    /// `PERF_SAMPLE_REGS_USER` (not supported here).
    pub const REGS_USER: u64 = 1 << 12;
    /// `PERF_SAMPLE_STACK_USER` (not supported here).
    pub const STACK_USER: u64 = 1 << 13;
    /// `PERF_SAMPLE_WEIGHT`.
    pub const WEIGHT: u64 = 1 << 14;
    /// `PERF_SAMPLE_DATA_SRC`.
    pub const DATA_SRC: u64 = 1 << 15;
    /// `PERF_SAMPLE_IDENTIFIER`.
    pub const IDENTIFIER: u64 = 1 << 16;
    /// `PERF_SAMPLE_TRANSACTION`.
    pub const TRANSACTION: u64 = 1 << 17;
    /// `PERF_SAMPLE_REGS_INTR` (not supported here).
    pub const REGS_INTR: u64 = 1 << 18;
    /// `PERF_SAMPLE_PHYS_ADDR`.
    pub const PHYS_ADDR: u64 = 1 << 19;
    /// `PERF_SAMPLE_AUX` (not supported here).
    pub const AUX: u64 = 1 << 20;
    /// `PERF_SAMPLE_CGROUP`.
    pub const CGROUP: u64 = 1 << 21;
    /// `PERF_SAMPLE_DATA_PAGE_SIZE`.
    pub const DATA_PAGE_SIZE: u64 = 1 << 22;
    /// `PERF_SAMPLE_CODE_PAGE_SIZE`.
    pub const CODE_PAGE_SIZE: u64 = 1 << 23;
    /// `PERF_SAMPLE_WEIGHT_STRUCT`.
    pub const WEIGHT_STRUCT: u64 = 1 << 24;

    /// What memory sampling asks for: `IP | TID | TIME | ADDR | CPU | WEIGHT | DATA_SRC`.
    pub const MEMORY: u64 = IP | TID | TIME | ADDR | CPU | WEIGHT | DATA_SRC;
}

/// Fixed-size fields in the order the kernel writes them, with their size in bytes.
const FIELDS: [(u64, usize); 16] = [
    (sample_type::IDENTIFIER, 8),
    (sample_type::IP, 8),
    (sample_type::TID, 8),
    (sample_type::TIME, 8),
    (sample_type::ADDR, 8),
    (sample_type::ID, 8),
    (sample_type::STREAM_ID, 8),
    (sample_type::CPU, 8),
    (sample_type::PERIOD, 8),
    (sample_type::WEIGHT | sample_type::WEIGHT_STRUCT, 8),
    (sample_type::DATA_SRC, 8),
    (sample_type::TRANSACTION, 8),
    (sample_type::PHYS_ADDR, 8),
    (sample_type::CGROUP, 8),
    (sample_type::DATA_PAGE_SIZE, 8),
    (sample_type::CODE_PAGE_SIZE, 8),
];

const SUPPORTED: u64 = sample_type::IDENTIFIER
    | sample_type::IP
    | sample_type::TID
    | sample_type::TIME
    | sample_type::ADDR
    | sample_type::ID
    | sample_type::STREAM_ID
    | sample_type::CPU
    | sample_type::PERIOD
    | sample_type::WEIGHT
    | sample_type::WEIGHT_STRUCT
    | sample_type::DATA_SRC
    | sample_type::TRANSACTION
    | sample_type::PHYS_ADDR
    | sample_type::CGROUP
    | sample_type::DATA_PAGE_SIZE
    | sample_type::CODE_PAGE_SIZE;

/// Why a sample layout cannot be decoded here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Bits of variable-size fields (read values, call chains, raw data, branch
    /// stacks, registers, stacks, aux data) or unknown bits.
    #[error("sample_type {0:#x} has fields this parser does not decode")]
    Unsupported(u64),
    /// `PERF_SAMPLE_WEIGHT` and `PERF_SAMPLE_WEIGHT_STRUCT` together.
    #[error("sample_type {0:#x} has both WEIGHT and WEIGHT_STRUCT")]
    TwoWeights(u64),
}

/// The layout of `PERF_RECORD_SAMPLE` bodies for one `sample_type`: any combination of
/// the fixed-size fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleFormat {
    sample_type: u64,
    len: usize,
}

impl SampleFormat {
    /// The layout for `sample_type`.
    ///
    /// # Errors
    /// [`FormatError`], with `sample_type`.
    pub fn new(sample_type: u64) -> Result<SampleFormat, FormatError> {
        if sample_type & !SUPPORTED != 0 {
            return Err(FormatError::Unsupported(sample_type));
        }
        let weights = sample_type::WEIGHT | sample_type::WEIGHT_STRUCT;
        if sample_type & weights == weights {
            return Err(FormatError::TwoWeights(sample_type));
        }
        let len = FIELDS
            .iter()
            .filter(|(bit, _)| sample_type & bit != 0)
            .map(|(_, n)| n)
            .sum();
        Ok(SampleFormat { sample_type, len })
    }

    /// The layout for [`sample_type::MEMORY`].
    pub fn memory() -> SampleFormat {
        SampleFormat {
            sample_type: sample_type::MEMORY,
            len: 56,
        }
    }

    /// Its `sample_type`.
    pub fn sample_type(self) -> u64 {
        self.sample_type
    }

    /// Bytes of a sample body (after the header).
    pub fn body_len(self) -> usize {
        self.len
    }
}

impl Default for SampleFormat {
    fn default() -> Self {
        SampleFormat::memory()
    }
}

/// `union perf_mem_data_src`: where the PMU says a memory reference was served from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MemDataSrc(pub u64);

/// `PERF_MEM_*` values of the [`MemDataSrc`] fields.
pub mod mem {
    /// `mem_op`: not available.
    pub const OP_NA: u64 = 0x01;
    /// `mem_op`: load.
    pub const OP_LOAD: u64 = 0x02;
    /// `mem_op`: store.
    pub const OP_STORE: u64 = 0x04;
    /// `mem_op`: prefetch.
    pub const OP_PFETCH: u64 = 0x08;
    /// `mem_op`: code (execution).
    pub const OP_EXEC: u64 = 0x10;

    /// `mem_lvl`: not available.
    pub const LVL_NA: u64 = 0x01;
    /// `mem_lvl`: hit level.
    pub const LVL_HIT: u64 = 0x02;
    /// `mem_lvl`: miss level.
    pub const LVL_MISS: u64 = 0x04;
    /// `mem_lvl`: L1.
    pub const LVL_L1: u64 = 0x08;
    /// `mem_lvl`: line fill buffer.
    pub const LVL_LFB: u64 = 0x10;
    /// `mem_lvl`: L2.
    pub const LVL_L2: u64 = 0x20;
    /// `mem_lvl`: L3.
    pub const LVL_L3: u64 = 0x40;
    /// `mem_lvl`: local DRAM.
    pub const LVL_LOC_RAM: u64 = 0x80;
    /// `mem_lvl`: remote DRAM, one hop.
    pub const LVL_REM_RAM1: u64 = 0x100;
    /// `mem_lvl`: remote DRAM, two hops.
    pub const LVL_REM_RAM2: u64 = 0x200;
    /// `mem_lvl`: remote cache, one hop.
    pub const LVL_REM_CCE1: u64 = 0x400;
    /// `mem_lvl`: remote cache, two hops.
    pub const LVL_REM_CCE2: u64 = 0x800;
    /// `mem_lvl`: I/O memory.
    pub const LVL_IO: u64 = 0x1000;
    /// `mem_lvl`: uncached memory.
    pub const LVL_UNC: u64 = 0x2000;

    /// `mem_lvl_num`: L1.
    pub const LVLNUM_L1: u64 = 0x01;
    /// `mem_lvl_num`: L2.
    pub const LVLNUM_L2: u64 = 0x02;
    /// `mem_lvl_num`: L3.
    pub const LVLNUM_L3: u64 = 0x03;
    /// `mem_lvl_num`: L4.
    pub const LVLNUM_L4: u64 = 0x04;
    /// `mem_lvl_num`: L2 miss handling buffer.
    pub const LVLNUM_L2_MHB: u64 = 0x05;
    /// `mem_lvl_num`: memory-side cache.
    pub const LVLNUM_MSC: u64 = 0x06;
    /// `mem_lvl_num`: L0.
    pub const LVLNUM_L0: u64 = 0x07;
    /// `mem_lvl_num`: uncached.
    pub const LVLNUM_UNC: u64 = 0x08;
    /// `mem_lvl_num`: CXL.
    pub const LVLNUM_CXL: u64 = 0x09;
    /// `mem_lvl_num`: I/O.
    pub const LVLNUM_IO: u64 = 0x0a;
    /// `mem_lvl_num`: any cache.
    pub const LVLNUM_ANY_CACHE: u64 = 0x0b;
    /// `mem_lvl_num`: line fill buffer / L1 miss handling buffer.
    pub const LVLNUM_LFB: u64 = 0x0c;
    /// `mem_lvl_num`: RAM.
    pub const LVLNUM_RAM: u64 = 0x0d;
    /// `mem_lvl_num`: persistent memory.
    pub const LVLNUM_PMEM: u64 = 0x0e;
    /// `mem_lvl_num`: not available.
    pub const LVLNUM_NA: u64 = 0x0f;

    /// `mem_hops`: remote core, same node.
    pub const HOPS_0: u64 = 0x01;
    /// `mem_hops`: remote node, same socket.
    pub const HOPS_1: u64 = 0x02;
    /// `mem_hops`: remote socket, same board.
    pub const HOPS_2: u64 = 0x03;
    /// `mem_hops`: remote board.
    pub const HOPS_3: u64 = 0x04;

    /// Shift of `mem_op`.
    pub const OP_SHIFT: u32 = 0;
    /// Shift of `mem_lvl`.
    pub const LVL_SHIFT: u32 = 5;
    /// Shift of `mem_snoop`.
    pub const SNOOP_SHIFT: u32 = 19;
    /// Shift of `mem_lvl_num`.
    pub const LVLNUM_SHIFT: u32 = 33;
    /// Shift of `mem_remote`.
    pub const REMOTE_SHIFT: u32 = 37;
    /// Shift of `mem_hops`.
    pub const HOPS_SHIFT: u32 = 43;
}

impl MemDataSrc {
    fn field(self, shift: u32, bits: u32) -> u64 {
        (self.0 >> shift) & ((1 << bits) - 1)
    }

    /// `mem_op` (5 bits).
    pub fn op(self) -> u64 {
        self.field(mem::OP_SHIFT, 5)
    }

    /// `mem_lvl` (14 bits).
    pub fn lvl(self) -> u64 {
        self.field(mem::LVL_SHIFT, 14)
    }

    /// `mem_snoop` (5 bits).
    pub fn snoop(self) -> u64 {
        self.field(mem::SNOOP_SHIFT, 5)
    }

    /// `mem_lvl_num` (4 bits).
    pub fn lvl_num(self) -> u64 {
        self.field(mem::LVLNUM_SHIFT, 4)
    }

    /// `mem_remote` (1 bit).
    pub fn remote(self) -> bool {
        self.field(mem::REMOTE_SHIFT, 1) != 0
    }

    /// `mem_hops` (3 bits).
    pub fn hops(self) -> u64 {
        self.field(mem::HOPS_SHIFT, 3)
    }

    /// Load, store, or unknown (prefetch, execution, not available); a store that also
    /// loads (an atomic) is a write.
    pub fn access(self) -> Access {
        let op = self.op();
        if op & mem::OP_STORE != 0 {
            Access::Write
        } else if op & mem::OP_LOAD != 0 {
            Access::Read
        } else {
            Access::Unknown
        }
    }

    /// Where the reference was served from, in the monitor's terms; `None` when the
    /// PMU says nothing (zero, or levels not available).
    ///
    /// `mem_lvl_num` with `mem_remote` wins when set; the remote bit with hop level
    /// `HOPS_0` (another core of the same node) counts as local. Otherwise the older
    /// `mem_lvl` bits decide. CXL memory is a CPU-less node of its own, so remote.
    pub fn data_source(self) -> Option<DataSource> {
        if self.0 == 0 {
            return None;
        }
        let remote = self.remote() && self.hops() != mem::HOPS_0;
        let num = self.lvl_num();
        if num != 0 && num != mem::LVLNUM_NA {
            return Some(match num {
                mem::LVLNUM_RAM | mem::LVLNUM_PMEM if remote => DataSource::RemoteDram,
                mem::LVLNUM_RAM | mem::LVLNUM_PMEM => DataSource::LocalDram,
                mem::LVLNUM_CXL => DataSource::RemoteDram,
                mem::LVLNUM_UNC | mem::LVLNUM_IO => DataSource::Other,
                _ if remote => DataSource::RemoteCache,
                _ => DataSource::LocalCache,
            });
        }
        let lvl = self.lvl();
        if lvl & (mem::LVL_REM_RAM1 | mem::LVL_REM_RAM2) != 0 {
            Some(DataSource::RemoteDram)
        } else if lvl & (mem::LVL_REM_CCE1 | mem::LVL_REM_CCE2) != 0 {
            Some(DataSource::RemoteCache)
        } else if lvl & mem::LVL_LOC_RAM != 0 {
            Some(if remote {
                DataSource::RemoteDram
            } else {
                DataSource::LocalDram
            })
        } else if lvl & (mem::LVL_L1 | mem::LVL_LFB | mem::LVL_L2 | mem::LVL_L3) != 0 {
            Some(if lvl & mem::LVL_HIT != 0 {
                if remote {
                    DataSource::RemoteCache
                } else {
                    DataSource::LocalCache
                }
            } else {
                DataSource::Other
            })
        } else if lvl & (mem::LVL_IO | mem::LVL_UNC) != 0 {
            Some(DataSource::Other)
        } else {
            None
        }
    }
}

/// `struct perf_event_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerfHeader {
    /// `type`: `PERF_RECORD_*`.
    pub kind: u32,
    /// `misc`: `PERF_RECORD_MISC_*` bits.
    pub misc: u16,
    /// `size`: of the whole record, header included.
    pub size: u16,
}

/// A decoded `PERF_RECORD_SAMPLE`. Fields its [`SampleFormat`] lacks are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PerfSample {
    /// The header's `misc` bits.
    pub misc: u16,
    /// `PERF_SAMPLE_IDENTIFIER`.
    pub identifier: u64,
    /// `PERF_SAMPLE_IP`: the instruction.
    pub ip: u64,
    /// `PERF_SAMPLE_TID`: the process.
    pub pid: u32,
    /// `PERF_SAMPLE_TID`: the thread.
    pub tid: u32,
    /// `PERF_SAMPLE_TIME`: nanoseconds, the event's clock.
    pub time: u64,
    /// `PERF_SAMPLE_ADDR`: the data address.
    pub addr: u64,
    /// `PERF_SAMPLE_ID`.
    pub id: u64,
    /// `PERF_SAMPLE_STREAM_ID`.
    pub stream_id: u64,
    /// `PERF_SAMPLE_CPU`.
    pub cpu: u32,
    /// `PERF_SAMPLE_PERIOD`.
    pub period: u64,
    /// `PERF_SAMPLE_WEIGHT` (or the low 32 bits of `PERF_SAMPLE_WEIGHT_STRUCT`): the
    /// access latency, in cycles on most PMUs.
    pub weight: u64,
    /// `PERF_SAMPLE_DATA_SRC`.
    pub data_src: MemDataSrc,
    /// `PERF_SAMPLE_TRANSACTION`.
    pub transaction: u64,
    /// `PERF_SAMPLE_PHYS_ADDR`.
    pub phys_addr: u64,
    /// `PERF_SAMPLE_CGROUP`.
    pub cgroup: u64,
    /// `PERF_SAMPLE_DATA_PAGE_SIZE`.
    pub data_page_size: u64,
    /// `PERF_SAMPLE_CODE_PAGE_SIZE`.
    pub code_page_size: u64,
}

impl PerfSample {
    /// The monitor's sample: accessing node `node` (the node of `cpu`), time relative
    /// to `time_origin` (saturating at 0), access and data source from `data_src`.
    pub fn to_sample(&self, node: u32, time_origin: u64) -> Sample {
        Sample {
            addr: self.addr,
            tid: self.tid as i32,
            cpu: self.cpu,
            node,
            time_ns: self.time.saturating_sub(time_origin),
            access: self.data_src.access(),
            source: self.data_src.data_source(),
        }
    }
}

/// One record of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PerfRecord {
    /// `PERF_RECORD_SAMPLE`.
    Sample(PerfSample),
    /// `PERF_RECORD_LOST`: `lost` records of event `id` were dropped.
    Lost {
        /// The event's id.
        id: u64,
        /// Records dropped.
        lost: u64,
    },
    /// `PERF_RECORD_LOST_SAMPLES`: `lost` samples were dropped.
    LostSamples {
        /// Samples dropped.
        lost: u64,
    },
    /// Any other record type, skipped.
    Other(PerfHeader),
}

/// Why a ring's positions are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The data area's size is not a power of two.
    #[error("the ring's data area of {0} bytes is not a power of two")]
    NotPowerOfTwo(usize),
    /// `data_tail` is past `data_head`.
    #[error("data_tail {tail} is past data_head {head}")]
    TailAheadOfHead {
        /// `data_head`.
        head: u64,
        /// `data_tail`.
        tail: u64,
    },
    /// The writer lapped the reader: more unread bytes than the ring holds.
    #[error("{unread} unread bytes (head {head}, tail {tail}) overrun a ring of {size} bytes")]
    Overrun {
        /// `data_head`.
        head: u64,
        /// `data_tail`.
        tail: u64,
        /// `data_head - data_tail`.
        unread: u64,
        /// The ring's size.
        size: usize,
    },
}

/// Why one record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A header whose size is smaller than the header itself (0 included): the
    /// iteration ends.
    #[error("record at {at} has size {size}, smaller than its header")]
    BadSize {
        /// Its position (bytes since the session started).
        at: u64,
        /// Its size.
        size: u16,
    },
    /// A record (or header) larger than what is left before `data_head`: the
    /// iteration ends.
    #[error("record at {at} needs {needed} bytes but only {available} are left")]
    Truncated {
        /// Its position.
        at: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A sample smaller than its format: that record is skipped.
    #[error("sample at {at} has {size} bytes, its format needs {needed}")]
    ShortSample {
        /// Its position.
        at: u64,
        /// Its size.
        size: u16,
        /// The size its format needs.
        needed: usize,
    },
    /// A lost record smaller than its fields: that record is skipped.
    #[error("lost record at {at} has {size} bytes, too few")]
    ShortLost {
        /// Its position.
        at: u64,
        /// Its size.
        size: u16,
    },
}

/// Iterates the records between `data_tail` and `data_head` of a ring's data area.
#[derive(Debug, Clone)]
pub struct RingReader<'a> {
    data: &'a [u8],
    head: u64,
    pos: u64,
    format: SampleFormat,
    scratch: Vec<u8>,
    done: bool,
}

/// A reader of the records of `data` (the ring's data area, a power of two in size)
/// from `tail` to `head`, decoding samples by `format`.
///
/// # Errors
/// [`RingError`] when the positions or the size are impossible.
pub fn read_ring(
    data: &[u8],
    head: u64,
    tail: u64,
    format: SampleFormat,
) -> Result<RingReader<'_>, RingError> {
    if !data.len().is_power_of_two() {
        return Err(RingError::NotPowerOfTwo(data.len()));
    }
    if tail > head {
        return Err(RingError::TailAheadOfHead { head, tail });
    }
    let unread = head - tail;
    if unread > data.len() as u64 {
        return Err(RingError::Overrun {
            head,
            tail,
            unread,
            size: data.len(),
        });
    }
    Ok(RingReader {
        data,
        head,
        pos: tail,
        format,
        scratch: Vec::new(),
        done: false,
    })
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Copies `out.len()` bytes of the ring starting at position `pos`, wrapping.
fn copy_wrapped(data: &[u8], pos: u64, out: &mut [u8]) {
    let mask = data.len() as u64 - 1;
    let mut done = 0;
    while done < out.len() {
        let off = ((pos + done as u64) & mask) as usize;
        let take = (out.len() - done).min(data.len() - off);
        out[done..done + take].copy_from_slice(&data[off..off + take]);
        done += take;
    }
}

/// Decodes a sample body by `format` (the caller checked its length).
fn decode_sample(body: &[u8], format: SampleFormat, misc: u16) -> PerfSample {
    let mut s = PerfSample {
        misc,
        ..PerfSample::default()
    };
    let st = format.sample_type();
    let mut at = 0;
    let mut next = |bit: u64| -> Option<u64> {
        if st & bit == 0 {
            return None;
        }
        let v = le_u64(body, at);
        at += 8;
        Some(v)
    };
    if let Some(v) = next(sample_type::IDENTIFIER) {
        s.identifier = v;
    }
    if let Some(v) = next(sample_type::IP) {
        s.ip = v;
    }
    if let Some(v) = next(sample_type::TID) {
        s.pid = v as u32;
        s.tid = (v >> 32) as u32;
    }
    if let Some(v) = next(sample_type::TIME) {
        s.time = v;
    }
    if let Some(v) = next(sample_type::ADDR) {
        s.addr = v;
    }
    if let Some(v) = next(sample_type::ID) {
        s.id = v;
    }
    if let Some(v) = next(sample_type::STREAM_ID) {
        s.stream_id = v;
    }
    if let Some(v) = next(sample_type::CPU) {
        s.cpu = v as u32;
    }
    if let Some(v) = next(sample_type::PERIOD) {
        s.period = v;
    }
    if let Some(v) = next(sample_type::WEIGHT) {
        s.weight = v;
    }
    if let Some(v) = next(sample_type::WEIGHT_STRUCT) {
        s.weight = v & 0xffff_ffff;
    }
    if let Some(v) = next(sample_type::DATA_SRC) {
        s.data_src = MemDataSrc(v);
    }
    if let Some(v) = next(sample_type::TRANSACTION) {
        s.transaction = v;
    }
    if let Some(v) = next(sample_type::PHYS_ADDR) {
        s.phys_addr = v;
    }
    if let Some(v) = next(sample_type::CGROUP) {
        s.cgroup = v;
    }
    if let Some(v) = next(sample_type::DATA_PAGE_SIZE) {
        s.data_page_size = v;
    }
    if let Some(v) = next(sample_type::CODE_PAGE_SIZE) {
        s.code_page_size = v;
    }
    s
}

impl RingReader<'_> {
    /// The position after the last record consumed: the value to store in
    /// `data_tail` once done (or `data_head` after an error that ended the iteration).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// `data_head`.
    pub fn head(&self) -> u64 {
        self.head
    }

    fn fail(&mut self, e: RecordError) -> Option<Result<PerfRecord, RecordError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl Iterator for RingReader<'_> {
    type Item = Result<PerfRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.head {
            return None;
        }
        let at = self.pos;
        let available = self.head - at;
        if available < HEADER_SIZE as u64 {
            return self.fail(RecordError::Truncated {
                at,
                needed: HEADER_SIZE as u64,
                available,
            });
        }
        let mut hdr = [0u8; HEADER_SIZE];
        copy_wrapped(self.data, at, &mut hdr);
        let header = PerfHeader {
            kind: le_u32(&hdr, 0),
            misc: u16::from_le_bytes([hdr[4], hdr[5]]),
            size: u16::from_le_bytes([hdr[6], hdr[7]]),
        };
        let size = usize::from(header.size);
        if size < HEADER_SIZE {
            return self.fail(RecordError::BadSize {
                at,
                size: header.size,
            });
        }
        if size as u64 > available {
            return self.fail(RecordError::Truncated {
                at,
                needed: size as u64,
                available,
            });
        }
        // The record is whole: consume it whatever its contents.
        self.pos = at + size as u64;
        let body_len = size - HEADER_SIZE;
        let mask = self.data.len() as u64 - 1;
        let body_at = ((at + HEADER_SIZE as u64) & mask) as usize;
        let body: &[u8] = if body_at + body_len <= self.data.len() {
            &self.data[body_at..body_at + body_len]
        } else {
            self.scratch.resize(body_len, 0);
            copy_wrapped(self.data, at + HEADER_SIZE as u64, &mut self.scratch);
            &self.scratch
        };
        Some(match header.kind {
            PERF_RECORD_SAMPLE => {
                if body_len < self.format.body_len() {
                    Err(RecordError::ShortSample {
                        at,
                        size: header.size,
                        needed: HEADER_SIZE + self.format.body_len(),
                    })
                } else {
                    Ok(PerfRecord::Sample(decode_sample(
                        body,
                        self.format,
                        header.misc,
                    )))
                }
            }
            PERF_RECORD_LOST if body_len >= 16 => Ok(PerfRecord::Lost {
                id: le_u64(body, 0),
                lost: le_u64(body, 8),
            }),
            PERF_RECORD_LOST_SAMPLES if body_len >= 8 => Ok(PerfRecord::LostSamples {
                lost: le_u64(body, 0),
            }),
            PERF_RECORD_LOST | PERF_RECORD_LOST_SAMPLES => Err(RecordError::ShortLost {
                at,
                size: header.size,
            }),
            _ => Ok(PerfRecord::Other(header)),
        })
    }
}
