//! The steps of a plan. They borrow the case's steps for what needs no resolving (ports,
//! flags, timeouts) and carry what was resolved (addresses for the trial's family).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::case::{
    Accept, Bind, Close, CloseListener, Connect, Exec, ImpairSpec, Inject, Listen, Reconnect,
    RecvStep, SendStep, Shutdown, Sockopt, Workload,
};

/// One step of a plan.
#[derive(Debug)]
pub enum PlanStep<'c> {
    Control(Control<'c>),
    Op(Op<'c>),
}

/// Steps that drive the engine itself: they record no result of their own.
#[derive(Debug)]
pub enum Control<'c> {
    Repeat {
        times: u32,
        until_error: bool,
        steps: Vec<PlanStep<'c>>,
    },
    Sleep(Duration),
    Impair(&'c ImpairSpec),
    SetDrop {
        name: &'c str,
        active: bool,
    },
    Stop {
        label: &'c str,
    },
    Sample {
        label: &'c str,
        /// Since the first step started, or since the latest start of the step labelled
        /// `after`.
        at: Option<Duration>,
        after: Option<&'c str>,
    },
}

/// An operation whose results are filed under `label`.
#[derive(Debug)]
pub struct Op<'c> {
    /// Source line of the step, for the evidence.
    pub line: u64,
    pub label: &'c str,
    /// The step's kind as written (`connect`, `close`...).
    pub kind_name: &'static str,
    pub kind: OpKind<'c>,
}

#[derive(Debug)]
pub enum OpKind<'c> {
    Bind {
        step: &'c Bind,
        /// The address to bind, in the socket's family.
        addr: SocketAddr,
    },
    Listen {
        step: &'c Listen,
        /// The address to bind: the namespace's own, the wildcard, or a literal; `None` when
        /// it listens on a socket a `bind` step made.
        addr: Option<SocketAddr>,
    },
    Accept(&'c Accept),
    Sockopt(&'c Sockopt),
    CloseListener(&'c CloseListener),
    Connect {
        step: &'c Connect,
        remote: SocketAddr,
        /// The client namespace's own address, for an explicit bind; `None` when it connects
        /// a socket a `bind` step made.
        local_ip: Option<IpAddr>,
    },
    Reconnect(&'c Reconnect),
    Close(&'c Close),
    Send(&'c SendStep),
    Recv(&'c RecvStep),
    Inject(&'c Inject),
    Shutdown(&'c Shutdown),
    Exec {
        step: &'c Exec,
        /// The arguments, environment values and readiness text with every placeholder
        /// filled in for this trial.
        argv: Vec<String>,
        env: Vec<(String, String)>,
        ready_output: Option<String>,
    },
    Workload(WorkloadPlan<'c>),
}

/// A workload with its namespaces and addresses resolved for the trial.
#[derive(Debug)]
pub struct WorkloadPlan<'c> {
    pub step: &'c Workload,
    pub label: &'c str,
    /// Client namespaces, one connection each in turn.
    pub clients: Vec<String>,
    /// The namespace the workload listens in: the owner of the target address.
    pub server_ns: String,
    /// One address per port: where the workload listens and where connection `i` goes
    /// (`targets[i % len]`).
    pub targets: Vec<SocketAddr>,
}
