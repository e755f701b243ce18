//! Links and addresses over rtnetlink (no `ip` processes: one netlink round trip per object,
//! a few milliseconds for a whole pair instead of tens). Each function runs on the thread of
//! the namespace it configures, over a synchronous conversation (`Rtnl`) made there; the
//! asynchronous `with_handle` serves the qdisc code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage, State};
use rtnetlink::{AddressMessageBuilder, Handle, LinkUnspec, LinkVeth};

pub use super::rtnl::{LinkEvents, Rtnl};

/// The flags the rtnetlink crate sends with a new object (`add`) and with a change (`set`)
/// alike.
const CREATE: u16 = NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("failed to start a netlink runtime: {0}")]
    Runtime(std::io::Error),
    #[error("failed to open an rtnetlink socket: {0}")]
    Connection(std::io::Error),
    #[error("failed to {what}: rtnetlink socket: {source}")]
    Socket {
        what: String,
        source: std::io::Error,
    },
    #[error("failed to {what}: {message}")]
    Decode { what: String, message: String },
    #[error("failed to {what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("interface `{0}` not found after creating it")]
    Missing(String),
    #[error("invalid route: {0}")]
    Route(String),
    #[error("interface `{0}` did not come up within {1:?}")]
    NotUp(String, std::time::Duration),
    #[error(
        "an address of interface index {0} was still tentative after {1:?} (the kernel's addrconf work did not run)"
    )]
    Tentative(u32, std::time::Duration),
}

/// Run an rtnetlink conversation on the current thread (and so in its namespace).
pub fn with_handle<R, F, Fut>(f: F) -> Result<R, LinkError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<R, LinkError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(LinkError::Runtime)?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connection)?;
        let task = tokio::spawn(conn);
        let out = f(handle).await;
        task.abort();
        out
    })
}

pub fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Netlink { what, source }
}

pub async fn index_of(handle: &Handle, name: &str) -> Result<u32, LinkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links
        .try_next()
        .await
        .map_err(nl(format!("look up `{name}`")))?
    {
        Some(link) => Ok(link.header.index),
        None => Err(LinkError::Missing(name.to_string())),
    }
}

/// The index of the interface `name` in the current namespace.
pub fn index(rtnl: &mut Rtnl, name: &str) -> Result<u32, LinkError> {
    Ok(link_named(rtnl, name)?.header.index)
}

fn link_named(rtnl: &mut Rtnl, name: &str) -> Result<LinkMessage, LinkError> {
    let mut query = LinkMessage::default();
    query
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let replies = rtnl
        .request(RouteNetlinkMessage::GetLink(query), 0)
        .map_err(|e| e.during(format!("look up `{name}`")))?;
    replies
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(link),
            _ => None,
        })
        .ok_or_else(|| LinkError::Missing(name.to_string()))
}

fn set_up(rtnl: &mut Rtnl, index: u32, ifname: &str) -> Result<(), LinkError> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    rtnl.request(RouteNetlinkMessage::SetLink(msg), CREATE)
        .map(drop)
        .map_err(|e| e.during(format!("bring `{ifname}` up")))
}

/// Bring `lo` up in the current namespace.
pub fn loopback_up(rtnl: &mut Rtnl) -> Result<(), LinkError> {
    let index = index(rtnl, "lo")?;
    let msg = LinkUnspec::new_with_index(index).up().build();
    rtnl.request(RouteNetlinkMessage::SetLink(msg), CREATE)
        .map(drop)
        .map_err(|e| e.during("bring lo up"))
}

/// Create a veth pair from the current namespace: `local` here, `peer` directly inside the
/// namespace `peer_ns_fd`, so the peer's name never appears in any other namespace.
pub fn create_veth(
    rtnl: &mut Rtnl,
    local: &str,
    peer: &str,
    peer_ns_fd: RawFd,
) -> Result<(), LinkError> {
    let peer_msg = LinkUnspec::new_with_name(peer)
        .setns_by_fd(peer_ns_fd)
        .build();
    let msg = LinkVeth::new(local, peer)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    rtnl.request(RouteNetlinkMessage::NewLink(msg), CREATE)
        .map(drop)
        .map_err(|e| e.during(format!("create veth `{local}` with peer `{peer}`")))
}

