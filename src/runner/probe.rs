//! Can this process build namespaces at all? Probed once by trying, not guessed from the uid:
//! a root process in a container may still lack CAP_SYS_ADMIN.

use std::sync::OnceLock;

use crate::netns::Namespace;

/// `Err(reason)` when cases cannot run here; the reason is shown as the skip reason.
pub fn namespaces_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            Namespace::create("probe").map(drop).map_err(|e| {
                format!("cannot create network namespaces here ({e}); run as root, or in a privileged container")
            })
        })
        .clone()
}

/// `TWLAB_STRICT=1`: every skip becomes a failure, for privileged CI where a skip would hide a
/// broken set-up.
pub fn strict() -> bool {
    std::env::var("TWLAB_STRICT").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `TWLAB_ALLOW_MISSING=netem,...`: kernel parts this machine is known to lack. Under
/// `TWLAB_STRICT`, a case skipped because it requires one of them stays a skip; every other skip
/// still fails, so a CI kernel that loses a part it had is noticed.
pub fn allowed_missing(feature: &str) -> bool {
    std::env::var("TWLAB_ALLOW_MISSING").is_ok_and(|v| v.split(',').any(|f| f.trim() == feature))
}

/// Which of the features `when:` conditions may name this kernel has (probed once).
fn features_here() -> &'static std::collections::BTreeSet<String> {
    static FEATURES: OnceLock<std::collections::BTreeSet<String>> = OnceLock::new();
    FEATURES.get_or_init(|| {
        crate::case::FEATURES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| match *name {
                "netem" => crate::impair::netem_available().is_ok(),
                "tcp_tw_reuse_delay" => {
                    std::path::Path::new("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists()
                }
                // Loaded, or loadable: a case enabling conntrack loads the module.
                "conntrack" => {
                    std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists()
                        || conntrack_module_installed()
                }
                _ => false,
            })
            .map(str::to_string)
            .collect()
    })
}

pub(crate) fn conntrack_module_installed() -> bool {
    let dep = format!(
        "/lib/modules/{}/modules.dep",
        crate::observe::kernel_release()
    );
    std::fs::read_to_string(dep).is_ok_and(|d| d.contains("/nf_conntrack.ko"))
}

/// What `when:` conditions are judged against for one trial.
pub fn platform(backend: Option<&str>, family: crate::vocab::Family) -> crate::case::Platform {
    crate::case::Platform {
        release: crate::observe::kernel_release(),
        features: features_here().clone(),
        backend: backend.map(str::to_string),
        family: Some(family),
    }
}
