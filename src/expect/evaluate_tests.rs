//! Verdicts from hand-made observations: no privileges, no kernel. Each check kind gets a
//! passing and a failing case, with the exact `observed` text a report would show.

use super::*;

use std::net::SocketAddr;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::case::When;
use crate::case::{RowTest, SocketField};
use crate::observe::{ConntrackTable, Packet, TcpInfo};
use crate::scenario::{Outcome, ProgramSpec};
use crate::vocab::{Comparison, PortRange, TcpInfoField, TcpOption, TcpState, TcpTimer};

fn expectation(check: Check) -> Expectation {
    Expectation {
        line: 1,
        col: 1,
        why: None,
        xfail: None,
        evidence: false,
        when: None,
        check,
    }
}

/// Judges one check through `evaluate`, the path a trial takes; it must apply (no `when:`).
fn judged(check: Check, obs: &Observations) -> (bool, String) {
    let mut verdicts = evaluate(&[expectation(check)], obs);
    assert_eq!(verdicts.len(), 1);
    let v = verdicts.remove(0);
    assert!(v.applies, "no `when:`, so it always applies");
    (v.passed, v.observed)
}

fn pass(s: &str) -> (bool, String) {
    (true, s.to_string())
}

fn fail(s: &str) -> (bool, String) {
    (false, s.to_string())
}

fn step(label: &str, outcome: Outcome, ms: u64, bytes: Option<u64>) -> StepRecord {
    StepRecord {
        label: label.into(),
        kind: "connect",
        line: 1,
        iteration: None,
        outcome,
        started: Duration::ZERO,
        duration: Duration::from_millis(ms),
        bytes,
        detail: String::new(),
        local: None,
        value: None,
    }
}

fn steps(records: Vec<StepRecord>) -> Observations {
    Observations {
        steps: records,
        ..Observations::default()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 18, 1, 2], port))
}

/// A socket with no tcp_info and no file: what TIME_WAIT looks like.
fn row(state: TcpState, local: u16, remote: u16) -> SocketRow {
    SocketRow::bare(state, addr(local), addr(remote))
}

/// A socket a descriptor holds, with tcp_info.
fn open_row(local: u16, remote: u16, rtt_us: u32, min_rtt_us: u32) -> SocketRow {
    SocketRow {
        info: Some(TcpInfo::with(
            &[
                (TcpInfoField::RttMs, u64::from(rtt_us)),
                (TcpInfoField::MinRttMs, u64::from(min_rtt_us)),
            ],
            &[TcpOption::Timestamps, TcpOption::Sack],
        )),
        inode: 4242,
        ..row(TcpState::Established, local, remote)
    }
}

fn sample(label: &str, at_ms: u64, ns: &str, rows: Vec<SocketRow>) -> SocketSample {
    SocketSample {
        label: label.into(),
        at: Duration::from_millis(at_ms),
        sockets: BTreeMap::from([(ns.to_string(), rows)]),
        conntrack: BTreeMap::new(),
    }
}

fn program(label: &str, exit: Exit, stopped_by: Option<&'static str>) -> ProgramRun {
    ProgramRun {
        spec: ProgramSpec {
            label: label.into(),
            ns: "server".into(),
            line: 1,
            argv: vec!["true".into()],
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            grace: Duration::from_secs(1),
            background: false,
        },
        duration: Duration::from_millis(1500),
        exit,
        stopped_by,
        stdout: String::new(),
        stderr: String::new(),
        processes: Vec::new(),
    }
}

fn programs(runs: Vec<ProgramRun>) -> Observations {
    Observations {
        programs: runs,
        ..Observations::default()
    }
}

#[test]
fn result_count_counts_attempts_with_the_outcome() {
    let obs = steps(vec![
        step("c", Outcome::Ok, 1, None),
        step("c", Errno::ECONNRESET.into(), 1, None),
        step("c", Outcome::Ok, 1, None),
        // Skipped steps are not attempts: neither counted nor summarised.
        step("c", Outcome::Skipped("never connected".into()), 0, None),
        step("other", Outcome::Ok, 1, None),
    ]);
    let count = |outcome: Option<&str>, cmp| Check::ResultCount {
        label: "c".into(),
        outcome: outcome.map(String::from),
        cmp,
    };
    assert_eq!(
        judged(count(Some("ok"), Comparison::Eq(2)), &obs),
        pass("2 (ECONNRESET x1, ok x2)")
    );
    assert_eq!(
        judged(count(None, Comparison::AtLeast(4)), &obs),
        fail("3 (ECONNRESET x1, ok x2)")
    );
    let none = Check::ResultCount {
        label: "missing".into(),
        outcome: None,
        cmp: Comparison::AtLeast(1),
    };
    assert_eq!(judged(none, &obs), fail("0 (no attempts)"));
}