/// Add addresses to an interface (without IPv6 duplicate address detection, so they are usable
/// at once) and bring it up.
pub fn configure(rtnl: &mut Rtnl, ifname: &str, addrs: &[(IpAddr, u8)]) -> Result<(), LinkError> {
    let index = index(rtnl, ifname)?;
    for &(addr, prefix) in addrs {
        let mut msg = match addr {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
        };
        if addr.is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        rtnl.request(RouteNetlinkMessage::NewAddress(msg), CREATE)
            .map_err(|e| e.during(format!("add {addr}/{prefix} to `{ifname}`")))?;
    }
    set_up(rtnl, index, ifname)
}

/// Wait until the interface is operationally up. Carrier changes reach the qdisc layer through
/// the kernel's asynchronous linkwatch work; a packet sent before that is dropped and the first
/// SYN then waits out a full retransmission timeout (seen: 2 s on IPv6 connects). `events` was
/// opened before the interface was brought up; each notification is a reason to look again.
pub fn wait_up(
    rtnl: &mut Rtnl,
    events: &mut LinkEvents,
    ifname: &str,
    limit: std::time::Duration,
) -> Result<(), LinkError> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        events.drain();
        let up = link_named(rtnl, ifname)?
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
        if up {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(LinkError::NotUp(ifname.to_string(), limit));
        }
        events.wait(deadline)?;
    }
}

/// Wait until no address in the current namespace is tentative. IFA_F_NODAD skips duplicate
/// address detection, but the address stays tentative, and its solicited-node multicast group
/// unjoined, until the kernel's addrconf work runs (addrconf_dad_begin, from a workqueue,
/// after the link comes up). A neighbour solicitation that arrives before then is ignored,
/// and the peer's first SYN then waits out a neighbour retransmission (1 s): seen on IPv6
/// connects while other trials kept the CPUs busy (1 run in 8 of three cases side by side
/// failed so; the wait found a tentative address in most runs). Looks are 50 us apart: the
/// work usually runs within a few hundred microseconds, and a 1 ms poll cost the minimal
/// case 0.95 ms (benches/lab).
pub fn wait_addresses_ready(rtnl: &mut Rtnl, limit: std::time::Duration) -> Result<(), LinkError> {
    use netlink_packet_core::NLM_F_DUMP;
    use netlink_packet_route::address::{AddressHeaderFlags, AddressMessage};
    let deadline = std::time::Instant::now() + limit;
    loop {
        let replies = rtnl
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|e| e.during("list addresses"))?;
        let tentative = replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a)
                if a.header.flags.contains(AddressHeaderFlags::Tentative)
                    || a.attributes.iter().any(|at| {
                        matches!(at, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative))
                    }) =>
            {
                Some(a.header.index)
            }
            _ => None,
        });
        let Some(index) = tentative else {
            return Ok(());
        };
        if std::time::Instant::now() >= deadline {
            return Err(LinkError::Tentative(index, limit));
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// A default route through `gateway` in the current namespace.
pub fn default_route(rtnl: &mut Rtnl, gateway: IpAddr) -> Result<(), LinkError> {
    let any = match gateway {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    // The destination 0/0 also sets the message's address family, which `gateway` needs.
    let route = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(any, 0)
        .map_err(|e| LinkError::Route(e.to_string()))?
        .gateway(gateway)
        .map_err(|e| LinkError::Route(e.to_string()))?
        .build();
    rtnl.request(RouteNetlinkMessage::NewRoute(route), CREATE)
        .map(drop)
        .map_err(|e| e.during(format!("add a default route via {gateway}")))
}
