//! The resource spec language shared by every command: `node:0-1 - cpu:3`.
//!
//! # Grammar
//!
//! ```text
//! spec    := operand (op operand)*
//! operand := "all" | "node:" LIST | "cpu:" LIST | "mem:" LIST | "(" spec ")"
//! op      := "+" (union) | "&" (intersection) | "-" (difference)
//! LIST    := numactl form, e.g. 0-3,5,8-9
//! ```
//!
//! * `all` is every CPU and every node; `node:LIST` the CPUs *and* memory of
//!   those nodes; `cpu:LIST` those CPUs and no memory; `mem:LIST` the memory of
//!   those nodes and no CPUs. See [`RSet`] for how CPU-only and memory-only
//!   results are bound.
//! * Operators apply to the CPUs and the nodes separately and are evaluated
//!   strictly left to right, with no precedence: `a + b & c` is `(a + b) & c`.
//!   Parentheses group, nested at most [`MAX_NESTING`] deep.
//! * Whitespace is ignored between tokens and inside lists (`node: 0 - 3`).
//! * Only the final result must be non-empty; intermediate results may be.
//!
//! # The `-` rule
//!
//! `-` is both the range dash of a LIST and the difference operator. Inside a
//! LIST, a `-` is a range dash when the next non-blank character is a digit;
//! any other `-` ends the LIST and is the difference operator. Outside a LIST
//! (after `all` or `)`) `-` is always the operator. So `node:0-3-node:1`,
//! `all-node:0`, `node:0-1 - cpu:1` and `(node:0+node:1)&cpu:0-2` all read as
//! meant, while `node:0-3-1` is a bad list. To subtract after a LIST, the next
//! operand necessarily starts with a letter or `(`, never a digit.

use crate::list::{self, ListError};
use crate::rset::RSet;
use crate::set::{CpuId, CpuSet, NodeId, NodeSet};
use crate::topology::Topology;

/// How deep parentheses may nest; deeper input is refused instead of
/// recursing further.
pub const MAX_NESTING: usize = 32;

const TERM: &str = "all, node:LIST, cpu:LIST, mem:LIST or `(`";
const OPERATOR: &str = "`+`, `&`, `-` or the end";
const OPERATOR_OR_CLOSE: &str = "`+`, `&`, `-` or `)`";
const LIST: &str = "a list such as 0-3,5";

/// Why a spec was refused. Each variant carries the offending token (as
/// written) and its byte offset in the spec; the message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec is empty or blank.
    #[error("empty resource spec (expected {TERM})")]
    Empty,
    /// A token that cannot stand where it is.
    #[error("unexpected `{token}` at byte {offset} (expected {expected})")]
    Unexpected {
        /// The offending token.
        token: String,
        /// Where it starts.
        offset: usize,
        /// What could have stood there.
        expected: &'static str,
    },
    /// The spec stops where more was needed.
    #[error("spec ends at byte {offset} where {expected} was expected")]
    UnexpectedEnd {
        /// The length of the spec.
        offset: usize,
        /// What was needed.
        expected: &'static str,
    },
    /// A word that is not `all`, `node`, `cpu` or `mem`.
    #[error("unknown word `{token}` at byte {offset} (expected {TERM})")]
    UnknownWord {
        /// The word.
        token: String,
        /// Where it starts.
        offset: usize,
    },
    /// A `(` without its `)`.
    #[error("`(` at byte {offset} is never closed")]
    Unclosed {
        /// Where the `(` is.
        offset: usize,
    },
    /// A `)` without its `(`.
    #[error("`)` at byte {offset} has no matching `(`")]
    Unmatched {
        /// Where the `)` is.
        offset: usize,
    },
    /// Parentheses nested deeper than [`MAX_NESTING`].
    #[error("parentheses nested deeper than {max} at byte {offset}")]
    TooDeep {
        /// Where the first `(` too many is.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// A LIST that [`list::parse_list`] refuses.
    #[error("bad {what} list `{token}` at byte {offset}: {error}")]
    BadList {
        /// The list as written.
        token: String,
        /// Where the list starts.
        offset: usize,
        /// `"node"` or `"CPU"`.
        what: &'static str,
        /// What is wrong with it.
        error: ListError,
    },
    /// A node the machine does not have.
    #[error("node {node} is not in this machine (nodes {available})")]
    UnknownNode {
        /// The offending node.
        node: NodeId,
        /// The term naming it, such as `node:0-7`.
        token: String,
        /// Where the term starts.
        offset: usize,
        /// The nodes the machine has.
        available: NodeSet,
    },
    /// A CPU the machine does not have.
    #[error("CPU {cpu} is not in this machine (CPUs {available})")]
    UnknownCpu {
        /// The offending CPU.
        cpu: CpuId,
        /// The term naming it, such as `cpu:0-99`.
        token: String,
        /// Where the term starts.
        offset: usize,
        /// The CPUs the machine has.
        available: CpuSet,
    },
    /// The whole spec yields no CPUs and no memory.
    #[error("`{token}` selects no CPUs and no memory")]
    EmptyResult {
        /// The spec, trimmed.
        token: String,
        /// Where it starts.
        offset: usize,
    },
}