#[test]
fn first_error_names_the_first_failing_attempt() {
    let obs = steps(vec![
        // Skipped first, so "attempt 2" shows skipped steps are not numbered.
        step("c", Outcome::Skipped("no connection".into()), 0, None),
        step("c", Outcome::Ok, 1, None),
        step("c", Errno::ECONNRESET.into(), 1, None),
        step("c", Outcome::Timeout, 1, None),
        step("quiet", Outcome::Ok, 1, None),
    ]);
    let first = |label: &str, expected: Option<&str>| Check::FirstError {
        label: label.into(),
        expected: expected.map(String::from),
    };
    let text = "ECONNRESET at attempt 2 (ECONNRESET x1, TIMEOUT x1, ok x1)";
    assert_eq!(judged(first("c", Some("ECONNRESET")), &obs), pass(text));
    assert_eq!(judged(first("c", Some("TIMEOUT")), &obs), fail(text));
    assert_eq!(judged(first("c", None), &obs), fail(text));
    assert_eq!(judged(first("quiet", None), &obs), pass("no error (ok x1)"));
    assert_eq!(
        judged(first("quiet", Some("ECONNRESET")), &obs),
        fail("no error (ok x1)")
    );
}

#[test]
fn all_needs_every_attempt_and_at_least_one() {
    let obs = steps(vec![
        step("good", Outcome::Ok, 1, None),
        step("good", Outcome::Ok, 1, None),
        step("mixed", Outcome::Ok, 1, None),
        step("mixed", Outcome::Exit(3), 1, None),
    ]);
    let all = |label: &str| Check::All {
        label: label.into(),
        outcome: "ok".into(),
    };
    assert_eq!(judged(all("good"), &obs), pass("ok x2"));
    assert_eq!(judged(all("mixed"), &obs), fail("EXIT_3 x1, ok x1"));
    // Vacuous truth would hide a label that never ran.
    assert_eq!(judged(all("missing"), &obs), fail("no attempts"));
}

#[test]
fn duration_ms_bounds_every_attempt() {
    let obs = steps(vec![
        step("c", Outcome::Ok, 30, None),
        step("c", Outcome::Ok, 12, None),
    ]);
    let dur = |label: &str, cmp| Check::DurationMs {
        label: label.into(),
        cmp,
    };
    let text = "12..30 ms over 2 attempts";
    assert_eq!(judged(dur("c", Comparison::AtMost(30)), &obs), pass(text));
    assert_eq!(judged(dur("c", Comparison::AtMost(20)), &obs), fail(text));
    assert_eq!(
        judged(dur("missing", Comparison::AtLeast(0)), &obs),
        fail("no attempts")
    );
}

#[test]
fn bytes_sums_over_attempts() {
    let obs = steps(vec![
        step("send", Outcome::Ok, 1, Some(100)),
        step("send", Outcome::Ok, 1, None),
        step("send", Outcome::Ok, 1, Some(50)),
        // Skipped steps moved nothing, whatever their record says.
        step("send", Outcome::Skipped("closed".into()), 1, Some(1000)),
    ]);
    let bytes = |cmp| Check::Bytes {
        label: "send".into(),
        cmp,
    };
    assert_eq!(judged(bytes(Comparison::Eq(150)), &obs), pass("150 bytes"));
    assert_eq!(
        judged(bytes(Comparison::AtLeast(200)), &obs),
        fail("150 bytes")
    );
}

#[test]
fn sockets_counts_matching_rows_at_the_sample() {
    let obs = Observations {
        samples: vec![sample(
            "end",
            2500,
            "client",
            vec![
                row(TcpState::TimeWait, 40000, 80),
                open_row(40001, 80, 1000, 1000),
                row(TcpState::Listen, 8080, 0),
            ],
        )],
        ..Observations::default()
    };
    let sockets = |ns: &str, filter: SocketFilter, cmp| Check::Sockets {
        ns: ns.into(),
        filter,
        at: "end".into(),
        cmp,
    };
    let tw = SocketFilter {
        state: Some(TcpState::TimeWait),
        ..SocketFilter::default()
    };
    assert_eq!(
        judged(sockets("client", tw.clone(), Comparison::Eq(1)), &obs),
        pass("1 (at 2.5s)")
    );
    assert_eq!(
        judged(sockets("client", tw, Comparison::Eq(0)), &obs),
        fail("1 (at 2.5s)")
    );
    // `port` matches either end; `local_port` and `has_file` narrow it.
    let port = SocketFilter {
        port: Some(PortRange::one(80)),
        ..SocketFilter::default()
    };
    assert_eq!(
        judged(sockets("client", port, Comparison::Eq(2)), &obs),
        pass("2 (at 2.5s)")
    );
    let held = SocketFilter {
        has_file: Some(true),
        local_port: Some(PortRange::one(40001)),
        remote_port: Some(PortRange::one(80)),
        ..SocketFilter::default()
    };
    assert_eq!(
        judged(sockets("client", held, Comparison::Eq(1)), &obs),
        pass("1 (at 2.5s)")
    );
    // A namespace with no rows at the sample counts zero.
    assert_eq!(
        judged(
            sockets("server", SocketFilter::default(), Comparison::AtLeast(1)),
            &obs
        ),
        fail("0 (at 2.5s)")
    );
}

