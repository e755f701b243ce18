//! Compiling a validated case's steps for one trial.

use std::net::{IpAddr, SocketAddr};

use serde_saphyr::Spanned;

use crate::case::{Placeholder, Step, fill_placeholders, parse_placeholders};
use crate::topology::Topology;
use crate::vocab::Family;

use super::step::{Control, Op, OpKind, PlanStep};

/// A step that cannot run in this trial. Validation refuses these at load time; this error
/// is what a case built another way (a library user's) meets instead of a panic.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("line {line}: {message}")]
    Placeholder { line: u64, message: String },
    #[error("line {line}: `{target}` has no {family} address in topology `{topology}`")]
    NoAddress {
        line: u64,
        target: String,
        family: &'static str,
        topology: String,
    },
}

struct Compiler<'c> {
    topology: &'c Topology,
    family: Family,
    vars: &'c [(String, String)],
}

impl Compiler<'_> {
    /// `any`, a namespace (its address in the trial's family) or an address literal.
    fn resolve(&self, target: &str, line: u64) -> Result<IpAddr, PlanError> {
        let resolved = match target {
            "any" => Some(match self.family {
                Family::Ipv4 => IpAddr::from([0u8; 4]),
                Family::Ipv6 => IpAddr::from([0u16; 8]),
            }),
            ns if self.topology.has_namespace(ns) => self.topology.address_of(ns, self.family),
            literal => literal.parse().ok(),
        };
        resolved.ok_or_else(|| PlanError::NoAddress {
            line,
            target: target.to_string(),
            family: self.family.name(),
            topology: self.topology.name.clone(),
        })
    }

    /// A template with its placeholders filled in for this trial.
    fn fill(&self, template: &str, line: u64) -> Result<String, PlanError> {
        let segments = parse_placeholders(template)
            .map_err(|message| PlanError::Placeholder { line, message })?;
        let addr = |ns: &str, family: Family| {
            self.topology
                .address_of(ns, family)
                .map(|a| a.to_string())
                .unwrap_or_default()
        };
        Ok(fill_placeholders(&segments, |p| match p {
            Placeholder::Addr(ns) => addr(ns, self.family),
            Placeholder::Host(ns) => match self.family {
                Family::Ipv4 => addr(ns, Family::Ipv4),
                Family::Ipv6 => format!("[{}]", addr(ns, Family::Ipv6)),
            },
            Placeholder::Ipv4(ns) => addr(ns, Family::Ipv4),
            Placeholder::Ipv6(ns) => addr(ns, Family::Ipv6),
            Placeholder::Family => self.family.name().to_string(),
            Placeholder::Any => match self.family {
                Family::Ipv4 => "0.0.0.0".into(),
                Family::Ipv6 => "::".into(),
            },
            Placeholder::Var(v) => self
                .vars
                .iter()
                .find(|(k, _)| k == v)
                .map(|(_, value)| value.clone())
                .unwrap_or_default(),
        }))
    }

    fn steps<'c>(&self, steps: &'c [Spanned<Step>]) -> Result<Vec<PlanStep<'c>>, PlanError> {
        steps.iter().map(|s| self.step(s)).collect()
    }

    fn step<'c>(&self, spanned: &'c Spanned<Step>) -> Result<PlanStep<'c>, PlanError> {
        let line = spanned.referenced.line();
        let step = &spanned.value;
        let control = |c| Ok(PlanStep::Control(c));
        let kind = match step {
            Step::Repeat(r) => {
                return control(Control::Repeat {
                    times: r.times.value,
                    until_error: r.until_error,
                    steps: self.steps(&r.steps)?,
                });
            }
            Step::Sleep(d) => return control(Control::Sleep(d.0)),
            Step::Impair(spec) => return control(Control::Impair(spec)),
            Step::SetDrop(d) => {
                return control(Control::SetDrop {
                    name: &d.name.value,
                    active: d.active,
                });
            }
            Step::Stop(label) => {
                return control(Control::Stop {
                    label: &label.value,
                });
            }
            Step::Sample(s) => {
                return control(Control::Sample {
                    label: &s.label,
                    at: s.at.map(|d| d.0),
                });
            }
            Step::Listen(l) => {
                let target = l.addr.as_ref().map_or(&l.on.value, |a| &a.value);
                OpKind::Listen {
                    step: l,
                    addr: SocketAddr::new(self.resolve(target, line)?, l.port),
                }
            }
            Step::Connect(c) => OpKind::Connect {
                step: c,
                remote: SocketAddr::new(self.resolve(&c.to.value, line)?, c.port),
                local_ip: self.resolve(&c.from.value, line)?,
            },
            Step::CloseListener(c) => OpKind::CloseListener(c),
            Step::Reconnect(r) => OpKind::Reconnect(r),
            Step::Close(c) => OpKind::Close(c),
            Step::Send(s) => OpKind::Send(s),
            Step::Recv(r) => OpKind::Recv(r),
            Step::Inject(i) => OpKind::Inject(i),
            Step::Shutdown(s) => OpKind::Shutdown(s),
            Step::Exec(e) => OpKind::Exec {
                step: e,
                argv: e
                    .argv
                    .value
                    .iter()
                    .map(|a| self.fill(&a.value.0, line))
                    .collect::<Result<_, _>>()?,
                env: e
                    .env
                    .iter()
                    .map(|(k, v)| Ok((k.value.clone(), self.fill(&v.value.0, line)?)))
                    .collect::<Result<_, PlanError>>()?,
                ready_output: match e.ready.as_ref().and_then(|r| r.value.output.as_ref()) {
                    Some(o) => Some(self.fill(&o.value.0, line)?),
                    None => None,
                },
            },
        };
        Ok(PlanStep::Op(Op {
            line,
            label: step.label().unwrap_or(step.kind()),
            kind_name: step.kind(),
            kind,
        }))
    }
}

/// The steps of a validated case, compiled for a trial over `family` in `topology`.
pub fn compile<'c>(
    steps: &'c [Spanned<Step>],
    topology: &Topology,
    family: Family,
    vars: &[(String, String)],
) -> Result<Vec<PlanStep<'c>>, PlanError> {
    Compiler {
        topology,
        family,
        vars,
    }
    .steps(steps)
}
