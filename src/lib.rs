//! twlab: an integration-test harness for Linux TCP connection-close behaviour.
//!
//! Each case is a YAML file. It runs in fresh network namespaces with real kernel sockets,
//! and what the kernel did (syscall results, socket states, MIB counters, packets,
//! conntrack) is checked against the case's expectations. Each case is one `cargo test`
//! result per address family.
//!
//! The public surface is small:
//! - [`Harness`] (and [`harness!`]) turns a directory of cases into the tests of a
//!   `[[test]] harness = false` target in your crate;
//! - [`cli::main`] is the `twlab` command line;
//! - [`libtest_mimic`], re-exported, for tests of your own beside the cases'
//!   ([`Harness::run_with`]).
//!
//! ```no_run
//! // tests/twlab.rs, with this in Cargo.toml:
//! //   [[test]]
//! //   name = "twlab"
//! //   harness = false
//! twlab::harness!("cases");
//! ```
//!
//! The case language is in the README and in `twlab schema`'s JSON Schema. `twlab init`
//! writes a starting point into a repository.
//!
//! Everything else is internal. twlab's own tests and benchmarks reach it through the
//! `internals` feature, which carries no stability promise; do not enable it.

// The example is a whole test file, whose `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

pub mod cli;
mod harness;

pub use harness::Harness;
pub use libtest_mimic;

/// The modules below the public surface: private, or with the `internals` feature (for
/// twlab's own integration tests and benchmarks, which are crates of their own) public and
/// hidden from the documentation.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "internals")]
            #[doc(hidden)]
            pub mod $name;
            // Without the feature, what only twlab's own tests and benchmarks use is unused
            // here. The lints judge these modules in the internals build, which clippy
            // --all-targets and every test build use.
            #[cfg(not(feature = "internals"))]
            #[allow(dead_code, unused_imports)]
            mod $name;
        )*
    };
}

internal!(
    case, expect, host, impair, init, kernel, matrix, netns, observe, plan, profile, runner,
    scenario, spawn, topology, vocab,
);