#[test]
fn sockets_at_a_missing_sample_fails() {
    let obs = Observations {
        samples: vec![sample("end", 0, "client", Vec::new())],
        ..Observations::default()
    };
    let check = Check::Sockets {
        ns: "client".into(),
        filter: SocketFilter::default(),
        at: "after-close".into(),
        // Would hold on any count: the failure is the missing sample.
        cmp: Comparison::AtLeast(0),
    };
    assert_eq!(
        judged(check, &obs),
        fail("no sample `after-close` was taken")
    );
}

#[test]
fn socket_rtt_bounds_every_matching_socket() {
    let obs = Observations {
        samples: vec![sample(
            "end",
            0,
            "client",
            vec![
                open_row(40000, 80, 1500, 1000),
                open_row(40001, 80, 2250, 1200),
            ],
        )],
        ..Observations::default()
    };
    let rtt = |filter: SocketFilter, cmp, field| Check::SocketRows {
        ns: "client".into(),
        filter,
        at: "end".into(),
        test: RowTest::Field(SocketField::Info(field), cmp),
    };
    let any = SocketFilter::default;
    // 1.5 and 2.25 ms are compared rounded: 2 and 2.
    assert_eq!(
        judged(
            rtt(any(), Comparison::Between(2, 3), TcpInfoField::RttMs),
            &obs
        ),
        pass(
            "2 socket(s): 198.18.1.2:40000->198.18.1.2:80 ESTABLISHED info.rtt_ms 1.50 (as 2); \
             198.18.1.2:40001->198.18.1.2:80 ESTABLISHED info.rtt_ms 2.25 (as 2)"
        )
    );
    assert_eq!(
        judged(rtt(any(), Comparison::AtMost(1), TcpInfoField::RttMs), &obs),
        fail(
            "2 of 2 socket(s) fail: 198.18.1.2:40000->198.18.1.2:80 ESTABLISHED info.rtt_ms 1.50 (as 2) (fails); \
             198.18.1.2:40001->198.18.1.2:80 ESTABLISHED info.rtt_ms 2.25 (as 2) (fails)"
        )
    );
    assert_eq!(
        judged(rtt(any(), Comparison::Eq(1), TcpInfoField::MinRttMs), &obs),
        pass(
            "2 socket(s): 198.18.1.2:40000->198.18.1.2:80 ESTABLISHED info.min_rtt_ms 1; \
             198.18.1.2:40001->198.18.1.2:80 ESTABLISHED info.min_rtt_ms 1.20 (as 1)"
        )
    );
    let listening = SocketFilter {
        state: Some(TcpState::Listen),
        ..SocketFilter::default()
    };
    assert_eq!(
        judged(
            rtt(listening, Comparison::AtLeast(0), TcpInfoField::RttMs),
            &obs
        ),
        fail("no matching socket")
    );
    let missing = Check::SocketRows {
        ns: "client".into(),
        filter: any(),
        at: "mid".into(),
        test: RowTest::Field(SocketField::RecvQ, Comparison::AtLeast(0)),
    };
    assert_eq!(judged(missing, &obs), fail("no sample `mid` was taken"));
}

/// A check of every row at the end of one namespace's sample.
fn every_row(test: RowTest) -> Check {
    Check::SocketRows {
        ns: "client".into(),
        filter: SocketFilter::default(),
        at: "end".into(),
        test,
    }
}

#[test]
fn a_row_without_tcp_info_fails_a_tcp_info_check_and_says_so() {
    let obs = Observations {
        samples: vec![sample(
            "end",
            0,
            "client",
            vec![
                open_row(40000, 80, 1000, 1000),
                row(TcpState::TimeWait, 40002, 80),
            ],
        )],
        ..Observations::default()
    };
    let rtt = RowTest::Field(
        SocketField::Info(TcpInfoField::RttMs),
        Comparison::AtLeast(0),
    );
    assert_eq!(
        judged(every_row(rtt), &obs),
        fail(
            "1 of 2 socket(s) fail: 198.18.1.2:40002->198.18.1.2:80 TIME_WAIT info.rtt_ms: no tcp_info (fails); \
             198.18.1.2:40000->198.18.1.2:80 ESTABLISHED info.rtt_ms 1"
        )
    );
    let options = RowTest::Options {
        options: vec![TcpOption::Sack],
        present: true,
    };
    assert_eq!(
        judged(every_row(options), &obs),
        fail(
            "1 of 2 socket(s) fail: 198.18.1.2:40002->198.18.1.2:80 TIME_WAIT no tcp_info (fails); \
             198.18.1.2:40000->198.18.1.2:80 ESTABLISHED options timestamps,sack"
        )
    );
}

