//! The perf ring-buffer parser: records built by hand (wrapping around the end of the
//! ring, header included), data_src decoding, typed errors, and properties: written
//! records read back exactly from any start, and random bytes and positions never
//! panic nor loop.

use monitor::perf_record::{
    FormatError, MemDataSrc, PERF_RECORD_LOST, PERF_RECORD_LOST_SAMPLES, PERF_RECORD_SAMPLE,
    PerfHeader, PerfRecord, PerfSample, RecordError, RingError, SampleFormat, mem, read_ring,
    sample_type,
};
use monitor::sample::{Access, DataSource};
use proptest::prelude::*;

fn header(kind: u32, misc: u16, size: u16) -> Vec<u8> {
    let mut v = kind.to_le_bytes().to_vec();
    v.extend_from_slice(&misc.to_le_bytes());
    v.extend_from_slice(&size.to_le_bytes());
    v
}

/// A `PERF_RECORD_SAMPLE` of the memory format.
fn sample_record(s: &PerfSample) -> Vec<u8> {
    let mut v = header(PERF_RECORD_SAMPLE, s.misc, 64);
    v.extend_from_slice(&s.ip.to_le_bytes());
    v.extend_from_slice(&s.pid.to_le_bytes());
    v.extend_from_slice(&s.tid.to_le_bytes());
    v.extend_from_slice(&s.time.to_le_bytes());
    v.extend_from_slice(&s.addr.to_le_bytes());
    v.extend_from_slice(&s.cpu.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&s.weight.to_le_bytes());
    v.extend_from_slice(&s.data_src.0.to_le_bytes());
    assert_eq!(v.len(), 64);
    v
}

fn lost_record(id: u64, lost: u64) -> Vec<u8> {
    let mut v = header(PERF_RECORD_LOST, 0, 24);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&lost.to_le_bytes());
    v
}

fn other_record(kind: u32, size: u16) -> Vec<u8> {
    let mut v = header(kind, 0, size);
    v.resize(size as usize, 0xab);
    v
}

/// Writes `bytes` into `ring` at stream position `pos`, wrapping.
fn put(ring: &mut [u8], pos: u64, bytes: &[u8]) {
    let len = ring.len() as u64;
    for (i, b) in bytes.iter().enumerate() {
        ring[((pos + i as u64) % len) as usize] = *b;
    }
}

fn mem_sample(n: u64) -> PerfSample {
    PerfSample {
        misc: 2,
        ip: 0x40_1000 + n,
        pid: 4242,
        tid: 4243 + n as u32,
        time: 1_000_000 + n * 10,
        addr: 0x7f00_0000_0000 + n * 64,
        cpu: n as u32 % 4,
        weight: 100 + n,
        data_src: MemDataSrc(
            (mem::OP_LOAD << mem::OP_SHIFT)
                | ((mem::LVL_HIT | mem::LVL_REM_RAM1) << mem::LVL_SHIFT)
                | (mem::LVLNUM_RAM << mem::LVLNUM_SHIFT)
                | (1 << mem::REMOTE_SHIFT)
                | (mem::HOPS_2 << mem::HOPS_SHIFT),
        ),
        ..PerfSample::default()
    }
}

fn read_all(ring: &[u8], head: u64, tail: u64) -> (Vec<Result<PerfRecord, RecordError>>, u64) {
    let mut r = read_ring(ring, head, tail, SampleFormat::memory()).unwrap();
    let out: Vec<_> = r.by_ref().collect();
    (out, r.position())
}

