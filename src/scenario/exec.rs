//! The engine's `exec` and `stop` steps: programs started in a namespace with the arguments
//! the plan filled in, and readiness waited for, never slept for.

use std::time::{Duration, Instant};

use netlink_packet_sock_diag::inet::StateFlags;

use crate::case::{Exec, Ready, default_exec_timeout};

use super::engine::{Engine, EngineError, NotReady};
use super::outcome::StepRecord;
use super::program::{self, Exit, ProgramRun, ProgramSpec, Running};
use crate::vocab::Outcome;

/// What the plan filled in for one `exec` step.
pub(super) struct Filled {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ready_output: Option<String>,
}

/// Lines of output quoted in a readiness error.
const TAIL_LINES: usize = 5;

impl Engine<'_> {
    /// `argv`, `env` and `ready_output` come from the plan, placeholders filled in.
    pub(super) fn exec(
        &mut self,
        e: &Exec,
        filled: Filled,
        line: u64,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let spec = ProgramSpec {
            label: rec.label.clone(),
            ns: e.on.value.clone(),
            line,
            argv: filled.argv,
            env: filled.env,
            cwd: match &e.cwd {
                Some(dir) => self.case_dir.join(&dir.value),
                None => self.case_dir.clone(),
            },
            grace: e.grace.0,
            background: e.background,
        };
        rec.detail = format!("in {}: {}", spec.ns, spec.command_line());
        let ns = spec.ns.clone();
        let mut running = match self.lab.ns(&ns).run(move || program::spawn(spec))? {
            Ok(r) => r,
            Err(err) => {
                rec.outcome = match err.errno() {
                    Some(errno) => Outcome::Errno(errno),
                    None => Outcome::Skipped(err.to_string()),
                };
                rec.detail = err.to_string();
                return Ok(());
            }
        };
        if e.background {
            if let Some(ready) = &e.ready {
                let running = self.wait_ready(running, &ready.value, filled.ready_output)?;
                self.running.push(running);
            } else {
                self.running.push(running);
            }
            return Ok(());
        }
        let timeout = e
            .timeout
            .as_ref()
            .map_or(default_exec_timeout(), |t| t.value.0);
        let run = if running.wait_exit(Instant::now() + timeout) {
            running.finish(None)
        } else {
            running.stop("timeout")
        };
        rec.outcome = match (&run.stopped_by, &run.exit) {
            (Some(_), _) => Outcome::Timeout,
            (None, Exit::Code(0)) => Outcome::Ok,
            (None, Exit::Code(c)) => Outcome::Exit(*c),
            (None, Exit::Signal(s)) => Outcome::Signal(s.clone()),
        };
        rec.detail += &format!(": {}", run.exit);
        self.program_runs.push(run);
        Ok(())
    }

    /// Waits until the program is ready; an error naming what never happened otherwise.
    fn wait_ready(
        &self,
        mut running: Running,
        ready: &Ready,
        text: Option<String>,
    ) -> Result<Running, EngineError> {
        let deadline = Instant::now() + ready.timeout.0;
        let what = match (ready.listening, &text) {
            (Some(port), _) => format!(
                "no TCP socket listened on port {port} in `{}`",
                running.spec.ns
            ),
            (None, Some(t)) => format!("no output line contained {t:?}"),
            (None, None) => return Ok(running),
        };
        loop {
            let ready_now = match (ready.listening, &text) {
                (Some(port), _) => self.listening(&running.spec.ns, port)?,
                (None, Some(t)) => running.output_contains(t),
                (None, None) => true,
            };
            if ready_now {
                return Ok(running);
            }
            let exited = running.exited();
            if exited || Instant::now() >= deadline {
                let (label, command, ns) = (
                    running.spec.label.clone(),
                    running.spec.command_line(),
                    running.spec.ns.clone(),
                );
                let run = if exited {
                    running.finish(None)
                } else {
                    running.stop("not ready")
                };
                return Err(EngineError::NotReady(Box::new(NotReady {
                    label,
                    command,
                    ns,
                    what,
                    timeout: ready.timeout.0,
                    exited: if exited {
                        format!("; it ended first, with {}", run.exit)
                    } else {
                        String::new()
                    },
                    tail: output_tail(&run),
                })));
            }
            match ready.listening {
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
                None => running.wait_output(Duration::from_millis(20)),
            }
        }
    }

    fn listening(&self, ns: &str, port: u16) -> Result<bool, EngineError> {
        let Some(diag) = self.diag.get(ns) else {
            return Ok(false);
        };
        Ok(diag
            .dump(StateFlags::LISTEN)?
            .iter()
            .any(|r| r.local.port() == port))
    }

    /// Stops the running programs with this label (all of them with `None`), the most
    /// recently started first, so clients go before the servers they talk to.
    pub(super) fn stop_programs(&mut self, label: Option<&str>, why: &'static str) {
        let (stop, keep): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| label.is_none_or(|l| r.spec.label == l));
        self.running = keep;
        for r in stop.into_iter().rev() {
            self.program_runs.push(r.stop(why));
        }
    }

    /// At the end of the case, after the last observation: every program still running is
    /// stopped (SIGTERM, SIGKILL after its grace period).
    pub fn stop_all_programs(&mut self) {
        self.stop_programs(None, "case end");
    }
}

fn output_tail(run: &ProgramRun) -> String {
    let mut out = String::new();
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        let lines = ProgramRun::tail(text, TAIL_LINES);
        if !lines.is_empty() {
            out += &format!("\n  {name}, last lines:");
            for l in lines {
                out += &format!("\n    {l}");
            }
        }
    }
    out
}
