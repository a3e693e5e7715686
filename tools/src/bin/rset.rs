//! `rset`: show the machine's NUMA topology, plan and bind resource sets.
fn main() {
    println!("rset: not built yet (issue 3)");
}
