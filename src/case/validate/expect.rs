//! Lowering each kind of expectation to its typed check, with every mistake at its place.

use crate::case::check::{Check, PacketFields, PacketSelect, RowTest, SocketField, SocketFilter};
use crate::case::model::ExpectSpec;
use crate::vocab::{
    CONNTRACK_TCP_STATES, HeaderOption, OptionSet, TcpInfoField, TcpKind, TcpOption, TcpState,
    TcpTimer,
};
use serde_saphyr::{Location, Spanned};

use super::Ctx;

impl Ctx<'_> {
    /// A `result: LABEL` expectation: step outcomes, counts, durations, bytes.
    pub(super) fn result_expectation(
        &mut self,
        e: &ExpectSpec,
        label: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        if !self.labels.contains(&label.value) {
            let known: Vec<_> = self.labels.iter().cloned().collect();
            self.err(label.referenced, format!("no step is labelled `{}` (labels: {}; a step's label defaults to its kind, and a close's peer is `<label>.peer`)", label.value, known.join(", ")));
        }
        let l = label.value.clone();
        let mut any = self.totals(
            e,
            Self::outcome,
            &|outcome, cmp| Check::ResultCount {
                label: l.clone(),
                outcome,
                cmp,
            },
            push,
        );
        if let Some(f) = &e.first_error {
            any = true;
            let expected = if f.value == "none" {
                Some(None)
            } else if f.value == crate::vocab::OK {
                // Only failing attempts have a first error: `ok` could never be seen.
                self.err(
                    f.referenced,
                    "`first_error: ok` can never hold: it names the first failing attempt's outcome; to say that no attempt failed, write `first_error: none`",
                );
                None
            } else {
                self.outcome(f).map(Some)
            };
            if let Some(expected) = expected {
                push(
                    f.referenced,
                    Check::FirstError {
                        label: l.clone(),
                        expected,
                    },
                );
            }
        }
        if let Some(a) = &e.all {
            any = true;
            if let Some(o) = self.outcome(a) {
                push(
                    a.referenced,
                    Check::All {
                        label: l.clone(),
                        outcome: o,
                    },
                );
            }
        }
        if let Some(c) = &e.duration_ms {
            any = true;
            push(
                c.referenced,
                Check::DurationMs {
                    label: l.clone(),
                    cmp: c.value,
                },
            );
        }
        if let Some(c) = &e.bytes {
            any = true;
            push(
                c.referenced,
                Check::Bytes {
                    label: l.clone(),
                    cmp: c.value,
                },
            );
        }
        if let Some(w) = &e.value {
            any = true;
            push(
                w.referenced,
                Check::ResultValue {
                    label: l.clone(),
                    wanted: w.value,
                },
            );
        }
        if let Some(range) = e.local_port {
            any = true;
            push(
                at,
                Check::ResultLocalPort {
                    label: l.clone(),
                    range,
                },
            );
        }
        if !any {
            self.err(at, "say what to check about the results: ok, errors, first_error, all, attempts, duration_ms, bytes, value or local_port");
        }
    }

    /// `attempts`, `ok` and `errors: {OUTCOME: cmp}`: counts by outcome, for `result:` and
    /// `workload:` alike (`check` builds the kind's check, `outcome` checks a name). True if
    /// any was given.
    pub(super) fn totals(
        &mut self,
        e: &ExpectSpec,
        outcome: fn(&mut Self, &Spanned<String>) -> Option<String>,
        check: &dyn Fn(Option<String>, crate::vocab::Comparison) -> Check,
        push: &mut dyn FnMut(Location, Check),
    ) -> bool {
        let mut any = false;
        if let Some(c) = &e.attempts {
            any = true;
            push(c.referenced, check(None, c.value));
        }
        if let Some(c) = &e.ok {
            any = true;
            push(c.referenced, check(Some(crate::vocab::OK.into()), c.value));
        }
        if let Some(errors) = &e.errors {
            for (name, c) in errors.iter() {
                any = true;
                if let Some(o) = outcome(self, name) {
                    push(c.referenced, check(Some(o), c.value));
                }
            }
        }
        any
    }

    /// A `sockets: NS` expectation: how many sockets match at a sample, and what every one of
    /// them shows (timer, queues, tcp_info, options).
    pub(super) fn sockets_expectation(
        &mut self,
        e: &ExpectSpec,
        ns: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        self.namespace(ns);
        // Check every key before giving up, so one run shows all of this expectation's problems.
        let mut bad = false;
        let state = match &e.state {
            Some(s) => match TcpState::from_name(&s.value) {
                Some(st) => Some(st),
                None => {
                    self.err(s.referenced, format!("`{}` is not a TCP state (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING)", s.value));
                    bad = true;
                    None
                }
            },
            None => None,
        };
        let at_label = self.sample_label(&e.at).unwrap_or_else(|| {
            bad = true;
            String::new()
        });
        let filter = SocketFilter {
            state,
            has_file: e.has_file,
            port: e.port,
            local_port: e.local_port,
            remote_port: e.remote_port,
        };
        let tests = self.row_tests(e, at, &mut bad);
        // A row check written, even one refused above, stands in for `count:`.
        let any_test = !tests.is_empty() || bad_row_check(e, bad);
        if !bad {
            for (position, test) in tests {
                push(
                    position,
                    Check::SocketRows {
                        ns: ns.value.clone(),
                        filter: filter.clone(),
                        at: at_label.clone(),
                        test,
                    },
                );
            }
        }
        if e.count.is_none() && any_test {
            return;
        }
        let Some(count) = &e.count else {
            self.err(at, "a `sockets:` expectation needs `count:`, or a check that every matching socket meets: `timer`, `expires_ms`, `retrans`, `recv_q`, `send_q`, `info`, `options`, `no_options`, `rtt_ms` or `min_rtt_ms`");
            return;
        };
        if bad {
            return;
        }
        push(
            count.referenced,
            Check::Sockets {
                ns: ns.value.clone(),
                filter,
                at: at_label,
                cmp: count.value,
            },
        );
    }

    /// The checks of a `sockets:` expectation that every matching row must meet, each at its
    /// key's position; a bad name is reported at its place and sets `bad`.
    fn row_tests(
        &mut self,
        e: &ExpectSpec,
        at: Location,
        bad: &mut bool,
    ) -> Vec<(Location, RowTest)> {
        let mut tests = Vec::new();
        let fields = [
            (&e.rtt_ms, SocketField::Info(TcpInfoField::RttMs)),
            (&e.min_rtt_ms, SocketField::Info(TcpInfoField::MinRttMs)),
            (&e.expires_ms, SocketField::ExpiresMs),
            (&e.retrans, SocketField::Retrans),
            (&e.recv_q, SocketField::RecvQ),
            (&e.send_q, SocketField::SendQ),
        ];
        for (c, field) in fields {
            if let Some(c) = c {
                tests.push((c.referenced, RowTest::Field(field, c.value)));
            }
        }
        if let Some(t) = &e.timer {
            match TcpTimer::from_name(&t.value) {
                Ok(timer) => tests.push((t.referenced, RowTest::Timer(timer))),
                Err(message) => {
                    self.err(t.referenced, message);
                    *bad = true;
                }
            }
        }
        if let Some(info) = &e.info {
            if info.is_empty() {
                self.err(
                    at,
                    "`info:` is empty: name the tcp_info fields to compare, such as `info: {retransmits: 0, rto_ms: {at_least: 200}}`",
                );
                *bad = true;
            }
            for (name, c) in info.iter() {
                match TcpInfoField::from_name(&name.value) {
                    Ok(field) => tests.push((
                        c.referenced,
                        RowTest::Field(SocketField::Info(field), c.value),
                    )),
                    Err(message) => {
                        self.err(name.referenced, message);
                        *bad = true;
                    }
                }
            }
        }
        let mut lists: Vec<(Location, Vec<TcpOption>, bool)> = Vec::new();
        for (list, present) in [(&e.options, true), (&e.no_options, false)] {
            let Some(list) = list else { continue };
            let key = if present { "options" } else { "no_options" };
            if list.value.is_empty() {
                self.err(
                    list.referenced,
                    format!("`{key}:` is empty: list options such as [timestamps, sack, wscale]"),
                );
                *bad = true;
            }
            let mut options = Vec::new();
            for name in &list.value {
                match TcpOption::from_name(&name.value) {
                    Ok(o) => options.push(o),
                    Err(message) => {
                        self.err(name.referenced, message);
                        *bad = true;
                    }
                }
            }
            lists.push((list.referenced, options, present));
        }
        if let [(_, has, _), (position, lacks, _)] = lists.as_slice()
            && let Some(both) = lacks.iter().find(|o| has.contains(o))
        {
            self.err(
                *position,
                format!(
                    "`{both}` is in both `options:` and `no_options:`: no socket can meet that"
                ),
            );
            *bad = true;
        }
        for (position, options, present) in lists {
            if !options.is_empty() {
                tests.push((position, RowTest::Options { options, present }));
            }
        }
        tests
    }

    /// A `packets: KIND` expectation: what a namespace put on its link. The selectors (kind,
    /// flags, ports, conn) choose the packets `count` counts; every field check must hold for
    /// each of them, so a field check needs a count that cannot be 0.
    pub(super) fn packets_expectation(
        &mut self,
        e: &ExpectSpec,
        kind: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        let any = kind.value.eq_ignore_ascii_case("ANY");
        let tcp_kind = TcpKind::from_name(&kind.value);
        if !any && tcp_kind.is_none() {
            self.err(
                kind.referenced,
                format!(
                    "`{}` is not a packet kind: write one of SYN, SYN_ACK, FIN, RST, ACK, DATA or ANY (ANY with `flags:` to select by flags only)",
                    kind.value
                ),
            );
        }
        if let Some(c) = &e.conn {
            self.conn(&c.value, c.referenced);
        }
        if let Some(since) = &e.since
            && !self.labels.contains(&since.value)
        {
            let known: Vec<_> = self.labels.iter().cloned().collect();
            self.err(
                since.referenced,
                format!(
                    "no step is labelled `{}` (labels: {})",
                    since.value,
                    known.join(", ")
                ),
            );
        }
        let mut sets = [OptionSet::default(); 2];
        for (i, (key, list)) in [("options", &e.options), ("no_options", &e.no_options)]
            .into_iter()
            .enumerate()
        {
            let Some(list) = list else { continue };
            if list.value.is_empty() {
                self.err(
                    list.referenced,
                    format!("`{key}: []` asks for nothing: list options (mss, wscale, sack_ok, sack, timestamps, fastopen), or remove the key"),
                );
            }
            for name in &list.value {
                match HeaderOption::from_name(&name.value) {
                    Ok(o) => sets[i].insert(o),
                    Err(why) => self.err(name.referenced, why),
                }
            }
        }
        let [options, no_options] = sets;
        if let Some(both) = options.iter().find(|o| no_options.contains(*o)) {
            let at = e.no_options.as_ref().map_or(at, |n| n.referenced);
            self.err(
                at,
                format!("`{both}` is both required (`options:`) and refused (`no_options:`): no packet can meet that"),
            );
        }
        let each = PacketFields {
            seq: e.seq.as_ref().map(|c| c.value),
            ack: e.ack.as_ref().map(|c| c.value),
            len: e.len.as_ref().map(|c| c.value),
            window: e.win.as_ref().map(|c| c.value),
            options,
            no_options,
            mss: e.mss.as_ref().map(|c| c.value),
            tsecr: e.tsecr.as_ref().map(|c| c.value),
            sent_ms: e.sent_ms.as_ref().map(|c| c.value),
            gap_ms: e.gap_ms.as_ref().map(|c| c.value),
        };
        let Some(from) = &e.from else {
            self.err(
                at,
                "a `packets:` expectation needs `from:` (the namespace that sent them)",
            );
            return;
        };
        self.namespace(from);
        let Some(count) = &e.count else {
            self.err(at, "a `packets:` expectation needs `count:`");
            return;
        };
        // A check that holds for every packet of an empty selection cannot fail.
        if each.judges_packets() && count.value.holds(0) {
            self.err(
                count.referenced,
                format!(
                    "`count: {}` lets the selection be empty, and then the field checks (seq, ack, len, win, options, no_options, mss, tsecr, sent_ms) judge nothing: ask for at least one packet, such as `count: {{at_least: 1}}`",
                    count.value
                ),
            );
        }
        if let Some(g) = &e.gap_ms
            && (count.value.holds(0) || count.value.holds(1))
        {
            self.err(
                g.referenced,
                format!(
                    "`gap_ms:` judges the gaps between consecutive packets, but `count: {}` allows fewer than two: ask for at least two, such as `count: {{at_least: 2}}`",
                    count.value
                ),
            );
        }
        let select = PacketSelect {
            kind: if any { None } else { tcp_kind },
            flags: e.flags.as_ref().map(|f| f.value),
            port: e.port,
            src_port: e.src_port,
            dst_port: e.dst_port,
            conn: e.conn.as_ref().map(|c| c.value.clone()),
            since: e.since.as_ref().map(|s| s.value.clone()),
        };
        push(
            count.referenced,
            Check::Packets {
                from: from.value.clone(),
                select,
                each,
                cmp: count.value,
            },
        );
    }

    /// A `conntrack: NS` expectation: entries at a sample, or a statistic over the case.
    pub(super) fn conntrack_expectation(
        &mut self,
        e: &ExpectSpec,
        ns: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        self.namespace(ns);
        if !self.conntrack.contains(&ns.value) {
            self.err(
                ns.referenced,
                format!(
                    "conntrack is not enabled in `{}`: add `conntrack: [{{ns: {}}}]` to the case",
                    ns.value, ns.value
                ),
            );
        }
        if let Some(stat) = &e.stat {
            let Some(delta) = &e.delta else {
                self.err(at, "a `conntrack:` expectation with `stat:` needs `delta:`");
                return;
            };
            push(
                delta.referenced,
                Check::ConntrackStat {
                    ns: ns.value.clone(),
                    stat: stat.value.clone(),
                    cmp: delta.value,
                },
            );
            return;
        }
        let Some(at_label) = self.sample_label(&e.at) else {
            return;
        };
        let Some(count) = &e.count else {
            self.err(
                at,
                "a `conntrack:` expectation needs `count:` (entries) or `stat:` with `delta:`",
            );
            return;
        };
        let state = e.state.as_ref().and_then(|s| {
            let name = s.value.to_ascii_uppercase().replace('-', "_");
            if CONNTRACK_TCP_STATES.contains(&name.as_str()) {
                return Some(name);
            }
            self.err(
                s.referenced,
                format!(
                    "`{}` is not a conntrack TCP state: write one of {} (conntrack's own \
                     names, as /proc/net/nf_conntrack prints them)",
                    s.value,
                    CONNTRACK_TCP_STATES.join(", ")
                ),
            );
            None
        });
        push(
            count.referenced,
            Check::ConntrackEntries {
                ns: ns.value.clone(),
                state,
                at: at_label,
                cmp: count.value,
            },
        );
    }

    /// A `kernel_log: TEXT` expectation: kernel log records during the case.
    pub(super) fn kernel_log_expectation(
        &mut self,
        e: &ExpectSpec,
        text: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        let Some(count) = &e.count else {
            self.err(at, "a `kernel_log:` expectation needs `count:`");
            return;
        };
        push(
            count.referenced,
            Check::KernelLog {
                text: text.value.clone(),
                cmp: count.value,
            },
        );
    }

    /// A `dropped: NAME` expectation: what a targeted drop or random loss took.
    pub(super) fn dropped_expectation(
        &mut self,
        e: &ExpectSpec,
        name: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        if !self.drops.contains(&name.value) && !name.value.starts_with("loss:") {
            self.err(
                name.referenced,
                format!(
                    "no drop is named `{}` (drops: {}; random loss is `loss:FROM->TO`)",
                    name.value,
                    self.drops.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let Some(count) = &e.count else {
            self.err(at, "a `dropped:` expectation needs `count:`");
            return;
        };
        push(
            count.referenced,
            Check::Dropped {
                name: name.value.clone(),
                cmp: count.value,
            },
        );
    }

    /// A `counter: Group.Name` expectation: a MIB counter's change.
    pub(super) fn counter_expectation(
        &mut self,
        e: &ExpectSpec,
        name: &Spanned<String>,
        at: Location,
        push: &mut dyn FnMut(Location, Check),
    ) {
        let well_formed = name
            .value
            .split_once('.')
            .is_some_and(|(g, n)| !g.is_empty() && !n.is_empty() && !n.contains('.'));
        if !well_formed {
            self.err(name.referenced, format!("`{}` is not a counter name: write Group.Name, such as TcpExt.TCPTimeWaitOverflow or Tcp.OutRsts", name.value));
        }
        let Some(ns) = &e.ns else {
            self.err(
                at,
                "a `counter:` expectation needs `ns:` (the namespace whose counter it is)",
            );
            return;
        };
        self.namespace(ns);
        let Some(delta) = &e.delta else {
            self.err(at, "a `counter:` expectation needs `delta:`");
            return;
        };
        push(
            delta.referenced,
            Check::Counter {
                ns: ns.value.clone(),
                name: name.value.clone(),
                cmp: delta.value,
            },
        );
    }
}

/// Whether a row check was written (for when its lowering failed and left none).
fn bad_row_check(e: &ExpectSpec, bad: bool) -> bool {
    bad && (e.timer.is_some() || e.info.is_some() || e.options.is_some() || e.no_options.is_some())
}
