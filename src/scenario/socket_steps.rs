//! The steps that work on one socket rather than a whole connection: `bind` (a socket made
//! and bound ahead of its `listen` or `connect`), `accept` (a connection a `connect` left in
//! the listener's queue) and `sockopt` (options set and read back).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use crate::case::{Accept, Bind, Sockopt, options_of};
use crate::vocab::Outcome;

use super::engine::{Bound, Engine, EngineError};
use super::outcome::StepRecord;
use super::socket as so;

impl Engine<'_> {
    /// socket(), the options in order, SO_BINDTODEVICE, bind(): the bound address is the
    /// step's `local`.
    pub(super) fn bind(
        &mut self,
        b: &Bind,
        addr: SocketAddr,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let options = options_of(&b.options).to_vec();
        let device = b.device.clone();
        let made = {
            let options = options.clone();
            self.lab.ns(&b.on.value).enter(
                move || -> Result<OwnedFd, (String, nix::errno::Errno)> {
                    let fd = so::tcp_socket(addr.ip()).map_err(|e| ("socket()".to_string(), e))?;
                    so::apply_options(&fd, &options)?;
                    if let Some(dev) = &device {
                        so::bind_to_device(&fd, dev)
                            .map_err(|e| (format!("setsockopt(SO_BINDTODEVICE {dev})"), e))?;
                    }
                    so::bind(&fd, addr).map_err(|e| (format!("bind({addr})"), e))?;
                    Ok(fd)
                },
            )?
        };
        match made {
            Ok(fd) => {
                rec.local = so::local_addr(&fd).ok();
                rec.detail = match rec.local {
                    Some(a) => format!("bound {a} in {}", b.on.value),
                    None => format!("bound in {}", b.on.value),
                };
                let old = self.bound.insert(
                    b.name.clone(),
                    Bound {
                        ns: b.on.value.clone(),
                        fd,
                        options,
                        device: b.device.clone(),
                    },
                );
                self.retired.extend(old.map(|o| o.fd));
            }
            Err((call, e)) => {
                rec.outcome = Outcome::Errno(e);
                rec.detail = format!("{call} failed in {}", b.on.value);
            }
        }
        Ok(())
    }

    /// accept() the server side of a connection its `connect` left in the queue.
    pub(super) fn accept_step(
        &mut self,
        a: &Accept,
        rec: &mut StepRecord,
    ) -> Result<(), EngineError> {
        let Some(conn) = self.conns.remove(&a.conn) else {
            rec.outcome = Outcome::Skipped(format!("no connection `{}`", a.conn));
            return Ok(());
        };
        let result = if conn.server.is_some() {
            Err(Outcome::Skipped(format!(
                "connection `{}` was accepted already",
                a.conn
            )))
        } else if let Some(why) = &conn.failed {
            Err(Outcome::Skipped(format!(
                "connection `{}` failed to connect ({why})",
                a.conn
            )))
        } else {
            self.accept_for(&conn, a.timeout.0)?
        };
        let mut conn = conn;
        match result {
            Ok(fd) => {
                rec.local = so::local_addr(&fd).ok();
                if let Ok(peer) = so::peer_addr(&fd) {
                    rec.detail = format!("accepted {peer}");
                }
                conn.server = Some(fd);
            }
            Err(outcome) => rec.outcome = outcome,
        }
        self.conns.insert(a.conn.clone(), conn);
        Ok(())
    }

    /// setsockopt() of each option in order, each read back with getsockopt(); or one
    /// getsockopt(). The value read last is the step's `value`.
    pub(super) fn sockopt(&mut self, s: &Sockopt, rec: &mut StepRecord) {
        let fd: Result<&OwnedFd, String> = match (&s.conn, &s.socket, &s.listener) {
            (Some(conn), _, _) => match s.by {
                Some(by) => self.open_socket(&conn.value, by),
                None => Err("`conn:` without `by:`".into()),
            },
            (_, Some(name), _) => self
                .bound
                .get(&name.value)
                .map(|b| &b.fd)
                .ok_or_else(|| format!("socket `{}` was taken by a `listen` or `connect`; name the listener or the connection instead", name.value)),
            (_, _, Some(name)) => self
                .listeners
                .get(&name.value)
                .map(|l| &l.fd)
                .ok_or_else(|| format!("no open listener `{}`", name.value)),
            _ => Err("no socket named".into()),
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(why) => {
                rec.outcome = Outcome::Skipped(why);
                return;
            }
        };
        let mut done = Vec::new();
        for o in options_of(&s.set) {
            if let Err(e) = so::set_option(fd, o) {
                rec.outcome = Outcome::Errno(e);
                done.push(format!("setsockopt({o}) failed"));
                rec.detail = done.join(", ");
                return;
            }
            match so::get_option(fd, o.name) {
                Ok(v) => {
                    done.push(format!("{o} (reads back {v})"));
                    rec.value = Some(v);
                }
                Err(e) => {
                    rec.outcome = Outcome::Errno(e);
                    done.push(format!("{o} set, but getsockopt failed"));
                    rec.detail = done.join(", ");
                    return;
                }
            }
        }
        if let Some(get) = &s.get {
            match so::get_option(fd, get.value) {
                Ok(v) => {
                    done.push(format!("{} is {v}", get.value.name()));
                    rec.value = Some(v);
                }
                Err(e) => {
                    rec.outcome = Outcome::Errno(e);
                    done.push(format!("getsockopt({}) failed", get.value.name()));
                }
            }
        }
        rec.detail = done.join(", ");
    }
}
