//! Feeds arbitrary bytes to the decoders of `RSET_RUN` and `RSET_MON` (what
//! librset_preload.so reads from the environment of any program it is loaded
//! into): they must return `Ok` or `Err`, never panic; what they accept must
//! encode again and decode to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rset_protocol::{MonConfig, RunConfig};

fuzz_target!(|data: &[u8]| {
    // The environment holds bytes; the library reads the variable as UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = RunConfig::from_env_value(text) {
        let again = cfg.to_env_value().expect("an accepted plan encodes");
        assert_eq!(RunConfig::from_env_value(&again).as_ref(), Ok(&cfg));
    }
    if let Ok(cfg) = MonConfig::from_env_value(text) {
        let again = cfg.to_env_value().expect("an accepted request encodes");
        assert_eq!(MonConfig::from_env_value(&again).as_ref(), Ok(&cfg));
    }
});
