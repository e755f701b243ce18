//! Every case under cases/ as a test, with this crate's server as `{bin.echo-server}`.

fn main() {
    twlab::Harness::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cases"))
        .bin("echo-server", env!("CARGO_BIN_EXE_echo-server"))
        .run()
}
