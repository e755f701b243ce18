//! `twlab doctor`: what this machine offers.

pub fn report() -> String {
    String::new()
}
