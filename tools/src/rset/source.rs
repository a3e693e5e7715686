//! Which machine a subcommand reads: `--topology` (the running system, an hwloc
//! synthetic description, or an XML export).

use ::rset::Topology;
use clap::Args;

use crate::cli::Failure;

#[derive(Args)]
pub(super) struct TopologyArg {
    /// Plan for another machine: `synthetic:DESC` (hwloc synthetic, e.g.
    /// `synthetic:pack:2 numa:2 core:4 pu:2`) or `xml:FILE` (from `lstopo foo.xml`).
    #[arg(long, value_name = "SOURCE", default_value = "system")]
    topology: String,
}

impl TopologyArg {
    /// The running system.
    pub(super) fn system() -> TopologyArg {
        TopologyArg {
            topology: "system".into(),
        }
    }

    /// The topology it names.
    pub(super) fn load(&self) -> Result<Topology, Failure> {
        Topology::from_source(&self.topology).map_err(Failure::usage)
    }
}
