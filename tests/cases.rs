//! Every YAML file under `cases/` becomes one test per address family: the same harness a
//! user's repository calls (`twlab::harness!`, see `src/harness.rs`).

twlab::harness!("cases");
