//! The socket steps' rules that need more than their shape: which socket a step works on,
//! and which keys belong to a socket a `bind` step already made.

use serde_saphyr::{Location, Spanned};

use super::Ctx;
use crate::case::model::{Connect, Listen, Sockopt, options_of};

impl Ctx<'_> {
    fn bound_socket(&mut self, name: &Spanned<String>) {
        if !self.sockets.contains(&name.value) {
            self.err(
                name.referenced,
                format!(
                    "no earlier `bind` step is named `{}` (sockets are named with `name:`, default `sock`)",
                    name.value
                ),
            );
        }
    }

    /// Keys that describe how to make a socket, which a step using a bound one cannot take.
    fn made_by_bind(&mut self, at: Location, step: &str, keys: &[(&str, bool)]) {
        for (key, present) in keys {
            if *present {
                self.err(at, format!("`{key}` belongs to the `bind` step that made the socket: a `{step}` with `socket:` uses that socket as it is"));
            }
        }
    }

    pub(super) fn listen(&mut self, l: &Listen, at: Location) {
        match (&l.socket, &l.on, l.port) {
            (Some(s), None, None) => {
                self.bound_socket(s);
                self.made_by_bind(
                    at,
                    "listen",
                    &[
                        ("addr", l.addr.is_some()),
                        ("family", l.family.is_some()),
                        ("reuseaddr", l.reuseaddr),
                    ],
                );
            }
            (None, Some(on), Some(_)) => {
                self.namespace(on);
                if let Some(a) = &l.addr {
                    self.address(a, l.family.is_some());
                }
            }
            (Some(_), _, _) => self.err(
                at,
                "a `listen` with `socket:` listens on that bound socket: it takes no `on:` or `port:`",
            ),
            (None, _, _) => self.err(
                at,
                "a `listen` needs `on:` and `port:`, or `socket:` (a socket an earlier `bind` step made)",
            ),
        }
    }

    pub(super) fn connect(&mut self, c: &Connect, at: Location) {
        self.address(&c.to, c.family.is_some());
        match (&c.socket, &c.from) {
            (Some(s), None) => {
                self.bound_socket(s);
                self.made_by_bind(
                    at,
                    "connect",
                    &[
                        ("local_port", c.local_port.is_some()),
                        ("reuseaddr", c.reuseaddr),
                        ("bind_address_no_port", c.bind_address_no_port),
                        ("bind_device", c.bind_device.is_some()),
                        ("family", c.family.is_some()),
                    ],
                );
            }
            (None, Some(from)) => self.namespace(from),
            (Some(_), Some(_)) => self.err(
                at,
                "a `connect` with `socket:` connects that bound socket from its own namespace: drop `from:`",
            ),
            (None, None) => self.err(
                at,
                "a `connect` needs `from:` (the client's namespace) or `socket:` (a socket an earlier `bind` step made)",
            ),
        }
        if c.bind_address_no_port && c.local_port.is_some_and(|p| p != 0) {
            self.err(at, "bind_address_no_port lets connect() choose the port; it cannot go with a fixed local_port");
        }
        if c.syn_data == Some(0) {
            self.err(at, "`syn_data: 0` sends nothing with the SYN: give the number of bytes (at least 1), or leave it out");
        }
    }

    pub(super) fn sockopt(&mut self, s: &Sockopt, at: Location) {
        let targets = [s.conn.is_some(), s.socket.is_some(), s.listener.is_some()];
        if targets.iter().filter(|t| **t).count() != 1 {
            self.err(at, "a `sockopt` step works on exactly one socket: `conn:` with `by:` (a connection's side), `socket:` (a `bind` step's socket) or `listener:` (a `listen` step's)");
        }
        if let Some(conn) = &s.conn {
            self.conn(&conn.value, conn.referenced);
            if s.by.is_none() {
                self.err(
                    conn.referenced,
                    "`conn:` needs `by:` (client or server): which side's socket",
                );
            }
        } else if s.by.is_some() {
            self.err(at, "`by:` goes with `conn:`");
        }
        if let Some(name) = &s.socket {
            self.bound_socket(name);
        }
        if let Some(name) = &s.listener
            && !self.listeners.contains(&name.value)
        {
            self.err(
                name.referenced,
                format!("no earlier `listen` step is named `{}`", name.value),
            );
        }
        if options_of(&s.set).is_empty() && s.get.is_none() {
            self.err(at, "a `sockopt` step needs `set:` (options to set, each read back) or `get:` (an option to read)");
        }
    }
}