impl SpecError {
    /// Byte offset of the culprit in the spec.
    pub fn offset(&self) -> usize {
        match self {
            SpecError::Empty => 0,
            SpecError::Unexpected { offset, .. }
            | SpecError::UnexpectedEnd { offset, .. }
            | SpecError::UnknownWord { offset, .. }
            | SpecError::Unclosed { offset }
            | SpecError::Unmatched { offset }
            | SpecError::TooDeep { offset, .. }
            | SpecError::BadList { offset, .. }
            | SpecError::UnknownNode { offset, .. }
            | SpecError::UnknownCpu { offset, .. }
            | SpecError::EmptyResult { offset, .. } => *offset,
        }
    }

    /// The culprit as written (empty when the spec ended early).
    pub fn token(&self) -> &str {
        match self {
            SpecError::Empty | SpecError::UnexpectedEnd { .. } => "",
            SpecError::Unclosed { .. } | SpecError::TooDeep { .. } => "(",
            SpecError::Unmatched { .. } => ")",
            SpecError::Unexpected { token, .. }
            | SpecError::UnknownWord { token, .. }
            | SpecError::BadList { token, .. }
            | SpecError::UnknownNode { token, .. }
            | SpecError::UnknownCpu { token, .. }
            | SpecError::EmptyResult { token, .. } => token,
        }
    }
}

impl RSet {
    /// Evaluates a spec such as `node:0-1 - cpu:3` (grammar in [`crate::spec`]).
    ///
    /// Lives here, beside the grammar, so that the set type does not depend on its
    /// parser.
    ///
    /// # Errors
    /// [`SpecError`] naming the offending token and its byte offset.
    pub fn parse(spec: &str, topology: &Topology) -> Result<Self, SpecError> {
        parse(spec, topology)
    }
}

