//! `twlab doctor`: what this machine offers, found by trying rather than by reading configs.
//!
//! Everything that could change state (a qdisc, an iptables rule, writing a sysctl back) happens
//! in a scratch namespace that the kernel tears down when `report` returns; the host namespace
//! is only read.

use crate::spawn::Command;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use rtnetlink::Error as NlError;

use crate::impair::qdisc::{NetemParams, Qdisc, replace_root};
use crate::netns::{Namespace, sysctl};

const SUBSTITUTE: &str = "nftables loss + NFQUEUE delay line + tbf";
const INSTALL: &str = "apt-get install nftables iptables";

/// Sysctls whose scope matters to cases: tuned per case, host-global, host-only or removed.
const SYSCTLS: &str = "net.ipv4.tcp_fin_timeout net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse \
    net.ipv4.tcp_tw_reuse_delay net.ipv4.tcp_max_tw_buckets net.ipv4.tcp_timestamps \
    net.ipv4.tcp_rfc1337 net.ipv4.tcp_max_syn_backlog net.core.somaxconn \
    net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_time_wait \
    net.ipv4.tcp_mem net.ipv4.tcp_max_orphans net.core.netdev_max_backlog net.ipv4.tcp_tw_recycle";

/// Sysctl scopes, as seen from a fresh child namespace.
const PER_NAMESPACE: &str = "per-namespace, writable";
const READ_ONLY: &str = "read-only in a namespace (host-global)";
const HOST_ONLY: &str = "host only (absent in a namespace)";
const ABSENT: &str = "absent on this kernel";

fn scope(in_host: bool, in_ns: bool, writable_in_ns: bool) -> &'static str {
    match (in_ns, writable_in_ns, in_host) {
        (true, true, _) => PER_NAMESPACE,
        (true, false, _) => READ_ONLY,
        (false, _, true) => HOST_ONLY,
        (false, _, false) => ABSENT,
    }
}

/// One line of the report: item, status, and what it means (what a missing piece disables).
#[derive(Debug, Clone, Default)]
struct Line {
    item: String,
    status: String,
    detail: String,
    /// Short name of what this missing piece disables, collected into the summary.
    disabled: Option<String>,
}

fn line(item: impl Into<String>, status: impl Into<String>, detail: impl Into<String>) -> Line {
    let mut l = Line::default();
    (l.item, l.status, l.detail) = (item.into(), status.into(), detail.into());
    l
}

impl Line {
    /// Mark the line as a missing piece that disables `what`.
    fn off(mut self, what: impl Into<String>) -> Line {
        self.disabled = Some(what.into());
        self
    }
}

pub fn report() -> String {
    let euid = nix::unistd::geteuid();
    let mut general = match euid.is_root() {
        true => vec![line("root", "yes", format!("euid {euid}"))],
        false => vec![line("root", "no", format!("euid {euid}; cases need root"))],
    };
    let namespaces = crate::runner::namespaces_available();
    general.push(match &namespaces {
        Ok(()) => line("network namespaces", "ok", "cases can run"),
        Err(why) => line("network namespaces", "unavailable", why).off("every case"),
    });
    general.push(match nix::sys::utsname::uname() {
        Ok(u) => {
            let (release, machine) = (u.release().to_string_lossy(), u.machine());
            let detail = format!("{} {}", u.version().to_string_lossy(), machine.display());
            line("kernel", release, detail)
        }
        Err(e) => line("kernel", "unknown", format!("uname failed: {e}")),
    });
    // Read only: the host's conntrack settings belong to host/, never to doctor.
    general.push(match sysctl::read("net.netfilter.nf_conntrack_max") {
        Ok(v) => line("conntrack", "present", format!("host nf_conntrack_max {v}")),
        // Not loaded yet is not missing: the first case that enables conntrack loads it.
        Err(_) if super::probe::conntrack_module_installed() => line(
            "conntrack",
            "loadable",
            "nf_conntrack is installed but not loaded; a conntrack case loads it".to_string(),
        ),
        Err(e) => {
            let detail = format!("{e}; disables conntrack cases");
            line("conntrack", "missing", detail).off("conntrack cases")
        }
    });
    let scratch = match namespaces {
        Ok(()) => Namespace::create("doctor").map_err(|e| e.to_string()),
        Err(_) => Err("they need network namespaces (see above)".to_string()),
    };
    let sysctls = match &scratch {
        // Sysctls first, so that they are seen in a namespace nothing else has touched yet.
        Ok(ns) => {
            let sysctls = sysctl_lines(ns);
            general.extend(scratch_probes(ns));
            sysctls
        }
        Err(why) => {
            general.push(line("namespace probes", "not run", why).off("all namespace probes"));
            Vec::new()
        }
    };
    let summary = summary(&general, &sysctls);
    let sysctls = ("sysctls in a new namespace", sysctls);
    let backends = (
        "impairment backends (backend: auto)",
        backend_lines(&general),
    );
    let report = render(&[("twlab doctor", general), backends, sysctls]);
    format!("{report}{summary}\n")
}

