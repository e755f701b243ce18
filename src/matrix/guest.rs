//! One guest: QEMU (TCG; KVM does not work on this kind of machine) booting a kernel with the
//! host root shared read-only, running one script, within a timeout.

use crate::spawn::{Command, SpawnError, Stdio};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::kernel::Kernel;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("qemu-system-x86_64 is not installed: install qemu-system-x86 (ci/setup.sh --matrix)")]
    NoQemu,
    #[error("failed to start QEMU: {0}")]
    Spawn(SpawnError),
    #[error(
        "the path {0} contains whitespace; it is passed on the guest kernel's command line: move it"
    )]
    Whitespace(String),
    #[error("failed to write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub struct GuestSpec<'a> {
    pub kernel: &'a Kernel,
    pub initramfs: &'a Path,
    /// Shell script run in the guest (in the host root, as root).
    pub script: &'a Path,
    /// Writable share, mounted at the same path in the guest.
    pub results: &'a Path,
    pub timeout: Duration,
    pub cpus: usize,
    pub memory_mb: usize,
}

#[derive(Debug)]
pub struct GuestRun {
    pub console: PathBuf,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl GuestRun {
    /// The last lines of the serial console: why a guest did not boot or did not finish.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.console).unwrap_or_default();
        // Without the firmware's terminal escapes (ESC [ ... letter) and stray control bytes.
        let mut clean = Vec::new();
        let mut chars = text.into_iter();
        while let Some(b) = chars.next() {
            match b {
                0x1b => {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                b'\n' | b'\t' => clean.push(b),
                c if c < 0x20 => {}
                c => clean.push(c),
            }
        }
        let clean = String::from_utf8_lossy(&clean);
        let all: Vec<&str> = clean.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn arg_path(p: &Path) -> Result<String, GuestError> {
    let s = p.display().to_string();
    if s.chars().any(char::is_whitespace) {
        return Err(GuestError::Whitespace(s));
    }
    Ok(s)
}

pub fn run(spec: &GuestSpec) -> Result<GuestRun, GuestError> {
    if !crate::scenario::program_installed("qemu-system-x86_64") {
        return Err(GuestError::NoQemu);
    }
    let console = spec.results.join("console.log");
    let log = std::fs::File::create(&console).map_err(|source| GuestError::Write {
        path: console.display().to_string(),
        source,
    })?;
    let append = format!(
        "console=ttyS0 panic=-1 quiet loglevel=4 twcmd={} twres={} twmodules={} twmods=nf_conntrack",
        arg_path(spec.script)?,
        arg_path(spec.results)?,
        arg_path(&spec.kernel.modules)?,
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-machine", "q35"])
        .args([
            "-smp",
            &spec.cpus.to_string(),
            "-m",
            &spec.memory_mb.to_string(),
        ])
        // No network device: the guest's cases build their own namespaces; nothing leaves.
        .args([
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-nic",
            "none",
        ])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&spec.kernel.boot_image)
        .arg("-initrd")
        .arg(spec.initramfs)
        .args(["-append", &append])
        .args([
            "-fsdev",
            "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
        ])
        .arg("-fsdev")
        .arg(format!(
            "local,id=res,path={},security_model=none",
            arg_path(spec.results)?
        ))
        .args(["-device", "virtio-9p-pci,fsdev=res,mount_tag=results"])
        .stdin(Stdio::Null)
        .stdout(
            log.try_clone()
                .map_err(|source| GuestError::Write {
                    path: console.display().to_string(),
                    source,
                })?
                .into(),
        )
        .stderr(log.into());
    // QEMU dies with twlab: the spawner's chain of parent-death signals reaches it.
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(GuestError::Spawn)?;
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > spec.timeout => {
                // Our own child, by pid.
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(_) => break,
        }
    }
    Ok(GuestRun {
        console,
        timed_out,
        elapsed: started.elapsed(),
    })
}