#[test]
fn records_wrapping_around_the_end_of_the_ring() {
    let mut ring = vec![0u8; 256];
    // Many laps in, 56 bytes before the end: the first sample's body wraps (header at
    // 200..208, body at 208..256 and 0..8); then the records fill the ring exactly.
    let tail = 256 * 1000 + 200;
    let mut pos = tail;
    for r in [
        sample_record(&mem_sample(1)),
        lost_record(7, 3),
        other_record(3, 40),
        sample_record(&mem_sample(2)),
        sample_record(&mem_sample(3)),
    ] {
        put(&mut ring, pos, &r);
        pos += r.len() as u64;
    }
    let head = pos;
    assert_eq!(head - tail, 256, "a full ring");
    let (got, end) = read_all(&ring, head, tail);
    assert_eq!(end, head);
    assert_eq!(
        got,
        vec![
            Ok(PerfRecord::Sample(mem_sample(1))),
            Ok(PerfRecord::Lost { id: 7, lost: 3 }),
            Ok(PerfRecord::Other(PerfHeader {
                kind: 3,
                misc: 0,
                size: 40
            })),
            Ok(PerfRecord::Sample(mem_sample(2))),
            Ok(PerfRecord::Sample(mem_sample(3))),
        ]
    );
}

#[test]
fn a_header_that_wraps_too() {
    // Not 8-aligned (the kernel aligns, a fuzzer need not): the header straddles the end.
    let mut ring = vec![0u8; 128];
    let tail = 128 * 5 + 124;
    put(&mut ring, tail, &sample_record(&mem_sample(9)));
    let (got, end) = read_all(&ring, tail + 64, tail);
    assert_eq!(got, vec![Ok(PerfRecord::Sample(mem_sample(9)))]);
    assert_eq!(end, tail + 64);
}

#[test]
fn a_full_ring() {
    let mut ring = vec![0u8; 128];
    let tail = 64;
    put(&mut ring, tail, &sample_record(&mem_sample(1)));
    put(&mut ring, tail + 64, &sample_record(&mem_sample(2)));
    let (got, _) = read_all(&ring, tail + 128, tail);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(Result::is_ok));
    // Empty.
    assert!(read_all(&ring, 64, 64).0.is_empty());
}

#[test]
fn samples_become_monitor_samples() {
    let s = mem_sample(5);
    let m = s.to_sample(1, 1_000_000);
    assert_eq!(m.addr, s.addr);
    assert_eq!(m.tid, s.tid as i32);
    assert_eq!((m.cpu, m.node, m.time_ns), (s.cpu, 1, 50));
    assert_eq!(m.access, Access::Read);
    assert_eq!(m.source, Some(DataSource::RemoteDram));
    assert_eq!(s.to_sample(0, u64::MAX).time_ns, 0);
}

