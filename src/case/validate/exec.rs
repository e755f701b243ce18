//! Checks of `exec` and `stop` steps and of `program:` expectations: placeholders that name
//! something real, a working directory that exists, readiness that fits the step.

use serde_saphyr::{Location, Spanned};

use crate::case::check::{Check, OutputStream};
use crate::case::model::ExpectSpec;
use crate::case::placeholder::{self, Placeholder, Segment};
use crate::case::program::{Exec, Scalar};

use super::Ctx;
use crate::vocab::Family;

impl Ctx<'_> {
    /// One text with placeholders: syntax, and every name known.
    fn template(&mut self, text: &Spanned<Scalar>) {
        let segments = match placeholder::parse(&text.value.0) {
            Ok(s) => s,
            Err(msg) => {
                self.err(text.referenced, msg);
                return;
            }
        };
        for seg in segments {
            let Segment::Slot(p) = seg else { continue };
            match &p {
                Placeholder::Addr(ns)
                | Placeholder::Host(ns)
                | Placeholder::Ipv4(ns)
                | Placeholder::Ipv6(ns) => {
                    if self.topology.address_of(ns, Family::Ipv4).is_none() {
                        let msg = format!(
                            "unknown placeholder `{p}` in `{}`: `{ns}` is not a namespace with an address in topology `{}` (it has: {})",
                            text.value.0,
                            self.topology.name,
                            self.topology.namespaces.join(", ")
                        );
                        self.err(text.referenced, msg);
                    }
                }
                Placeholder::Bin(b) => {
                    if let Some(path) = self.given.bin(b) {
                        if !self.bins.iter().any(|(n, _)| n == b) {
                            self.bins.push((b.clone(), path));
                        }
                    } else {
                        let msg = format!(
                            "`{p}` in `{}`: no binary `{b}` was given: pass it from the harness (`Harness::new(..).bin(\"{b}\", env!(\"CARGO_BIN_EXE_{b}\"))`), or set CARGO_BIN_EXE_{b} to its path for `twlab run` (binaries given: {})",
                            text.value.0,
                            self.given.bin_names()
                        );
                        self.err(text.referenced, msg);
                    }
                }
                Placeholder::Var(v) => {
                    if self.vars.get(v).is_none() && self.given.var(v).is_none() {
                        let known: Vec<String> =
                            self.vars.iter().map(|(k, _)| k.value.clone()).collect();
                        let msg = format!(
                            "unknown placeholder `{p}` in `{}`: no `vars:` entry `{v}` (vars: {}; {})",
                            text.value.0,
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            },
                            placeholder::SYNTAX
                        );
                        self.err(text.referenced, msg);
                    }
                }
                Placeholder::Family | Placeholder::Any => {}
            }
        }
    }

    pub(super) fn exec(&mut self, e: &Exec, label: &str, at: Location) {
        self.namespace(&e.on);
        if e.argv.value.is_empty() {
            self.err(
                e.argv.referenced,
                "argv is empty: name the program and its arguments, e.g. [busybox, httpd, -f]",
            );
        }
        for arg in &e.argv.value {
            self.template(arg);
        }
        for (key, value) in e.env.iter() {
            if key.value.is_empty() || key.value.contains('=') {
                self.err(
                    key.referenced,
                    format!("`{}` is not an environment variable name", key.value),
                );
            }
            self.template(value);
        }
        if let Some(cwd) = &e.cwd {
            let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
            if !dir.join(&cwd.value).is_dir() {
                self.err(
                    cwd.referenced,
                    format!(
                        "cwd `{}` is not a directory (it is taken relative to the case file's directory, {})",
                        cwd.value,
                        dir.display()
                    ),
                );
            }
        }
        if let (true, Some(t)) = (e.background, &e.timeout) {
            self.err(t.referenced, "timeout is for foreground programs: a background program runs until a `stop` step or the end of the case");
        }
        match (&e.ready, e.background) {
            (Some(r), false) => self.err(
                r.referenced,
                "ready is for background programs (background: true); a foreground program is waited for until it exits",
            ),
            (Some(r), true) => match (r.value.listening, &r.value.output) {
                (Some(_), None) => {}
                (None, Some(text)) => self.template(text),
                _ => self.err(
                    r.referenced,
                    "ready needs exactly one of `listening: PORT` (a TCP socket listens on it in the program's namespace) and `output: TEXT` (a line of its output contains it)",
                ),
            },
            (None, _) => {}
        }
        if e.background {
            self.background.insert(label.to_string());
        }
        if !self.programs.insert(label.to_string()) && e.background {
            self.err(
                at,
                format!("another `exec` step is labelled `{label}`: give each background program its own `label:`, so `stop` and `program:` expectations name one program"),
            );
        }
    }

    pub(super) fn stop(&mut self, label: &Spanned<String>) {
        if !self.background.contains(&label.value) {
            let known: Vec<String> = self.background.iter().cloned().collect();
            self.err(
                label.referenced,
                format!(
                    "no earlier background `exec` step is labelled `{}` (background programs: {})",
                    label.value,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }

    /// A `program: LABEL` expectation: at least one of exit, signal, *_contains, duration_ms,
    /// processes.
    pub(super) fn program_expectation(
        &mut self,
        e: &ExpectSpec,
        label: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        if !self.programs.contains(&label.value) {
            let known: Vec<String> = self.programs.iter().cloned().collect();
            self.err(
                label.referenced,
                format!(
                    "no `exec` step is labelled `{}` (programs: {}; an exec step's label defaults to `exec`)",
                    label.value,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        let l = label.value.clone();
        let mut any = false;
        if let Some(c) = &e.exit {
            any = true;
            push(
                c.referenced,
                Check::ProgramExit {
                    label: l.clone(),
                    cmp: c.value,
                },
            );
        }
        if let Some(s) = &e.signal {
            any = true;
            match s.value.parse::<nix::sys::signal::Signal>() {
                Ok(sig) => push(
                    s.referenced,
                    Check::ProgramSignal {
                        label: l.clone(),
                        signal: sig.as_str().to_string(),
                    },
                ),
                Err(_) => self.err(
                    s.referenced,
                    format!(
                        "`{}` is not a signal name: write SIGTERM, SIGKILL, SIGINT...",
                        s.value
                    ),
                ),
            }
        }
        let streams = [
            (&e.stdout_contains, OutputStream::Stdout),
            (&e.stderr_contains, OutputStream::Stderr),
            (&e.output_contains, OutputStream::Either),
        ];
        for (text, stream) in streams {
            if let Some(t) = text {
                any = true;
                push(
                    t.referenced,
                    Check::ProgramOutput {
                        label: l.clone(),
                        stream,
                        text: t.value.clone(),
                    },
                );
            }
        }
        if let Some(c) = &e.duration_ms {
            any = true;
            push(
                c.referenced,
                Check::ProgramDuration {
                    label: l.clone(),
                    cmp: c.value,
                },
            );
        }
        if let Some(c) = &e.processes {
            any = true;
            push(
                c.referenced,
                Check::ProgramProcesses {
                    label: l.clone(),
                    cmp: c.value,
                },
            );
        }
        if !any {
            self.err(at, "say what to check about the program: exit, signal, stdout_contains, stderr_contains, output_contains, duration_ms or processes");
        }
    }
}
