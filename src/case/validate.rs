//! Checks that need more than the YAML's shape: names that must exist (namespaces, connections,
//! listeners, labels, samples), sysctl keys, outcome and state names, which expectation keys go
//! together. Every problem is reported, each at its own position.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::check::{Check, Expectation};
use crate::kernel::sysctl;
use crate::topology::{Topology, step_address_allowed};
use crate::vocab::is_outcome_name;
use crate::vocab::{Family, SourceError};

use super::given::LoadOptions;
use super::model::LOOPBACK;
use super::model::{CaseFile, ExpectSpec, ImpairSpec, PeerAction, Step};
use super::program::Vars;
use super::when::When;

mod exec;
mod expect;
mod sockets;
mod workload;

#[derive(Debug, Clone)]
pub struct SysctlSetting {
    pub ns: String,
    pub key: String,
    pub value: String,
    pub key_at: Location,
    pub value_at: Location,
    /// Set from a sysctl profile by `twlab rollout` (its file and line), not by the case.
    pub from_profile: Option<(std::path::PathBuf, u64)>,
    /// For a glob key (from a profile): the keys it must leave alone, which the profile sets
    /// itself or excludes with `-key`.
    pub except: Vec<String>,
}

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
    topology: &'a Topology,
    families: &'a [Family],
    errors: Vec<SourceError>,
    conns: BTreeSet<String>,
    listeners: BTreeSet<String>,
    /// Names of `bind` steps' sockets.
    sockets: BTreeSet<String>,
    labels: BTreeSet<String>,
    samples: BTreeSet<String>,
    drops: BTreeSet<String>,
    conntrack: BTreeSet<String>,
    vars: &'a Vars,
    /// Variables and binaries the harness call gave.
    given: &'a LoadOptions,
    /// The binaries `{bin.NAME}` placeholders named, found.
    bins: Vec<(String, std::path::PathBuf)>,
    /// Labels of `exec` steps, and of those that run in the background.
    programs: BTreeSet<String>,
    background: BTreeSet<String>,
    /// Labels of `workload` steps.
    workloads: BTreeSet<String>,
    /// Inside a `repeat` block.
    in_repeat: bool,
    /// Connections whose `connect` leaves the accept to an `accept` step.
    deferred: BTreeSet<String>,
}

