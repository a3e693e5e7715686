//! Recorded sample streams: both encodings round-trip, the replay behaves as a
//! sampler, malformed streams are typed errors, and no input panics.

use monitor::replay::{
    BINARY_MAGIC, RecordedSample, Replay, ReplayError, StreamFormat, StreamHeader, StreamWriter,
    read_stream,
};
use monitor::sample::{Access, DataSource, Sample, Sampler, SamplerStats};
use proptest::prelude::*;

fn recorded(n: u64) -> RecordedSample {
    RecordedSample {
        sample: Sample {
            addr: 0x7f00_0000_0000 + n * 4096 + n,
            tid: -(n as i32) - 1,
            cpu: n as u32 % 8,
            node: n as u32 % 2,
            time_ns: n * 1000,
            access: [Access::Read, Access::Write, Access::Unknown][n as usize % 3],
            source: [
                None,
                Some(DataSource::LocalCache),
                Some(DataSource::LocalDram),
                Some(DataSource::RemoteCache),
                Some(DataSource::RemoteDram),
                Some(DataSource::Other),
            ][n as usize % 6],
        },
        home: (n as u32 + 1) % 2,
    }
}

fn header() -> StreamHeader {
    StreamHeader::new(
        Some(2),
        Some(SamplerStats {
            name: "perf-mem".into(),
            samples: 12,
            lost: 5,
            idle_rounds: 0,
            rate_hz: 2000,
        }),
    )
}

fn stream(format: StreamFormat, n: u64) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new(), format, &header()).unwrap();
    for i in 0..n {
        w.write(&recorded(i)).unwrap();
    }
    assert_eq!(w.written(), n);
    w.finish().unwrap()
}

#[test]
fn both_encodings_round_trip() {
    for format in [StreamFormat::JsonLines, StreamFormat::Binary] {
        let bytes = stream(format, 12);
        let (h, samples) = read_stream(&bytes).unwrap();
        assert_eq!(h, header());
        assert_eq!(samples, (0..12).map(recorded).collect::<Vec<_>>());
    }
    let binary = stream(StreamFormat::Binary, 12);
    assert!(binary.starts_with(&BINARY_MAGIC));
    let json = stream(StreamFormat::JsonLines, 2);
    let text = String::from_utf8(json).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with(r#"{"format":"rset-monitor-samples","version":1"#));
    assert_eq!(
        lines[2],
        r#"{"addr":139637976731649,"tid":-2,"cpu":1,"node":1,"time_ns":1000,"access":"write","source":"local_cache","home":0}"#
    );
}

#[test]
fn replay_is_a_sampler() {
    let mut replay = Replay::from_bytes(&stream(StreamFormat::Binary, 10))
        .unwrap()
        .with_batch(4);
    assert_eq!(replay.remaining(), 10);
    let mut got = Vec::new();
    replay.drain(&mut got);
    assert_eq!(got.len(), 4);
    assert_eq!(replay.stats().samples, 4);
    replay.stop();
    assert!(replay.is_stopped());
    // After stop, what is left still comes.
    let mut rest = Vec::new();
    replay.drain_recorded(&mut rest);
    replay.drain_recorded(&mut rest);
    replay.drain_recorded(&mut rest);
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[0], recorded(4));
    let stats = replay.stats();
    assert_eq!(
        (
            stats.name.as_str(),
            stats.samples,
            stats.lost,
            stats.rate_hz
        ),
        ("replay", 10, 5, 2000)
    );
    assert_eq!(got[3], recorded(3).sample);
    assert_eq!(
        replay.home_node(recorded(3).sample.addr),
        Some(recorded(3).home)
    );
    assert_eq!(replay.home_node(0x1000), None);
    assert_eq!(replay.header().nodes, Some(2));
    assert_eq!(replay.samples().len(), 10);

    // Whole stream in one drain by default; from a reader and from a file too.
    let bytes = stream(StreamFormat::JsonLines, 7);
    let mut replay = Replay::from_reader(&bytes[..]).unwrap();
    let mut all = Vec::new();
    replay.drain(&mut all);
    assert_eq!(all.len(), 7);
    let path = std::env::temp_dir().join(format!("monitor-replay-{}.jsonl", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(Replay::from_path(&path).unwrap().remaining(), 7);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        Replay::from_path(&path),
        Err(ReplayError::Io { path: Some(_), .. })
    ));
}