/// Run `f` on the namespace's thread: a lost thread and `f`'s own failure both become text.
fn on<R: Send + 'static>(
    ns: &Namespace,
    f: impl FnOnce() -> Result<R, String> + Send + 'static,
) -> Result<R, String> {
    ns.run(f).map_err(|e| e.to_string())?
}

/// Qdiscs, netfilter binaries and NFQUEUE, each tried on the scratch namespace's thread.
fn scratch_probes(ns: &Namespace) -> Vec<Line> {
    let mut lines: Vec<Line> = match on(ns, probe_qdiscs) {
        Ok(found) => found,
        Err(e) => vec![line("qdiscs", "not probed", e).off("netem and tbf (no probe)")],
    };
    let nft = find_in_path("nft");
    let iptables = find_in_path("iptables");
    // A missing iptables is summarised by the NFQUEUE line below.
    let tools = [
        ("nft", &nft, "nftables loss, targeted drops", true),
        ("iptables", &iptables, "the NFQUEUE delay line", false),
    ];
    for (name, path, disables, summarise) in tools {
        let Some(path) = path.clone() else {
            let mut missing = line(name, "missing", format!("{INSTALL}; disables {disables}"));
            missing.disabled = summarise.then(|| format!("{disables} (no {name})"));
            lines.push(missing);
            continue;
        };
        // --version runs on the scratch thread too: no netfilter tool runs in the host.
        let shown = path.display().to_string();
        let version = on(ns, move || first_line(Command::new(path).arg("--version")));
        let version = version.unwrap_or_else(|e| format!("--version failed: {e}"));
        lines.push(line(name, "present", format!("{version} ({shown})")));
    }
    let nfqueue = match iptables {
        None => Err("not probed: iptables is missing".to_string()),
        Some(path) => on(ns, move || try_nfqueue(&path)),
    };
    lines.push(match nfqueue {
        Ok(()) => line("NFQUEUE", "ok", "-j NFQUEUE accepted in a namespace"),
        Err(why) => {
            let detail = format!("{why}; disables the delay line");
            line("NFQUEUE", "unavailable", detail).off("NFQUEUE delay line")
        }
    });
    lines
}

/// The first line a command prints on stdout.
fn first_line(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().next().unwrap_or("").trim().to_string())
}

/// Called on the scratch thread: the program enters that thread's network namespace.
fn try_nfqueue(iptables: &Path) -> Result<(), String> {
    let args = "-w 5 -A OUTPUT -p tcp --dport 9 -j NFQUEUE --queue-num 1";
    let out = Command::new(iptables).args(args.split(' ')).output();
    let out = out.map_err(|e| format!("cannot run {}: {e}", iptables.display()))?;
    let (status, stderr) = (out.status, String::from_utf8_lossy(&out.stderr));
    match status.success() {
        true => Ok(()),
        false => Err(format!("iptables {args}: {status}: {}", stderr.trim())),
    }
}

