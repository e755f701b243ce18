//! The case's own nftables table (`inet twlab`) in one namespace: random loss and targeted
//! drops of the packets arriving on an interface, each in a chain of its own so a step can
//! change or switch it without losing its named counter. `nft` runs as a child of the
//! namespace's thread, so it only ever sees that namespace.
//!
//! Packets are dropped where they arrive, never where they leave: a drop in the sender's own
//! output path is reported back to the sending socket (Ip.OutDiscards, TcpExt.TCPRetransFail),
//! and the kernel reacts to that as it never would to loss on a wire. Seen: a request socket
//! whose retransmitted SYN-ACK failed locally is dropped at once (reqsk_timer_handler), so the
//! server never retries and answers the client's next segment with an RST. netem hides its
//! own drops from the sender for the same reason.

use crate::spawn::{Command, SpawnError};

use crate::case::DropPacket;

pub const TABLE: &str = "inet twlab";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft is missing: apt-get install nftables (or run ci/setup.sh)")]
    Missing,
    #[error("failed to run nft: {0}")]
    Spawn(SpawnError),
    #[error("nft refused the rules: {stderr}\nrules:\n{rules}")]
    Refused { stderr: String, rules: String },
    #[error("cannot read nft counter `{0}`: {1}")]
    Counter(String, String),
}

fn nft() -> Command {
    Command::new("nft")
}

/// Run a batch of nft commands (one per line) in the current thread's namespace.
pub fn run(rules: &str) -> Result<(), NftError> {
    let out = nft()
        .args(["-f", "-"])
        .output_with_input(rules.as_bytes())
        .map_err(|e| match e.errno() {
            Some(nix::errno::Errno::ENOENT) => NftError::Missing,
            _ => NftError::Spawn(e),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused {
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            rules: rules.to_string(),
        })
    }
}

