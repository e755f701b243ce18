//! The running kernel's release (`uname -r`): reports, `when:` conditions, the kernel matrix
//! and the reason a too-new sysctl skips a case all name it the same way.

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
