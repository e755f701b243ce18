//! Compiling a validated case's steps for one trial.

use std::net::{IpAddr, SocketAddr};

use serde_saphyr::Spanned;

use crate::case::{LOOPBACK, Placeholder, Step, fill_placeholders, parse_placeholders};
use crate::topology::Topology;
use crate::vocab::{Family, SocketFamily};

use super::step::{Control, Op, OpKind, PlanStep, WorkloadPlan};

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
    #[error("line {line}: a `{step}` needs {needs}")]
    Incomplete {
        line: u64,
        step: &'static str,
        needs: &'static str,
    },
    #[error(
        "line {line}: no namespace of topology `{topology}` owns {addr}, so nothing can listen on it"
    )]
    NoOwner {
        line: u64,
        addr: IpAddr,
        topology: String,
    },
}

struct Compiler<'c> {
    topology: &'c Topology,
    family: Family,
    vars: &'c [(String, String)],
}

impl Compiler<'_> {
    /// `any`, `loopback`, a namespace (its address) or an address literal, in the family of
    /// the step's socket: its own `family:`, else the trial's.
    fn resolve(
        &self,
        target: &str,
        line: u64,
        family: Option<&Spanned<SocketFamily>>,
    ) -> Result<IpAddr, PlanError> {
        let family = family.map_or(
            match self.family {
                Family::Ipv4 => SocketFamily::Ipv4,
                Family::Ipv6 => SocketFamily::Ipv6,
            },
            |f| f.value,
        );
        let v4 = |a: [u8; 4]| IpAddr::from(a);
        let mapped = |ip: IpAddr| match ip {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            v6 => v6,
        };
        let resolved = match (target, family) {
            ("any", SocketFamily::Ipv4) => Some(v4([0; 4])),
            ("any", _) => Some(IpAddr::from([0u16; 8])),
            (LOOPBACK, SocketFamily::Ipv4) => Some(v4([127, 0, 0, 1])),
            (LOOPBACK, SocketFamily::Ipv6) => Some(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16])),
            (LOOPBACK, SocketFamily::Mapped) => Some(mapped(v4([127, 0, 0, 1]))),
            (ns, f) if self.topology.has_namespace(ns) => match f {
                SocketFamily::Ipv4 => self.topology.address_of(ns, Family::Ipv4),
                SocketFamily::Ipv6 => self.topology.address_of(ns, Family::Ipv6),
                SocketFamily::Mapped => self.topology.address_of(ns, Family::Ipv4).map(mapped),
            },
            (literal, _) => literal.parse().ok(),
        };
        resolved.ok_or_else(|| PlanError::NoAddress {
            line,
            target: target.to_string(),
            family: family.name(),
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
            // Resolved when the case loaded (`Case::vars` holds them as `bin.NAME`).
            Placeholder::Bin(b) => self
                .vars
                .iter()
                .find(|(k, _)| k.strip_prefix("bin.") == Some(b))
                .map(|(_, value)| value.clone())
                .unwrap_or_default(),
        }))
    }

    fn workload<'c>(
        &self,
        w: &'c crate::case::Workload,
        label: &'c str,
        line: u64,
    ) -> Result<WorkloadPlan<'c>, PlanError> {
        let ip = self.resolve(&w.to.value, line, None)?;
        let server_ns = match self.topology.owner_of(ip) {
            Some(ns) => ns.to_string(),
            None => {
                return Err(PlanError::NoOwner {
                    line,
                    addr: ip,
                    topology: self.topology.name.clone(),
                });
            }
        };
        Ok(WorkloadPlan {
            step: w,
            label,
            clients: w.from.value.names().iter().map(|s| s.to_string()).collect(),
            server_ns,
            targets: (0..w.ports.value)
                .map(|k| SocketAddr::new(ip, w.port + k))
                .collect(),
        })
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
                    after: s.after.as_ref().map(|a| a.value.as_str()),
                });
            }
            Step::Bind(b) => {
                let target = b.addr.as_ref().unwrap_or(&b.on);
                OpKind::Bind {
                    step: b,
                    addr: SocketAddr::new(
                        self.resolve(&target.value, line, b.family.as_ref())?,
                        b.port,
                    ),
                }
            }
            Step::Listen(l) => {
                let addr = match (&l.on, l.port) {
                    (Some(on), Some(port)) => {
                        let target = l.addr.as_ref().unwrap_or(on);
                        Some(SocketAddr::new(
                            self.resolve(&target.value, line, l.family.as_ref())?,
                            port,
                        ))
                    }
                    _ if l.socket.is_some() => None,
                    _ => {
                        return Err(PlanError::Incomplete {
                            line,
                            step: "listen",
                            needs: "`on:` and `port:`, or `socket:`",
                        });
                    }
                };
                OpKind::Listen { step: l, addr }
            }
            Step::Connect(c) => OpKind::Connect {
                step: c,
                remote: SocketAddr::new(
                    self.resolve(&c.to.value, line, c.family.as_ref())?,
                    c.port,
                ),
                local_ip: match (&c.from, &c.socket) {
                    (Some(from), _) => Some(self.resolve(&from.value, line, c.family.as_ref())?),
                    (None, Some(_)) => None,
                    (None, None) => {
                        return Err(PlanError::Incomplete {
                            line,
                            step: "connect",
                            needs: "`from:` or `socket:`",
                        });
                    }
                },
            },
            Step::Accept(a) => OpKind::Accept(a),
            Step::Sockopt(s) => OpKind::Sockopt(s),
            Step::CloseListener(c) => OpKind::CloseListener(c),
            Step::Reconnect(r) => OpKind::Reconnect(r),
            Step::Close(c) => OpKind::Close(c),
            Step::Send(s) => OpKind::Send(s),
            Step::Recv(r) => OpKind::Recv(r),
            Step::Inject(i) => OpKind::Inject(i),
            Step::Shutdown(s) => OpKind::Shutdown(s),
            Step::Workload(w) => {
                OpKind::Workload(self.workload(w, step.label().unwrap_or(step.kind()), line)?)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Case, load_case_source};

    const CASE: &str = "name: n
