//! Kernels for the matrix: a kernel image path, or a Debian package fetched with
//! `apt-get download`, unpacked with `dpkg -x` into a cache and reused on the next run.

use crate::spawn::Command;
use std::path::{Path, PathBuf};

use super::image::{extract_vmlinux, read_bzimage};

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "`{0}` is neither a kernel image file nor a Debian package name (linux-image-<release>): pass e.g. /boot/vmlinuz-6.1.0-56-amd64 or linux-image-6.1.0-56-amd64"
    )]
    Unknown(String),
    #[error(transparent)]
    Image(#[from] super::image::ImageError),
    #[error("failed to {what}: {detail}")]
    Command { what: String, detail: String },
    #[error("failed to prepare the kernel cache {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no modules for {release} next to {image} (looked in {looked}): the guest loads veth, sch_netem, nf_tables and 9p as modules; pass the image from an unpacked package tree (<root>/boot/vmlinuz-<release> with <root>/lib/modules/<release>)"
    )]
    NoModules {
        release: String,
        image: String,
        looked: String,
    },
}

/// A kernel ready to boot: the image QEMU is given and the module tree the guest loads from.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub release: String,
    /// The ELF vmlinux when extraction worked, else the bzImage.
    pub boot_image: PathBuf,
    /// `.../lib/modules/<release>`, with modules.dep.
    pub modules: PathBuf,
    /// How it was prepared, for the report (`cached`, `downloaded`, extraction notes).
    pub notes: Vec<String>,
}

/// The default cache: `$XDG_CACHE_HOME/twlab/kernels`, else `~/.cache/twlab/kernels`.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("twlab").join("kernels")
}

fn is_package_name(s: &str) -> bool {
    s.starts_with("linux-image-")
        && s.len() > "linux-image-".len()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-~".contains(c))
}

fn run(what: &str, cmd: &mut Command) -> Result<(), KernelError> {
    let out = cmd.output().map_err(|e| KernelError::Command {
        what: what.to_string(),
        detail: format!("could not start `{}`: {e}", cmd.program()),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
    Err(KernelError::Command {
        what: what.to_string(),
        detail: format!(
            "{} ({})",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ),
    })
}

fn cache_err(path: &Path) -> impl FnOnce(std::io::Error) -> KernelError + '_ {
    move |source| KernelError::Cache {
        path: path.display().to_string(),
        source,
    }
}

/// The release a Debian kernel package unpacks to: the single `boot/vmlinuz-*` in its tree.
fn unpacked_image(root: &Path) -> Option<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(root.join("boot"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    images.sort();
    images.pop()
}

/// Fetch and unpack a Debian kernel package into `cache/<package>/root` (once).
fn fetch_package(
    name: &str,
    cache: &Path,
    notes: &mut Vec<String>,
) -> Result<PathBuf, KernelError> {
    let dir = cache.join(name);
    let root = dir.join("root");
    if let Some(image) = unpacked_image(&root) {
        notes.push(format!("cached in {}", dir.display()));
        return Ok(image);
    }
    std::fs::create_dir_all(&dir).map_err(cache_err(&dir))?;
    // apt-get download writes the .deb into the current directory.
    run(
        &format!(
            "download {name} (apt-get download; run `apt-get update` if the package is unknown)"
        ),
        Command::new("apt-get")
            .arg("download")
            .arg(name)
            .current_dir(&dir),
    )?;
    let deb = std::fs::read_dir(&dir)
        .map_err(cache_err(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| KernelError::Command {
            what: format!("download {name}"),
            detail: "apt-get download left no .deb".into(),
        })?;
    let partial = dir.join("root.partial");
    let _ = std::fs::remove_dir_all(&partial);
    run(
        &format!("unpack {}", deb.display()),
        Command::new("dpkg").arg("-x").arg(&deb).arg(&partial),
    )?;
    // Renamed only when complete, so an interrupted unpack is redone, not reused.
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&partial, &root).map_err(cache_err(&root))?;
    std::fs::remove_file(&deb).map_err(cache_err(&deb))?;
    notes.push(format!("downloaded and unpacked into {}", dir.display()));
    unpacked_image(&root).ok_or_else(|| KernelError::Command {
        what: format!("unpack {name}"),
        detail: "the package has no boot/vmlinuz-*".into(),
    })
}

/// Resolve `spec` (image path or package name) to a bootable kernel.
pub fn resolve(spec: &str, cache: &Path) -> Result<Kernel, KernelError> {
    let mut notes = Vec::new();
    let image = if Path::new(spec).is_file() {
        PathBuf::from(spec)
    } else if is_package_name(spec) {
        fetch_package(spec, cache, &mut notes)?
    } else {
        return Err(KernelError::Unknown(spec.to_string()));
    };
    let bz = read_bzimage(&image)?;
    let release = bz.release.clone();
    let modules = find_modules(&image, &release)?;
    if !modules.join("modules.dep").is_file() {
        // Debian's postinst makes modules.dep; the host may have no kmod, busybox has depmod.
        let base = modules
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"));
        run(
            "build modules.dep (busybox depmod; install busybox-static)",
            Command::new("busybox")
                .arg("depmod")
                .arg("-b")
                .arg(base)
                .arg(&release),
        )?;
        notes.push("modules.dep built with busybox depmod".into());
    }
    let boot_image = vmlinux_for(&image, cache, &release, &bz.payload, &mut notes);
    Ok(Kernel {
        release,
        boot_image,
        modules,
        notes,
    })
}

/// `<tree>/lib/modules/<release>` for an image at `<tree>/boot/...`, else the host's.
fn find_modules(image: &Path, release: &str) -> Result<PathBuf, KernelError> {
    let image = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let mut looked = Vec::new();
    let tree = image.parent().and_then(Path::parent);
    // Newer Debian packages ship usr/lib/modules (merged /usr), older ones lib/modules.
    let candidates = tree
        .into_iter()
        .flat_map(|t| {
            [
                t.join("lib/modules").join(release),
                t.join("usr/lib/modules").join(release),
            ]
        })
        .chain([Path::new("/lib/modules").join(release)]);
    for c in candidates {
        if c.join("kernel").is_dir() {
            return Ok(c);
        }
        looked.push(c.display().to_string());
    }
    Err(KernelError::NoModules {
        release: release.to_string(),
        image: image.display().to_string(),
        looked: looked.join(", "),
    })
}

/// The cached ELF vmlinux of this release, extracting it on first use; the bzImage if that
/// fails (with a note saying why: the boot is slower, nothing else changes).
fn vmlinux_for(
    image: &Path,
    cache: &Path,
    release: &str,
    payload: &[u8],
    notes: &mut Vec<String>,
) -> PathBuf {
    let path = cache.join("vmlinux").join(format!("vmlinux-{release}"));
    if path.is_file() {
        return path;
    }
    let written = extract_vmlinux(payload).and_then(|elf| {
        let dir = cache.join("vmlinux");
        let partial = dir.join(format!(".vmlinux-{release}.partial"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&partial, elf))
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| format!("failed to write {}: {e}", path.display()))
    });
    match written {
        Ok(()) => {
            notes.push(format!("ELF vmlinux extracted to {}", path.display()));
            path
        }
        Err(why) => {
            notes.push(format!(
                "booting the bzImage itself (slower under TCG): {why}"
            ));
            image.to_path_buf()
        }
    }
}
