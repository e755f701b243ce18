//! The case file as written: serde structs with `deny_unknown_fields`, so a misspelt key is an
//! error at its position rather than a silently ignored option. Positions are kept (`Spanned`)
//! wherever a later check may need to point back at the source.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::check::TsecrRule;
use super::entries::Entries;
use super::inject::{SeqNumber, TsNumber};
use super::program::{Exec, Vars};
use super::sockopt::{OptionName, SocketOptions};
use super::workload::Workload;
use crate::vocab::{
    CaseDuration, Comparison, Family, FlagSet, PortRange, Rate, Role, SocketFamily,
};

/// A twlab case: a topology, what the kernel is set to, the steps run on real sockets, and
/// what the kernel must have done. Namespaces, labels and sysctl keys are checked when the
/// case loads (`twlab check`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Short human title shown in reports.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The question the case answers, in a paragraph.
    pub description: String,
    /// For claim cases: the tuning claim in plain words and the verdict the expectations encode.
    #[serde(default)]
    #[schemars(with = "Option<ClaimSpec>")]
    pub claim: Option<Spanned<ClaimSpec>>,
    /// The case waits out real timers (minutes): skipped unless slow cases are asked for.
    #[serde(default)]
    pub slow: bool,
    /// The whole case is known to fail, and why (a kernel bug being tracked): a failure is
    /// reported as xfail and passes; every expectation holding is XPASS, an error, so the
    /// mark goes once the cause is fixed. For one expectation, put `xfail:` on it instead.
    #[serde(default)]
    pub xfail: Option<String>,
    /// A rollout workload: `twlab rollout` runs it once with this kernel's defaults and once
    /// with a sysctl profile's per-namespace keys set in these namespaces.
    #[serde(default)]
    #[schemars(with = "Option<ProfileUse>")]
    pub profile: Option<Spanned<ProfileUse>>,
    /// A topology under `namespaces/` (`pair`, ...).
    #[schemars(with = "String")]
    pub topology: Spanned<String>,
    /// Address families to run the case over; one trial each. Default: `[ipv4]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Family>>")]
    pub families: Option<Spanned<Vec<Family>>>,
    /// Per-namespace sysctls, applied inside the case's namespaces before any step runs.
    #[serde(default)]
    #[schemars(with = "Entries<Entries<SysctlValue>>")]
    pub sysctls: Entries<Entries<Spanned<SysctlValue>>>,
    /// Link impairments per direction, from the first step on (steps may change them).
    #[serde(default)]
    #[schemars(with = "Vec<ImpairSpec>")]
    pub impair: Vec<Spanned<ImpairSpec>>,
    /// Which impairment backend to use: `auto` (netem where the kernel has it, else the
    /// substitute), `netem` or `substitute`.
    #[serde(default)]
    #[schemars(with = "Option<Backend>")]
    pub backend: Option<Spanned<Backend>>,
    /// Kernel parts the case cannot run without (`netem`); missing ones make it ignored.
    #[serde(default)]
    #[schemars(with = "Vec<Requirement>")]
    pub requires: Vec<Spanned<Requirement>>,
    /// Namespaces whose connections conntrack follows (a `ct state` rule attaches it), with
    /// optional masquerading of what leaves through an interface.
    #[serde(default)]
    #[schemars(with = "Vec<ConntrackSpec>")]
    pub conntrack: Vec<Spanned<ConntrackSpec>>,
    /// For cases that document refused input: the loader must refuse this file with an error
    /// containing this text (the trial passes only then).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub expect_invalid: Option<Spanned<String>>,
    /// Host-global sysctls (the host's own value, shared by every namespace), applied through
    /// the guarded host path and restored after the case; such cases run one at a time.
    #[serde(default)]
    #[schemars(with = "Entries<SysctlValue>")]
    pub host_sysctls: Entries<Spanned<SysctlValue>>,
    /// Targeted drops of chosen packets, in the case's own nftables table.
    #[serde(default)]
    #[schemars(with = "Vec<DropSpec>")]
    pub drops: Vec<Spanned<DropSpec>>,
    /// Values `exec` arguments refer to as `{NAME}` (a port, a request count...).
    #[serde(default)]
    #[schemars(with = "Entries<super::program::Scalar>")]
    pub vars: Vars,
    /// What the case does, in order: sockets, programs, impairment changes, samples.
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
    /// What the kernel must have done: each expectation names one thing observed (`result`, `sockets`, `counter`, `packets`, `conntrack`, `kernel_log`, `dropped`, `program`, `workload`) and the comparison it must meet.
    #[serde(default)]
    #[schemars(with = "Vec<ExpectSpec>")]
    pub expect: Vec<Spanned<ExpectSpec>>,
}