#[test]
fn headers_without_optional_fields_and_blank_lines() {
    let text = "\n{\"format\":\"rset-monitor-samples\",\"version\":1}\n\n\
{\"addr\":1,\"tid\":2,\"cpu\":3,\"node\":0,\"time_ns\":4,\"access\":\"read\",\"home\":0}\n\n";
    let (h, s) = read_stream(text.as_bytes()).unwrap();
    assert_eq!((h.nodes, h.sampler), (None, None));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].sample.source, None);
}

#[test]
fn malformed_streams_are_typed_errors() {
    let err = |b: &[u8]| read_stream(b).unwrap_err();
    assert!(matches!(err(b""), ReplayError::Empty));
    assert!(matches!(err(b" \n\n"), ReplayError::Empty));
    assert!(matches!(err(b"hello"), ReplayError::NoHeader));
    assert!(matches!(err(b"{\"x\":1}"), ReplayError::BadHeader(_)));
    assert!(matches!(
        err(b"{\"format\":\"other\",\"version\":1}"),
        ReplayError::BadHeader(m) if m.contains("other")
    ));
    assert!(matches!(
        err(b"{\"format\":\"rset-monitor-samples\",\"version\":9}"),
        ReplayError::UnsupportedVersion(9)
    ));
    let mut json = stream(StreamFormat::JsonLines, 3);
    json.extend_from_slice(b"{\"addr\":\"x\"}\n");
    assert!(matches!(err(&json), ReplayError::BadLine { line: 5, .. }));

    let binary = stream(StreamFormat::Binary, 3);
    assert!(matches!(err(&binary[..10]), ReplayError::Truncated(10)));
    assert!(matches!(
        err(&binary[..binary.len() - 1]),
        ReplayError::Truncated(_)
    ));
    let mut bad = binary.clone();
    bad[8] = 2;
    assert!(matches!(err(&bad), ReplayError::UnsupportedVersion(2)));
    let mut bad = binary.clone();
    bad[10] = 41;
    assert!(matches!(err(&bad), ReplayError::BadRecordSize(41)));
    let mut bad = binary.clone();
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(err(&bad), ReplayError::Truncated(_)));
    let header_end = binary.len() - 3 * 40;
    let mut bad = binary.clone();
    bad[header_end + 40 + 32] = 7;
    assert!(matches!(
        err(&bad),
        ReplayError::BadCode {
            index: 1,
            field: "access",
            code: 7
        }
    ));
    let mut bad = binary;
    bad[header_end + 2 * 40 + 33] = 6;
    assert!(matches!(
        err(&bad),
        ReplayError::BadCode {
            index: 2,
            field: "source",
            code: 6
        }
    ));
}

fn sample_strategy() -> impl Strategy<Value = RecordedSample> {
    (
        any::<u64>(),
        any::<i32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        0usize..3,
        0usize..6,
        any::<u32>(),
    )
        .prop_map(
            |(addr, tid, cpu, node, time_ns, a, s, home)| RecordedSample {
                sample: Sample {
                    addr,
                    tid,
                    cpu,
                    node,
                    time_ns,
                    access: [Access::Read, Access::Write, Access::Unknown][a],
                    source: [
                        None,
                        Some(DataSource::LocalCache),
                        Some(DataSource::LocalDram),
                        Some(DataSource::RemoteCache),
                        Some(DataSource::RemoteDram),
                        Some(DataSource::Other),
                    ][s],
                },
                home,
            },
        )
}

proptest! {
    #[test]
    fn any_samples_round_trip(
        samples in proptest::collection::vec(sample_strategy(), 0..50),
        binary in any::<bool>(),
    ) {
        let format = if binary { StreamFormat::Binary } else { StreamFormat::JsonLines };
        let mut w = StreamWriter::new(Vec::new(), format, &StreamHeader::new(None, None)).unwrap();
        for s in &samples {
            w.write(s).unwrap();
        }
        let (_, back) = read_stream(&w.finish().unwrap()).unwrap();
        prop_assert_eq!(back, samples);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_stream(&bytes);
        let mut magic = BINARY_MAGIC.to_vec();
        magic.extend_from_slice(&bytes);
        let _ = read_stream(&magic);
    }

    #[test]
    fn mutated_streams_never_panic(
        binary in any::<bool>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..10),
        cut in any::<u16>(),
    ) {
        let format = if binary { StreamFormat::Binary } else { StreamFormat::JsonLines };
        let mut bytes = stream(format, 5);
        for (at, b) in edits {
            let i = at as usize % bytes.len();
            bytes[i] = b;
        }
        let _ = read_stream(&bytes);
        bytes.truncate(cut as usize % (bytes.len() + 1));
        let _ = read_stream(&bytes);
    }
}
