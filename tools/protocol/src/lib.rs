//! The protocol between the rset tools and `librset_preload.so`.
//!
//! `rset-run` and `rset-mon record` start an unmodified program with the library
//! preloaded and tell it what to do through the environment: a [`RunConfig`] in
//! [`RUN_ENV`] (the placement plan: one [`Slot`] per thread, each a CPU, its node
//! and a memory [`Policy`](alloc_policies::Policy)) and a [`MonConfig`] in
//! [`MON_ENV`], both as JSON. The library appends [`Record`] lines to the run's log,
//! which `rset-run --report` reads back.
//!
//! Both sides use the same types: the tools encode with
//! [`RunConfig::to_env_value`], the library decodes with
//! [`RunConfig::from_env_value`], which also checks the plan
//! ([`RunConfig::check`]; what it refuses is a [`ProtocolError`]). A memory policy
//! travels as its canonical text (`float`, `local`, `remote:2`, `striped:4`; see
//! [`policy_text`]).
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod env;
mod error;
mod mon;
pub mod policy_text;
mod record;
mod run;

pub use env::{LIBRARY, MON_ENV, PASSIVE_SYMBOL, RUN_ENV};
pub use error::ProtocolError;
pub use mon::MonConfig;
pub use record::{PolicyPages, Record};
pub use run::{RunConfig, Slot};
