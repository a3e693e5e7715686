//! Memory placement policies of the IBM ccNUMA paper (Float, Local, Remote,
//! Striped with a stride of k pages) over resource sets.
//!
//! Not built yet: this crate is the subject of issue 4. It exists so that the
//! workspace layout is fixed from the start.
#![deny(missing_docs)]
