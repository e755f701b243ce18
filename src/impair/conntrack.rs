//! Conntrack in a namespace: a `ct state` rule is what makes the kernel attach its conntrack
//! hooks to a namespace (nothing is tracked before), and masquerading for NAT cases. The rules
//! live in the namespace's own table `inet twlab_ct` and die with it.

use super::nft::{self, NftError};

/// The nft commands that turn tracking on (forwarded and local traffic) and, optionally,
/// masquerade what leaves through `masquerade`.
pub fn rules(masquerade: Option<&str>) -> String {
    let mut out = String::from(
        "add table inet twlab_ct\n\
         add chain inet twlab_ct forward { type filter hook forward priority 0; policy accept; }\n\
         add chain inet twlab_ct input { type filter hook input priority 0; policy accept; }\n\
         add rule inet twlab_ct forward ct state new,established,related,invalid counter\n\
         add rule inet twlab_ct input ct state new,established,related,invalid counter\n",
    );
    if let Some(ifname) = masquerade {
        out += "add chain inet twlab_ct nat { type nat hook postrouting priority srcnat; policy accept; }\n";
        out += &format!("add rule inet twlab_ct nat oifname \"{ifname}\" masquerade\n");
    }
    out
}

/// Enable tracking in the current thread's namespace.
pub fn enable(masquerade: Option<&str>) -> Result<(), NftError> {
    nft::run(&rules(masquerade))
}
