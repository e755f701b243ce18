//! Links and addresses over rtnetlink (no `ip` processes: one netlink round trip per object,
//! a few milliseconds for a whole pair instead of tens). Each function runs on the thread of
//! the namespace it configures.

use std::net::IpAddr;
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("failed to start a netlink runtime: {0}")]
    Runtime(std::io::Error),
    #[error("failed to open an rtnetlink socket: {0}")]
    Connection(std::io::Error),
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

/// Bring `lo` up in the current namespace.
pub fn loopback_up() -> Result<(), LinkError> {
    with_handle(|handle| async move {
        let index = index_of(&handle, "lo").await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl("bring lo up"))
    })
}

/// Create a veth pair from the current namespace: `local` here, `peer` directly inside the
/// namespace `peer_ns_fd`, so the peer's name never appears in any other namespace.
pub fn create_veth(local: &str, peer: &str, peer_ns_fd: RawFd) -> Result<(), LinkError> {
    let local = local.to_string();
    let peer = peer.to_string();
    with_handle(|handle| async move {
        let peer_msg = LinkUnspec::new_with_name(&peer)
            .setns_by_fd(peer_ns_fd)
            .build();
        let msg = LinkVeth::new(&local, &peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl(format!("create veth `{local}` with peer `{peer}`")))
    })
}

/// Add addresses to an interface (without IPv6 duplicate address detection, so they are usable
/// at once) and bring it up.
pub fn configure(ifname: &str, addrs: Vec<(IpAddr, u8)>) -> Result<(), LinkError> {
    let ifname = ifname.to_string();
    with_handle(|handle| async move {
        let index = index_of(&handle, &ifname).await?;
        for (addr, prefix) in addrs {
            let mut req = handle.address().add(index, addr, prefix);
            if addr.is_ipv6() {
                req.message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            req.execute()
                .await
                .map_err(nl(format!("add {addr}/{prefix} to `{ifname}`")))?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("bring `{ifname}` up")))
    })
}

/// Wait until the interface is operationally up. Carrier changes reach the qdisc layer through
/// the kernel's asynchronous linkwatch work; a packet sent before that is dropped and the first
/// SYN then waits out a full retransmission timeout (seen: 2 s on IPv6 connects).
pub fn wait_up(ifname: &str, limit: std::time::Duration) -> Result<(), LinkError> {
    use netlink_packet_route::link::{LinkAttribute, State};
    let ifname = ifname.to_string();
    with_handle(|handle| async move {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut links = handle.link().get().match_name(ifname.clone()).execute();
            let link = links
                .try_next()
                .await
                .map_err(nl(format!("look up `{ifname}`")))?
                .ok_or_else(|| LinkError::Missing(ifname.clone()))?;
            let up = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
            if up {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(LinkError::NotUp(ifname.clone(), limit));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
}

/// A default route through `gateway` in the current namespace.
pub fn default_route(gateway: IpAddr) -> Result<(), LinkError> {
    with_handle(|handle| async move {
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
        handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(nl(format!("add a default route via {gateway}")))
    })
}