#[test]
fn data_src_decoding() {
    let src = |op: u64, lvl: u64, num: u64, remote: bool, hops: u64| {
        MemDataSrc(
            (op << mem::OP_SHIFT)
                | (lvl << mem::LVL_SHIFT)
                | (num << mem::LVLNUM_SHIFT)
                | (u64::from(remote) << mem::REMOTE_SHIFT)
                | (hops << mem::HOPS_SHIFT),
        )
    };
    use DataSource::*;
    let cases = [
        // Older mem_lvl only.
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_L1, 0, false, 0),
            Some(LocalCache),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_LFB, 0, false, 0),
            Some(LocalCache),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_MISS | mem::LVL_L3, 0, false, 0),
            Some(Other),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_LOC_RAM, 0, false, 0),
            Some(LocalDram),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_REM_RAM1, 0, false, 0),
            Some(RemoteDram),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_REM_RAM2, 0, false, 0),
            Some(RemoteDram),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_REM_CCE1, 0, false, 0),
            Some(RemoteCache),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_REM_CCE2, 0, false, 0),
            Some(RemoteCache),
        ),
        (
            src(mem::OP_LOAD, mem::LVL_HIT | mem::LVL_IO, 0, false, 0),
            Some(Other),
        ),
        (src(mem::OP_LOAD, mem::LVL_UNC, 0, false, 0), Some(Other)),
        (src(mem::OP_NA, mem::LVL_NA, 0, false, 0), None),
        (src(mem::OP_NA, mem::LVL_NA, mem::LVLNUM_NA, false, 0), None),
        (MemDataSrc(0), None),
        // mem_lvl_num with remote and hops.
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_RAM, false, 0),
            Some(LocalDram),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_RAM, true, 0),
            Some(RemoteDram),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_RAM, true, mem::HOPS_2),
            Some(RemoteDram),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_PMEM, true, mem::HOPS_1),
            Some(RemoteDram),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_L3, true, mem::HOPS_0),
            Some(LocalCache),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_L2, true, mem::HOPS_1),
            Some(RemoteCache),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_ANY_CACHE, true, 0),
            Some(RemoteCache),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_L1, false, 0),
            Some(LocalCache),
        ),
        (
            src(mem::OP_LOAD, 0, mem::LVLNUM_CXL, false, 0),
            Some(RemoteDram),
        ),
        (src(mem::OP_LOAD, 0, mem::LVLNUM_IO, true, 0), Some(Other)),
        (src(mem::OP_LOAD, 0, mem::LVLNUM_UNC, false, 0), Some(Other)),
        // mem_lvl_num wins over mem_lvl.
        (
            src(
                mem::OP_LOAD,
                mem::LVL_HIT | mem::LVL_REM_RAM1,
                mem::LVLNUM_RAM,
                true,
                0,
            ),
            Some(RemoteDram),
        ),
        (
            src(
                mem::OP_LOAD,
                mem::LVL_HIT | mem::LVL_L3,
                mem::LVLNUM_L3,
                false,
                0,
            ),
            Some(LocalCache),
        ),
    ];
    for (i, (d, want)) in cases.iter().enumerate() {
        assert_eq!(d.data_source(), *want, "case {i}: {:#x}", d.0);
    }
    let op = |op| src(op, 0, 0, false, 0).access();
    assert_eq!(op(mem::OP_LOAD), Access::Read);
    assert_eq!(op(mem::OP_STORE), Access::Write);
    assert_eq!(op(mem::OP_LOAD | mem::OP_STORE), Access::Write);
    assert_eq!(op(mem::OP_PFETCH), Access::Unknown);
    assert_eq!(op(mem::OP_EXEC), Access::Unknown);
    assert_eq!(op(mem::OP_NA), Access::Unknown);
    let d = src(
        mem::OP_STORE,
        mem::LVL_L1,
        mem::LVLNUM_L2,
        true,
        mem::HOPS_3,
    );
    assert_eq!(
        (d.op(), d.lvl(), d.lvl_num(), d.remote(), d.hops()),
        (
            mem::OP_STORE,
            mem::LVL_L1,
            mem::LVLNUM_L2,
            true,
            mem::HOPS_3
        )
    );
}

#[test]
fn other_sample_formats() {
    let st = sample_type::IDENTIFIER
        | sample_type::IP
        | sample_type::TID
        | sample_type::TIME
        | sample_type::ADDR
        | sample_type::CPU
        | sample_type::PERIOD
        | sample_type::WEIGHT_STRUCT
        | sample_type::DATA_SRC
        | sample_type::PHYS_ADDR
        | sample_type::DATA_PAGE_SIZE;
    let format = SampleFormat::new(st).unwrap();
    assert_eq!(format.body_len(), 11 * 8);
    let fields: [u64; 10] = [
        77,                             // identifier
        0x401000,                       // ip
        (9u64 << 32) | 8,               // pid 8, tid 9
        5000,                           // time
        0xdead_b000,                    // addr
        3,                              // cpu 3, res 0
        1234,                           // period
        (0xffff << 32) | 321,           // weight struct: var1 = 321
        mem::OP_STORE << mem::OP_SHIFT, // data_src
        0x1_2345_6000,                  // phys_addr
    ];
    let mut rec = header(PERF_RECORD_SAMPLE, 0, 8 + 11 * 8);
    for f in fields {
        rec.extend_from_slice(&f.to_le_bytes());
    }
    rec.extend_from_slice(&4096u64.to_le_bytes()); // data_page_size
    let mut ring = vec![0u8; 128];
    put(&mut ring, 100, &rec);
    let got: Vec<_> = read_ring(&ring, 100 + rec.len() as u64, 100, format)
        .unwrap()
        .collect();
    let Ok(PerfRecord::Sample(s)) = got[0] else {
        panic!("{got:?}");
    };
    assert_eq!(
        (
            s.identifier,
            s.ip,
            s.pid,
            s.tid,
            s.time,
            s.addr,
            s.cpu,
            s.period
        ),
        (77, 0x401000, 8, 9, 5000, 0xdead_b000, 3, 1234)
    );
    assert_eq!(
        (s.weight, s.phys_addr, s.data_page_size),
        (321, 0x1_2345_6000, 4096)
    );
    assert_eq!(s.data_src.access(), Access::Write);

    assert_eq!(
        SampleFormat::new(sample_type::MEMORY).unwrap(),
        SampleFormat::memory()
    );
    let bad = sample_type::IP | sample_type::CALLCHAIN;
    assert_eq!(SampleFormat::new(bad), Err(FormatError::Unsupported(bad)));
    assert_eq!(
        SampleFormat::new(1 << 40),
        Err(FormatError::Unsupported(1 << 40))
    );
    let two = sample_type::WEIGHT | sample_type::WEIGHT_STRUCT;
    assert_eq!(SampleFormat::new(two), Err(FormatError::TwoWeights(two)));
}

