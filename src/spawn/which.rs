//! Finding a program before starting it: on PATH, or for the admin tools twlab runs itself
//! (iptables, nft) also in the sbin directories a non-root PATH lacks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn search(name: &str, extra: &[&str]) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The program a case's `exec` step names: a path that is an executable file, or a name found
/// on PATH (what exec will look up).
pub fn which(name: &str) -> Option<PathBuf> {
    search(name, &[])
}

/// An admin tool (iptables, ip6tables): on PATH, else in /usr/sbin or /sbin. Run it by the
/// path returned.
pub fn which_admin_tool(name: &str) -> Option<PathBuf> {
    search(name, &["/usr/sbin", "/sbin"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_and_refuses_what_is_not_executable() {
        assert!(which("sh").is_some());
        assert_eq!(which("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(which("no-such-program-twlab").is_none());
        assert!(which("/etc/passwd").is_none(), "not executable");
        assert!(which("/etc").is_none(), "a directory");
    }
}