#[test]
fn timer_fields_and_options_of_every_row() {
    let tw = |port: u16, left: u32| SocketRow {
        timer: Ok(TcpTimer::Timewait),
        expires_ms: left,
        ..row(TcpState::TimeWait, port, 80)
    };
    let obs = Observations {
        samples: vec![sample(
            "end",
            0,
            "client",
            vec![tw(40000, 59_000), tw(40001, 1_200)],
        )],
        ..Observations::default()
    };
    assert_eq!(
        judged(every_row(RowTest::Timer(TcpTimer::Timewait)), &obs),
        pass(
            "2 socket(s): 198.18.1.2:40000->198.18.1.2:80 TIME_WAIT timer (timewait,59000ms,0); \
             198.18.1.2:40001->198.18.1.2:80 TIME_WAIT timer (timewait,1200ms,0)"
        )
    );
    assert!(!judged(every_row(RowTest::Timer(TcpTimer::On)), &obs).0);
    // The failing row comes first.
    let expires = RowTest::Field(SocketField::ExpiresMs, Comparison::AtLeast(50_000));
    assert_eq!(
        judged(every_row(expires), &obs),
        fail(
            "1 of 2 socket(s) fail: 198.18.1.2:40001->198.18.1.2:80 TIME_WAIT expires_ms 1200 (fails); \
             198.18.1.2:40000->198.18.1.2:80 TIME_WAIT expires_ms 59000"
        )
    );
    // A timer kind this build does not know matches no name and is shown with its number.
    let odd = SocketRow {
        timer: Err(9),
        ..row(TcpState::Established, 40003, 80)
    };
    let obs = Observations {
        samples: vec![sample("end", 0, "client", vec![odd])],
        ..Observations::default()
    };
    assert_eq!(
        judged(every_row(RowTest::Timer(TcpTimer::Off)), &obs),
        fail(
            "1 of 1 socket(s) fail: 198.18.1.2:40003->198.18.1.2:80 ESTABLISHED timer (unknown 9,0ms,0) (fails)"
        )
    );
    let established = Observations {
        samples: vec![sample(
            "end",
            0,
            "client",
            vec![open_row(40000, 80, 1000, 1000)],
        )],
        ..Observations::default()
    };
    let lacks = |options: Vec<TcpOption>| RowTest::Options {
        options,
        present: false,
    };
    assert!(judged(every_row(lacks(vec![TcpOption::Ecn])), &established).0);
    assert!(
        !judged(
            every_row(lacks(vec![TcpOption::Ecn, TcpOption::Sack])),
            &established
        )
        .0
    );
}

fn pkt(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, len: usize, ms: u64) -> Packet {
    use crate::observe::{PacketOptions, Timestamps};
    Packet {
        at: std::time::Duration::from_millis(ms),
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        kind: crate::vocab::TcpKind::classify(flags, len),
        flags,
        payload_len: len,
        seq,
        ack,
        window: 502,
        options: PacketOptions {
            timestamps: Some(Timestamps {
                tsval: 1000 + ms as u32,
                tsecr: 0,
            }),
            ..PacketOptions::default()
        },
    }
}

const C: &str = "198.18.0.1:40000";
const S: &str = "198.18.0.2:8080";

/// A connection: SYN, SYN-ACK, ACK, 1000 bytes, the client's FIN at 250 ms, then again at
/// 460 ms (a retransmission).
fn conversation() -> Observations {
    use crate::vocab::tcp_flags::*;
    let client = vec![
        pkt(C, S, SYN, 100, 0, 0, 0),
        pkt(C, S, ACK, 101, 501, 0, 1),
        pkt(C, S, ACK | PSH, 101, 501, 1000, 2),
        pkt(C, S, FIN | ACK, 1101, 501, 0, 250),
        pkt(C, S, FIN | ACK, 1101, 501, 0, 460),
    ];
    let server = vec![pkt(S, C, SYN | ACK, 500, 101, 0, 1)];
    Observations {
        packets: BTreeMap::from([("client".to_string(), client), ("server".into(), server)]),
        conn_tuples: BTreeMap::from([(
            "conn".to_string(),
            vec![(C.parse().unwrap(), S.parse().unwrap())],
        )]),
        captured: true,
        ..Observations::default()
    }
}

fn packets(kind: Option<crate::vocab::TcpKind>, from: &str, cmp: Comparison) -> Check {
    Check::Packets {
        from: from.into(),
        select: crate::case::PacketSelect {
            kind,
            ..Default::default()
        },
        each: Default::default(),
        cmp,
    }
}

