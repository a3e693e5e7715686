//! A [`Policy`] on the wire: its canonical text (`float`, `local`, `remote:2`,
//! `striped:4`, ...), written with its `Display` and read with its `FromStr`, so the
//! protocol's JSON reads as the command line does. For
//! `#[serde(with = "rset_protocol::policy_text")]`.
//!
//! Text that is not a policy is a deserialization error that names it.

use std::fmt;

use alloc_policies::{Policy, PolicyError};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `policy` as its canonical text.
///
/// # Errors
/// Only the serializer's own.
pub fn serialize<S: Serializer>(policy: &Policy, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(policy)
}

/// Reads a policy from its text.
///
/// # Errors
/// Not a string, or a string that is not a policy (the message names it).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
    d.deserialize_str(PolicyVisitor)
}

/// Parses `text` as a policy; the error names the text.
///
/// # Errors
/// What [`Policy::from_str`](std::str::FromStr::from_str) refuses, with `text`.
pub fn parse(text: &str) -> Result<Policy, String> {
    text.parse::<Policy>().map_err(|e| match e {
        // Already names the input.
        PolicyError::Syntax { .. } => e.to_string(),
        other => format!("memory policy `{text}`: {other}"),
    })
}

struct PolicyVisitor;

impl Visitor<'_> for PolicyVisitor {
    type Value = Policy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a memory policy (float, local, remote:N, striped:K, ...)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Policy, E> {
        parse(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use alloc_policies::{Policy, Stride};
    use rset::{NodeId, NodeSet};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder(#[serde(with = "super")] Policy);

    fn decode(json: &str) -> Result<Policy, String> {
        serde_json::from_str::<Holder>(json)
            .map(|h| h.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_travels_as_its_text_and_back() {
        let forms = [
            (Policy::Float, "float"),
            (Policy::Local, "local"),
            (Policy::Remote, "remote"),
            (Policy::RemoteTo(NodeId(3)), "remote:3"),
            (
                Policy::Striped {
                    stride_pages: Stride::new(4).unwrap(),
                },
                "striped:4",
            ),
            (
                Policy::Bind([0, 1, 2, 5].into_iter().map(NodeId).collect::<NodeSet>()),
                "bind:0-2,5",
            ),
            (
                Policy::Interleave([1].into_iter().map(NodeId).collect::<NodeSet>()),
                "interleave:1",
            ),
        ];
        for (policy, text) in forms {
            let json = serde_json::to_string(&Holder(policy.clone())).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(decode(&json), Ok(policy));
        }
    }

    #[test]
    fn a_bad_policy_is_an_error_naming_it() {
        let e = decode("\"stripd:2\"").unwrap_err();
        assert!(e.contains("stripd:2"), "{e}");
        let e = decode("\"striped:0\"").unwrap_err();
        assert!(e.contains("striped:0") && e.contains("stride of 0"), "{e}");
        let e = decode("\"remote:x\"").unwrap_err();
        assert!(e.contains("remote:x"), "{e}");
        let e = decode("4").unwrap_err();
        assert!(e.contains("a memory policy"), "{e}");
    }
}