/// How a rollout workload takes a profile: the namespaces its keys are set in (the roles a
/// deployment would change; `twlab rollout --roles` overrides them).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUse {
    /// The namespaces the profile's keys are set in.
    #[schemars(with = "Vec<String>")]
    pub roles: Vec<Spanned<String>>,
}

/// A claim people make about TCP close behaviour, with the verdict the case's expectations
/// encode on the kernel where they were observed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    /// The claim, as people state it.
    pub says: String,
    /// Where such claims come from.
    pub source: String,
    /// What the kernel said of the claim: `holds`, `refuted` or `depends`.
    pub verdict: Verdict,
    /// For `depends`: on what.
    #[serde(default)]
    pub on: Option<String>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    JsonSchema,
    serde::Serialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Verdict {
    Holds,
    Refuted,
    Depends,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConntrackSpec {
    /// The namespace whose connections conntrack follows.
    #[schemars(with = "String")]
    pub ns: Spanned<String>,
    /// Masquerade (source NAT to the interface's address) what leaves through this interface.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub masquerade: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Auto,
    Netem,
    Substitute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    Netem,
}

/// Impairment of one direction of a link: packets leaving `from` towards `to`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpairSpec {
    /// The namespace packets leave.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// The namespace they go to (the link between the two).
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// Added to every packet of this direction.
    #[serde(default)]
    pub delay: Option<CaseDuration>,
    /// Random variation of the delay (with `delay`).
    #[serde(default)]
    pub jitter: Option<CaseDuration>,
    /// Percent of packets lost, 0 to 100 (fractions allowed).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub loss: Option<Spanned<f64>>,
    /// `10mbit`, `512kbit`, `1gbit`.
    #[serde(default)]
    #[schemars(with = "Option<Rate>")]
    pub rate: Option<Spanned<Rate>>,
    /// Percent of packets sent at once instead of delayed (netem only).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub reorder: Option<Spanned<f64>>,
    /// Percent of packets duplicated (netem only).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub duplicate: Option<Spanned<f64>>,
}

