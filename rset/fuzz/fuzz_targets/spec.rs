//! Feeds arbitrary UTF-8 to the spec parser over a synthetic machine: it must
//! return `Ok` or `Err`, never panic, overflow the stack or run away with memory.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rset::{RSet, Topology};

static TOPOLOGY: OnceLock<Topology> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let topology = TOPOLOGY.get_or_init(|| {
        Topology::from_synthetic("pack:2 numa:2 core:4 pu:2").expect("valid synthetic topology")
    });
    if let Ok(rset) = RSet::parse(spec, topology) {
        assert!(!rset.is_empty());
        assert_eq!(RSet::parse(&rset.to_string(), topology).as_ref(), Ok(&rset));
    }
});