/// Packets of a named counter in the current thread's namespace.
pub fn counter_packets(name: &str) -> Result<u64, NftError> {
    let out = nft()
        .args(["list", "counter", "inet", "twlab", name])
        .output()
        .map_err(NftError::Spawn)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| NftError::Counter(name.to_string(), text.to_string()));
        }
    }
    Err(NftError::Counter(
        name.to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// The table with its two hook chains. Priority 0: after conntrack has attached its entry
/// (-200), so `ct mark` works.
pub fn table() -> String {
    format!(
        "add table {TABLE}\n\
         add chain {TABLE} post {{ type filter hook postrouting priority 0; policy accept; }}\n\
         add chain {TABLE} pre {{ type filter hook prerouting priority 0; policy accept; }}\n"
    )
}

/// A loss chain for the packets arriving on `ifname`, empty until `loss_rules` fills it.
pub fn loss_chain(chain: &str, counter: &str, ifname: &str) -> String {
    format!(
        "add counter {TABLE} {counter}\n\
         add chain {TABLE} {chain}\n\
         add rule {TABLE} pre iifname \"{ifname}\" jump {chain}\n"
    )
}

/// Replace the loss chain's rule: drop `pct` percent, in steps of 0.01 %.
/// With `log`, each dropped packet also goes to that NFLOG group (for the report's ladder).
pub fn loss_rules(chain: &str, counter: &str, pct: f64, log: Option<u16>) -> String {
    let mut out = format!("flush chain {TABLE} {chain}\n");
    let n = (pct.clamp(0.0, 100.0) * 100.0).round() as u32;
    if n > 0 {
        out += &format!(
            "add rule {TABLE} {chain} numgen random mod 10000 < {n} counter name \"{counter}\"{} drop\n",
            log_statement(log)
        );
    }
    out
}

fn log_statement(group: Option<u16>) -> String {
    group.map(|g| format!(" log group {g}")).unwrap_or_default()
}

/// Bits of the conntrack mark (in the receiving namespace) that follow a close for `final_ack`
/// drops: 0x1 once the sender's FIN arrived, 0x2 once this side's FIN went back after it.
const OUR_FIN: u32 = 0x1;
const THEIR_FIN: u32 = 0x2;

/// A targeted drop of the packets arriving on `ifname` (in the receiving namespace).
pub struct DropRule<'a> {
    pub chain: &'a str,
    pub counter: &'a str,
    pub ifname: &'a str,
    pub packet: DropPacket,
    pub first: Option<u32>,
    pub port: Option<u16>,
    /// The NFLOG group dropped packets also go to, if any.
    pub log: Option<u16>,
}

/// The chain, counter and jumps for one drop (the chain stays empty while inactive).
pub fn drop_chain(d: &DropRule) -> String {
    let (chain, ifname) = (d.chain, d.ifname);
    let mut out = format!(
        "add counter {TABLE} {}\nadd chain {TABLE} {chain}\n",
        d.counter
    );
    if d.packet == DropPacket::FinalAck {
        out += &format!(
            "add rule {TABLE} pre iifname \"{ifname}\" tcp flags & fin == fin ct mark & {OUR_FIN:#x} == 0 ct mark set ct mark | {OUR_FIN:#x}\n\
             add rule {TABLE} post oifname \"{ifname}\" tcp flags & fin == fin ct mark & {OUR_FIN:#x} == {OUR_FIN:#x} ct mark set ct mark | {THEIR_FIN:#x}\n"
        );
    }
    match d.port {
        // Either end's port: two jumps (nft rules have no "or").
        Some(p) => {
            out +=
                &format!("add rule {TABLE} pre iifname \"{ifname}\" tcp sport {p} jump {chain}\n");
            out +=
                &format!("add rule {TABLE} pre iifname \"{ifname}\" tcp dport {p} jump {chain}\n");
        }
        None => {
            out += &format!(
                "add rule {TABLE} pre iifname \"{ifname}\" meta l4proto tcp jump {chain}\n"
            )
        }
    }
    out
}

/// Fill (active) or empty (inactive) a drop's chain.
pub fn drop_rules(d: &DropRule, active: bool) -> String {
    let chain = d.chain;
    let mut out = format!("flush chain {TABLE} {chain}\n");
    if !active {
        return out;
    }
    let matches = match d.packet {
        DropPacket::Syn => "tcp flags & (syn | ack) == syn".to_string(),
        DropPacket::SynAck => "tcp flags & (syn | ack) == syn | ack".to_string(),
        DropPacket::Fin => "tcp flags & fin == fin".to_string(),
        DropPacket::Rst => "tcp flags & rst == rst".to_string(),
        DropPacket::Ack => {
            // No payload: longer than the largest header (IPv4 20 + TCP 60, IPv6 40 + 60) is data
            // (GRO is off on impaired links, so these are single segments).
            out += &format!("add rule {TABLE} {chain} meta nfproto ipv4 meta length > 80 return\n");
            out +=
                &format!("add rule {TABLE} {chain} meta nfproto ipv6 meta length > 100 return\n");
            "tcp flags & (syn | fin | rst | psh | ack) == ack".to_string()
        }
        DropPacket::FinalAck => {
            format!("tcp flags & (syn | fin | rst) == 0 ct mark & {THEIR_FIN:#x} == {THEIR_FIN:#x}")
        }
        DropPacket::Any => "meta l4proto tcp".to_string(),
    };
    // numgen inc counts only the packets that reach it, i.e. those that matched before it.
    let first = d
        .first
        .map(|n| format!(" numgen inc mod 1000000000 < {n}"))
        .unwrap_or_default();
    out += &format!(
        "add rule {TABLE} {chain} {matches}{first} counter name \"{}\"{} drop\n",
        d.counter,
        log_statement(d.log)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_ack_marks_both_fins_then_drops_acks() {
        let d = DropRule {
            chain: "drop_0",
            counter: "c0",
            ifname: "to-client",
            packet: DropPacket::FinalAck,
            first: None,
            port: None,
            log: None,
        };
        let setup = drop_chain(&d);
        assert!(setup.contains("pre iifname \"to-client\" tcp flags & fin == fin ct mark & 0x1 == 0 ct mark set ct mark | 0x1"));
        assert!(setup.contains("post oifname \"to-client\" tcp flags & fin == fin ct mark & 0x1 == 0x1 ct mark set ct mark | 0x2"));
        assert!(drop_rules(&d, true).contains("ct mark & 0x2 == 0x2 counter name \"c0\" drop"));
        assert_eq!(drop_rules(&d, false), "flush chain inet twlab drop_0\n");
    }

    #[test]
    fn loss_uses_hundredths_of_a_percent() {
        assert!(loss_rules("l", "c", 5.0, None).contains("numgen random mod 10000 < 500"));
        assert!(!loss_rules("l", "c", 0.0, None).contains("numgen"));
        assert!(loss_rules("l", "c", 5.0, Some(7)).contains("counter name \"c\" log group 7 drop"));
    }
}