/// Which packets a targeted drop takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropPacket {
    Syn,
    SynAck,
    Fin,
    Rst,
    /// ACK without SYN, FIN, RST or PSH and without payload.
    Ack,
    /// The ACK that answers the peer's FIN after this side sent its own FIN first: the final
    /// ACK of a close (tracked per connection with a conntrack mark).
    FinalAck,
    Any,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropSpec {
    /// Name for `set_drop` steps and `dropped:` expectations.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Packets leaving `from` towards `to` are dropped.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// The namespace they go to.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// Which packets: syn, syn_ack, fin, rst, ack, final_ack or any.
    pub packet: DropPacket,
    /// Only the first N matching packets.
    #[serde(default)]
    pub first: Option<u32>,
    /// Only packets with this TCP port at either end.
    #[serde(default)]
    pub port: Option<u16>,
    /// Whether the drop starts active (steps can switch it).
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

/// A sysctl value as the kernel reads it: integers and strings ("40000 40009") alike end up as
/// the text written to /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlValue(pub String);

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string such as \"40000 40009\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<SysctlValue, E> {
                Err(E::custom(format!(
                    "`{v}` is not a sysctl value: the kernel takes numbers, write {}",
                    u8::from(v)
                )))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for SysctlValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SysctlValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["integer", "string"],
            "description": "The value written to /proc/sys: a whole number, or text such as \"40000 40009\"; not true/false (write 1 or 0).",
            "examples": [1, 0, "40000 40009"],
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// A socket bound to an address and port, for a later `listen` or `connect` to use.
    Bind(Bind),
    /// A listening socket in a namespace (or on a socket a `bind` step made).
    Listen(Listen),
    /// accept() a connection a `connect` step left in the listener's queue (`accept: false`).
    Accept(Accept),
    /// Set or read socket options on an open socket.
    Sockopt(Sockopt),
    /// Close a listener (a `listen` step's `name`, default `main`).
    CloseListener(CloseListener),
    /// A client connection to a listener (accepted at once unless `accept: false`).
    Connect(Connect),
    /// A new connection on an earlier connection's 4-tuple (same ports, same options).
    Reconnect(Reconnect),
    /// Close a connection: who closes first, how, and what the peer does.
    Close(Close),
    /// Send bytes on one side of a connection.
    Send(SendStep),
    /// Read bytes on one side of a connection.
    Recv(RecvStep),
    /// Wait this long (`sleep: 2s`).
    Sleep(CaseDuration),
    /// Take a sample of sockets and conntrack entries, for expectations' `at:`.
    Sample(Sample),
    /// Run steps several times; every run's results are filed under the steps' labels.
    Repeat(Repeat),
    /// Change one direction's impairment from now on (replaces what was set for it).
    Impair(Box<ImpairSpec>),
    /// Switch a targeted drop on or off.
    SetDrop(SetDrop),
    /// Send one stray TCP segment into a connection's 4-tuple from a raw socket.
    Inject(Inject),
    /// shutdown() on one side of a connection (SHUT_WR by default: its FIN goes out, the
    /// socket stays open).
    Shutdown(Shutdown),
    /// Run a real program inside a namespace.
    Exec(Box<Exec>),
    /// Stop a background program started by an `exec` step with this label.
    Stop(#[schemars(with = "String")] Spanned<String>),
    /// Many connections at a rate or a concurrency, kept as aggregates and series.
    Workload(Box<Workload>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// The connection (a `connect` step's `name`).
    #[serde(default = "default_conn")]
    pub conn: String,
    /// The side that calls shutdown().
    pub by: Role,
    /// Which directions: `wr` (default), `rd` or `rdwr`.
    #[serde(default = "default_shutdown_how")]
    pub how: ShutdownHow,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

/// Which directions shutdown() closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ShutdownHow {
    /// SHUT_RD: no more reading; nothing is sent.
    Rd,
    /// SHUT_WR: the FIN goes out; reading goes on.
    Wr,
    /// SHUT_RDWR: both.
    Rdwr,
}

fn default_shutdown_how() -> ShutdownHow {
    ShutdownHow::Wr
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bind {
    /// Namespace the socket is created in.
    #[schemars(with = "String")]
    pub on: Spanned<String>,
    /// `any`, `loopback`, a namespace (its address) or a literal; default: the namespace's own
    /// address.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub addr: Option<Spanned<String>>,
    /// 0: the kernel picks an ephemeral port at bind().
    #[serde(default)]
    pub port: u16,
    /// The socket's family when it is not the trial's (`ipv4`, `ipv6`, `mapped`).
    #[serde(default)]
    #[schemars(with = "Option<SocketFamily>")]
    pub family: Option<Spanned<SocketFamily>>,
    #[serde(default)]
    #[schemars(with = "Option<SocketOptions>")]
    pub options: Option<Spanned<SocketOptions>>,
    /// SO_BINDTODEVICE.
    #[serde(default)]
    pub device: Option<String>,
    /// Name of the socket, for a later `listen`, `connect` or `sockopt` (`socket: NAME`).
    #[serde(default = "default_socket")]
    pub name: String,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

fn default_socket() -> String {
    "sock".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The connection whose server side to accept.
    #[serde(default = "default_conn")]
    pub conn: String,
    /// How long to wait for the connection in the accept queue.
    #[serde(default = "default_connect_timeout")]
    pub timeout: CaseDuration,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

/// Which open socket a `sockopt` step works on: exactly one of `conn` (with `by`), `socket`
/// or `listener`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sockopt {
    /// A connection's socket (with `by`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub conn: Option<Spanned<String>>,
    /// Which side of `conn`.
    #[serde(default)]
    pub by: Option<Role>,
    /// A socket a `bind` step made.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub socket: Option<Spanned<String>>,
    /// A listener (a `listen` step's `name`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub listener: Option<Spanned<String>>,
    /// Options to set, in order; each is read back after it is set.
    #[serde(default)]
    #[schemars(with = "Option<SocketOptions>")]
    pub set: Option<Spanned<SocketOptions>>,
    /// An option to read without setting it.
    #[serde(default)]
    #[schemars(with = "Option<OptionName>")]
    pub get: Option<Spanned<OptionName>>,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InjectFlag {
    Syn,
    Ack,
    Fin,
    Rst,
    Psh,
}

/// Payload bytes an injected segment may carry: it must fit one frame on the harness's links
/// (MTU 1500, with IPv6's 40-byte header and 60 bytes of TCP header and options).
pub const MAX_INJECT_PAYLOAD: u16 = 1400;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// The connection whose 4-tuple the segment uses.
    #[serde(default = "default_conn")]
    pub conn: String,
    /// The side the segment pretends to come from (sent from its namespace and address).
    pub by: Role,
    /// The TCP flags the segment carries.
    pub flags: Vec<InjectFlag>,
    /// A number, or relative to the receiver's state as captured: `rcv_nxt`, `snd_nxt`, with
    /// `+N`/`-N`.
    #[serde(default)]
    pub seq: SeqNumber,
    /// The acknowledgment number: a number, or `rcv_nxt`/`snd_nxt` with `+N`/`-N`.
    #[serde(default)]
    pub ack: SeqNumber,
    /// Payload bytes (zeros), at most [`MAX_INJECT_PAYLOAD`].
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub payload: Option<Spanned<u16>>,
    /// TCP options of the segment (`mss`, `timestamps`).
    #[serde(default)]
    pub options: InjectOptions,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

impl Inject {
    /// Whether a number is read from the capture, so the packet taps must run.
    pub fn needs_capture(&self) -> bool {
        self.seq.is_relative()
            || self.ack.is_relative()
            || self
                .options
                .timestamps
                .as_ref()
                .is_some_and(|t| t.tsval.is_relative() || t.tsecr.is_relative())
    }
}

/// TCP options of an injected segment.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectOptions {
    /// An MSS option with this value.
    #[serde(default)]
    pub mss: Option<u16>,
    /// A timestamps option.
    #[serde(default)]
    pub timestamps: Option<InjectTimestamps>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectTimestamps {
    /// A number, or `own` (the latest TSval `by` sent) with `+N`/`-N`.
    pub tsval: TsNumber,
    /// A number, or `peer` (the latest TSval the receiver sent) with `+N`/`-N`.
    #[serde(default)]
    pub tsecr: TsNumber,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDrop {
    /// The targeted drop (a `drops:` entry's `name`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// On (true) or off (false) from now on.
    pub active: bool,
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Bind(_) => "bind",
            Step::Accept(_) => "accept",
            Step::Sockopt(_) => "sockopt",
            Step::Listen(_) => "listen",
            Step::CloseListener(_) => "close_listener",
            Step::Connect(_) => "connect",
            Step::Reconnect(_) => "reconnect",
            Step::Close(_) => "close",
            Step::Send(_) => "send",
            Step::Recv(_) => "recv",
            Step::Sleep(_) => "sleep",
            Step::Sample(_) => "sample",
            Step::Repeat(_) => "repeat",
            Step::Impair(_) => "impair",
            Step::SetDrop(_) => "set_drop",
            Step::Inject(_) => "inject",
            Step::Shutdown(_) => "shutdown",
            Step::Exec(_) => "exec",
            Step::Stop(_) => "stop",
            Step::Workload(_) => "workload",
        }
    }

    /// The socket options this step sets or reads, inner steps of a `repeat` included.
    pub fn option_names(&self) -> Vec<OptionName> {
        let mut out: Vec<OptionName> = match self {
            Step::Bind(b) => options_of(&b.options).iter().map(|o| o.name).collect(),
            Step::Listen(l) => options_of(&l.options).iter().map(|o| o.name).collect(),
            Step::Connect(c) => options_of(&c.options).iter().map(|o| o.name).collect(),
            Step::Sockopt(s) => options_of(&s.set).iter().map(|o| o.name).collect(),
            Step::Repeat(r) => r
                .steps
                .iter()
                .flat_map(|s| s.value.option_names())
                .collect(),
            _ => Vec::new(),
        };
        if let Step::Sockopt(Sockopt { get: Some(g), .. }) = self {
            out.push(g.value);
        }
        out
    }

    /// The label its results are filed under: the explicit `label`, else the step kind.
    pub fn label(&self) -> Option<&str> {
        let explicit = match self {
            Step::Bind(s) => s.label.as_deref(),
            Step::Accept(s) => s.label.as_deref(),
            Step::Sockopt(s) => s.label.as_deref(),
            Step::Listen(s) => s.label.as_deref(),
            Step::CloseListener(s) => s.label.as_deref(),
            Step::Connect(s) => s.label.as_deref(),
            Step::Reconnect(s) => s.label.as_deref(),
            Step::Close(s) => s.label.as_deref(),
            Step::Send(s) => s.label.as_deref(),
            Step::Recv(s) => s.label.as_deref(),
            Step::Inject(s) => s.label.as_deref(),
            Step::Shutdown(s) => s.label.as_deref(),
            Step::Exec(s) => s.label.as_deref(),
            Step::Workload(s) => s.label.as_deref(),
            Step::Sample(s) => Some(s.label.as_str()),
            Step::Sleep(_)
            | Step::Repeat(_)
            | Step::Impair(_)
            | Step::SetDrop(_)
            | Step::Stop(_) => return None,
        };
        Some(explicit.unwrap_or(self.kind()))
    }
}

/// The address word for a namespace's own loopback address (127.0.0.1, ::1).
pub const LOOPBACK: &str = "loopback";

fn default_listener() -> String {
    "main".into()
}
fn default_conn() -> String {
    "conn".into()
}
fn default_backlog() -> i32 {
    128
}
fn default_connect_timeout() -> CaseDuration {
    CaseDuration(std::time::Duration::from_secs(3))
}
fn default_peer_timeout() -> CaseDuration {
    CaseDuration(std::time::Duration::from_secs(2))
}
fn default_settle() -> CaseDuration {
    CaseDuration(std::time::Duration::from_secs(1))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Namespace to listen in (not with `socket:`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Spanned<String>>,
    /// `any` for the wildcard address, `loopback`, an address literal, or omitted for the
    /// namespace's own address in the trial's family.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub addr: Option<Spanned<String>>,
    /// The port to bind (not with `socket:`).
    #[serde(default)]
    pub port: Option<u16>,
    /// Listen on the socket an earlier `bind` step made, instead of binding a new one.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub socket: Option<Spanned<String>>,
    /// The socket's family when it is not the trial's.
    #[serde(default)]
    #[schemars(with = "Option<SocketFamily>")]
    pub family: Option<Spanned<SocketFamily>>,
    /// Socket options set before bind().
    #[serde(default)]
    #[schemars(with = "Option<SocketOptions>")]
    pub options: Option<Spanned<SocketOptions>>,
    /// SO_REUSEADDR, the same as `options: {reuseaddr: true}`.
    #[serde(default)]
    pub reuseaddr: bool,
    /// listen()'s backlog.
    #[serde(default = "default_backlog")]
    pub backlog: i32,
    /// Name of the listener, for `close_listener` and `sockopt` steps.
    #[serde(default = "default_listener")]
    pub name: String,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseListener {
    /// The listener to close (a `listen` step's `name`).
    #[serde(default = "default_listener")]
    pub name: String,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// Namespace the client socket is created in (not with `socket:`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    /// Connect the socket an earlier `bind` step made.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub socket: Option<Spanned<String>>,
    /// Namespace whose address to connect to, `loopback`, `any` (the unspecified address,
    /// which Linux takes as this host), or an address literal.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// The server port.
    pub port: u16,
    /// The socket's family when it is not the trial's.
    #[serde(default)]
    #[schemars(with = "Option<SocketFamily>")]
    pub family: Option<Spanned<SocketFamily>>,
    /// Socket options set before connect().
    #[serde(default)]
    #[schemars(with = "Option<SocketOptions>")]
    pub options: Option<Spanned<SocketOptions>>,
    /// Whether the server side is accepted at once (default) or left in the listener's
    /// accept queue for an `accept` step.
    #[serde(default = "default_true")]
    pub accept: bool,
    /// TCP Fast Open: send this many bytes with the SYN (sendto with MSG_FASTOPEN); what
    /// did not ride on the SYN is sent once the connection is established.
    #[serde(default)]
    pub syn_data: Option<u64>,
    /// bind() to this port before connect(); 0 binds to an ephemeral port chosen at bind time.
    #[serde(default)]
    pub local_port: Option<u16>,
    /// SO_REUSEADDR, the same as `options: {reuseaddr: true}`.
    #[serde(default)]
    pub reuseaddr: bool,
    /// IP_BIND_ADDRESS_NO_PORT: bind the address now, let connect() pick the port.
    #[serde(default)]
    pub bind_address_no_port: bool,
    /// SO_BINDTODEVICE: bind the socket to this interface of its namespace (`lo` for traffic
    /// that the kernel must treat as loopback traffic).
    #[serde(default)]
    pub bind_device: Option<String>,
    /// How long to wait for the connection to be established (outcome TIMEOUT).
    #[serde(default = "default_connect_timeout")]
    pub timeout: CaseDuration,
    /// Name of the connection, for later close/send/recv/reconnect steps.
    #[serde(default = "default_conn")]
    pub name: String,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// The earlier connection whose 4-tuple and socket options to reuse.
    #[serde(default = "default_conn")]
    pub conn: String,
    /// How long to wait for the connection to be established (outcome TIMEOUT).
    #[serde(default = "default_connect_timeout")]
    pub timeout: CaseDuration,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CloseHow {
    /// Orderly close(): FIN.
    Fin,
    /// SO_LINGER {1, 0}: RST, no TIME_WAIT.
    Abort,
    /// SO_LINGER {1, N}: close() blocks up to N seconds for the FIN to be acknowledged.
    Linger(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerAction {
    /// The other side reads until EOF (or an error) and then closes.
    CloseOnEof,
    /// The other side does nothing and stays open (CLOSE_WAIT).
    StayOpen,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Close {
    /// The connection to close (a `connect` step's `name`).
    #[serde(default = "default_conn")]
    pub conn: String,
    /// Which side closes first.
    pub by: Role,
    /// `fin` (default), `abort` (RST) or `{linger: N}`.
    #[serde(default = "default_how")]
    pub how: CloseHow,
    /// What the other side does: `close_on_eof` (default) or `stay_open`.
    #[serde(default = "default_peer")]
    pub peer: PeerAction,
    /// How long the peer waits for EOF.
    #[serde(default = "default_peer_timeout")]
    pub peer_timeout: CaseDuration,
    /// How long to wait for the close handshake to finish (no socket of this connection left
    /// in FIN_WAIT1, FIN_WAIT2, CLOSING or LAST_ACK) before the next step; not an error if it
    /// does not.
    #[serde(default = "default_settle")]
    pub settle: CaseDuration,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

fn default_how() -> CloseHow {
    CloseHow::Fin
}
fn default_peer() -> PeerAction {
    PeerAction::CloseOnEof
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    /// The connection to send on.
    #[serde(default = "default_conn")]
    pub conn: String,
    /// The side that sends.
    pub by: Role,
    /// How many bytes (zeros) to send.
    pub bytes: u64,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecvStep {
    /// The connection to read from.
    #[serde(default = "default_conn")]
    pub conn: String,
    /// The side that reads.
    pub by: Role,
    /// Read until this many bytes, EOF, an error or the timeout.
    pub bytes: u64,
    /// How long to wait for the bytes.
    #[serde(default = "default_peer_timeout")]
    pub timeout: CaseDuration,
    /// Results are filed under this label for `result:` expectations (default: the step's kind).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The sample's name, for expectations' `at:`.
    pub label: String,
    /// Take the sample at this time since the first step started (waiting if needed), or
    /// since the step labelled `after` started.
    #[serde(default)]
    pub at: Option<CaseDuration>,
    /// The label of an earlier step that `at` counts from (its latest run): a timer armed by
    /// that step is then sampled at the same age on a fast machine and a slow one.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// How many times to run the steps.
    #[schemars(with = "u32")]
    pub times: Spanned<u32>,
    /// Stop at the first step that fails (an errno or a timeout).
    #[serde(default)]
    pub until_error: bool,
    /// The steps to repeat (no workloads).
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
}

/// One expectation as written. Exactly one of `result`, `sockets`, `counter` says what is
/// checked; the other keys must fit it (checked in `validate`, with positions).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Step results filed under this label.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub result: Option<Spanned<String>>,
    /// How many attempts the steps (or the workload) made, whatever their outcome.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub attempts: Option<Spanned<Comparison>>,
    /// How many attempts succeeded.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub ok: Option<Spanned<Comparison>>,
    /// How many attempts failed with each outcome: `{ECONNREFUSED: 1, TIMEOUT: 0}` (errno names, `TIMEOUT`, `EXIT_N`, signal names).
    #[serde(default)]
    #[schemars(with = "Option<Entries<Comparison>>")]
    pub errors: Option<Entries<Spanned<Comparison>>>,
    /// The outcome of the first failing attempt, or `none` when none failed.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub first_error: Option<Spanned<String>>,
    /// The outcome every attempt had (`ok`, an errno name such as `ECONNRESET`, `TIMEOUT`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub all: Option<Spanned<String>>,
    /// Every attempt's duration (a program run's, with `program:`), in milliseconds.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub duration_ms: Option<Spanned<Comparison>>,
    /// Bytes moved by all attempts together.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub bytes: Option<Spanned<Comparison>>,
    /// The value every attempt read back (`sockopt`; bytes on the SYN for `syn_data`): a
    /// number, a comparison, true/false, or a port range.
    #[serde(default)]
    #[schemars(with = "Option<super::sockopt::ValueWanted>")]
    pub value: Option<Spanned<super::sockopt::ValueWanted>>,

    /// Socket-state count in this namespace.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sockets: Option<Spanned<String>>,
    /// Only sockets in this TCP state (`TIME_WAIT`, `ESTABLISHED`...; with `conntrack:`, conntrack entries in that TCP state).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub state: Option<Spanned<String>>,
    /// Only sockets with this port (or range `LO..HI`) at either end.
    #[serde(default)]
    pub port: Option<PortRange>,
    /// Only sockets with this local port or range (with `result:`: every successful attempt's own port is in it).
    #[serde(default)]
    pub local_port: Option<PortRange>,
    /// Only sockets with this remote port or range.
    #[serde(default)]
    pub remote_port: Option<PortRange>,
    /// Only sockets a file (a descriptor) holds (`true`), or only those none holds (`false`).
    #[serde(default)]
    pub has_file: Option<bool>,
    /// When the sockets (or conntrack entries) are counted: `end` (default) or a `sample` step's label.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub at: Option<Spanned<String>>,
    /// How many sockets, packets, entries, drops or kernel log records there are.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub count: Option<Spanned<Comparison>>,

    /// MIB counter (`TcpExt.TCPTimeWaitOverflow`, `Tcp.OutRsts`, ...) delta over the case.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub counter: Option<Spanned<String>>,
    /// The namespace whose counters are read (with `counter:`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ns: Option<Spanned<String>>,
    /// The counter's (or conntrack statistic's) change over the case.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub delta: Option<Spanned<Comparison>>,

    /// Every matching socket's smoothed RTT (tcp_info), in milliseconds (with `sockets:`).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub rtt_ms: Option<Spanned<Comparison>>,
    /// Every matching socket's lowest RTT seen (tcp_info min_rtt), in milliseconds.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub min_rtt_ms: Option<Spanned<Comparison>>,
    /// Every matching socket's pending timer, as `ss -o` names it: `off`, `on` (retransmit),
    /// `keepalive`, `timewait` (or `time_wait`), `persist` (zero-window probe).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timer: Option<Spanned<String>>,
    /// Every matching socket's milliseconds left on that timer.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub expires_ms: Option<Spanned<Comparison>>,
    /// Every matching socket's retransmits or probes under that timer (`idiag_retrans`).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub retrans: Option<Spanned<Comparison>>,
    /// Every matching socket's receive and send queue (a listener's accept queue and backlog).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub recv_q: Option<Spanned<Comparison>>,
    /// Every matching socket's send queue, bytes.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub send_q: Option<Spanned<Comparison>>,
    /// tcp_info fields of every matching socket: `{retransmits: 0, rto_ms: {at_least: 200}}`.
    #[serde(default)]
    #[schemars(with = "Option<Entries<Comparison>>")]
    pub info: Option<Entries<Spanned<Comparison>>>,
    /// Options every matching socket's handshake negotiated (`timestamps`, `sack`, `wscale`...),
    /// and options none of them did.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub options: Option<Spanned<Vec<Spanned<String>>>>,
    /// Options no matching socket's handshake negotiated (no selected packet carries, with `packets:`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub no_options: Option<Spanned<Vec<Spanned<String>>>>,

    /// Packets of this kind (SYN, SYN_ACK, FIN, RST, ACK, DATA, ANY) that crossed the link,
    /// sent by namespace `from`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub packets: Option<Spanned<String>>,
    /// The namespace that sent the packets (with `packets:`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    /// Selectors of `packets:` besides the kind and `port`: exact flags in tcpdump's letters,
    /// source and destination ports, a connection's 4-tuple.
    #[serde(default)]
    #[schemars(with = "Option<FlagSet>")]
    pub flags: Option<Spanned<FlagSet>>,
    /// Only packets from this port or range.
    #[serde(default)]
    pub src_port: Option<PortRange>,
    /// Only packets to this port or range.
    #[serde(default)]
    pub dst_port: Option<PortRange>,
    /// Only packets of this connection's 4-tuples, either direction.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub conn: Option<Spanned<String>>,
    /// What every selected packet must show: relative seq and ack, payload length, window,
    /// options (and the MSS value), the timestamp echo, the send time since a step started.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub seq: Option<Spanned<Comparison>>,
    /// Every selected packet's acknowledgment number, relative to the other direction's initial sequence number.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub ack: Option<Spanned<Comparison>>,
    /// Every selected packet's payload bytes.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub len: Option<Spanned<Comparison>>,
    /// The raw window field (tcpdump's `win`; `window:` is a workload's).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub win: Option<Spanned<Comparison>>,
    /// Every selected packet's MSS option value.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub mss: Option<Spanned<Comparison>>,
    /// What every selected packet's timestamp echo reply must be.
    #[serde(default)]
    #[schemars(with = "Option<TsecrRule>")]
    pub tsecr: Option<Spanned<TsecrRule>>,
    /// Only packets sent once the step with this label started; `sent_ms` counts from there.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub since: Option<Spanned<String>>,
    /// Every selected packet's send time, in ms since `since` (or the first step) started.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub sent_ms: Option<Spanned<Comparison>>,
    /// Every gap between consecutive selected packets, in ms.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub gap_ms: Option<Spanned<Comparison>>,

    /// Conntrack in this namespace: entries (optionally by TCP `state`) with `count`, or a
    /// statistics column (`stat: drop`, `early_drop`, `insert_failed`...) with `delta`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub conntrack: Option<Spanned<String>>,
    /// A conntrack statistics column (`drop`, `early_drop`, `insert_failed`...), with `delta`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stat: Option<Spanned<String>>,

    /// Kernel log records (from /dev/kmsg) written during the case that contain this text,
    /// with `count`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub kernel_log: Option<Spanned<String>>,

    /// Packets taken by the targeted drop of this name (or `loss:FROM->TO` for random loss).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub dropped: Option<Spanned<String>>,

    /// The last run of the program an `exec` step with this label started: its exit status,
    /// signal and output.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub program: Option<Spanned<String>>,
    /// Exit status (fails if the program was killed by a signal or still runs).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub exit: Option<Spanned<Comparison>>,
    /// The signal that ended it (`SIGTERM` when twlab stopped it and it did not catch that).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub signal: Option<Spanned<String>>,
    /// Text found in the program's stdout.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stdout_contains: Option<Spanned<String>>,
    /// Text found in the program's stderr.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stderr_contains: Option<Spanned<String>>,
    /// Text found in stdout or stderr.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub output_contains: Option<Spanned<String>>,
    /// Processes in the program's PID namespace when twlab stopped it (0 if it ended first).
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub processes: Option<Spanned<Comparison>>,

    /// A `workload` step's results with this label: totals (`ok`, `attempts`, `errors`), the
    /// first error and when it came (`first_error`, `at_s`), or a `series` over a `window`
    /// summed up by one of `every`, `max`, `min`, `mean`, `sum`, `last`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub workload: Option<Spanned<String>>,
    /// Seconds from the workload's start to its first failed connection.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub at_s: Option<Spanned<Comparison>>,
    /// The workload series to judge (with `workload:`), summed up over `window` by one of `every`, `max`, `min`, `mean`, `sum`, `last`.
    #[serde(default)]
    #[schemars(with = "Option<super::workload::SeriesMetric>")]
    pub series: Option<Spanned<String>>,
    /// Part of the workload's run the series is judged over (default: all of it).
    #[serde(default)]
    #[schemars(with = "Option<super::workload::Window>")]
    pub window: Option<Spanned<String>>,
    /// Every interval of the series in the window meets this.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub every: Option<Spanned<Comparison>>,
    /// The series' largest value in the window.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub max: Option<Spanned<Comparison>>,
    /// The series' smallest value in the window.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub min: Option<Spanned<Comparison>>,
    /// The series' mean in the window, rounded down.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub mean: Option<Spanned<Comparison>>,
    /// The series' sum over the window.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub sum: Option<Spanned<Comparison>>,
    /// The series' last interval's value in the window.
    #[serde(default)]
    #[schemars(with = "Option<Comparison>")]
    pub last: Option<Spanned<Comparison>>,

    /// Show this expectation's observed value as the claim's evidence in `twlab claims`.
    #[serde(default)]
    pub evidence: bool,

    /// Why this is expected: shown with the verdict.
    #[serde(default)]
    pub why: Option<String>,

    /// Known to fail (a kernel bug being tracked, a part broken somewhere): the reason. A
    /// failure is then reported as `xfail` and does not fail the case; a pass is `XPASS`,
    /// an error, so the mark is removed once the cause is fixed. `when:` still decides where
    /// the expectation applies at all.
    #[serde(default)]
    pub xfail: Option<String>,

    /// Only on these kernels or backends (`kernel >= 6.14`, `feature netem`, `backend
    /// substitute`, joined with `and`); elsewhere the expectation is reported as not applicable.
    #[serde(default)]
    #[schemars(with = "Option<super::when::When>")]
    pub when: Option<Spanned<String>>,
}

/// The options a step sets, in order (none when it has no `options:`).
pub fn options_of(o: &Option<Spanned<SocketOptions>>) -> &[super::sockopt::SocketOption] {
    o.as_ref().map_or(&[], |o| o.value.0.as_slice())
}
