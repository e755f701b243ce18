//! Tests that need network namespaces: run them where twlab can create namespaces; elsewhere
//! skip with the reason, except under TWLAB_STRICT (privileged CI), where a skip is a failure.

/// True when the test can run; otherwise prints why it is skipped (or panics under strict).
pub fn namespaces_or_skip() -> bool {
    match twlab::runner::namespaces_available() {
        Ok(()) => true,
        Err(reason) => {
            assert!(
                !twlab::runner::strict(),
                "TWLAB_STRICT is set and this test would be skipped: {reason}"
            );
            eprintln!("skipped: {reason}");
            false
        }
    }
}