#[test]
fn ring_errors() {
    let ring = vec![0u8; 100];
    assert_eq!(
        read_ring(&ring, 0, 0, SampleFormat::memory()).unwrap_err(),
        RingError::NotPowerOfTwo(100)
    );
    assert_eq!(
        read_ring(&[], 0, 0, SampleFormat::memory()).unwrap_err(),
        RingError::NotPowerOfTwo(0)
    );
    let ring = vec![0u8; 64];
    assert_eq!(
        read_ring(&ring, 5, 6, SampleFormat::memory()).unwrap_err(),
        RingError::TailAheadOfHead { head: 5, tail: 6 }
    );
    assert_eq!(
        read_ring(&ring, 200, 100, SampleFormat::memory()).unwrap_err(),
        RingError::Overrun {
            head: 200,
            tail: 100,
            unread: 100,
            size: 64
        }
    );
}

#[test]
fn malformed_records() {
    // Size 0 and size 4: the iteration ends with an error, no endless loop.
    for size in [0u16, 4, 7] {
        let mut ring = vec![0u8; 64];
        put(&mut ring, 0, &header(PERF_RECORD_SAMPLE, 0, size));
        let (got, end) = read_all(&ring, 64, 0);
        assert_eq!(got, vec![Err(RecordError::BadSize { at: 0, size })]);
        assert_eq!(end, 0);
    }
    // Larger than what is left.
    let mut ring = vec![0u8; 128];
    put(&mut ring, 0, &lost_record(1, 1));
    put(&mut ring, 24, &header(PERF_RECORD_SAMPLE, 0, 64));
    let (got, end) = read_all(&ring, 24 + 40, 0);
    assert_eq!(
        got,
        vec![
            Ok(PerfRecord::Lost { id: 1, lost: 1 }),
            Err(RecordError::Truncated {
                at: 24,
                needed: 64,
                available: 40
            })
        ]
    );
    assert_eq!(end, 24);
    // Fewer than 8 bytes left for a header.
    let (got, _) = read_all(&ring, 24 + 5, 0);
    assert_eq!(
        got[1],
        Err(RecordError::Truncated {
            at: 24,
            needed: 8,
            available: 5
        })
    );
    // A sample or a lost record too short for its fields: skipped, iteration goes on.
    let mut ring = vec![0u8; 128];
    put(&mut ring, 0, &other_record(PERF_RECORD_SAMPLE, 16));
    put(&mut ring, 16, &other_record(PERF_RECORD_LOST, 16));
    put(&mut ring, 32, &other_record(PERF_RECORD_LOST_SAMPLES, 8));
    let mut lost_samples = header(PERF_RECORD_LOST_SAMPLES, 0, 16);
    lost_samples.extend_from_slice(&99u64.to_le_bytes());
    put(&mut ring, 40, &lost_samples);
    let (got, end) = read_all(&ring, 56, 0);
    assert_eq!(
        got,
        vec![
            Err(RecordError::ShortSample {
                at: 0,
                size: 16,
                needed: 64
            }),
            Err(RecordError::ShortLost { at: 16, size: 16 }),
            Err(RecordError::ShortLost { at: 32, size: 8 }),
            Ok(PerfRecord::LostSamples { lost: 99 }),
        ]
    );
    assert_eq!(end, 56);
}

