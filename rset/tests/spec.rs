//! The spec language: what each form selects, every error message, and that no
//! input makes the parser panic or recurse without bound.

use proptest::prelude::*;
use rset::spec::{MAX_NESTING, SpecError};
use rset::{RSet, Topology};

/// 4 nodes of 2 cores x 1 PU: node `n` has CPUs `2n` and `2n + 1`.
fn topo() -> Topology {
    Topology::from_synthetic("pack:2 numa:2 core:2 pu:1").unwrap()
}

/// `(cpus, nodes)` of a spec, in list form.
fn eval(spec: &str) -> (String, String) {
    let rset = RSet::parse(spec, &topo()).unwrap_or_else(|e| panic!("{spec}: {e}"));
    (rset.cpus().to_string(), rset.nodes().to_string())
}

fn err(spec: &str) -> SpecError {
    RSet::parse(spec, &topo()).unwrap_err()
}

fn pair(cpus: &str, nodes: &str) -> (String, String) {
    (cpus.to_owned(), nodes.to_owned())
}

#[test]
fn terms() {
    assert_eq!(eval("all"), pair("0-7", "0-3"));
    assert_eq!(eval("node:1,3"), pair("2-3,6-7", "1,3"));
    assert_eq!(eval("cpu:0-2"), pair("0-2", ""));
    assert_eq!(eval("mem:2"), pair("", "2"));
}

#[test]
fn dash_is_a_range_inside_lists_and_difference_after_terms() {
    assert_eq!(eval("node:0-3-node:1"), pair("0-1,4-7", "0,2-3"));
    assert_eq!(eval("all-node:0"), pair("2-7", "1-3"));
    assert_eq!(eval("node:0-1 - cpu:1"), pair("0,2-3", "0-1"));
    assert_eq!(eval("node:0-1-(cpu:1)"), pair("0,2-3", "0-1"));
    assert_eq!(eval("(node:0+node:1)&cpu:0-2"), pair("0-2", ""));
    assert_eq!(eval("(all)-node:3"), pair("0-5", "0-2"));
    assert_eq!(eval("cpu:1-3,5 -mem:0"), pair("1-3,5", ""));
}

#[test]
fn operators_go_strictly_left_to_right() {
    // (node:0 + node:1) & node:1, not node:0 + (node:1 & node:1).
    assert_eq!(eval("node:0 + node:1 & node:1"), pair("2-3", "1"));
    assert_eq!(eval("node:0 + (node:1 & node:1)"), pair("0-3", "0-1"));
    // (all - node:0) - node:1, and an empty intermediate result is fine.
    assert_eq!(eval("all - node:0 - node:1"), pair("4-7", "2-3"));
    assert_eq!(eval("node:0 & node:1 + mem:3"), pair("", "3"));
}

