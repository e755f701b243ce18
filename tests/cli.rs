//! The command line as a user's shell meets it.

/// `twlab list | head -1`: once the reader has gone, twlab ends as a program killed by
/// SIGPIPE would (status 141), without a panic. The pipe's read end is closed before twlab
/// starts, so its first write fails whatever the timing.
#[test]
fn a_reader_that_goes_away_ends_the_command_without_a_panic() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twlab"))
        .arg("list")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .output()
        .expect("twlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