#[derive(Debug, Clone)]
enum Rec {
    Sample(u64),
    Lost(u64, u64),
    Other(u32, u16),
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    prop_oneof![
        any::<u64>().prop_map(Rec::Sample),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Rec::Lost(a, b)),
        (
            prop_oneof![1u32..2, 3u32..9, 10u32..13, 14u32..100],
            (1u16..12).prop_map(|n| n * 8)
        )
            .prop_map(|(k, s)| Rec::Other(k, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Records written from any start position read back exactly.
    #[test]
    fn written_records_read_back(
        recs in proptest::collection::vec(rec_strategy(), 0..12),
        laps in 0u64..1000,
        start in 0u64..512,
        aligned in any::<bool>(),
    ) {
        let mut ring = vec![0u8; 512];
        let start = if aligned { start & !7 } else { start };
        let tail = laps * 512 + start;
        let mut pos = tail;
        let mut want = Vec::new();
        for r in &recs {
            let (bytes, rec) = match *r {
                Rec::Sample(n) => {
                    let mut s = mem_sample(n % 1000);
                    s.addr = n;
                    (sample_record(&s), PerfRecord::Sample(s))
                }
                Rec::Lost(id, lost) => (lost_record(id, lost), PerfRecord::Lost { id, lost }),
                Rec::Other(kind, size) => (
                    other_record(kind, size),
                    PerfRecord::Other(PerfHeader { kind, misc: 0, size }),
                ),
            };
            if pos + bytes.len() as u64 - tail > 512 {
                break;
            }
            put(&mut ring, pos, &bytes);
            pos += bytes.len() as u64;
            want.push(Ok(rec));
        }
        let (got, end) = read_all(&ring, pos, tail);
        prop_assert_eq!(got, want);
        prop_assert_eq!(end, pos);
    }

    /// Random bytes at random positions: errors or records, never a panic, and never
    /// more records than 8-byte steps.
    #[test]
    fn random_rings_never_panic(
        shift in 0u32..11,
        seed in proptest::collection::vec(any::<u8>(), 1..64),
        head in any::<u64>(),
        back in any::<u64>(),
        st in prop_oneof![Just(sample_type::MEMORY), any::<u64>()],
    ) {
        let len = 1usize << shift;
        let ring: Vec<u8> = (0..len).map(|i| seed[i % seed.len()] ^ (i as u8)).collect();
        let format = SampleFormat::new(st).unwrap_or_default();
        let tail_near = head.saturating_sub(back % (len as u64 + 1));
        for tail in [tail_near, back] {
            if let Ok(reader) = read_ring(&ring, head, tail, format) {
                let n = reader.count();
                prop_assert!(n <= len / 8 + 1);
            }
        }
    }

    /// Valid-looking headers of random sizes.
    #[test]
    fn random_headers_never_panic(
        headers in proptest::collection::vec((0u32..20, any::<u16>(), any::<u16>()), 1..20),
        start in 0u64..256,
    ) {
        let mut ring = vec![0u8; 256];
        let mut pos = start;
        for (kind, misc, size) in headers {
            put(&mut ring, pos, &header(kind, misc, size));
            pos += 8 + u64::from(size % 64);
        }
        let head = start + 256;
        let reader = read_ring(&ring, head, start, SampleFormat::memory()).unwrap();
        let mut n = 0;
        for r in reader {
            n += 1;
            if let Err(RecordError::BadSize { .. } | RecordError::Truncated { .. }) = r {
                n += 1000;
            }
        }
        prop_assert!(n <= 256 / 8 + 1000);
    }
}
