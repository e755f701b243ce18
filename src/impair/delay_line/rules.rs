//! The iptables rules that send a link's packets to the delay line's queue.

use crate::spawn::Command;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::nfqueue::{NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO, NfQueue};
use super::*;

pub(super) fn check_ifname(ifname: &str) -> Result<(), DelayLineError> {
    let why = if ifname.is_empty() {
        "empty"
    } else if ifname.len() > 15 {
        "longer than 15 bytes (IFNAMSIZ)"
    } else if ifname.contains(['/', ' ', '\t', '\n', '\0']) || ifname == "." || ifname == ".." {
        "not a Linux interface name"
    } else if ifname.ends_with('+') {
        "a wildcard (`+`); name one interface"
    } else {
        return Ok(());
    };
    Err(DelayLineError::BadInterfaceName {
        ifname: ifname.to_string(),
        why,
    })
}

/// The executable `name` on PATH or in the sbin directories a non-root PATH lacks.
pub(super) fn find_tool(name: &'static str) -> Result<PathBuf, DelayLineError> {
    crate::spawn::which_admin_tool(name).ok_or(DelayLineError::ToolMissing { tool: name })
}

/// On the namespace's thread: open and configure the queue, then add the rules (so that no
/// packet ever meets a rule without a listener).
pub(super) fn setup(
    ns: &str,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
    tools: &[PathBuf; 2],
) -> Result<(NfQueue, Option<File>), DelayLineError> {
    if nix::net::if_::if_nametoindex(ifname).is_err() {
        return Err(DelayLineError::NoSuchInterface {
            ns: ns.to_string(),
            ifname: ifname.to_string(),
        });
    }
    let mut queue = NfQueue::open(queue_num).map_err(|errno| DelayLineError::Socket {
        ns: ns.to_string(),
        errno,
    })?;
    let failed = |step: &'static str, hint: &'static str| {
        move |errno| DelayLineError::Queue {
            ns: ns.to_string(),
            queue_num,
            step,
            errno,
            hint,
        }
    };
    const BUSY: &str = "; another listener (another delay line?) holds this queue number in \
                        this namespace: give each delay line its own queue_num";
    // A queue bound by another socket answers EPERM (owner check) before EBUSY.
    queue.bind_queue().map_err(|e| match e {
        Errno::EBUSY | Errno::EPERM => failed("bind", BUSY)(e),
        _ => failed("bind", "")(e),
    })?;
    queue.copy_meta().map_err(failed("set copy mode", ""))?;
    queue
        .set_max_len(QUEUE_MAXLEN)
        .map_err(failed("set queue length", ""))?;
    let gso_hint = "; the kernel refused NFQA_CFG_F_GSO (older than 3.10?)";
    queue
        .set_flags(NFQA_CFG_F_GSO, NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN)
        .map_err(failed("set flags", gso_hint))?;
    // Opened here, the file keeps showing this namespace's queues whichever thread reads it.
    let proc_stats = File::open("/proc/thread-self/net/netfilter/nfnetlink_queue").ok();
    let mut added: Vec<&Path> = Vec::new();
    for tool in tools {
        if let Err(e) = add_rule(ns, tool, ifname, hook, queue_num) {
            for done in added {
                let _ = iptables(ns, done, "-D", ifname, hook, queue_num);
            }
            return Err(e);
        }
        added.push(tool);
    }
    Ok((queue, proc_stats))
}

/// Add the NFQUEUE rule unless an identical one is there (a delay line started again on the
/// same interface and queue).
pub(super) fn add_rule(
    ns: &str,
    tool: &Path,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
) -> Result<(), DelayLineError> {
    if iptables(ns, tool, "-C", ifname, hook, queue_num).is_ok() {
        return Ok(());
    }
    iptables(ns, tool, "-A", ifname, hook, queue_num)
}

pub(super) fn iptables(
    ns: &str,
    tool: &Path,
    op: &str,
    ifname: &str,
    hook: Hook,
    queue_num: u16,
) -> Result<(), DelayLineError> {
    let queue = queue_num.to_string();
    let (chain, flag) = hook.chain_and_flag();
    let args = [
        "-w",
        "5",
        "-t",
        "mangle",
        op,
        chain,
        flag,
        ifname,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &queue,
        "--queue-bypass",
    ];
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| DelayLineError::Spawn {
            ns: ns.to_string(),
            tool: tool.display().to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let hint = if stderr.contains("NFQUEUE") || stderr.contains("No chain/target/match") {
        "; the kernel lacks the NFQUEUE target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE with \
         nft_compat for iptables-nft): run `twlab doctor`"
    } else {
        ""
    };
    Err(DelayLineError::Rule {
        ns: ns.to_string(),
        command: format!("{} {}", tool.display(), args.join(" ")),
        status: out.status.to_string(),
        stderr,
        hint,
    })
}
