//! Does this kernel have sch_netem? Found by trying (a netem qdisc on `lo` of a scratch
//! namespace), once per process: kernels without the module answer "unknown qdisc kind".

use std::sync::OnceLock;

use crate::netns::Namespace;
use crate::netns::link::LinkError;

use super::qdisc::{NetemParams, Qdisc, set_root};

/// `Ok(())` when netem can be used, else why not.
pub fn netem_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let ns = Namespace::create("netem-probe").map_err(|e| e.to_string())?;
            ns.run(|| set_root("lo", Qdisc::Netem(NetemParams::default())))
                .map_err(|e| e.to_string())?
                .map_err(|e| match e {
                    // What the kernel answers for a qdisc kind it does not have.
                    LinkError::Netlink { source: rtnetlink::Error::NetlinkError(m), .. } if m.raw_code() == -2 => {
                        "this kernel has no sch_netem (CONFIG_NET_SCH_NETEM is off or its module is not installed)".to_string()
                    }
                    other => format!("a netem qdisc was refused: {other}"),
                })
        })
        .clone()
}
