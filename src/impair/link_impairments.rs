//! A case's impairments on its lab: per direction of a link, through netem or the substitute,
//! plus its targeted drops; changed by steps; counters for expectations; a log of what was
//! applied through which backend, for the report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::case::{DropSpec, ImpairSpec};
use crate::netns::link::LinkError;
use crate::netns::{Lab, NetnsError};
use crate::topology::Topology;

use super::delay_line::{DelayLine, DelayLineError, DelaySpec, Hook};
use super::nft::{self, DropRule, NftError};
use super::offload::segmentation_off;
use super::qdisc::{NetemParams, Qdisc, root_drops, set_root};

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum ResolvedBackend {
    Netem,
    Substitute,
}

impl ResolvedBackend {
    /// The name `when: backend ...` conditions and the kernel-matrix table use.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("failed to set a qdisc: {0}")]
    Qdisc(#[from] LinkError),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error("failed to start the delay line: {0}")]
    DelayLine(#[from] DelayLineError),
    #[error("failed to turn segmentation offloads off on `{ifname}` in `{ns}`: {errno}")]
    Offload {
        ns: String,
        ifname: String,
        errno: nix::errno::Errno,
    },
    #[error("no link joins `{0}` and `{1}`")]
    NoLink(String, String),
}

struct DirState {
    from: String,
    to: String,
    /// The sender's end: delay and rate act on its egress.
    ifname: String,
    /// The receiver's end: loss acts on its ingress, where a drop is invisible to the sender.
    peer_ifname: String,
    /// (chain, counter) of the nftables loss chain, once created.
    loss: Option<(String, String)>,
    /// netem drops at random on the sender's egress; its qdisc counts them.
    netem_loss: bool,
    delay: Option<DelayLine>,
    rate: bool,
}

struct DropState {
    name: String,
    ns: String,
    ifname: String,
    spec: DropSpec,
    chain: String,
    counter: String,
}

pub struct LinkImpairments {
    backend: ResolvedBackend,
    dirs: Vec<DirState>,
    drops: Vec<DropState>,
    tables: BTreeSet<String>,
    offloads_off: BTreeSet<(String, String)>,
    next_queue: u16,
    /// What was applied, through which backend: for the report.
    pub log: Vec<String>,
    /// The NFLOG group the substitute's drops also log each packet to (the report's ladder
    /// marks them); `None`: not logged.
    pub log_drops: Option<u16>,
}

fn egress(topology: &Topology, from: &str, to: &str) -> Result<(String, String), ImpairError> {
    topology
        .link_between(from, to)
        .map(|(a, b)| (a.ifname.clone(), b.ifname.clone()))
        .ok_or_else(|| ImpairError::NoLink(from.into(), to.into()))
}

fn describe(spec: &ImpairSpec) -> String {
    let mut parts = Vec::new();
    if let Some(d) = spec.delay {
        parts.push(format!("delay {d}"));
    }
    if let Some(j) = spec.jitter {
        parts.push(format!("jitter {j}"));
    }
    if let Some(l) = &spec.loss {
        parts.push(format!("loss {}%", l.value));
    }
    if let Some(r) = &spec.rate {
        parts.push(format!("rate {} bit/s", r.value.0));
    }
    if let Some(r) = &spec.reorder {
        parts.push(format!("reorder {}%", r.value));
    }
    if let Some(d) = &spec.duplicate {
        parts.push(format!("duplicate {}%", d.value));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

impl LinkImpairments {
    pub fn new(backend: ResolvedBackend, why: &str) -> Self {
        LinkImpairments {
            backend,
            dirs: Vec::new(),
            drops: Vec::new(),
            tables: BTreeSet::new(),
            offloads_off: BTreeSet::new(),
            next_queue: 1,
            log_drops: None,
            log: vec![format!(
                "backend: {} ({why})",
                match backend {
                    ResolvedBackend::Netem => "netem",
                    ResolvedBackend::Substitute =>
                        "substitute: nftables loss, NFQUEUE delay line, tbf rate",
                }
            )],
        }
    }

    fn ensure_table(&mut self, lab: &Lab, ns: &str) -> Result<(), ImpairError> {
        if self.tables.insert(ns.to_string()) {
            lab.ns(ns).run(|| nft::run(&nft::table()))??;
        }
        Ok(())
    }

    /// Per-segment loss and drops need segments, not 64 KB super-packets: offloads off on both
    /// ends of the link.
    fn segments(
        &mut self,
        lab: &Lab,
        topology: &Topology,
        from: &str,
        to: &str,
    ) -> Result<(), ImpairError> {
        let (mine, theirs) = egress(topology, from, to)?;
        for (ns, ifname) in [(from.to_string(), mine), (to.to_string(), theirs)] {
            if self.offloads_off.insert((ns.clone(), ifname.clone())) {
                let name = ifname.clone();
                lab.ns(&ns)
                    .run(move || segmentation_off(&name))?
                    .map_err(|errno| ImpairError::Offload {
                        ns: ns.clone(),
                        ifname,
                        errno,
                    })?;
            }
        }
        Ok(())
    }

    /// Set one direction's impairment (replacing what it had).
    pub fn apply(
        &mut self,
        lab: &Lab,
        topology: &Topology,
        spec: &ImpairSpec,
    ) -> Result<(), ImpairError> {
        let (from, to) = (spec.from.value.clone(), spec.to.value.clone());
        let (ifname, peer_ifname) = egress(topology, &from, &to)?;
        if spec.loss.is_some() {
            self.segments(lab, topology, &from, &to)?;
        }
        let idx = match self.dirs.iter().position(|d| d.from == from && d.to == to) {
            Some(i) => i,
            None => {
                self.dirs.push(DirState {
                    from: from.clone(),
                    to: to.clone(),
                    ifname: ifname.clone(),
                    peer_ifname,
                    loss: None,
                    netem_loss: false,
                    delay: None,
                    rate: false,
                });
                self.dirs.len() - 1
            }
        };
        match self.backend {
            ResolvedBackend::Netem => {
                let params = NetemParams {
                    delay: spec.delay.map(|d| d.0).unwrap_or_default(),
                    jitter: spec.jitter.map(|d| d.0).unwrap_or_default(),
                    loss_pct: spec.loss.as_ref().map(|l| l.value).unwrap_or(0.0),
                    rate_bps: spec.rate.as_ref().map(|r| r.value.0).unwrap_or(0),
                    reorder_pct: spec.reorder.as_ref().map(|r| r.value).unwrap_or(0.0),
                    duplicate_pct: spec.duplicate.as_ref().map(|r| r.value).unwrap_or(0.0),
                };
                let name = ifname.clone();
                lab.ns(&from)
                    .run(move || set_root(&name, Qdisc::Netem(params)))??;
                self.dirs[idx].netem_loss |= params.loss_pct > 0.0;
            }
            ResolvedBackend::Substitute => self.apply_substitute(lab, idx, spec)?,
        }
        self.log
            .push(format!("{from} -> {to} ({ifname}): {}", describe(spec)));
        Ok(())
    }

    fn apply_substitute(
        &mut self,
        lab: &Lab,
        idx: usize,
        spec: &ImpairSpec,
    ) -> Result<(), ImpairError> {
        let (from, ifname) = (self.dirs[idx].from.clone(), self.dirs[idx].ifname.clone());
        // Delay: the NFQUEUE delay line on the receiver's ingress, started the first time a delay
        // is asked for. Held at the sender's egress, a packet would still be charged to its
        // socket and TCP Small Queues would throttle bulk transfers (measured: 0.3 MB/s against
        // 62.9 MB/s at 20 ms each way); netem avoids that with skb_orphan_partial, userspace
        // cannot.
        let delay = DelaySpec {
            delay: spec.delay.map(|d| d.0).unwrap_or(Duration::ZERO),
            jitter: spec.jitter.map(|d| d.0).unwrap_or(Duration::ZERO),
        };
        let wants_delay = !delay.delay.is_zero() || !delay.jitter.is_zero();
        match &self.dirs[idx].delay {
            Some(line) => line.set(delay),
            None if wants_delay => {
                let queue = self.next_queue;
                self.next_queue += 1;
                let (to, peer_ifname) = (&self.dirs[idx].to, &self.dirs[idx].peer_ifname);
                self.dirs[idx].delay = Some(DelayLine::start_at(
                    lab.ns(to),
                    peer_ifname,
                    Hook::Ingress,
                    queue,
                    delay,
                )?);
            }
            None => {}
        }
        // Loss: nftables `numgen random` on the receiver's ingress, in the direction's own chain.
        let pct = spec.loss.as_ref().map(|l| l.value).unwrap_or(0.0);
        if pct > 0.0 || self.dirs[idx].loss.is_some() {
            let (to, peer_ifname) = (
                self.dirs[idx].to.clone(),
                self.dirs[idx].peer_ifname.clone(),
            );
            self.ensure_table(lab, &to)?;
            let mut rules = String::new();
            if self.dirs[idx].loss.is_none() {
                let chain = format!("loss_{idx}");
                let counter = format!("loss_{idx}_packets");
                rules += &nft::loss_chain(&chain, &counter, &peer_ifname);
                self.dirs[idx].loss = Some((chain, counter));
            }
            let (chain, counter) = self.dirs[idx].loss.clone().expect("set above");
            rules += &nft::loss_rules(&chain, &counter, pct, self.log_drops);
            lab.ns(&to).run(move || nft::run(&rules))??;
        }
        // Rate: tbf. Once set, "no rate" is a tbf at the highest rate it can express.
        let rate = spec.rate.as_ref().map(|r| r.value.0);
        if rate.is_some() || self.dirs[idx].rate {
            self.dirs[idx].rate = true;
            let rate_bps = rate.unwrap_or(u64::from(u32::MAX) * 8);
            lab.ns(&from)
                .run(move || set_root(&ifname, Qdisc::Tbf { rate_bps }))??;
        }
        Ok(())
    }

    /// Install the case's targeted drops (active ones drop from now on).
    pub fn install_drops(
        &mut self,
        lab: &Lab,
        topology: &Topology,
        drops: &[DropSpec],
    ) -> Result<(), ImpairError> {
        for (i, spec) in drops.iter().enumerate() {
            let (from, to) = (spec.from.value.clone(), spec.to.value.clone());
            // Dropped on arrival in `to`, where the sender cannot see it (see nft.rs).
            let (_, peer_ifname) = egress(topology, &from, &to)?;
            self.segments(lab, topology, &from, &to)?;
            self.ensure_table(lab, &to)?;
            let state = DropState {
                name: spec.name.value.clone(),
                ns: to.clone(),
                ifname: peer_ifname,
                spec: spec.clone(),
                chain: format!("drop_{i}"),
                counter: format!("drop_{i}_packets"),
            };
            let rule = state.rule(self.log_drops);
            let rules = nft::drop_chain(&rule) + &nft::drop_rules(&rule, spec.active);
            lab.ns(&to).run(move || nft::run(&rules))??;
            self.log.push(format!(
                "drop `{}`: {:?} packets {from} -> {to}{}{}{}",
                state.name,
                spec.packet,
                spec.first
                    .map(|n| format!(", the first {n}"))
                    .unwrap_or_default(),
                spec.port.map(|p| format!(", port {p}")).unwrap_or_default(),
                if spec.active {
                    ""
                } else {
                    " (inactive at start)"
                }
            ));
            self.drops.push(state);
        }
        Ok(())
    }

    pub fn set_drop(&mut self, lab: &Lab, name: &str, active: bool) -> Result<(), ImpairError> {
        if let Some(d) = self.drops.iter().find(|d| d.name == name) {
            let rules = nft::drop_rules(&d.rule(self.log_drops), active);
            lab.ns(&d.ns).run(move || nft::run(&rules))??;
        }
        Ok(())
    }

    /// Packets dropped so far: by drop name, and `loss:FROM->TO` for random loss.
    pub fn counters(&self, lab: &Lab) -> Result<BTreeMap<String, u64>, ImpairError> {
        let mut out = BTreeMap::new();
        for d in &self.drops {
            let counter = d.counter.clone();
            out.insert(
                d.name.clone(),
                lab.ns(&d.ns)
                    .run(move || nft::counter_packets(&counter))??,
            );
        }
        for d in &self.dirs {
            if let Some((_, counter)) = &d.loss {
                let counter = counter.clone();
                out.insert(
                    format!("loss:{}->{}", d.from, d.to),
                    lab.ns(&d.to)
                        .run(move || nft::counter_packets(&counter))??,
                );
            }
            // The same name under netem, so a case's `dropped: loss:A->B` holds on both.
            if d.netem_loss {
                let ifname = d.ifname.clone();
                out.insert(
                    format!("loss:{}->{}", d.from, d.to),
                    lab.ns(&d.from).run(move || root_drops(&ifname))??,
                );
            }
        }
        Ok(out)
    }

    /// Stop the delay lines (before the lab goes) and add their statistics to the log.
    pub fn finish(mut self) -> Vec<String> {
        for d in &mut self.dirs {
            if let Some(line) = d.delay.take() {
                let s = line.stop();
                self.log.push(format!(
                    "delay line {} -> {}: {} packets held, hold p50 {:.1} ms, p99 {:.1} ms, late p99 {:.2} ms, {}",
                    d.from,
                    d.to,
                    s.packets,
                    s.hold_p50.as_secs_f64() * 1e3,
                    s.hold_p99.as_secs_f64() * 1e3,
                    s.late_p99.as_secs_f64() * 1e3,
                    s.scheduling
                ));
            }
        }
        self.log
    }
}

impl DropState {
    fn rule(&self, log: Option<u16>) -> DropRule<'_> {
        DropRule {
            log,
            chain: &self.chain,
            counter: &self.counter,
            ifname: &self.ifname,
            packet: self.spec.packet,
            first: self.spec.first,
            port: self.spec.port,
        }
    }
}