fn qdisc_line(kind: &str, result: Probe) -> Line {
    let item = format!("qdisc {kind}");
    let (disables, short) = match kind {
        "netem" => (
            format!("impairments use the substitute instead: {SUBSTITUTE}"),
            format!("netem (substitute: {SUBSTITUTE})"),
        ),
        _ => (format!("disables {kind}"), kind.to_string()),
    };
    let status = match result {
        Ok(()) => return line(item, "present", "added on lo in a scratch namespace"),
        // Without CONFIG_MODULES the kernel answers an unknown kind with ENOENT.
        Err(NlError::NetlinkError(e)) => match Errno::from_raw(-e.raw_code()) {
            Errno::ENOENT => "missing (kernel: ENOENT, unknown qdisc kind)".to_string(),
            errno => format!("missing (kernel: {errno})"),
        },
        Err(e) => format!("not probed ({e})"),
    };
    line(item, status, disables).off(short)
}

type Probe = Result<(), NlError>;

/// Try each qdisc on `lo` of the current thread's namespace (runs on the scratch thread).
fn probe_qdiscs() -> Result<Vec<Line>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("failed to start a netlink runtime: {e}"))?;
    rt.block_on(async {
        let conn = rtnetlink::new_connection();
        let (conn, mut handle, _) = conn.map_err(|e| format!("no rtnetlink socket: {e}"))?;
        let task = tokio::spawn(conn);
        let netem = Qdisc::Netem(NetemParams::default());
        let tbf = Qdisc::Tbf {
            rate_bps: 1_000_000,
        };
        let mut lines = Vec::new();
        for (kind, qdisc) in [("netem", netem), ("tbf", tbf)] {
            // `lo` is always ifindex 1 (LOOPBACK_IFINDEX) in a namespace.
            lines.push(qdisc_line(kind, replace_root(&mut handle, 1, &qdisc).await));
        }
        task.abort();
        Ok(lines)
    })
}

/// Which backend serves each kind of impairment here, and why, from the probes above.
fn backend_lines(general: &[Line]) -> Vec<Line> {
    let ok = |item: &str| {
        general
            .iter()
            .any(|l| l.item == item && matches!(l.status.as_str(), "present" | "ok"))
    };
    if ok("qdisc netem") {
        let all = "netem qdisc on the sender's egress (the kernel has sch_netem)";
        return ["delay, jitter", "loss", "rate", "reorder, duplicate"]
            .into_iter()
            .map(|what| line(what, "netem", all))
            .chain([line(
                "targeted drops",
                "nftables",
                "receiver's prerouting hook, conntrack marks",
            )])
            .collect();
    }
    let need = |tool: &str, present: bool, how: &str| match present {
        true => (tool.to_string(), how.to_string()),
        false => (
            "unavailable".to_string(),
            format!("needs {tool}: {INSTALL}"),
        ),
    };
    let (delay, delay_how) = need(
        "NFQUEUE delay line",
        ok("NFQUEUE"),
        "iptables -j NFQUEUE on the receiver's ingress, held by twlab (no sch_netem)",
    );
    let (loss, loss_how) = need(
        "nftables",
        ok("nft"),
        "numgen random on the receiver's prerouting hook (no sch_netem)",
    );
    let (drops, drops_how) = need(
        "nftables",
        ok("nft"),
        "receiver's prerouting hook, conntrack marks",
    );
    vec![
        line("delay, jitter", delay, delay_how),
        line("loss", loss, loss_how),
        line(
            "rate",
            if ok("qdisc tbf") {
                "tbf"
            } else {
                "unavailable"
            },
            "tbf qdisc on the sender's egress",
        ),
        line(
            "reorder, duplicate",
            "unavailable",
            "netem only: cases that use them are ignored here",
        ),
        line("targeted drops", drops, drops_how),
    ]
}

/// One sysctl in the scratch namespace: its value (if present), and whether it is writable.
type NsView = (Option<String>, Result<(), String>);