#[test]
fn packets_counts_a_kind_or_all_from_a_sender() {
    use crate::vocab::TcpKind;
    let mut obs = conversation();
    assert_eq!(
        judged(
            packets(Some(TcpKind::Fin), "client", Comparison::Eq(2)),
            &obs
        ),
        pass("2 (all from client: ACK 1, DATA 1, FIN 2, SYN 1)")
    );
    assert_eq!(
        judged(packets(None, "client", Comparison::AtLeast(10)), &obs),
        fail("5 (all from client: ACK 1, DATA 1, FIN 2, SYN 1)")
    );
    assert_eq!(
        judged(
            packets(Some(TcpKind::Rst), "router", Comparison::Eq(0)),
            &obs
        ),
        pass("0 (all from router: none)")
    );
    // Without a capture no count is meaningful, not even zero.
    obs.captured = false;
    assert_eq!(
        judged(
            packets(Some(TcpKind::Rst), "client", Comparison::Eq(0)),
            &obs
        ),
        fail("no capture was made")
    );
}

#[test]
fn relative_numbers_count_from_each_directions_syn() {
    use crate::expect::Isns;
    use crate::vocab::tcp_flags::*;
    let syn = pkt(C, S, SYN, 100, 0, 0, 0);
    let data = pkt(C, S, ACK | PSH, 101, 501, 10, 2);
    let isns = Isns::of([&syn, &data]);
    assert_eq!(isns.rel_seq(&syn), Some(0));
    assert_eq!(isns.rel_seq(&data), Some(1));
    // No SYN of the server's direction in this capture: no relative ack.
    assert_eq!(isns.rel_ack(&data), None);
    // Relative numbers wrap modulo 2^32 like the numbers themselves.
    let high = pkt(C, S, SYN, u32::MAX, 0, 0, 0);
    let after = pkt(C, S, ACK, 9, 0, 0, 1);
    assert_eq!(Isns::of([&high]).rel_seq(&after), Some(10));
    // Another 4-tuple has its own ISN.
    let other = pkt("198.18.0.1:40001", S, ACK, 101, 0, 0, 3);
    assert_eq!(isns.rel_seq(&other), None);
}

#[test]
fn packet_fields_hold_for_every_selected_packet() {
    use crate::case::{PacketFields, PacketSelect};
    use crate::vocab::{FlagSet, TcpKind};
    let obs = conversation();
    let check = |select: PacketSelect, each: PacketFields, cmp| Check::Packets {
        from: "client".into(),
        select,
        each,
        cmp,
    };
    let fins = PacketSelect {
        kind: Some(TcpKind::Fin),
        flags: Some(FlagSet::parse("F.").unwrap()),
        conn: Some("conn".into()),
        ..Default::default()
    };
    // Relative numbers: the FIN after 1000 bytes is at 1001 and acks the SYN-ACK (1).
    let rel = PacketFields {
        seq: Some(Comparison::Eq(1001)),
        ack: Some(Comparison::Eq(1)),
        ..Default::default()
    };
    assert_eq!(
        judged(check(fins.clone(), rel, Comparison::Eq(2)), &obs),
        pass("2: [F.] seq 1001 ack 1; [F.] seq 1001 ack 1")
    );
    // One failing packet fails the check, and is marked.
    let len = PacketFields {
        len: Some(Comparison::Eq(1000)),
        ..Default::default()
    };
    let any = PacketSelect::default();
    let (ok, text) = judged(check(any, len, Comparison::AtLeast(1)), &obs);
    assert!(!ok && text.contains("FAILS [S] len 0"), "{text}");
    // Gaps and send times since a step.
    let timing = PacketFields {
        sent_ms: Some(Comparison::Between(200, 500)),
        gap_ms: Some(Comparison::Between(200, 260)),
        ..Default::default()
    };
    assert_eq!(
        judged(check(fins.clone(), timing, Comparison::Eq(2)), &obs),
        pass("2: [F.] sent at 250.0 ms; [F.] sent at 460.0 ms; gaps 210.0 ms")
    );
    // A connection that never had a 4-tuple is said so.
    let other = PacketSelect {
        conn: Some("other".into()),
        ..Default::default()
    };
    assert_eq!(
        judged(
            check(other, PacketFields::default(), Comparison::Eq(0)),
            &obs
        ),
        fail("connection `other` never had a 4-tuple")
    );
    // The timestamp echo: the client's packets echo 0, never the server's TSval.
    let echo = PacketFields {
        tsecr: Some(crate::case::TsecrRule::Echoes),
        ..Default::default()
    };
    let (ok, text) = judged(check(fins, echo, Comparison::Eq(2)), &obs);
    assert!(
        !ok && text.contains("tsecr 0 (peer's latest tsval 1001)"),
        "{text}"
    );
}

