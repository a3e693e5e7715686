//! Arbitrary bytes as a session file: parsing returns Ok or Err, and whatever parses
//! can be reported in every format without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::{Report, SessionFile};

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = SessionFile::from_bytes(data) {
        let report = Report::from_session(&session);
        let _ = report.to_text(10);
        let _ = report.to_json();
        let _ = report.to_csv();
        let _ = report.to_svg(&Default::default());
    }
});
