//! The Opium remote-access monitor of the IBM ccNUMA paper, in software.
//!
//! Not built yet: this crate is the subject of issue 5. It exists so that the
//! workspace layout is fixed from the start.
#![deny(missing_docs)]