#[test]
fn conntrack_entries_counts_all_or_one_tcp_state() {
    let mut end = sample("end", 0, "router", Vec::new());
    end.conntrack.insert(
        "router".into(),
        ConntrackTable {
            entries: 3,
            tcp_states: BTreeMap::from([
                ("TIME_WAIT".to_string(), 2),
                ("ESTABLISHED".to_string(), 1),
            ]),
        },
    );
    let obs = Observations {
        samples: vec![end],
        ..Observations::default()
    };
    let entries = |ns: &str, state: Option<&str>, at: &str, cmp| Check::ConntrackEntries {
        ns: ns.into(),
        state: state.map(String::from),
        at: at.into(),
        cmp,
    };
    assert_eq!(
        judged(
            entries("router", Some("TIME_WAIT"), "end", Comparison::Eq(2)),
            &obs
        ),
        pass("2 (of 3 entries; tcp: ESTABLISHED 1, TIME_WAIT 2)")
    );
    assert_eq!(
        judged(entries("router", None, "end", Comparison::AtMost(2)), &obs),
        fail("3 (of 3 entries; tcp: ESTABLISHED 1, TIME_WAIT 2)")
    );
    assert_eq!(
        judged(
            entries("router", Some("SYN_SENT"), "end", Comparison::AtLeast(1)),
            &obs
        ),
        fail("0 (of 3 entries; tcp: ESTABLISHED 1, TIME_WAIT 2)")
    );
    assert_eq!(
        judged(entries("client", None, "end", Comparison::Eq(0)), &obs),
        fail("conntrack is not enabled in `client` (add it under `conntrack:`)")
    );
    assert_eq!(
        judged(entries("router", None, "mid", Comparison::Eq(0)), &obs),
        fail("no sample `mid` was taken")
    );
}

#[test]
fn conntrack_stat_judges_the_signed_change() {
    let obs = Observations {
        conntrack_stats: BTreeMap::from([(
            "router".to_string(),
            BTreeMap::from([
                ("drop".to_string(), 5),
                ("insert_failed".to_string(), 0),
                ("entries".to_string(), -2),
            ]),
        )]),
        ..Observations::default()
    };
    let stat = |ns: &str, stat: &str, cmp| Check::ConntrackStat {
        ns: ns.into(),
        stat: stat.into(),
        cmp,
    };
    assert_eq!(
        judged(stat("router", "drop", Comparison::Eq(5)), &obs),
        pass("+5")
    );
    assert_eq!(
        judged(
            stat("router", "insert_failed", Comparison::AtLeast(1)),
            &obs
        ),
        fail("+0")
    );
    assert_eq!(
        judged(stat("router", "entries", Comparison::AtMost(-1)), &obs),
        pass("-2")
    );
    assert_eq!(
        judged(stat("router", "early_drop", Comparison::Eq(0)), &obs),
        fail("no conntrack statistic `early_drop` in `router`")
    );
    assert_eq!(
        judged(stat("client", "drop", Comparison::Eq(0)), &obs),
        fail("no conntrack statistic `drop` in `client`")
    );
}

#[test]
fn kernel_log_counts_records_containing_the_text() {
    let full = "nf_conntrack: nf_conntrack: table full, dropping packet";
    let obs = Observations {
        kernel_log: vec![full.into(), "eth0: link up".into(), full.into()],
        ..Observations::default()
    };
    let log = |text: &str, cmp| Check::KernelLog {
        text: text.into(),
        cmp,
    };
    assert_eq!(
        judged(log("table full", Comparison::AtLeast(1)), &obs),
        pass(&format!("2 (first: {full})"))
    );
    assert_eq!(
        judged(log("table full", Comparison::Eq(1)), &obs),
        fail(&format!("2 (first: {full})"))
    );
    assert_eq!(
        judged(log("request_sock_TCP", Comparison::AtLeast(1)), &obs),
        fail("0 (of 3 records logged during the case)")
    );
}

#[test]
fn dropped_reads_the_named_drop() {
    let obs = Observations {
        dropped: BTreeMap::from([("first-fin".to_string(), 1)]),
        ..Observations::default()
    };
    let dropped = |name: &str, cmp| Check::Dropped {
        name: name.into(),
        cmp,
    };
    assert_eq!(
        judged(dropped("first-fin", Comparison::Eq(1)), &obs),
        pass("1")
    );
    assert_eq!(
        judged(dropped("first-fin", Comparison::Eq(0)), &obs),
        fail("1")
    );
    assert_eq!(
        judged(dropped("loss:client->server", Comparison::Eq(0)), &obs),
        fail("no drop or loss named `loss:client->server` was installed")
    );
}

