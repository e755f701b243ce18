//! A host-global setting to change: the key and the value a case wants.

/// One host-global sysctl to set for the duration of a case, e.g.
/// `net.netfilter.nf_conntrack_max` = `64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostChange {
    pub key: String,
    pub value: String,
}

impl HostChange {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> HostChange {
        HostChange {
            key: key.into(),
            value: value.into(),
        }
    }
}