/// Evaluates `spec` on `topology`; the same as [`RSet::parse`].
///
/// # Errors
/// [`SpecError`]; never panics, whatever the input.
pub fn parse(spec: &str, topology: &Topology) -> Result<RSet, SpecError> {
    let start = spec.len() - spec.trim_start().len();
    if start == spec.len() {
        return Err(SpecError::Empty);
    }
    let mut parser = Parser {
        lexer: Lexer { src: spec, pos: 0 },
        peeked: None,
        topology,
    };
    let (cpus, nodes) = parser.expr(0)?;
    if cpus.is_empty() && nodes.is_empty() {
        return Err(SpecError::EmptyResult {
            token: spec.trim().to_owned(),
            offset: start,
        });
    }
    Ok(RSet::from_checked(topology, cpus, nodes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Cpu,
    Mem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersection,
    Difference,
}

#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    All,
    Term {
        kind: Kind,
        list: &'a str,
        list_at: usize,
    },
    Op(Op),
    Open,
    Close,
    Word,
    Other,
    End,
}

/// A token, its text as written and its byte offset.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    text: &'a str,
    at: usize,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn skip_blanks(&self, mut at: usize) -> usize {
        for c in self.src[at..].chars() {
            if !c.is_whitespace() {
                break;
            }
            at += c.len_utf8();
        }
        at
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    /// End of the identifier starting at `at`.
    fn word_end(&self, at: usize) -> usize {
        let rest = &self.src.as_bytes()[at..];
        at + rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    }

    /// The text of whatever starts at `at`, for messages: a word or one char.
    fn culprit(&self, at: usize) -> &'a str {
        let end = self.word_end(at);
        if end > at {
            return &self.src[at..end];
        }
        let len = self.src[at..].chars().next().map_or(0, char::len_utf8);
        &self.src[at..at + len]
    }

    fn next(&mut self) -> Result<Token<'a>, SpecError> {
        let (src, at) = (self.src, self.skip_blanks(self.pos));
        let token = |tok, end: usize| Token {
            tok,
            text: &src[at..end],
            at,
        };
        let single = |tok| token(tok, at + 1);
        let t = match self.byte(at) {
            None => token(Tok::End, at),
            Some(b'+') => single(Tok::Op(Op::Union)),
            Some(b'&') => single(Tok::Op(Op::Intersection)),
            Some(b'-') => single(Tok::Op(Op::Difference)),
            Some(b'(') => single(Tok::Open),
            Some(b')') => single(Tok::Close),
            Some(b) if b.is_ascii_alphabetic() => {
                let end = self.word_end(at);
                let kind = match &src[at..end] {
                    "all" => None,
                    "node" => Some(Kind::Node),
                    "cpu" => Some(Kind::Cpu),
                    "mem" => Some(Kind::Mem),
                    _ => {
                        let t = token(Tok::Word, end);
                        self.pos = end;
                        return Ok(t);
                    }
                };
                match kind {
                    None => token(Tok::All, end),
                    Some(kind) => return self.term(kind, at, end),
                }
            }
            Some(_) => {
                let end = at + self.culprit(at).len();
                token(Tok::Other, end)
            }
        };
        self.pos = at + t.text.len();
        Ok(t)
    }

    /// Reads `: LIST` after the word `node`, `cpu` or `mem` (from `at` to
    /// `word_end`), applying the `-` rule of the module docs.
    fn term(&mut self, kind: Kind, at: usize, word_end: usize) -> Result<Token<'a>, SpecError> {
        let colon = self.skip_blanks(word_end);
        if self.byte(colon) != Some(b':') {
            return Err(self.missing(colon, "`:` and a list"));
        }
        let start = self.skip_blanks(colon + 1);
        let (mut end, mut i) = (start, start);
        loop {
            i = self.skip_blanks(i);
            match self.byte(i) {
                Some(b'0'..=b'9' | b',') => {}
                Some(b'-') if matches!(self.byte(self.skip_blanks(i + 1)), Some(b'0'..=b'9')) => {}
                _ => break,
            }
            i += 1;
            end = i;
        }
        if end == start {
            return Err(self.missing(start, LIST));
        }
        self.pos = end;
        Ok(Token {
            tok: Tok::Term {
                kind,
                list: &self.src[start..end],
                list_at: start,
            },
            text: &self.src[at..end],
            at,
        })
    }

    /// The error for something needed at `at` that is not there.
    fn missing(&self, at: usize, expected: &'static str) -> SpecError {
        if at >= self.src.len() {
            SpecError::UnexpectedEnd {
                offset: self.src.len(),
                expected,
            }
        } else {
            SpecError::Unexpected {
                token: self.culprit(at).to_owned(),
                offset: at,
                expected,
            }
        }
    }
}

