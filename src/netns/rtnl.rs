//! A synchronous rtnetlink conversation: one NETLINK_ROUTE socket made on the calling thread
//! (so in its namespace), one request at a time, each answered before the next is sent. The
//! messages are the rtnetlink crate's (its builders); only the transport is this file's: no
//! runtime and no background task per conversation, which building a lab did a dozen times.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use super::link::LinkError;

/// RTMGRP_LINK: notifications of link changes.
const RTMGRP_LINK: u32 = 1;

pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn socket_error(what: &str) -> impl FnOnce(std::io::Error) -> LinkError + '_ {
    move |source| LinkError::Socket {
        what: what.to_string(),
        source,
    }
}

impl Rtnl {
    pub fn open() -> Result<Rtnl, LinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(LinkError::Connection)?;
        socket.bind_auto().map_err(LinkError::Connection)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(LinkError::Connection)?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 1 << 16],
        })
    }

    /// Sends `message` with `flags` (NLM_F_REQUEST is added) and returns the kernel's answers:
    /// every reply up to its acknowledgement with NLM_F_ACK or the end of a dump with
    /// NLM_F_DUMP, otherwise its one reply. A negative acknowledgement is the error.
    pub fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, RequestError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | netlink_packet_core::NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out[..]);
        self.socket.send(&out, 0).map_err(RequestError::Io)?;
        let mut replies = Vec::new();
        loop {
            let size = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(RequestError::Io)?;
            let mut offset = 0;
            while offset < size {
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..size])
                        .map_err(|e| RequestError::Decode(e.to_string()))?;
                let len = msg.header.length as usize;
                let multipart = msg.header.flags & NLM_F_MULTIPART != 0;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Error(e) if e.code.is_some() => {
                            return Err(RequestError::Kernel(rtnetlink::Error::NetlinkError(e)));
                        }
                        // The acknowledgement.
                        NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 && !multipart {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Kernel(rtnetlink::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl RequestError {
    /// As the link error of the step `what`.
    pub fn during(self, what: impl Into<String>) -> LinkError {
        let what = what.into();
        match self {
            RequestError::Kernel(source) => LinkError::Netlink { what, source },
            RequestError::Io(source) => LinkError::Socket { what, source },
            RequestError::Decode(message) => LinkError::Decode { what, message },
        }
    }
}

/// A socket that hears of every link change in the current namespace, made before the change
/// it waits for so that none is missed.
pub struct LinkEvents {
    socket: Socket,
}

impl LinkEvents {
    pub fn open() -> Result<LinkEvents, LinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(LinkError::Connection)?;
        socket
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(LinkError::Connection)?;
        socket
            .set_non_blocking(true)
            .map_err(LinkError::Connection)?;
        Ok(LinkEvents { socket })
    }

    /// Forgets the notifications received so far.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 8192];
        // Empty (EAGAIN), or overrun (ENOBUFS), which also says there was news.
        while self.socket.recv(&mut &mut buf[..], 0).is_ok() {}
    }

    /// Waits until a notification arrives or `deadline` passes.
    pub fn wait(&self, deadline: Instant) -> Result<(), LinkError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe {
            libc::poll(
                &mut pfd,
                1,
                ms.max(if left > Duration::ZERO { 1 } else { 0 }),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(socket_error("wait for link notifications")(e));
            }
        }
        Ok(())
    }
}
