//! Socket states through sock_diag (NETLINK_SOCK_DIAG, inet_diag), the kernel's own view, the
//! same one `ss` prints. The netlink socket belongs to the namespace it was created in, so
//! `SockDiag::open` must run on that namespace's thread; queries can then come from anywhere.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SOCK_DIAG_BY_FAMILY;
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NlAddr};
use std::sync::atomic::{AtomicBool, Ordering};

/// TCPDIAG_GETSOCK (linux/inet_diag.h): inet_diag's request for TCP sockets from before
/// sock_diag, still served.
const TCPDIAG_GETSOCK: u16 = 18;

/// Whether this kernel answers TCPDIAG_GETSOCK dumps (cleared the first time it refuses one).
static COMPAT_DUMP: AtomicBool = AtomicBool::new(true);

use super::tcp_info::TcpInfo;
use crate::vocab::{TcpInfoField, TcpState, TcpTimer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRow {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Bytes received and not yet read; for a LISTEN socket, the connections waiting in its
    /// accept queue (`sk_ack_backlog`, `tcp_diag_get_info`).
    pub recv_q: u32,
    /// Bytes sent and not yet acknowledged; for a LISTEN socket, the accept queue's limit
    /// (`sk_max_ack_backlog`: listen()'s backlog capped at net.core.somaxconn).
    pub send_q: u32,
    /// The pending timer (`idiag_timer`); Err keeps a value this build does not know.
    pub timer: Result<TcpTimer, u8>,
    /// Milliseconds left on that timer (`idiag_expires`): for a TIME_WAIT, how long it has
    /// left to live; 0 when no timer is pending.
    pub expires_ms: u32,
    /// `idiag_retrans`: RTO expiries of the current segment under the retransmit timer,
    /// probes sent under the persist and keepalive timers (icsk_probes_out); 0 in TIME_WAIT.
    pub retrans: u8,
    /// tcp_info, for full sockets; None for TIME_WAIT and request sockets, which have none.
    pub info: Option<TcpInfo>,
    /// Inode of the socket's file; 0 when no file (so no descriptor) holds it: TIME_WAIT,
    /// request sockets, and orphans whose process closed them.
    pub inode: u32,
}

impl SocketRow {
    /// A row with no timer, no queues and no tcp_info: what a TIME_WAIT or a request socket
    /// looks like before its timer is set (for tests of what reads rows).
    pub fn bare(state: TcpState, local: SocketAddr, remote: SocketAddr) -> SocketRow {
        SocketRow {
            state,
            local,
            remote,
            recv_q: 0,
            send_q: 0,
            timer: Ok(TcpTimer::Off),
            expires_ms: 0,
            retrans: 0,
            info: None,
            inode: 0,
        }
    }

    /// A tcp_info field, None where the socket has no tcp_info or its kernel's struct ends
    /// before the field.
    pub fn info(&self, field: TcpInfoField) -> Option<u64> {
        self.info.as_ref().and_then(|i| i.get(field))
    }

    /// The timer as `ss -o` prints it: `off`, or (kind,time left,retransmits or probes).
    pub fn timer_text(&self) -> String {
        match self.timer {
            Ok(TcpTimer::Off) => "off".into(),
            Ok(t) => format!("({t},{}ms,{})", self.expires_ms, self.retrans),
            Err(code) => format!("(unknown {code},{}ms,{})", self.expires_ms, self.retrans),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("failed to open a sock_diag netlink socket (is CONFIG_INET_DIAG set?): {0}")]
    Open(std::io::Error),
    #[error("failed to query sockets over sock_diag: {0}")]
    Io(std::io::Error),
    #[error("failed to decode a sock_diag reply: {0}")]
    Decode(String),
    #[error("the kernel answered the sock_diag dump with error {0}")]
    Kernel(i32),
}

pub struct SockDiag {
    socket: Socket,
}

impl SockDiag {
    pub fn open() -> Result<Self, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
        socket.bind_auto().map_err(SockDiagError::Open)?;
        socket
            .connect(&NlAddr::new(0, 0))
            .map_err(SockDiagError::Open)?;
        Ok(SockDiag { socket })
    }

    /// Every TCP socket (both families) in the given states: the IPv4 sockets, then the IPv6
    /// ones, each in the kernel's order.
    pub fn dump(&self, states: StateFlags) -> Result<Vec<SocketRow>, SockDiagError> {
        let mut rows = Vec::new();
        if COMPAT_DUMP.load(Ordering::Relaxed) {
            match self.dump_both(states.clone(), &mut rows) {
                Ok(()) => {
                    // Stable: each family's rows keep the kernel's order.
                    rows.sort_by_key(|(family, _)| *family != AF_INET);
                    return Ok(rows.into_iter().map(|(_, row)| row).collect());
                }
                // The request is refused: ask per family from now on.
                Err(SockDiagError::Kernel(_)) => COMPAT_DUMP.store(false, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
            rows.clear();
        }
        for family in [AF_INET, AF_INET6] {
            self.dump_family(family, states.clone(), &mut rows)?;
        }
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    }

    pub fn dump_all(&self) -> Result<Vec<SocketRow>, SockDiagError> {
        self.dump(StateFlags::all())
    }

    /// The socket with exactly this local and remote address in this namespace, if there is
    /// one: one hash lookup in the kernel. A dump walks every bucket of the namespace's
    /// established hash instead, which is the host's (262,144 buckets here, about 1 ms) unless
    /// the namespace has its own; per-connection questions ask this.
    pub fn lookup(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Option<SocketRow>, SockDiagError> {
        let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
        let socket_id = SocketId {
            source_port: local.port(),
            destination_port: remote.port(),
            source_address: local.ip(),
            destination_address: remote.ip(),
            interface_id: 0,
            // INET_DIAG_NOCOOKIE: any socket with this 4-tuple.
            cookie: [0xff; 8],
        };
        self.request(NLM_F_REQUEST, family, StateFlags::all(), socket_id)?;
        // One socket's answer (inet_diag_msg and tcp_info) is a few hundred bytes; this runs
        // on every round of a close's settle, so no heap buffer.
        let mut recv = [0u8; 8192];
        let size = self
            .socket
            .recv(&mut &mut recv[..], 0)
            .map_err(SockDiagError::Io)?;
        let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&recv[..size])
            .map_err(|e| SockDiagError::Decode(e.to_string()))?;
        match msg.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(resp)) => {
                Ok(row_of(&resp, &recv[..size]))
            }
            NetlinkPayload::Error(e) => match e.code.map(|c| c.get()) {
                // No such socket.
                Some(code) if code == -libc::ENOENT => Ok(None),
                Some(code) => Err(SockDiagError::Kernel(code)),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Sends one inet_diag request for TCP sockets, asking for tcp_info.
    fn request(
        &self,
        flags: u16,
        family: u8,
        states: StateFlags,
        socket_id: SocketId,
    ) -> Result<(), SockDiagError> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states,
                socket_id,
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.socket.send(&buf, 0).map_err(SockDiagError::Io)?;
        Ok(())
    }

    fn dump_family(
        &self,
        family: u8,
        states: StateFlags,
        rows: &mut Vec<(u8, SocketRow)>,
    ) -> Result<(), SockDiagError> {
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        self.request(NLM_F_REQUEST | NLM_F_DUMP, family, states, socket_id)?;
        self.receive_dump(rows)
    }

    /// One dump of both families: the ehash, which a dump walks bucket by bucket, is walked
    /// once instead of once per family. It is the request inet_diag kept from before
    /// sock_diag (TCPDIAG_GETSOCK and `struct inet_diag_req`), whose dump asks for family
    /// AF_UNSPEC; its answers are the same `inet_diag_msg`s.
    fn dump_both(
        &self,
        states: StateFlags,
        rows: &mut Vec<(u8, SocketRow)>,
    ) -> Result<(), SockDiagError> {
        const LEN: usize = 16 + 60;
        let mut req = [0u8; LEN];
        req[..4].copy_from_slice(&(LEN as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        // idiag_family (AF_UNSPEC), idiag_src_len, idiag_dst_len, idiag_ext; then the socket
        // id (48 bytes, all zero: no filter), idiag_states, idiag_dbs.
        req[19] = ExtensionFlags::INFO.bits();
        req[68..72].copy_from_slice(&states.bits().to_ne_bytes());
        self.socket.send(&req, 0).map_err(SockDiagError::Io)?;
        self.receive_dump(rows)
    }

    /// The answers to a dump, up to its end.
    fn receive_dump(&self, rows: &mut Vec<(u8, SocketRow)>) -> Result<(), SockDiagError> {
        let mut recv = vec![0u8; 1 << 16];
        loop {
            let size = self
                .socket
                .recv(&mut &mut recv[..], 0)
                .map_err(SockDiagError::Io)?;
            let mut offset = 0;
            while offset + 16 <= size {
                // The old request's answers carry its type; they are sock_diag's answers.
                if recv[offset + 4..offset + 6] == TCPDIAG_GETSOCK.to_ne_bytes() {
                    recv[offset + 4..offset + 6]
                        .copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
                }
                let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&recv[offset..size])
                    .map_err(|e| SockDiagError::Decode(e.to_string()))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(resp)) => {
                        let end = (offset + len).min(size);
                        if let Some(row) = row_of(&resp, &recv[offset..end]) {
                            rows.push((resp.header.family, row));
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return Err(SockDiagError::Kernel(e.code.map(|c| c.get()).unwrap_or(0)));
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

/// The row of one answer: `msg` is the whole netlink message, whose `inet_diag_msg` the
/// crate decodes except for the timer fields, read here from the bytes (the crate drops
/// `idiag_expires` for TIME_WAIT, `idiag_retrans` for every timer but the retransmit one, and
/// folds unknown timer values into "off").
fn row_of(resp: &InetResponse, msg: &[u8]) -> Option<SocketRow> {
    let id = &resp.header.socket_id;
    let diag = msg.get(NLMSG_HDRLEN..).unwrap_or_default();
    let (timer, expires_ms, retrans) = diag_timer(diag);
    let info = resp.nlas.iter().find_map(|n| match n {
        Nla::TcpInfo(raw) => TcpInfo::parse(raw),
        _ => None,
    });
    Some(SocketRow {
        state: TcpState::from_kernel(resp.header.state)?,
        local: SocketAddr::new(unmap(id.source_address), id.source_port),
        remote: SocketAddr::new(unmap(id.destination_address), id.destination_port),
        inode: resp.header.inode,
        recv_q: resp.header.recv_queue,
        send_q: resp.header.send_queue,
        timer,
        expires_ms,
        retrans,
        info,
    })
}

const NLMSG_HDRLEN: usize = 16;

/// `idiag_timer` (byte 2 of `struct inet_diag_msg`), `idiag_retrans` (byte 3) and
/// `idiag_expires` (the u32 after the 48-byte socket id, at 52). A message too short for them
/// reads as no timer.
fn diag_timer(diag: &[u8]) -> (Result<TcpTimer, u8>, u32, u8) {
    let (Some(&code), Some(&retrans), Some(expires)) = (diag.get(2), diag.get(3), diag.get(52..56))
    else {
        return (Ok(TcpTimer::Off), 0, 0);
    };
    let timer = TcpTimer::from_kernel(code).ok_or(code);
    let expires = u32::from_ne_bytes([expires[0], expires[1], expires[2], expires[3]]);
    (timer, expires, retrans)
}

fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(timer: u8, retrans: u8, expires: u32) -> Vec<u8> {
        let mut b = vec![0u8; 72];
        b[2] = timer;
        b[3] = retrans;
        b[52..56].copy_from_slice(&expires.to_ne_bytes());
        b
    }

    #[test]
    fn the_timer_fields_read_from_inet_diag_msg() {
        assert_eq!(
            diag_timer(&diag(3, 0, 59_874)),
            (Ok(TcpTimer::Timewait), 59_874, 0)
        );
        assert_eq!(diag_timer(&diag(1, 2, 812)), (Ok(TcpTimer::On), 812, 2));
        // The probe count under the persist timer, which the crate drops.
        assert_eq!(
            diag_timer(&diag(4, 5, 3_000)),
            (Ok(TcpTimer::Persist), 3_000, 5)
        );
    }

    #[test]
    fn an_unknown_timer_is_kept_and_a_short_message_has_none() {
        assert_eq!(diag_timer(&diag(9, 1, 10)), (Err(9), 10, 1));
        assert_eq!(diag_timer(&diag(1, 1, 10)[..40]), (Ok(TcpTimer::Off), 0, 0));
    }
}