impl Ctx<'_> {
    fn err(&mut self, at: Location, msg: impl Into<String>) {
        self.errors
            .push(SourceError::at(self.path, self.source, at, msg));
    }

    fn namespace(&mut self, ns: &Spanned<String>) {
        if !self.topology.has_namespace(&ns.value) {
            let msg = format!(
                "`{}` is not a namespace of topology `{}` (it has: {})",
                ns.value,
                self.topology.name,
                self.topology.namespaces.join(", ")
            );
            self.err(ns.referenced, msg);
        }
    }

    /// A namespace name (its own address), `any`, `loopback` (the namespace's own), or an
    /// address literal. A step with its own `family:` takes literals of any family.
    fn address(&mut self, target: &Spanned<String>, own_family: bool) {
        let v = target.value.as_str();
        if self.topology.has_namespace(v) || v == "any" || v == LOOPBACK {
            return;
        }
        match v.parse::<IpAddr>() {
            Ok(ip) if !step_address_allowed(ip) => self.err(
                target.referenced,
                format!("{ip} is outside the harness's ranges (198.18.0.0/15, fd00::/8, the namespace's own loopback 127.0.0.0/8 and ::1, and their v4-mapped forms): traffic must stay inside the case's namespaces"),
            ),
            Ok(_) if own_family => {}
            Ok(ip) => {
                let ip = ip.to_canonical();
                let family = if ip.is_ipv4() { Family::Ipv4 } else { Family::Ipv6 };
                if !self.families.contains(&family) {
                    let families: Vec<&str> = self.families.iter().map(|f| f.name()).collect();
                    self.err(
                        target.referenced,
                        format!("{ip} is an {} address but the case runs over {} only: use an address of that family, or add {} to `families:`", family.name(), families.join(" and "), family.name()),
                    );
                } else if self.families.len() > 1 {
                    self.err(
                        target.referenced,
                        format!("{ip} is an {} address but the case also runs over {}: name a namespace instead, so each family gets its own address", family.name(), self.families.iter().filter(|f| **f != family).map(|f| f.name()).collect::<Vec<_>>().join(" and ")),
                    );
                }
            }
            Err(_) => self.err(
                target.referenced,
                format!(
                    "`{v}` is neither a namespace of topology `{}` ({}) nor an IP address",
                    self.topology.name,
                    self.topology.namespaces.join(", ")
                ),
            ),
        }
    }

    fn steps(&mut self, steps: &[Spanned<Step>]) {
        for step in steps {
            let at = step.referenced;
            if let Some(label) = step.value.label() {
                self.labels.insert(label.to_string());
            }
            match &step.value {
                Step::Bind(b) => {
                    self.namespace(&b.on);
                    if let Some(a) = &b.addr {
                        self.address(a, b.family.is_some());
                    }
                    self.sockets.insert(b.name.clone());
                }
                Step::Listen(l) => {
                    self.listen(l, at);
                    self.listeners.insert(l.name.clone());
                }
                Step::Accept(a) => {
                    self.conn(&a.conn, at);
                    if !self.deferred.contains(&a.conn) {
                        self.err(at, format!("connection `{}` is accepted by its `connect` step: write `accept: false` there to leave it in the listener's queue for this step", a.conn));
                    }
                }
                Step::Sockopt(s) => self.sockopt(s, at),
                Step::CloseListener(c) => {
                    if !self.listeners.contains(&c.name) {
                        self.err(
                            at,
                            format!("no earlier `listen` step is named `{}`", c.name),
                        );
                    }
                }
                Step::Connect(c) => {
                    self.connect(c, at);
                    self.conns.insert(c.name.clone());
                    if c.accept {
                        self.deferred.remove(&c.name);
                    } else {
                        self.deferred.insert(c.name.clone());
                    }
                }
                Step::Reconnect(r) => self.conn(&r.conn, at),
                Step::Close(c) => {
                    self.conn(&c.conn, at);
                    if c.peer == PeerAction::CloseOnEof {
                        let label = step.value.label().unwrap_or("close");
                        self.labels.insert(format!("{label}.peer"));
                    }
                }
                Step::Send(s) => self.conn(&s.conn, at),
                Step::Recv(r) => self.conn(&r.conn, at),
                Step::Shutdown(s) => self.conn(&s.conn, at),
                Step::Exec(e) => self.exec(e, step.value.label().unwrap_or("exec"), at),
                Step::Stop(label) => self.stop(label),
                Step::Workload(w) => self.workload(w, step.value.label().unwrap_or("workload"), at),
                Step::Inject(i) => {
                    self.conn(&i.conn, at);
                    if i.flags.is_empty() {
                        self.err(
                            at,
                            "inject needs flags: [ack], [rst], [syn], [fin] or [psh] (or several)",
                        );
                    }
                    if let Some(p) = &i.payload
                        && p.value > super::model::MAX_INJECT_PAYLOAD
                    {
                        self.err(
                            p.referenced,
                            format!(
                                "payload: {} is more than one frame holds: an injected segment carries at most {} bytes",
                                p.value,
                                super::model::MAX_INJECT_PAYLOAD
                            ),
                        );
                    }
                }
                Step::Sample(s) => {
                    if s.label == "end" || !self.samples.insert(s.label.clone()) {
                        self.err(at, format!("sample label `{}` is taken (`end` is the sample made after the last step)", s.label));
                    }
                    if let Some(after) = &s.after {
                        if !self.labels.contains(&after.value) {
                            self.err(after.referenced, format!("no earlier step is labelled `{}`: `after` names the step that `at` counts from", after.value));
                        }
                        if s.at.is_none() {
                            self.err(
                                after.referenced,
                                "`after` says where `at` counts from: give `at` too",
                            );
                        }
                    }
                }
                Step::Sleep(_) => {}
                Step::Impair(spec) => self.impair(spec),
                Step::SetDrop(d) => {
                    if !self.drops.contains(&d.name.value) {
                        self.err(
                            d.name.referenced,
                            format!("no drop is named `{}`", d.name.value),
                        );
                    }
                }
                Step::Repeat(r) => {
                    if r.times.value == 0 {
                        self.err(r.times.referenced, "repeat needs times >= 1");
                    }
                    let outer = std::mem::replace(&mut self.in_repeat, true);
                    self.steps(&r.steps);
                    self.in_repeat = outer;
                }
            }
        }
    }

    /// A direction of a link and its impairment values.
    fn direction(&mut self, from: &Spanned<String>, to: &Spanned<String>) {
        self.namespace(from);
        self.namespace(to);
        let linked = self.topology.link_between(&from.value, &to.value).is_some();
        if !linked
            && self.topology.has_namespace(&from.value)
            && self.topology.has_namespace(&to.value)
        {
            self.err(
                to.referenced,
                format!(
                    "no link of topology `{}` joins `{}` and `{}`",
                    self.topology.name, from.value, to.value
                ),
            );
        }
    }

    fn impair(&mut self, spec: &ImpairSpec) {
        self.direction(&spec.from, &spec.to);
        for (name, v) in [
            ("loss", &spec.loss),
            ("reorder", &spec.reorder),
            ("duplicate", &spec.duplicate),
        ] {
            if let Some(v) = v
                && !(0.0..=100.0).contains(&v.value)
            {
                self.err(
                    v.referenced,
                    format!(
                        "{name} is a percentage: {} is not between 0 and 100",
                        v.value
                    ),
                );
            }
        }
        if spec.reorder.is_some() && spec.delay.is_none() {
            self.err(
                spec.from.referenced,
                "reorder needs a delay: packets are reordered by sending some without it",
            );
        }
    }

    /// The sample an expectation's `at:` names (`end` when absent), or None after an error.
    fn sample_label(&mut self, at: &Option<Spanned<String>>) -> Option<String> {
        match at {
            Some(a) if a.value != "end" && !self.samples.contains(&a.value) => {
                self.err(
                    a.referenced,
                    format!(
                        "no sample is labelled `{}` (use `end`, or a `sample:` step's label)",
                        a.value
                    ),
                );
                None
            }
            Some(a) => Some(a.value.clone()),
            None => Some("end".into()),
        }
    }

    fn conn(&mut self, name: &str, at: Location) {
        if !self.conns.contains(name) {
            self.err(at, format!("no earlier `connect` step is named `{name}` (connections are named with `name:`, default `conn`)"));
        }
    }

    fn outcome(&mut self, s: &Spanned<String>) -> Option<String> {
        if is_outcome_name(&s.value) {
            Some(s.value.clone())
        } else {
            self.err(s.referenced, format!("`{}` is not an outcome: write ok, TIMEOUT or an errno name such as EADDRNOTAVAIL", s.value));
            None
        }
    }

    fn expectation(&mut self, spec: &Spanned<ExpectSpec>, out: &mut Vec<Expectation>) {
        let at = spec.referenced;
        let e = &spec.value;
        let kinds = [
            ("result", e.result.is_some()),
            ("sockets", e.sockets.is_some()),
            ("counter", e.counter.is_some()),
            ("packets", e.packets.is_some()),
            ("dropped", e.dropped.is_some()),
            ("conntrack", e.conntrack.is_some()),
            ("kernel_log", e.kernel_log.is_some()),
            ("program", e.program.is_some()),
            ("workload", e.workload.is_some()),
        ];
        let present: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        let [kind] = present.as_slice() else {
            self.err(at, "an expectation says what it checks with exactly one of `result:` (step results), `sockets:` (socket states), `counter:` (MIB counter delta), `packets:` (packets on the wire), `dropped:` (a targeted drop's count), `conntrack:` (a namespace's conntrack table), `kernel_log:` (kernel log lines), `program:` (a program's exit and output) or `workload:` (a workload's totals and series)");
            return;
        };
        let kind = *kind;
        let when = e.when.as_ref().and_then(|w| match When::parse(&w.value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.err(w.referenced, message);
                None
            }
        });
        let mut push = |at: Location, check: Check| {
            out.push(Expectation {
                line: at.line(),
                col: at.column(),
                why: e.why.clone(),
                xfail: e.xfail.clone(),
                evidence: e.evidence,
                when: when.clone(),
                check,
            })
        };
        // Which keys go with which kind of expectation; any other key present is a mistake.
        let keys: &[(&str, bool, &[&str])] = &[
            ("attempts", e.attempts.is_some(), &["result", "workload"]),
            ("ok", e.ok.is_some(), &["result", "workload"]),
            ("errors", e.errors.is_some(), &["result", "workload"]),
            (
                "first_error",
                e.first_error.is_some(),
                &["result", "workload"],
            ),
            ("at_s", e.at_s.is_some(), &["workload"]),
            ("series", e.series.is_some(), &["workload"]),
            ("window", e.window.is_some(), &["workload"]),
            ("every", e.every.is_some(), &["workload"]),
            ("max", e.max.is_some(), &["workload"]),
            ("min", e.min.is_some(), &["workload"]),
            ("mean", e.mean.is_some(), &["workload"]),
            ("sum", e.sum.is_some(), &["workload"]),
            ("last", e.last.is_some(), &["workload"]),
            ("all", e.all.is_some(), &["result"]),
            (
                "duration_ms",
                e.duration_ms.is_some(),
                &["result", "program"],
            ),
            ("exit", e.exit.is_some(), &["program"]),
            ("signal", e.signal.is_some(), &["program"]),
            ("stdout_contains", e.stdout_contains.is_some(), &["program"]),
            ("stderr_contains", e.stderr_contains.is_some(), &["program"]),
            ("output_contains", e.output_contains.is_some(), &["program"]),
            ("processes", e.processes.is_some(), &["program"]),
            ("bytes", e.bytes.is_some(), &["result"]),
            ("value", e.value.is_some(), &["result"]),
            ("state", e.state.is_some(), &["sockets", "conntrack"]),
            ("port", e.port.is_some(), &["sockets", "packets"]),
            ("local_port", e.local_port.is_some(), &["sockets", "result"]),
            ("remote_port", e.remote_port.is_some(), &["sockets"]),
            ("at", e.at.is_some(), &["sockets", "conntrack"]),
            ("rtt_ms", e.rtt_ms.is_some(), &["sockets"]),
            ("min_rtt_ms", e.min_rtt_ms.is_some(), &["sockets"]),
            ("has_file", e.has_file.is_some(), &["sockets"]),
            ("timer", e.timer.is_some(), &["sockets"]),
            ("expires_ms", e.expires_ms.is_some(), &["sockets"]),
            ("retrans", e.retrans.is_some(), &["sockets"]),
            ("recv_q", e.recv_q.is_some(), &["sockets"]),
            ("send_q", e.send_q.is_some(), &["sockets"]),
            ("info", e.info.is_some(), &["sockets"]),
            ("options", e.options.is_some(), &["sockets", "packets"]),
            (
                "no_options",
                e.no_options.is_some(),
                &["sockets", "packets"],
            ),
            (
                "count",
                e.count.is_some(),
                &["sockets", "packets", "dropped", "conntrack", "kernel_log"],
            ),
            ("ns", e.ns.is_some(), &["counter"]),
            ("delta", e.delta.is_some(), &["counter", "conntrack"]),
            ("from", e.from.is_some(), &["packets"]),
            ("flags", e.flags.is_some(), &["packets"]),
            ("src_port", e.src_port.is_some(), &["packets"]),
            ("dst_port", e.dst_port.is_some(), &["packets"]),
            ("conn", e.conn.is_some(), &["packets"]),
            ("seq", e.seq.is_some(), &["packets"]),
            ("ack", e.ack.is_some(), &["packets"]),
            ("len", e.len.is_some(), &["packets"]),
            ("win", e.win.is_some(), &["packets"]),
            ("mss", e.mss.is_some(), &["packets"]),
            ("tsecr", e.tsecr.is_some(), &["packets"]),
            ("since", e.since.is_some(), &["packets"]),
            ("sent_ms", e.sent_ms.is_some(), &["packets"]),
            ("gap_ms", e.gap_ms.is_some(), &["packets"]),
        ];
        for &(key, present, belongs) in keys {
            if present && !belongs.contains(&kind) {
                self.err(
                    at,
                    format!(
                        "`{key}` does not belong in a `{kind}:` expectation (it goes with `{}:`)",
                        belongs.join(":`, `")
                    ),
                );
            }
        }
        if let Some(label) = &e.program {
            self.program_expectation(e, label, at, &mut push);
        }
        if let Some(label) = &e.result {
            self.result_expectation(e, label, at, &mut push);
        }
        if let Some(ns) = &e.sockets {
            self.sockets_expectation(e, ns, at, &mut push);
        }
        if let Some(kind) = &e.packets {
            self.packets_expectation(e, kind, at, &mut push);
        }
        if let Some(ns) = &e.conntrack {
            self.conntrack_expectation(e, ns, at, &mut push);
        }
        if let Some(text) = &e.kernel_log {
            self.kernel_log_expectation(e, text, at, &mut push);
        }
        if let Some(name) = &e.dropped {
            self.dropped_expectation(e, name, at, &mut push);
        }
        if let Some(name) = &e.counter {
            self.counter_expectation(e, name, at, &mut push);
        }
        if let Some(label) = &e.workload {
            self.workload_expectation(e, label, at, &mut push);
        }
    }
}