type Value = (CpuSet, NodeSet);

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    topology: &'a Topology,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Token<'a>, SpecError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    /// `operand (op operand)*`, stopping before the end or, when nested, a `)`.
    fn expr(&mut self, depth: usize) -> Result<Value, SpecError> {
        let mut acc = self.operand(depth)?;
        loop {
            let t = self.next()?;
            let op = match t.tok {
                Tok::Op(op) => op,
                Tok::End => {
                    self.peeked = Some(t);
                    return Ok(acc);
                }
                Tok::Close if depth > 0 => {
                    self.peeked = Some(t);
                    return Ok(acc);
                }
                Tok::Close => return Err(SpecError::Unmatched { offset: t.at }),
                _ => {
                    return Err(SpecError::Unexpected {
                        token: t.text.to_owned(),
                        offset: t.at,
                        expected: if depth > 0 {
                            OPERATOR_OR_CLOSE
                        } else {
                            OPERATOR
                        },
                    });
                }
            };
            let (cpus, nodes) = self.operand(depth)?;
            acc = match op {
                Op::Union => (acc.0.union(&cpus), acc.1.union(&nodes)),
                Op::Intersection => (acc.0.intersection(&cpus), acc.1.intersection(&nodes)),
                Op::Difference => (acc.0.difference(&cpus), acc.1.difference(&nodes)),
            };
        }
    }

    fn operand(&mut self, depth: usize) -> Result<Value, SpecError> {
        let t = self.next()?;
        match t.tok {
            Tok::All => Ok((
                self.topology.cpu_ids().clone(),
                self.topology.node_ids().clone(),
            )),
            Tok::Term {
                kind,
                list,
                list_at,
            } => self.term(kind, list, list_at, t),
            Tok::Open => {
                if depth >= MAX_NESTING {
                    return Err(SpecError::TooDeep {
                        offset: t.at,
                        max: MAX_NESTING,
                    });
                }
                let inner = self.expr(depth + 1)?;
                match self.next()?.tok {
                    Tok::Close => Ok(inner),
                    _ => Err(SpecError::Unclosed { offset: t.at }),
                }
            }
            Tok::End => Err(SpecError::UnexpectedEnd {
                offset: t.at,
                expected: TERM,
            }),
            Tok::Word => Err(SpecError::UnknownWord {
                token: t.text.to_owned(),
                offset: t.at,
            }),
            Tok::Op(_) | Tok::Close | Tok::Other => Err(SpecError::Unexpected {
                token: t.text.to_owned(),
                offset: t.at,
                expected: TERM,
            }),
        }
    }

    /// The value of `node:LIST`, `cpu:LIST` or `mem:LIST`. Reads the list one
    /// item at a time and checks each id at once, so a huge range of unknown ids
    /// fails early instead of filling memory.
    fn term(
        &self,
        kind: Kind,
        list: &str,
        list_at: usize,
        t: Token<'_>,
    ) -> Result<Value, SpecError> {
        let topo = self.topology;
        let bad_list = |error| SpecError::BadList {
            token: list.to_owned(),
            offset: list_at,
            what: if kind == Kind::Cpu { "CPU" } else { "node" },
            error,
        };
        let mut ids = Vec::new();
        for item in list.split(',') {
            if item.trim().is_empty() {
                return Err(bad_list(ListError::EmptyItem {
                    list: list.to_owned(),
                }));
            }
            for id in list::parse_list(item).map_err(bad_list)? {
                let known = match kind {
                    Kind::Cpu => topo.pu(CpuId(id)).is_some(),
                    Kind::Node | Kind::Mem => topo.node(NodeId(id)).is_some(),
                };
                if !known {
                    return Err(unknown(kind, id, t, topo));
                }
                ids.push(id);
            }
        }
        Ok(match kind {
            Kind::Cpu => (ids.into_iter().map(CpuId).collect(), NodeSet::new()),
            Kind::Mem => (CpuSet::new(), ids.into_iter().map(NodeId).collect()),
            Kind::Node => {
                let nodes = ids.into_iter().map(NodeId).collect();
                (topo.cpus_of_nodes(&nodes), nodes)
            }
        })
    }
}

fn unknown(kind: Kind, id: u32, t: Token<'_>, topo: &Topology) -> SpecError {
    let (token, offset) = (t.text.to_owned(), t.at);
    match kind {
        Kind::Cpu => SpecError::UnknownCpu {
            cpu: CpuId(id),
            token,
            offset,
            available: topo.cpu_ids().clone(),
        },
        Kind::Node | Kind::Mem => SpecError::UnknownNode {
            node: NodeId(id),
            token,
            offset,
            available: topo.node_ids().clone(),
        },
    }
}