description: d
topology: pair
families: [ipv4, ipv6]
vars:
  port: 8080
steps:
  - listen: {on: server, port: 8080}
  - listen: {on: server, addr: any, port: 8081, name: wild}
  - repeat:
      times: 2
      steps:
        - connect: {from: client, to: server, port: 8080}
        - sleep: 10ms
  - exec: {on: client, argv: [curl, \"http://{server.host}:{port}/\", \"{family}\"], label: get}
expect:
  - result: listen
    all: ok
";

    fn case() -> Case {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
        load_case_source(&root, &root.join("plan.yaml"), CASE.into()).unwrap()
    }

    fn ops<'a>(steps: &'a [PlanStep<'a>], out: &mut Vec<&'a Op<'a>>) {
        for s in steps {
            match s {
                PlanStep::Op(op) => out.push(op),
                PlanStep::Control(Control::Repeat { steps, .. }) => ops(steps, out),
                PlanStep::Control(_) => {}
            }
        }
    }

    #[test]
    fn addresses_and_placeholders_are_resolved_for_the_family() {
        let case = case();
        for (family, listen, wild, remote, local, argv) in [
            (
                Family::Ipv4,
                "198.18.0.2:8080",
                "0.0.0.0:8081",
                "198.18.0.2:8080",
                "198.18.0.1",
                "http://198.18.0.2:8080/ ipv4",
            ),
            (
                Family::Ipv6,
                "[fd00::2]:8080",
                "[::]:8081",
                "[fd00::2]:8080",
                "fd00::1",
                "http://[fd00::2]:8080/ ipv6",
            ),
        ] {
            let plan = compile(&case.steps, &case.topology, family, &case.vars).unwrap();
            let mut found = Vec::new();
            ops(&plan, &mut found);
            let text: Vec<String> = found
                .iter()
                .map(|op| match &op.kind {
                    OpKind::Listen { addr, .. } => addr.unwrap().to_string(),
                    OpKind::Connect {
                        remote, local_ip, ..
                    } => format!("{remote} from {}", local_ip.unwrap()),
                    OpKind::Exec { argv, .. } => argv[1..].join(" "),
                    _ => String::new(),
                })
                .collect();
            assert_eq!(
                text,
                [
                    listen.to_string(),
                    wild.to_string(),
                    format!("{remote} from {local}"),
                    argv.to_string()
                ],
                "{family:?}"
            );
            let labels: Vec<&str> = found.iter().map(|op| op.label).collect();
            assert_eq!(labels, ["listen", "listen", "connect", "get"]);
        }
    }

    #[test]
    fn control_steps_stay_apart_from_operations() {
        let case = case();
        let plan = compile(&case.steps, &case.topology, Family::Ipv4, &case.vars).unwrap();
        let PlanStep::Control(Control::Repeat { times, steps, .. }) = &plan[2] else {
            panic!("the repeat is a control step: {:?}", plan[2]);
        };
        assert_eq!(*times, 2);
        assert!(matches!(steps[0], PlanStep::Op(_)));
        assert!(matches!(
            steps[1],
            PlanStep::Control(Control::Sleep(d)) if d == std::time::Duration::from_millis(10)
        ));
    }

    #[test]
    fn a_target_without_an_address_is_an_error_not_a_panic() {
        let case = case();
        let mut topology = case.topology.clone();
        topology.links.clear();
        let err = compile(&case.steps, &topology, Family::Ipv4, &case.vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 8: `server` has no ipv4 address in topology `pair`"
        );
    }
}