#[test]
fn program_exit_reads_the_last_run() {
    let obs = programs(vec![
        program("srv", Exit::Code(0), None),
        // The same label again: the later run is the one judged.
        program("srv", Exit::Code(3), None),
        program("killed", Exit::Signal("SIGTERM".into()), Some("timeout")),
    ]);
    let exit = |label: &str, cmp| Check::ProgramExit {
        label: label.into(),
        cmp,
    };
    assert_eq!(
        judged(exit("srv", Comparison::Eq(3)), &obs),
        pass("exit status 3")
    );
    assert_eq!(
        judged(exit("srv", Comparison::Eq(0)), &obs),
        fail("exit status 3")
    );
    // A signal is no exit status, whatever the comparison.
    assert_eq!(
        judged(exit("killed", Comparison::AtLeast(i64::MIN)), &obs),
        fail("killed by SIGTERM (stopped by twlab: timeout)")
    );
}

#[test]
fn program_never_ran_fails() {
    let obs = programs(vec![program("srv", Exit::Code(0), None)]);
    let check = Check::ProgramExit {
        label: "client".into(),
        cmp: Comparison::Eq(0),
    };
    assert_eq!(judged(check, &obs), fail("program `client` never ran"));
    let check = Check::ProgramProcesses {
        label: "client".into(),
        cmp: Comparison::AtLeast(0),
    };
    assert_eq!(judged(check, &obs), fail("program `client` never ran"));
}

#[test]
fn program_signal_matches_the_signal_name() {
    let obs = programs(vec![
        program("killed", Exit::Signal("SIGKILL".into()), Some("stop step")),
        program("exited", Exit::Code(0), None),
    ]);
    let signal = |label: &str, signal: &str| Check::ProgramSignal {
        label: label.into(),
        signal: signal.into(),
    };
    let text = "killed by SIGKILL (stopped by twlab: stop step)";
    assert_eq!(judged(signal("killed", "SIGKILL"), &obs), pass(text));
    assert_eq!(judged(signal("killed", "SIGTERM"), &obs), fail(text));
    assert_eq!(
        judged(signal("exited", "SIGKILL"), &obs),
        fail("exit status 0")
    );
}