pub struct Validated {
    /// A rollout workload's roles: the namespaces a profile's keys are set in.
    pub profile_roles: Option<Vec<String>>,
    pub host_sysctls: Vec<(String, String)>,
    pub families: Vec<Family>,
    pub sysctls: Vec<SysctlSetting>,
    pub expectations: Vec<Expectation>,
    /// The binaries the case's `{bin.NAME}` placeholders name, with their paths.
    pub bins: Vec<(String, std::path::PathBuf)>,
}

pub fn validate(
    file: &CaseFile,
    path: &Path,
    source: &str,
    topology: &Topology,
    given: &LoadOptions,
) -> Result<Validated, Vec<SourceError>> {
    let mut early = Vec::new();
    let families = match &file.families {
        Some(f) if f.value.is_empty() => {
            early.push(SourceError::at(
                path,
                source,
                f.referenced,
                "families is empty: list ipv4, ipv6 or both",
            ));
            vec![Family::Ipv4]
        }
        Some(f) => f.value.clone(),
        None => vec![Family::Ipv4],
    };
    let mut ctx = Ctx {
        path,
        source,
        topology,
        families: &families,
        errors: early,
        conns: BTreeSet::new(),
        listeners: BTreeSet::new(),
        sockets: BTreeSet::new(),
        labels: BTreeSet::new(),
        samples: BTreeSet::new(),
        drops: BTreeSet::new(),
        conntrack: BTreeSet::new(),
        vars: &file.vars,
        given,
        bins: Vec::new(),
        programs: BTreeSet::new(),
        background: BTreeSet::new(),
        workloads: BTreeSet::new(),
        in_repeat: false,
        deferred: BTreeSet::new(),
    };
    let mut sysctls = Vec::new();
    for (ns, entries) in file.sysctls.iter() {
        ctx.namespace(ns);
        for (key, value) in entries.iter() {
            // A sysctl newer than this kernel: the trial is skipped with the reason, not refused.
            if let Err(issue) = sysctl::static_check(&key.value)
                && !matches!(issue, sysctl::SysctlIssue::NewerKernel { .. })
            {
                let hint = if crate::host::is_host_settable(&key.value) {
                    format!(
                        "; to change it for the whole host during this case, declare it under `host_sysctls:` ({}: VALUE)",
                        key.value
                    )
                } else {
                    String::new()
                };
                ctx.err(key.referenced, format!("{issue}{hint}"));
                continue;
            }
            sysctls.push(SysctlSetting {
                ns: ns.value.clone(),
                key: key.value.clone(),
                value: value.value.0.clone(),
                key_at: key.referenced,
                value_at: value.referenced,
                from_profile: None,
                except: Vec::new(),
            });
        }
    }
    for (name, _) in file.vars.iter() {
        let valid = !name.value.is_empty()
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid || name.value == "family" || name.value == "any" {
            ctx.err(name.referenced, format!("`{}` cannot be a var name: use letters, digits, `_` and `-` (`family` and `any` are taken by placeholders)", name.value));
        }
    }
    for spec in &file.impair {
        ctx.impair(&spec.value);
    }
    for c in &file.conntrack {
        ctx.namespace(&c.value.ns);
        ctx.conntrack.insert(c.value.ns.value.clone());
        if let Some(ifname) = &c.value.masquerade {
            let owns = topology
                .links
                .iter()
                .flat_map(|l| l.ends.iter())
                .any(|e| e.ns == c.value.ns.value && e.ifname == ifname.value);
            if !owns {
                ctx.err(
                    ifname.referenced,
                    format!("`{}` has no interface `{}`", c.value.ns.value, ifname.value),
                );
            }
        }
    }
    let mut host_sysctls = Vec::new();
    for (key, value) in file.host_sysctls.iter() {
        if !crate::host::is_host_settable(&key.value) {
            ctx.err(key.referenced, format!("`{}` cannot be changed on the host by a case: host_sysctls are only for the host-global limits twlab knows how to restore (net.netfilter.nf_conntrack_max, net.netfilter.nf_conntrack_expect_max); per-namespace sysctls go under `sysctls:`", key.value));
            continue;
        }
        host_sysctls.push((key.value.clone(), value.value.0.clone()));
    }
    for d in &file.drops {
        ctx.direction(&d.value.from, &d.value.to);
        if !ctx.drops.insert(d.value.name.value.clone()) {
            ctx.err(
                d.value.name.referenced,
                format!("drop `{}` is named twice", d.value.name.value),
            );
        }
    }
    if file.steps.is_empty() {
        ctx.err(Location::UNKNOWN, "a case needs at least one step");
    }
    ctx.steps(&file.steps);
    let mut expectations = Vec::new();
    for spec in &file.expect {
        ctx.expectation(spec, &mut expectations);
    }
    if file.expect.is_empty() {
        ctx.errors.push(SourceError::whole_file(
            path,
            "the case has no `expect:` section: a case without expectations can never fail",
        ));
    }
    // Verdicts are listed in the order the file states them.
    expectations.sort_by_key(|e| (e.line, e.col));
    let profile_roles = file.profile.as_ref().map(|p| {
        if p.value.roles.is_empty() {
            ctx.err(
                p.referenced,
                format!(
                    "`profile: roles:` is empty: name the namespaces the profile's keys are set in (topology `{}` has: {})",
                    ctx.topology.name,
                    ctx.topology.namespaces.join(", ")
                ),
            );
        }
        for role in &p.value.roles {
            ctx.namespace(role);
        }
        p.value.roles.iter().map(|r| r.value.clone()).collect()
    });
    if ctx.errors.is_empty() {
        let bins = ctx.bins;
        Ok(Validated {
            profile_roles,
            host_sysctls,
            families,
            sysctls,
            expectations,
            bins,
        })
    } else {
        Err(ctx.errors)
    }
}
