//! The web dashboard's built files (`web/dist`, committed) are embedded in
//! the binary by `rust-embed`; a rebuild of the dashboard (new hashed file
//! names included) must recompile this crate, which a proc macro alone
//! cannot ask cargo for.
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
