//! Live progress of one matrix column. Each column is a `twlab run` in a child process (on
//! the host, or in a guest whose writes reach the host through the 9p share), and its
//! stderr is not a terminal, so it writes one plain line per finished trial into the
//! column's report.txt: `  pass  [ 12/135] name`. The matrix follows that file while the
//! column runs and shows the column's done/total, failures so far and the trial last
//! finished: one status line on a terminal, with each failure printed above it; elsewhere
//! each failure and a line at every quarter.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::runner::progress::{fit, terminal_width};

/// One finished trial, as the child's plain progress line says.
#[derive(Debug, PartialEq, Eq)]
pub struct Finished<'a> {
    pub failed: bool,
    pub done: usize,
    pub total: usize,
    pub name: &'a str,
}

/// `  pass  [ 12/135] name` (or FAIL, skip): a finished trial; anything else is not.
pub fn parse_line(line: &str) -> Option<Finished<'_>> {
    let rest = line.trim_start();
    let (tag, rest) = rest.split_once(char::is_whitespace)?;
    let failed = match tag {
        "FAIL" => true,
        "pass" | "skip" => false,
        _ => return None,
    };
    let rest = rest.trim_start().strip_prefix('[')?;
    let (count, name) = rest.split_once("] ")?;
    let (done, total) = count.split_once('/')?;
    Some(Finished {
        failed,
        done: done.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
        name: name.trim_end(),
    })
}

#[derive(Default)]
struct Seen {
    done: usize,
    total: usize,
    failed: usize,
    last: String,
    /// Quarters reported so far (plain output).
    quarters: usize,
}

/// Runs `work` (the column) while following `report` for its progress lines.
pub fn watched<R>(label: &str, report: &Path, work: impl FnOnce() -> R) -> R {
    let tty = std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut offset = 0u64;
            let mut partial = String::new();
            let mut seen = Seen::default();
            loop {
                let last_look = finished.load(Ordering::Acquire);
                for line in new_lines(report, &mut offset, &mut partial) {
                    if let Some(f) = parse_line(&line) {
                        seen.done = f.done;
                        seen.total = f.total;
                        seen.last = f.name.to_string();
                        if f.failed {
                            seen.failed += 1;
                            say(tty, &format!("matrix: {label}: FAIL {}", f.name));
                        }
                        let quarter = (4 * f.done).checked_div(f.total).unwrap_or(0);
                        if !tty && quarter > seen.quarters {
                            seen.quarters = quarter;
                            say(false, &status(label, &seen, started.elapsed()));
                        }
                    }
                }
                if tty {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{}", status(label, &seen, started.elapsed()));
                    let _ = err.flush();
                }
                if last_look {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            if tty {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            }
        });
        let out = work();
        finished.store(true, Ordering::Release);
        out
    })
}

fn status(label: &str, seen: &Seen, elapsed: Duration) -> String {
    let mut line = format!("matrix: {label} ");
    if seen.total == 0 {
        line += "starting";
    } else {
        line += &format!("[{}/{}]", seen.done, seen.total);
        if seen.failed > 0 {
            line += &format!(" {} failed", seen.failed);
        }
        line += &format!(" | last: {}", seen.last);
    }
    line += &format!(" ({:.0} s)", elapsed.as_secs_f64());
    fit(line, terminal_width())
}

/// A line that stays: above the status line on a terminal.
fn say(tty: bool, line: &str) {
    let mut err = std::io::stderr().lock();
    if tty {
        let _ = writeln!(err, "\r\x1b[2K{line}");
    } else {
        let _ = writeln!(err, "{line}");
    }
}

/// The whole lines written to `path` since `offset` (a file that is not there yet has none).
fn new_lines(path: &Path, offset: &mut u64, partial: &mut String) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(*offset)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    *offset += bytes.len() as u64;
    partial.push_str(&String::from_utf8_lossy(&bytes));
    let mut lines: Vec<String> = partial.split('\n').map(str::to_string).collect();
    *partial = lines.pop().unwrap_or_default();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_is_a_finished_trial_and_nothing_else_is() {
        assert_eq!(
            parse_line("  FAIL  [ 12/135] rates/x::ipv4"),
            Some(Finished {
                failed: true,
                done: 12,
                total: 135,
                name: "rates/x::ipv4"
            })
        );
        assert_eq!(
            parse_line("  pass  [3/9] seeds/a").map(|f| (f.failed, f.done)),
            Some((false, 3))
        );
        assert_eq!(parse_line("=== FAILED rates/x"), None);
        assert_eq!(
            parse_line("ok   seeds/a (...): all 5 expectations hold"),
            None
        );
        assert_eq!(parse_line("[    1.234] virtio_net: probe"), None);
    }

    #[test]
    fn lines_are_read_whole_as_the_file_grows() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("report.txt");
        let (mut offset, mut partial) = (0, String::new());
        assert!(new_lines(&path, &mut offset, &mut partial).is_empty());
        std::fs::write(&path, "  pass  [1/2] a\n  FAIL  [2/").expect("written");
        assert_eq!(
            new_lines(&path, &mut offset, &mut partial),
            ["  pass  [1/2] a"]
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"2] b\n").expect("appended");
        assert_eq!(
            new_lines(&path, &mut offset, &mut partial),
            ["  FAIL  [2/2] b"]
        );
    }
}
