//! The guest's initramfs: a static busybox, the few modules needed to reach the host root
//! (virtio-pci, 9p, overlay) and twlab's init script, as a newc cpio archive.
//!
//! Why our own and not virtme-ng: virtme-ng expects the guest kernel's modules under the
//! host's /lib/modules or a kernel build tree, and runs the host's own init tooling; this
//! machine has no kmod and Debian's packages unpack elsewhere. Twenty lines of init give the
//! guest exactly the host root (read-only), a results share and on-demand module loading.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use cpio::NewcBuilder;

const INIT: &str = include_str!("init.sh");

/// Modules the init loads before it can mount anything (their dependencies come along).
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error(
        "no static busybox found (looked for {0}): the guest's init is busybox; install busybox-static"
    )]
    NoBusybox(String),
    #[error(
        "{0} is dynamically linked; the initramfs needs a static busybox: install busybox-static"
    )]
    DynamicBusybox(String),
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write the initramfs {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, InitramfsError> {
    std::fs::read(path).map_err(|source| InitramfsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn busybox() -> Result<PathBuf, InitramfsError> {
    let candidates = [
        "/bin/busybox",
        "/usr/bin/busybox",
        "/usr/lib/initramfs-tools/bin/busybox",
    ];
    let path = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| InitramfsError::NoBusybox(candidates.join(", ")))?;
    let head = read(&path)?;
    // A dynamic executable names its loader in PT_INTERP, near the start of the file.
    let window = &head[..head.len().min(4096)];
    if window
        .windows(8)
        .any(|w| w == b"/lib64/l" || w == b"/lib/ld-")
    {
        return Err(InitramfsError::DynamicBusybox(path.display().to_string()));
    }
    Ok(path)
}

/// `BOOT_MODULES` and everything they depend on, as paths relative to the module tree, in
/// modules.dep order. A module missing from modules.dep is built in (nothing to load).
fn boot_module_files(modules_dep: &str) -> Vec<String> {
    let deps: Vec<(&str, Vec<&str>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (path, rest) = l.split_once(':')?;
            Some((path, rest.split_whitespace().collect()))
        })
        .collect();
    let name = |p: &str| {
        let file = p.rsplit('/').next().unwrap_or(p);
        file.split(".ko").next().unwrap_or(file).replace('-', "_")
    };
    // The closure over modules.dep (depmod writes it transitively; busybox's may not).
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = BOOT_MODULES
        .iter()
        .filter_map(|m| deps.iter().find(|(p, _)| name(p) == *m))
        .map(|(p, _)| p.to_string())
        .collect();
    while let Some(path) = todo.pop() {
        if !out.insert(path.clone()) {
            continue;
        }
        if let Some((_, needs)) = deps.iter().find(|(p, _)| *p == path) {
            todo.extend(needs.iter().map(|d| d.to_string()));
        }
    }
    out.into_iter().collect()
}

struct Archive<W: Write> {
    out: Option<W>,
    ino: u32,
}

impl<W: Write> Archive<W> {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.ino += 1;
        let out = self.out.take().expect("archive open");
        let mut w = NewcBuilder::new(name)
            .ino(self.ino)
            .mode(mode)
            .nlink(1)
            .write(out, data.len() as u32);
        w.write_all(data)?;
        self.out = Some(w.finish()?);
        Ok(())
    }

    fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.entry(name, 0o040755, &[])
    }

    fn finish(mut self) -> std::io::Result<W> {
        cpio::newc::trailer(self.out.take().expect("archive open"))
    }
}

/// Write the initramfs for a kernel whose module tree is `modules` (`.../lib/modules/<rel>`).
pub fn build(modules: &Path, release: &str, out: &Path) -> Result<(), InitramfsError> {
    let busybox = busybox()?;
    let dep = String::from_utf8_lossy(&read(&modules.join("modules.dep"))?).into_owned();
    let files = boot_module_files(&dep);
    let write_err = |source| InitramfsError::Write {
        path: out.display().to_string(),
        source,
    };
    let file = std::fs::File::create(out).map_err(write_err)?;
    let mut a = Archive {
        out: Some(std::io::BufWriter::new(file)),
        ino: 0,
    };
    let mut dirs: BTreeSet<String> = [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "lower",
        "rw",
        "newroot",
        "lib",
        "lib/modules",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let base = format!("lib/modules/{release}");
    for f in &files {
        let mut p = Path::new(&base).join(f);
        while let Some(parent) = p.parent() {
            if parent.as_os_str().is_empty() {
                break;
            }
            dirs.insert(parent.display().to_string());
            p = parent.to_path_buf();
        }
    }
    dirs.insert(base.clone());
    (|| -> std::io::Result<()> {
        // BTreeSet order puts every parent before its children.
        for d in &dirs {
            a.dir(d)?;
        }
        a.entry("bin/busybox", 0o100755, &std::fs::read(&busybox)?)?;
        a.entry("init", 0o100755, INIT.as_bytes())?;
        for f in &files {
            a.entry(
                &format!("{base}/{f}"),
                0o100644,
                &std::fs::read(modules.join(f))?,
            )?;
        }
        for meta in [
            "modules.dep",
            "modules.alias",
            "modules.symbols",
            "modules.builtin",
        ] {
            if let Ok(data) = std::fs::read(modules.join(meta)) {
                a.entry(&format!("{base}/{meta}"), 0o100644, &data)?;
            }
        }
        a.finish()?.flush()
    })()
    .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::boot_module_files;

    #[test]
    fn boot_modules_come_with_their_dependencies() {
        let dep = "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n\
                   kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko\n\
                   kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko\n\
                   kernel/net/sched/sch_netem.ko:\n";
        let files = boot_module_files(dep);
        assert!(files.contains(&"kernel/fs/9p/9p.ko".to_string()));
        assert!(files.contains(&"kernel/fs/netfs/netfs.ko".to_string()));
        assert!(files.contains(&"kernel/drivers/virtio/virtio.ko".to_string()));
        assert!(!files.iter().any(|f| f.contains("netem")), "{files:?}");
        // overlay is not in this modules.dep: built in, nothing to pack.
        assert!(!files.iter().any(|f| f.contains("overlay")));
    }
}
