//! JUnit XML of a run (`twlab run --junit FILE`), shaped like cargo-nextest's so that a CI
//! dashboard treats both alike: one `<testsuites>`, one `<testsuite>` per kernel, one
//! `<testcase>` per trial with a `<failure>` whose body is the evidence (each failed
//! expectation with its observed value), or `<skipped>` with the reason.

use std::fmt::Write;

use super::results::{RunResults, Status};

/// One suite per kernel: its name, and the results that ran there.
pub struct Suite<'a> {
    pub name: String,
    pub results: &'a RunResults,
}

/// XML text and attribute escaping (the five predefined entities; control characters other
/// than tab and newline, which XML 1.0 forbids, become U+FFFD).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document of `suites` (the report named `run_name`).
pub fn render(run_name: &str, suites: &[Suite]) -> String {
    let count = |s: &Suite, st: Status| s.results.trials.iter().filter(|t| t.status == st).count();
    let tests: usize = suites.iter().map(|s| s.results.trials.len()).sum();
    let failures: usize = suites.iter().map(|s| count(s, Status::Failed)).sum();
    let time: f64 = suites.iter().map(|s| s.results.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">",
        escape(run_name)
    );
    for s in suites {
        let _ = writeln!(
            out,
            "    <testsuite name=\"{}\" tests=\"{}\" disabled=\"{}\" errors=\"0\" failures=\"{}\" time=\"{:.3}\">",
            escape(&s.name),
            s.results.trials.len(),
            count(s, Status::Ignored) + count(s, Status::Xfail),
            count(s, Status::Failed),
            s.results.seconds
        );
        for t in &s.results.trials {
            let _ = write!(
                out,
                "        <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(&t.name),
                escape(&s.name),
                t.seconds
            );
            match t.status {
                Status::Passed => out.push_str("/>\n"),
                // JUnit has no expected failure: pytest's `<skipped type="pytest.xfail">`
                // is what CI dashboards already show, with the failures as its body.
                Status::Xfail => {
                    let _ = writeln!(
                        out,
                        ">\n            <skipped type=\"xfail\" message=\"xfail: {}\">{}</skipped>\n        </testcase>",
                        escape(t.reason.as_deref().unwrap_or("")),
                        escape(&t.xfails.join("\n"))
                    );
                }
                Status::Ignored => {
                    let _ = writeln!(
                        out,
                        ">\n            <skipped message=\"{}\"/>\n        </testcase>",
                        escape(t.reason.as_deref().unwrap_or("skipped"))
                    );
                }
                Status::Failed => {
                    let first = t.failures.first().map_or("failed", String::as_str);
                    let _ = writeln!(
                        out,
                        ">\n            <failure message=\"{}\" type=\"twlab expectation failed\">{}</failure>\n        </testcase>",
                        escape(first),
                        escape(&t.failures.join("\n"))
                    );
                }
            }
        }
        out.push_str("    </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_evidence_is_escaped() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}"
        );
    }
}
