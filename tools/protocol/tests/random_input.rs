//! Random input never makes the decoder panic, and whatever it accepts travels
//! back unchanged: encoded again, it decodes to the same configuration.

use proptest::prelude::*;
use rset_protocol::{MonConfig, RunConfig};

/// Decodes `text`; when accepted, checks that it re-encodes and decodes the same.
fn round_trips(text: &str) -> Result<(), TestCaseError> {
    if let Ok(cfg) = RunConfig::from_env_value(text) {
        let again = cfg.to_env_value().expect("an accepted plan encodes");
        prop_assert_eq!(RunConfig::from_env_value(&again), Ok(cfg));
    }
    if let Ok(cfg) = MonConfig::from_env_value(text) {
        let again = cfg.to_env_value().expect("an accepted request encodes");
        prop_assert_eq!(MonConfig::from_env_value(&again), Ok(cfg));
    }
    Ok(())
}

/// Policy texts, good and bad.
fn policy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("float".to_string()),
        Just("local".to_string()),
        Just("remote".to_string()),
        (0u32..4).prop_map(|n| format!("remote:{n}")),
        (0usize..9).prop_map(|k| format!("striped:{k}")),
        Just("striped: 04".to_string()),
        Just("bind:0-1".to_string()),
        Just("interleave:".to_string()),
        "[a-z:0-9 ,-]{0,12}",
    ]
}

/// A configuration-shaped JSON text with random parts.
fn plan_json() -> impl Strategy<Value = String> {
    let slot = (0u32..6, 0u32..3, policy_text());
    let ids = || proptest::collection::vec(0u32..6, 0..5);
    (
        proptest::collection::vec(slot, 0..5),
        ids(),
        ids(),
        ids(),
        proptest::collection::vec(0usize..6, 0..4),
        any::<bool>(),
    )
        .prop_map(|(slots, cpus, nodes, memory, skip, verbose)| {
            let slots: Vec<serde_json::Value> = slots
                .into_iter()
                .map(|(cpu, node, policy)| {
                    serde_json::json!({"cpu": cpu, "node": node, "policy": policy})
                })
                .collect();
            serde_json::json!({
                "slots": slots,
                "rset_cpus": cpus,
                "rset_nodes": nodes,
                "memory_nodes": memory,
                "skip": skip,
                "log": null,
                "verbose": verbose,
            })
            .to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        round_trips(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        round_trips(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn configuration_shaped_text_never_panics(text in plan_json()) {
        round_trips(&text)?;
    }

    #[test]
    fn truncated_configurations_never_panic(text in plan_json(), cut in 0usize..400) {
        let cut = cut.min(text.len());
        round_trips(&text[..cut])?;
    }
}

#[test]
fn the_shaped_generator_reaches_accepted_plans() {
    // Not a vacuous property: a plan of the generator's shape is accepted.
    let text = r#"{"slots":[{"cpu":1,"node":0,"policy":"striped: 04"}],"rset_cpus":[1],
        "rset_nodes":[0,1],"memory_nodes":[0,1],"skip":[2],"log":null,"verbose":false}"#;
    let cfg = RunConfig::from_env_value(text).expect("accepted");
    assert_eq!(cfg.slots[0].policy.to_string(), "striped:4");
    round_trips(text).unwrap();
}
