//! Root qdiscs on a link end over rtnetlink: netem (delay, jitter, loss, rate, reorder,
//! duplicate in one qdisc) and tbf (rate). rtnetlink has no builder for either, so their
//! TCA_OPTIONS are encoded here: netem's is a raw `struct tc_netem_qopt` followed by attributes
//! (not a nested list); tbf's is a nested list.

use std::time::Duration;

use futures::StreamExt;
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};

use crate::netns::link::{LinkError, index_of, nl, with_handle};

const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_BURST: u16 = 6;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;

/// What a netem qdisc is asked to do; zero means "not at all".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetemParams {
    pub delay: Duration,
    pub jitter: Duration,
    pub loss_pct: f64,
    pub rate_bps: u64,
    pub reorder_pct: f64,
    pub duplicate_pct: f64,
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// A percentage as the kernel's u32 probability (0 = never, u32::MAX = always).
fn probability(pct: f64) -> u32 {
    ((pct.clamp(0.0, 100.0) / 100.0) * f64::from(u32::MAX)).round() as u32
}

/// One netlink attribute, padded to 4 bytes, for the attributes after `tc_netem_qopt`.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity(len.div_ceil(4) * 4);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(len.div_ceil(4) * 4, 0);
    out
}

/// netem's TCA_OPTIONS payload. Latency and jitter go in the 64-bit nanosecond attributes
/// (4.15+), which override the tick-based fields of the struct.
pub fn netem_options(p: &NetemParams) -> Vec<u8> {
    let gap = u32::from(p.reorder_pct > 0.0);
    // struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter.
    let mut out = u32s(&[
        0,
        10_000,
        probability(p.loss_pct),
        gap,
        probability(p.duplicate_pct),
        0,
    ]);
    out.extend(nla(
        TCA_NETEM_LATENCY64,
        &(p.delay.as_nanos() as i64).to_ne_bytes(),
    ));
    out.extend(nla(
        TCA_NETEM_JITTER64,
        &(p.jitter.as_nanos() as i64).to_ne_bytes(),
    ));
    if p.reorder_pct > 0.0 {
        // struct tc_netem_reorder: probability, correlation.
        out.extend(nla(
            TCA_NETEM_REORDER,
            &u32s(&[probability(p.reorder_pct), 0]),
        ));
    }
    if p.rate_bps > 0 {
        // struct tc_netem_rate: rate (bytes/s), packet_overhead, cell_size, cell_overhead.
        let bytes = u32::try_from(p.rate_bps / 8).unwrap_or(u32::MAX);
        out.extend(nla(TCA_NETEM_RATE, &u32s(&[bytes, 0, 0, 0])));
    }
    out
}

/// tbf's options for a rate in bits per second. The burst must exceed the link MTU (a smaller
/// one makes the kernel log a warning and stall large packets); the limit allows about 100 ms
/// of queue at the rate.
pub fn tbf_options(rate_bps: u64) -> Vec<TcOption> {
    let bytes_per_s = u32::try_from(rate_bps / 8).unwrap_or(u32::MAX);
    // struct tc_ratespec: cell_log, linklayer = TC_LINKLAYER_ETHERNET (no rate table needed),
    // overhead, cell_align, mpu, then the rate in bytes per second.
    let ratespec = |rate: u32| [&[0u8, 1, 0, 0, 0, 0, 0, 0][..], &rate.to_ne_bytes()].concat();
    let burst = (bytes_per_s / 100).max(70_000);
    let limit = (bytes_per_s / 10).max(2 * burst);
    // struct tc_tbf_qopt: rate, peakrate, limit, buffer, mtu (TCA_TBF_BURST stands in for buffer).
    let parms = [ratespec(bytes_per_s), ratespec(0), u32s(&[limit, 0, 0])].concat();
    vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, u32s(&[burst]))),
    ]
}

pub enum Qdisc {
    Netem(NetemParams),
    Tbf { rate_bps: u64 },
}

impl Qdisc {
    fn kind(&self) -> &'static str {
        match self {
            Qdisc::Netem(_) => "netem",
            Qdisc::Tbf { .. } => "tbf",
        }
    }

    fn options(&self) -> TcAttribute {
        match self {
            Qdisc::Netem(p) => TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, netem_options(p))),
            Qdisc::Tbf { rate_bps } => TcAttribute::Options(tbf_options(*rate_bps)),
        }
    }
}

/// Replace the root qdisc of `ifindex` in the current thread's namespace.
pub async fn replace_root(
    handle: &mut rtnetlink::Handle,
    ifindex: u32,
    qdisc: &Qdisc,
) -> Result<(), rtnetlink::Error> {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = TcHandle::ROOT;
    msg.attributes = vec![TcAttribute::Kind(qdisc.kind().to_string()), qdisc.options()];
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(msg));
    // Replace, so a later step can change the impairment in place.
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut responses = handle.request(req)?;
    while let Some(m) = responses.next().await {
        if let NetlinkPayload::Error(e) = m.payload
            && e.raw_code() != 0
        {
            return Err(rtnetlink::Error::NetlinkError(e));
        }
    }
    Ok(())
}

/// Set `qdisc` as the root qdisc of `ifname`; runs on the namespace's thread.
pub fn set_root(ifname: &str, qdisc: Qdisc) -> Result<(), LinkError> {
    let ifname = ifname.to_string();
    with_handle(|mut handle| async move {
        let index = index_of(&handle, &ifname).await?;
        replace_root(&mut handle, index, &qdisc)
            .await
            .map_err(nl(format!("set a {} qdisc on `{ifname}`", qdisc.kind())))
    })
}

/// Packets the root qdisc on `ifname` dropped (netem counts its random loss here, plus any
/// queue-limit overflow).
pub fn root_drops(ifname: &str) -> Result<u64, LinkError> {
    let ifname = ifname.to_string();
    with_handle(|handle| async move {
        let index = index_of(&handle, &ifname).await?;
        let mut dump = handle.qdisc().get().execute();
        let mut drops = 0u64;
        while let Some(msg) = dump.next().await {
            let msg = msg.map_err(nl(format!("read the qdiscs of `{ifname}`")))?;
            if msg.header.index != index as i32 || msg.header.parent != TcHandle::ROOT {
                continue;
            }
            for attr in &msg.attributes {
                if let TcAttribute::Stats(stats) = attr {
                    drops = u64::from(stats.drops);
                }
            }
        }
        Ok(drops)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_options_start_with_the_qopt_struct() {
        let opts = netem_options(&NetemParams {
            delay: Duration::from_millis(20),
            loss_pct: 100.0,
            ..Default::default()
        });
        // 24-byte struct, then LATENCY64 and JITTER64 (4-byte header + 8 bytes each).
        assert_eq!(opts.len(), 24 + 12 + 12);
        assert_eq!(&opts[8..12], &u32::MAX.to_ne_bytes(), "loss probability");
        assert_eq!(&opts[28..36], &20_000_000i64.to_ne_bytes(), "latency in ns");
    }

    #[test]
    fn probabilities_scale_to_u32() {
        assert_eq!(probability(0.0), 0);
        assert_eq!(probability(50.0), u32::MAX / 2 + 1);
    }
}