#[test]
fn whitespace_is_ignored() {
    assert_eq!(
        eval("  node : 0 - 1 , 3\t-\ncpu: 7 "),
        pair("0-3,6", "0-1,3")
    );
    assert_eq!(eval("( all )&( mem:1 )"), pair("", "1"));
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let spec = format!("{}all{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert_eq!(eval(&spec), pair("0-7", "0-3"));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = MAX_NESTING + 1;
    let spec = format!("{}all{}", "(".repeat(deep), ")".repeat(deep));
    assert_eq!(
        err(&spec),
        SpecError::TooDeep {
            offset: MAX_NESTING,
            max: MAX_NESTING
        }
    );
    assert_eq!(
        err(&spec).to_string(),
        format!("parentheses nested deeper than {MAX_NESTING} at byte {MAX_NESTING}")
    );
    let huge = "(".repeat(1_000_000);
    assert!(matches!(err(&huge), SpecError::TooDeep { .. }));
}

#[test]
fn long_chains_are_evaluated_without_recursion() {
    let spec = format!("all{}", " - cpu:0 + cpu:0".repeat(50_000));
    assert_eq!(eval(&spec), pair("0-7", "0-3"));
}

/// Asserts the message, and that offset and token point at the culprit.
fn check(spec: &str, message: &str, offset: usize, token: &str) {
    let e = err(spec);
    assert_eq!(e.to_string(), message, "{spec}");
    assert_eq!(e.offset(), offset, "{spec}");
    assert_eq!(e.token(), token, "{spec}");
    assert!(!message.contains('\n'));
}

#[test]
fn message_unknown_node() {
    check(
        "node:7",
        "node 7 is not in this machine (nodes 0-3)",
        0,
        "node:7",
    );
    check(
        "all - mem:2-9",
        "node 4 is not in this machine (nodes 0-3)",
        6,
        "mem:2-9",
    );
}

#[test]
fn message_unknown_cpu() {
    check(
        "node:0 + cpu:3,99",
        "CPU 99 is not in this machine (CPUs 0-7)",
        9,
        "cpu:3,99",
    );
}

#[test]
fn message_huge_range_fails_fast() {
    check(
        "cpu:0-1048576",
        "CPU 8 is not in this machine (CPUs 0-7)",
        0,
        "cpu:0-1048576",
    );
}

#[test]
fn message_empty_result() {
    check(
        " node:0 & node:1 ",
        "`node:0 & node:1` selects no CPUs and no memory",
        1,
        "node:0 & node:1",
    );
    check(
        "cpu:1 - cpu:1",
        "`cpu:1 - cpu:1` selects no CPUs and no memory",
        0,
        "cpu:1 - cpu:1",
    );
}

#[test]
fn message_empty_input() {
    let expected = "empty resource spec (expected all, node:LIST, cpu:LIST, mem:LIST or `(`)";
    check("", expected, 0, "");
    check(" \t\n", expected, 0, "");
}

#[test]
fn message_unexpected_token() {
    let term = "(expected all, node:LIST, cpu:LIST, mem:LIST or `(`)";
    check(
        "node:0 * node:1",
        "unexpected `*` at byte 7 (expected `+`, `&`, `-` or the end)",
        7,
        "*",
    );
    check(
        "node:0 node:1",
        "unexpected `node:1` at byte 7 (expected `+`, `&`, `-` or the end)",
        7,
        "node:1",
    );
    check(
        "(node:0 all)",
        "unexpected `all` at byte 8 (expected `+`, `&`, `-` or `)`)",
        8,
        "all",
    );
    check(
        "+node:0",
        &format!("unexpected `+` at byte 0 {term}"),
        0,
        "+",
    );
    check(
        "node:1--node:2",
        &format!("unexpected `-` at byte 7 {term}"),
        7,
        "-",
    );
    check("()", &format!("unexpected `)` at byte 1 {term}"), 1, ")");
    check("0-3", &format!("unexpected `0` at byte 0 {term}"), 0, "0");
    check(
        "all + é",
        &format!("unexpected `é` at byte 6 {term}"),
        6,
        "é",
    );
    check(
        "node 1",
        "unexpected `1` at byte 5 (expected `:` and a list)",
        5,
        "1",
    );
    check(
        "cpu:x",
        "unexpected `x` at byte 4 (expected a list such as 0-3,5)",
        4,
        "x",
    );
    check(
        "mem:-cpu:1",
        "unexpected `-` at byte 4 (expected a list such as 0-3,5)",
        4,
        "-",
    );
}

#[test]
fn message_unexpected_end() {
    let term = "all, node:LIST, cpu:LIST, mem:LIST or `(`";
    check(
        "node:0 +",
        &format!("spec ends at byte 8 where {term} was expected"),
        8,
        "",
    );
    check(
        "node:",
        "spec ends at byte 5 where a list such as 0-3,5 was expected",
        5,
        "",
    );
    check(
        "cpu",
        "spec ends at byte 3 where `:` and a list was expected",
        3,
        "",
    );
}

#[test]
fn message_unknown_word() {
    check(
        "all - nodes:1",
        "unknown word `nodes` at byte 6 (expected all, node:LIST, cpu:LIST, mem:LIST or `(`)",
        6,
        "nodes",
    );
}

#[test]
fn message_unbalanced_parens() {
    check("(node:0 + (cpu:1)", "`(` at byte 0 is never closed", 0, "(");
    check("node:0)", "`)` at byte 6 has no matching `(`", 6, ")");
    check("(node:0))", "`)` at byte 8 has no matching `(`", 8, ")");
}

#[test]
fn message_bad_list() {
    check(
        "node:3-1",
        "bad node list `3-1` at byte 5: range `3-1` runs backwards",
        5,
        "3-1",
    );
    check(
        "cpu:1,,2",
        "bad CPU list `1,,2` at byte 4: empty item in list `1,,2`",
        4,
        "1,,2",
    );
    check(
        "cpu:0-3-1",
        "bad CPU list `0-3-1` at byte 4: `0-3-1` is not a number or a range LOW-HIGH",
        4,
        "0-3-1",
    );
    check(
        "mem:1 2",
        "bad node list `1 2` at byte 4: `1 2` is not a number or a range LOW-HIGH",
        4,
        "1 2",
    );
    check(
        "cpu:99999999999",
        "bad CPU list `99999999999` at byte 4: `99999999999` is not a number or a range LOW-HIGH",
        4,
        "99999999999",
    );
}

proptest! {
    #[test]
    fn never_panics_on_any_string(spec in ".{0,64}") {
        let _ = RSet::parse(&spec, &topo());
    }

    #[test]
    fn never_panics_on_spec_like_strings(spec in "[ a-z:0-9,+&()\\-]{0,48}") {
        if let Err(e) = RSet::parse(&spec, &topo()) {
            // Offsets point inside the spec, at a char boundary.
            prop_assert!(e.offset() <= spec.len());
            prop_assert!(spec.is_char_boundary(e.offset()));
            prop_assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn never_panics_on_term_soup(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("all"), Just("node:"), Just("cpu:"), Just("mem:"), Just("0"),
                Just("3"), Just("9"), Just("-"), Just(","), Just("+"), Just("&"),
                Just("("), Just(")"), Just(" "),
            ],
            0..40,
        )
    ) {
        let spec = parts.concat();
        if let Ok(rset) = RSet::parse(&spec, &topo()) {
            prop_assert!(!rset.is_empty());
            // Display gives a spec that reads back the same.
            prop_assert_eq!(RSet::parse(&rset.to_string(), &topo()).unwrap(), rset);
        }
    }
}
