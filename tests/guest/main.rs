//! Tests that run inside the emulated NUMA guests booted by `cargo xtask test`
//! (2 nodes x 2 CPUs, 4 nodes x 2 CPUs, 2 nodes + 1 CPU-less node). On a one-node
//! host they fail by design: there is no node 3 to bind to.

mod placement;
mod topology;