#[test]
fn program_output_searches_the_chosen_stream() {
    let mut run = program("srv", Exit::Code(0), None);
    run.stdout = "hello\nlistening on 8080\n".into();
    run.stderr = "warn: slow\n".into();
    let obs = programs(vec![run]);
    let output = |stream, text: &str| Check::ProgramOutput {
        label: "srv".into(),
        stream,
        text: text.into(),
    };
    let streams = r#"stdout 24 bytes, last line "listening on 8080"; stderr 11 bytes, last line "warn: slow""#;
    assert_eq!(
        judged(output(OutputStream::Stdout, "listening"), &obs),
        pass(&format!("found ({streams})"))
    );
    assert_eq!(
        judged(output(OutputStream::Stderr, "listening"), &obs),
        fail(&format!("not found ({streams})"))
    );
    assert_eq!(
        judged(output(OutputStream::Either, "warn"), &obs),
        pass(&format!("found ({streams})"))
    );
    assert_eq!(
        judged(output(OutputStream::Either, "panic"), &obs),
        fail(&format!("not found ({streams})"))
    );

    // Silent streams show an empty last line.
    let obs = programs(vec![program("quiet", Exit::Code(0), None)]);
    let check = Check::ProgramOutput {
        label: "quiet".into(),
        stream: OutputStream::Stdout,
        text: "x".into(),
    };
    assert_eq!(
        judged(check, &obs),
        fail(r#"not found (stdout 0 bytes, last line ""; stderr 0 bytes, last line "")"#)
    );
}

#[test]
fn program_duration_bounds_the_run() {
    let obs = programs(vec![program("srv", Exit::Code(0), None)]);
    let dur = |cmp| Check::ProgramDuration {
        label: "srv".into(),
        cmp,
    };
    let text = "1500 ms, exit status 0";
    assert_eq!(
        judged(dur(Comparison::Between(1000, 2000)), &obs),
        pass(text)
    );
    assert_eq!(judged(dur(Comparison::AtMost(1000)), &obs), fail(text));
}

#[test]
fn program_processes_counts_what_was_left_when_stopped() {
    let mut stopped = program("srv", Exit::Signal("SIGTERM".into()), Some("case end"));
    stopped.processes = vec!["2 sleep".into(), "3 sh".into()];
    let obs = programs(vec![stopped, program("done", Exit::Code(0), None)]);
    let procs = |label: &str, cmp| Check::ProgramProcesses {
        label: label.into(),
        cmp,
    };
    assert_eq!(
        judged(procs("srv", Comparison::Eq(2)), &obs),
        pass("2: 2 sleep, 3 sh")
    );
    assert_eq!(
        judged(procs("srv", Comparison::AtMost(1)), &obs),
        fail("2: 2 sleep, 3 sh")
    );
    assert_eq!(
        judged(procs("done", Comparison::Eq(0)), &obs),
        pass("0: none (it ended before twlab stopped it)")
    );
    assert_eq!(
        judged(procs("done", Comparison::AtLeast(1)), &obs),
        fail("0: none (it ended before twlab stopped it)")
    );
}

#[test]
fn counter_judges_the_signed_delta() {
    let obs = Observations {
        counters: BTreeMap::from([(
            "client".to_string(),
            Counters(BTreeMap::from([
                ("TcpExt.TW".to_string(), 3),
                ("Tcp.OutRsts".to_string(), 0),
                ("Tcp.CurrEstab".to_string(), -1),
            ])),
        )]),
        ..Observations::default()
    };
    let counter = |name: &str, cmp| Check::Counter {
        ns: "client".into(),
        name: name.into(),
        cmp,
    };
    assert_eq!(
        judged(counter("TcpExt.TW", Comparison::Eq(3)), &obs),
        pass("+3")
    );
    assert_eq!(
        judged(counter("Tcp.OutRsts", Comparison::AtLeast(1)), &obs),
        fail("+0")
    );
    assert_eq!(
        judged(counter("Tcp.CurrEstab", Comparison::Eq(-1)), &obs),
        pass("-1")
    );
}

#[test]
fn unknown_counter_fails() {
    let obs = Observations {
        counters: BTreeMap::from([("client".to_string(), Counters::default())]),
        ..Observations::default()
    };
    let check = Check::Counter {
        ns: "client".into(),
        name: "TcpExt.NoSuchCounter".into(),
        cmp: Comparison::AtLeast(0),
    };
    assert_eq!(
        judged(check, &obs),
        fail("TcpExt.NoSuchCounter is not a counter this kernel has in /proc/net/netstat or snmp")
    );
    // A namespace whose counters were never read is not a missing counter.
    let check = Check::Counter {
        ns: "server".into(),
        name: "TcpExt.TW".into(),
        cmp: Comparison::AtLeast(0),
    };
    assert_eq!(
        judged(check, &obs),
        fail("no counters were read in `server`")
    );
}

#[test]
fn when_that_does_not_hold_is_not_judged() {
    let obs = Observations {
        platform: Platform {
            release: "6.1.0-56-amd64".into(),
            backend: Some("netem".into()),
            ..Platform::default()
        },
        ..Observations::default()
    };
    // Would fail if judged: no attempts under `c`.
    let check = || Check::All {
        label: "c".into(),
        outcome: "ok".into(),
    };
    let newer = Expectation {
        when: Some(When::parse("kernel >= 6.14").unwrap()),
        ..expectation(check())
    };
    let older = Expectation {
        when: Some(When::parse("kernel < 6.14").unwrap()),
        ..expectation(check())
    };
    let verdicts = evaluate(&[newer, older], &obs);
    assert_eq!(verdicts.len(), 2);
    assert!(!verdicts[0].applies);
    assert!(verdicts[0].passed);
    assert_eq!(
        verdicts[0].observed,
        "not judged: `when: kernel >= 6.14` does not hold on kernel 6.1.0-56-amd64 with backend netem"
    );
    // A `when:` that holds changes nothing: the check is judged as usual.
    assert!(verdicts[1].applies);
    assert!(!verdicts[1].passed);
    assert_eq!(verdicts[1].observed, "no attempts");
}

#[test]
fn when_without_a_backend_names_only_the_kernel() {
    let obs = Observations {
        platform: Platform {
            release: "6.18.44".into(),
            ..Platform::default()
        },
        ..Observations::default()
    };
    let e = Expectation {
        when: Some(When::parse("backend substitute").unwrap()),
        ..expectation(Check::Dropped {
            name: "x".into(),
            cmp: Comparison::Eq(0),
        })
    };
    let v = evaluate(&[e], &obs).remove(0);
    assert!(!v.applies && v.passed);
    assert_eq!(
        v.observed,
        "not judged: `when: backend substitute` does not hold on kernel 6.18.44"
    );
}

#[test]
fn an_xfail_expectation_that_fails_is_good_and_one_that_holds_is_not() {
    let obs = Observations {
        counters: BTreeMap::from([(
            "client".to_string(),
            Counters(BTreeMap::from([("Tcp.OutRsts".to_string(), 0)])),
        )]),
        ..Observations::default()
    };
    let mut e = expectation(Check::Counter {
        ns: "client".into(),
        name: "Tcp.OutRsts".into(),
        cmp: Comparison::Eq(1),
    });
    e.xfail = Some("an upstream bug".into());
    let v = &evaluate(std::slice::from_ref(&e), &obs)[0];
    assert!(!v.held && v.passed, "failed as marked: {v:?}");
    e.check = Check::Counter {
        ns: "client".into(),
        name: "Tcp.OutRsts".into(),
        cmp: Comparison::Eq(0),
    };
    let v = &evaluate(std::slice::from_ref(&e), &obs)[0];
    assert!(v.held && !v.passed, "XPASS: {v:?}");
}
