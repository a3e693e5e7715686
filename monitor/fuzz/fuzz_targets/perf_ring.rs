//! Arbitrary bytes as a perf ring buffer: the first 16 bytes choose `data_tail` and
//! how far `data_head` is ahead of it (at most the ring's size, so that records wrap
//! around the end), the rest, cut to a power of two, is the data area. Reading must
//! end (no infinite loop) and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::perf_record::{SampleFormat, read_ring};

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let ring = &data[16..];
    let size = 1usize << (usize::BITS - 1 - ring.len().leading_zeros());
    let ring = &ring[..size];
    let tail = u64::from_le_bytes(data[8..16].try_into().unwrap()) % (1 << 20);
    let ahead = u64::from_le_bytes(data[0..8].try_into().unwrap()) % (size as u64 + 1);
    let head = tail + ahead;
    if let Ok(reader) = read_ring(ring, head, tail, SampleFormat::memory()) {
        for (i, record) in reader.enumerate() {
            let _ = record;
            assert!(i <= ring.len(), "more records than bytes");
        }
    }
});