/// Runs on the scratch thread, whose /proc/sys/net is the namespace's own.
fn views_in_namespace() -> Result<Vec<NsView>, String> {
    let view = |key: &str| -> NsView {
        let Ok(value) = sysctl::read(key) else {
            return (None, Err("absent".into()));
        };
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        // Writing back the value it already has tests writability without changing anything.
        let file = std::fs::OpenOptions::new().write(true).open(&path);
        let write = file.and_then(|mut f| f.write_all(value.as_bytes()));
        let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let write = write.map_err(|e| errno(e).to_string());
        (Some(value), write)
    };
    Ok(SYSCTLS.split_whitespace().map(view).collect())
}

fn sysctl_lines(ns: &Namespace) -> Vec<Line> {
    let views = match on(ns, views_in_namespace) {
        Ok(v) => v,
        Err(e) => return vec![line("sysctls", "not probed", e)],
    };
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let keys = SYSCTLS.split_whitespace();
    let to_line = |(key, (value, write)): (&str, NsView)| {
        // This runs on the calling (host) thread: read only.
        let host = sysctl::read(key).ok();
        let scope = scope(host.is_some(), value.is_some(), write.is_ok());
        let mut detail = format!("namespace: {}, host: {}", shown(&value), shown(&host));
        detail.push_str(&match (scope, write) {
            (READ_ONLY, Err(errno)) => format!("; write-back: {errno}; a case cannot set it"),
            (HOST_ONLY, _) => "; a case can neither set nor read it".into(),
            (ABSENT, _) => "; a case naming it is rejected".into(),
            _ => String::new(),
        });
        line(key, scope, detail)
    };
    keys.zip(views).map(to_line).collect()
}

/// The executable `name` on PATH (plus the sbin directories a non-root PATH lacks).
fn find_in_path(name: &str) -> Option<PathBuf> {
    crate::spawn::which_admin_tool(name)
}

fn summary(general: &[Line], sysctls: &[Line]) -> String {
    let disabled = general.iter().filter_map(|l| l.disabled.as_deref());
    let disabled: Vec<&str> = disabled.collect();
    let fixed = sysctls.iter().filter(|l| l.status != PER_NAMESPACE).count();
    let head = match disabled.is_empty() {
        true => "summary: nothing disabled".to_string(),
        false => format!("summary: disabled here: {}", disabled.join("; ")),
    };
    match sysctls.len() {
        0 => format!("{head}."),
        n => format!("{head}. {fixed} of {n} listed sysctls cannot be set per namespace."),
    }
}

/// Sections of aligned lines: item, status, then what it means.
fn render(sections: &[(&str, Vec<Line>)]) -> String {
    let mut out = String::new();
    for (title, lines) in sections.iter().filter(|(_, lines)| !lines.is_empty()) {
        let iw = lines.iter().map(|l| l.item.len()).max().unwrap_or(0);
        let sw = lines.iter().map(|l| l.status.len()).max().unwrap_or(0);
        out.push_str(&format!("{title}\n"));
        for l in lines {
            let text = format!("  {:<iw$}  {:<sw$}  {}", l.item, l.status, l.detail);
            out.push_str(text.trim_end());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sysctl_scope() {
        assert_eq!(scope(true, true, true), PER_NAMESPACE);
        assert_eq!(scope(true, true, false), READ_ONLY);
        assert_eq!(scope(true, false, false), HOST_ONLY);
        assert_eq!(scope(false, false, false), ABSENT);
    }

    #[test]
    fn renders_aligned_columns_and_summary() {
        let nft = line("nft", "missing", "apt-get install nftables").off("nft loss");
        let lines = vec![nft, line("qdisc tbf", "present", "")];
        let out = render(&[("t", lines.clone()), ("empty", vec![])]);
        let expected = "t\n  nft        missing  apt-get install nftables\n  qdisc tbf  present\n";
        assert_eq!(out, expected);
        let summary = summary(&lines, &[line("k", HOST_ONLY, "")]);
        let expected = "disabled here: nft loss. 1 of 1 listed sysctls cannot be set";
        assert!(summary.contains(expected), "{summary}");
    }
}
