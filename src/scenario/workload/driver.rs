//! The workload's event loop: one thread drives every client socket and every accepted
//! server socket with nonblocking syscalls and one epoll, so a connection costs its syscalls
//! and nothing more: no thread hop, no sock_diag, no record of its own.
//!
//! The thread enters the (first) client namespace by setns, so the sockets it creates are the
//! client's; the listeners were created on the server namespace's thread and are only
//! accepted on here. With several client namespaces it re-enters the next one before each
//! socket().

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::libc;
use nix::sched::{CloneFlags, setns};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{SockaddrLike, SockaddrStorage, getsockopt, sockopt};

use crate::case::{CloseHow, PeerAction, Workload};
use crate::vocab::{EARLY_EOF, LIMIT, OK, Role, TIMEOUT};

use super::series::{FirstError, Percentiles};
use crate::scenario::socket as so;

const KIND_SHIFT: u32 = 32;
/// Connections opened before the loop looks at events again.
const BATCH: u64 = 64;
const LISTENER: u64 = 0;
const CLIENT: u64 = 1;
const SERVER: u64 = 2;

fn token(kind: u64, slot: u32) -> u64 {
    (kind << KIND_SHIFT) | u64::from(slot)
}

/// What the loop was given: the step, the client namespaces, the targets and their listeners.
pub struct DriverInput<'a> {
    pub w: &'a Workload,
    /// Namespace fds of the client namespaces, used in turn.
    pub client_ns: Vec<RawFd>,
    /// Where connection `i` goes: `targets[i % len]`.
    pub targets: Vec<SocketAddr>,
    /// Listening sockets (in the server namespace), nonblocking.
    pub listeners: Vec<OwnedFd>,
    pub t0: Instant,
    /// Counts so far, for the progress line.
    pub live: &'a Live,
}

/// The loop's counts so far, read by the sampler for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub opened: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// The client side's share of one interval.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub attempts: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub connect_us: Percentiles,
    pub in_flight: u64,
}

pub struct DriverOutput {
    pub outcomes: BTreeMap<String, u64>,
    pub first_error: Option<FirstError>,
    pub server_errors: BTreeMap<String, u64>,
    pub unfinished: u64,
    pub connect_us: Percentiles,
    pub refused_connect_us: Percentiles,
    pub buckets: Vec<Bucket>,
    /// When the loop stopped opening connections, and when it ended (since `t0`).
    pub opening: Duration,
    pub total: Duration,
    /// How late the open loop opened a connection at worst (0 for a closed loop).
    pub behind: Duration,
    /// Sockets still open when the workload ended (peers that stay open, connections not
    /// done): the case keeps them until it ends, as it keeps every socket it opened.
    pub leftovers: Vec<OwnedFd>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientPhase {
    Connecting,
    Sending,
    Receiving,
    Holding,
    AwaitEof,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerPhase {
    Reading,
    Writing,
    Holding,
    AwaitEof,
}

struct Conn<P> {
    fd: OwnedFd,
    phase: P,
    /// Interest registered with epoll (`None`: not registered).
    interest: Option<EpollFlags>,
    started: Instant,
    sent: u32,
    got: u32,
    generation: u32,
}

struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
    fn insert(&mut self, t: T) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(t);
                i
            }
            None => {
                self.items.push(Some(t));
                (self.items.len() - 1) as u32
            }
        }
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize)?.as_mut()
    }
    fn remove(&mut self, i: u32) -> Option<T> {
        let t = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(t)
    }
    fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.free.clear();
        self.items.drain(..).flatten()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TimerKind {
    ConnectTimeout,
    Hold,
}

struct Driver<'a> {
    w: &'a Workload,
    live: &'a Live,
    epoll: Epoll,
    clients: Slab<Conn<ClientPhase>>,
    servers: Slab<Conn<ServerPhase>>,
    timers: BinaryHeap<Reverse<(Instant, TimerKind, u64, u32)>>,
    targets: Vec<SockaddrStorage>,
    listeners: Vec<OwnedFd>,
    client_ns: Vec<RawFd>,
    current_ns: usize,
    t0: Instant,
    interval: Duration,
    buckets: Vec<Bucket>,
    interval_hist: Histogram<u64>,
    total_hist: Histogram<u64>,
    /// How long connect() took when it failed at once (EADDRNOTAVAIL...).
    refused_hist: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
    first_error: Option<FirstError>,
    server_errors: BTreeMap<String, u64>,
    parked: Vec<OwnedFd>,
    /// Clients waiting for the server's FIN that have not read yet.
    pending: Vec<(u32, u32)>,
    generation: u32,
    opened: u64,
    failed: bool,
    think: Duration,
    /// How late the open loop was on its schedule at worst.
    behind: Duration,
    buf: Vec<u8>,
}

/// Runs the workload on the calling thread (which it moves into the client namespace).
pub fn drive(input: DriverInput<'_>) -> nix::Result<DriverOutput> {
    let w = input.w;
    let first = input.client_ns[0];
    // SAFETY: the namespace fds stay open while the lab lives, past this call.
    setns(
        unsafe { BorrowedFd::borrow_raw(first) },
        CloneFlags::CLONE_NEWNET,
    )?;
    let hist = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds");
    let d = Driver {
        w,
        live: input.live,
        epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
        clients: Slab::new(),
        servers: Slab::new(),
        timers: BinaryHeap::new(),
        targets: input
            .targets
            .iter()
            .map(|a| SockaddrStorage::from(*a))
            .collect(),
        listeners: input.listeners,
        client_ns: input.client_ns,
        current_ns: 0,
        t0: input.t0,
        interval: w.interval.value.0,
        buckets: vec![Bucket::default()],
        interval_hist: hist(),
        total_hist: hist(),
        refused_hist: hist(),
        outcomes: BTreeMap::new(),
        first_error: None,
        server_errors: BTreeMap::new(),
        parked: Vec::new(),
        pending: Vec::new(),
        generation: 0,
        opened: 0,
        failed: false,
        think: w.think.map(|t| t.0).unwrap_or_default(),
        behind: Duration::ZERO,
        buf: vec![0; 64 * 1024],
    };
    for (i, l) in d.listeners.iter().enumerate() {
        d.epoll.add(
            l,
            EpollEvent::new(EpollFlags::EPOLLIN, token(LISTENER, i as u32)),
        )?;
    }
    d.run()
}

impl Driver<'_> {
    fn run(mut self) -> nix::Result<DriverOutput> {
        let w = self.w;
        let duration = w.duration.as_ref().map(|d| d.value.0);
        let count = w.count.as_ref().map(|c| c.value);
        let rate = w.rate.as_ref().map(|r| f64::from(r.value));
        let concurrency = w.concurrency.as_ref().map(|c| u64::from(c.value));
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut stopped_at: Option<Instant> = None;
        let drain = w.connect_timeout.0 + self.think + Duration::from_secs(2);
        let (mut rounds, mut last_empty) = (0u64, false);
        loop {
            let now = Instant::now();
            let opened_before = self.opened;
            if stopped_at.is_none() {
                let elapsed = now - self.t0;
                let done = duration.is_some_and(|d| elapsed >= d)
                    || count.is_some_and(|c| self.opened >= c)
                    || (w.until_error && self.failed);
                if done {
                    stopped_at = Some(now);
                } else if let Some(rate) = rate {
                    // Open loop: every connection due by now, on the schedule from t0, a
                    // bounded batch at a time so that the server side gets its turn.
                    for _ in 0..BATCH {
                        let due = self.t0 + Duration::from_secs_f64(self.opened as f64 / rate);
                        if due > now
                            || count.is_some_and(|c| self.opened >= c)
                            || duration.is_some_and(|d| due - self.t0 >= d)
                        {
                            break;
                        }
                        self.behind = self.behind.max(now - due);
                        self.open(now);
                    }
                } else if let Some(n) = concurrency {
                    // Closed loop: up to `n` new connections, then the events: a client that
                    // closes at once must not starve the server's accept queue.
                    for _ in 0..n.min(BATCH) {
                        if self.clients.len as u64 >= n
                            || count.is_some_and(|c| self.opened >= c)
                            || (w.until_error && self.failed)
                        {
                            break;
                        }
                        self.open(now);
                    }
                }
            }
            let opened_now = self.opened > opened_before;
            if opened_now || !self.pending.is_empty() {
                // The server side first: accepting now (rather than when epoll reports the
                // listener) lets it answer or close before the clients read.
                for l in 0..self.listeners.len() {
                    self.accept(l, now);
                }
                self.flush_pending(now);
            }
            // The clients' last closes are not the end: the server side must still accept
            // what they left in the queue and read their FINs, or its sockets stay open
            // (CLOSE_WAIT, kept to the case's end) and hold the clients in FIN_WAIT2 instead
            // of TIME_WAIT: the end sample then missed a connection now and then.
            if let Some(at) = stopped_at
                && ((self.clients.len == 0 && self.servers.len == 0) || now >= at + drain)
            {
                break;
            }
            if stopped_at.is_some() && self.clients.len == 0 {
                for l in 0..self.listeners.len() {
                    self.accept(l, now);
                }
            }
            let timeout = self.timeout(now, stopped_at.is_some(), rate, duration, concurrency);
            // When connections complete inside their syscalls (a closed loop over veth) and the
            // last wait found nothing, most waits would find nothing again: look only every
            // few rounds, which still serves any socket that does wait.
            rounds += 1;
            let skip = timeout == 0 && opened_now && last_empty && rounds % 16 != 0;
            let n = if skip {
                0
            } else {
                match self.epoll.wait(&mut events, timeout) {
                    Ok(n) => n,
                    Err(Errno::EINTR) => 0,
                    Err(e) => return Err(e),
                }
            };
            last_empty = n == 0;
            let now = Instant::now();
            for ev in &events[..n] {
                let data = ev.data();
                let slot = data as u32;
                match data >> KIND_SHIFT {
                    LISTENER => self.accept(slot as usize, now),
                    CLIENT => self.client_event(slot, ev.events(), now),
                    _ => self.server_event(slot, ev.events(), now),
                }
            }
            self.flush_pending(now);
            self.fire_timers(now);
        }
        let end = Instant::now();
        self.roll(end);
        self.finish_bucket();
        let unfinished = self.clients.len as u64;
        let mut leftovers: Vec<OwnedFd> = self.parked;
        leftovers.extend(self.clients.drain().map(|c| c.fd));
        leftovers.extend(self.servers.drain().map(|c| c.fd));
        Ok(DriverOutput {
            outcomes: self.outcomes,
            first_error: self.first_error,
            server_errors: self.server_errors,
            unfinished,
            connect_us: percentiles(&self.total_hist),
            refused_connect_us: percentiles(&self.refused_hist),
            buckets: self.buckets,
            opening: stopped_at.unwrap_or(end) - self.t0,
            total: end - self.t0,
            behind: self.behind,
            leftovers,
        })
    }

    /// How long epoll may wait: until the next connection is due, the next timer, or the
    /// interval's end (so a quiet interval still gets its row), rounded up to a millisecond.
    fn timeout(
        &self,
        now: Instant,
        stopped: bool,
        rate: Option<f64>,
        duration: Option<Duration>,
        concurrency: Option<u64>,
    ) -> u16 {
        let mut next = now + Duration::from_millis(100);
        if !stopped {
            if concurrency.is_some_and(|n| (self.clients.len as u64) < n) {
                return 0;
            }
            if let Some(rate) = rate {
                next = next.min(self.t0 + Duration::from_secs_f64(self.opened as f64 / rate));
            }
            if let Some(d) = duration {
                next = next.min(self.t0 + d);
            }
        }
        if let Some(Reverse((at, ..))) = self.timers.peek() {
            next = next.min(*at);
        }
        let wait = next.saturating_duration_since(now);
        wait.as_micros().div_ceil(1000).min(100) as u16
    }

    /// The bucket of `now`, closing the ones before it.
    fn roll(&mut self, now: Instant) -> &mut Bucket {
        let idx = ((now - self.t0).as_nanos() / self.interval.as_nanos()) as usize;
        while self.buckets.len() <= idx {
            self.finish_bucket();
            self.buckets.push(Bucket::default());
        }
        self.buckets.last_mut().expect("one bucket at least")
    }

    fn finish_bucket(&mut self) {
        let in_flight = self.clients.len as u64;
        let p = percentiles(&self.interval_hist);
        self.interval_hist.reset();
        let b = self.buckets.last_mut().expect("one bucket at least");
        b.connect_us = p;
        b.in_flight = in_flight;
    }

    fn open(&mut self, now: Instant) {
        let i = self.opened;
        self.opened += 1;
        self.live.opened.store(self.opened, Ordering::Relaxed);
        self.roll(now).attempts += 1;
        if self.w.rate.is_some() && self.clients.len as u64 >= u64::from(self.w.max_in_flight) {
            self.record(LIMIT.into(), now);
            return;
        }
        let ns = (i % self.client_ns.len() as u64) as usize;
        if ns != self.current_ns {
            // SAFETY: the lab keeps the namespace fds open while the workload runs.
            let fd = unsafe { BorrowedFd::borrow_raw(self.client_ns[ns]) };
            if let Err(e) = setns(fd, CloneFlags::CLONE_NEWNET) {
                self.record(format!("{e:?}"), now);
                return;
            }
            self.current_ns = ns;
        }
        let target = &self.targets[(i % self.targets.len() as u64) as usize];
        let family = if target.as_sockaddr_in().is_some() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain syscalls; the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            self.record(format!("{:?}", Errno::last()), now);
            return;
        }
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let started = Instant::now();
        // SAFETY: the address and its length come from one SockaddrStorage.
        let rc = unsafe { libc::connect(fd.as_raw_fd(), target.as_ptr(), target.len()) };
        let connected = if rc == 0 {
            true
        } else {
            match Errno::last() {
                // Over veth the handshake usually completes inside connect() itself (the
                // SYN-ACK is processed when the socket is released), so ask at once:
                // getpeername succeeds only on a connected socket, and saves the epoll
                // round trip.
                Errno::EINPROGRESS => peer_known(&fd),
                e => {
                    // How long the kernel took to refuse: with the range in TIME_WAIT,
                    // connect() walks every port before EADDRNOTAVAIL.
                    let us = started.elapsed().as_micros().max(1) as u64;
                    self.refused_hist.saturating_record(us);
                    self.record(format!("{e:?}"), now);
                    return;
                }
            }
        };
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let slot = self.clients.insert(Conn {
            fd,
            phase: ClientPhase::Connecting,
            interest: None,
            started,
            sent: 0,
            got: 0,
            generation,
        });
        if connected {
            self.client_connected(slot, Instant::now());
        } else {
            self.interest_client(slot, Some(EpollFlags::EPOLLOUT));
            self.timers.push(Reverse((
                started + self.w.connect_timeout.0,
                TimerKind::ConnectTimeout,
                token(CLIENT, slot),
                generation,
            )));
        }
    }

    /// Counts a connection's outcome in its interval and in the totals.
    fn record(&mut self, outcome: String, now: Instant) {
        let live = self.live;
        let bucket = self.roll(now);
        if outcome == OK {
            bucket.ok += 1;
            live.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            live.failed.fetch_add(1, Ordering::Relaxed);
            *bucket.errors.entry(outcome.clone()).or_default() += 1;
            self.failed = true;
            if self.first_error.is_none() {
                self.first_error = Some(FirstError {
                    outcome: outcome.clone(),
                    at: now - self.t0,
                });
            }
        }
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn interest_client(&mut self, slot: u32, want: Option<EpollFlags>) {
        let Some(c) = self.clients.get_mut(slot) else {
            return;
        };
        set_interest(
            &self.epoll,
            &c.fd,
            &mut c.interest,
            want,
            token(CLIENT, slot),
        );
    }

    fn interest_server(&mut self, slot: u32, want: Option<EpollFlags>) {
        let Some(c) = self.servers.get_mut(slot) else {
            return;
        };
        set_interest(
            &self.epoll,
            &c.fd,
            &mut c.interest,
            want,
            token(SERVER, slot),
        );
    }

    fn client_event(&mut self, slot: u32, events: EpollFlags, now: Instant) {
        let Some(c) = self.clients.get_mut(slot) else {
            return;
        };
        match c.phase {
            ClientPhase::Connecting => match getsockopt(&c.fd, sockopt::SocketError) {
                Ok(0) if !events.contains(EpollFlags::EPOLLERR) => self.client_connected(slot, now),
                Ok(0) => self.client_failed(slot, "EPIPE".into(), now),
                Ok(e) => self.client_failed(slot, format!("{:?}", Errno::from_raw(e)), now),
                Err(e) => self.client_failed(slot, format!("{e:?}"), now),
            },
            ClientPhase::Sending => self.client_send(slot, now),
            ClientPhase::Receiving | ClientPhase::AwaitEof => self.client_read(slot, now),
            ClientPhase::Holding => {}
        }
    }

    fn client_connected(&mut self, slot: u32, now: Instant) {
        let Some(c) = self.clients.get_mut(slot) else {
            return;
        };
        let us = (now - c.started).as_micros().max(1) as u64;
        self.interval_hist.saturating_record(us);
        self.total_hist.saturating_record(us);
        self.client_send(slot, now);
    }

    fn client_send(&mut self, slot: u32, now: Instant) {
        let want = self.w.request_bytes;
        let Some(c) = self.clients.get_mut(slot) else {
            return;
        };
        c.phase = ClientPhase::Sending;
        match send_up_to(&c.fd, &mut c.sent, want, &self.buf) {
            Ok(true) => {}
            Ok(false) => return self.interest_client(slot, Some(EpollFlags::EPOLLOUT)),
            Err(e) => return self.client_failed(slot, format!("{e:?}"), now),
        }
        if self.w.response_bytes > 0 {
            c.phase = ClientPhase::Receiving;
            self.interest_client(slot, Some(EpollFlags::EPOLLIN));
            return;
        }
        self.client_exchanged(slot, now);
    }

    fn client_read(&mut self, slot: u32, now: Instant) {
        let want = self.w.response_bytes;
        let Some(c) = self.clients.get_mut(slot) else {
            return;
        };
        loop {
            match read(&c.fd, &mut self.buf) {
                Ok(0) => {
                    if c.phase == ClientPhase::Receiving {
                        return self.client_failed(slot, EARLY_EOF.into(), now);
                    }
                    let c = self.clients.remove(slot).expect("present");
                    drop(c.fd);
                    return self.record(OK.into(), now);
                }
                Ok(n) => {
                    c.got = c.got.saturating_add(n as u32);
                    if c.phase == ClientPhase::Receiving && c.got >= want {
                        return self.client_exchanged(slot, now);
                    }
                }
                Err(Errno::EAGAIN) => {
                    return self.interest_client(slot, Some(EpollFlags::EPOLLIN));
                }
                Err(e) => return self.client_failed(slot, format!("{e:?}"), now),
            }
        }
    }

    /// Request sent and response read: the client closes first, or waits for the server.
    fn client_exchanged(&mut self, slot: u32, now: Instant) {
        match self.w.close.by {
            Role::Client if self.think.is_zero() => self.client_close(slot, now),
            Role::Client => {
                let generation = self.hold_client(slot);
                self.timers.push(Reverse((
                    now + self.think,
                    TimerKind::Hold,
                    token(CLIENT, slot),
                    generation,
                )));
            }
            Role::Server if self.w.close.peer == PeerAction::StayOpen => {
                let c = self.clients.remove(slot).expect("present");
                self.parked.push(c.fd);
                self.record(OK.into(), now);
            }
            Role::Server => {
                // Read for the server's FIN once the server side has had its turn (see
                // `flush_pending`): most often it is there by then, and no epoll round trip
                // is needed.
                if let Some(c) = self.clients.get_mut(slot) {
                    c.phase = ClientPhase::AwaitEof;
                    self.pending.push((slot, c.generation));
                }
            }
        }
    }

    fn flush_pending(&mut self, now: Instant) {
        let pending = std::mem::take(&mut self.pending);
        for &(slot, generation) in &pending {
            if self
                .clients
                .get_mut(slot)
                .is_some_and(|c| c.generation == generation)
            {
                self.client_read(slot, now);
            }
        }
        // Keep the allocation for the next round.
        self.pending = pending;
        self.pending.clear();
    }

    fn hold_client(&mut self, slot: u32) -> u32 {
        self.interest_client(slot, None);
        let c = self.clients.get_mut(slot).expect("present");
        c.phase = ClientPhase::Holding;
        c.generation
    }

    fn client_close(&mut self, slot: u32, now: Instant) {
        let c = self.clients.remove(slot).expect("present");
        close_as(c.fd, self.w.close.how);
        self.record(OK.into(), now);
    }

    fn client_failed(&mut self, slot: u32, outcome: String, now: Instant) {
        if let Some(c) = self.clients.remove(slot) {
            drop(c.fd);
        }
        self.record(outcome, now);
    }

    fn accept(&mut self, listener: usize, now: Instant) {
        // A bounded batch: connections waiting on the other listeners get their turn.
        for _ in 0..256 {
            let lfd = self.listeners[listener].as_raw_fd();
            // SAFETY: accept4 on our listener; the new fd is owned at once.
            let raw = unsafe {
                libc::accept4(
                    lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if raw < 0 {
                match Errno::last() {
                    Errno::EAGAIN | Errno::EINTR => return,
                    // The connection went before it was accepted (reset in the queue).
                    Errno::ECONNABORTED => continue,
                    e => {
                        *self.server_errors.entry(format!("{e:?}")).or_default() += 1;
                        return;
                    }
                }
            }
            // SAFETY: a new descriptor nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            self.generation = self.generation.wrapping_add(1);
            let slot = self.servers.insert(Conn {
                fd,
                phase: ServerPhase::Reading,
                interest: None,
                started: now,
                sent: 0,
                got: 0,
                generation: self.generation,
            });
            self.server_read(slot, now);
        }
    }

    /// The server side of a connection met an error: counted apart from the client's
    /// outcomes, its socket closed.
    fn server_failed(&mut self, slot: u32, outcome: String) {
        if let Some(c) = self.servers.remove(slot) {
            drop(c.fd);
        }
        *self.server_errors.entry(outcome).or_default() += 1;
    }

    fn server_event(&mut self, slot: u32, _events: EpollFlags, now: Instant) {
        let Some(c) = self.servers.get_mut(slot) else {
            return;
        };
        match c.phase {
            ServerPhase::Reading | ServerPhase::AwaitEof => self.server_read(slot, now),
            ServerPhase::Writing => self.server_write(slot, now),
            ServerPhase::Holding => {}
        }
    }

    fn server_read(&mut self, slot: u32, now: Instant) {
        let want = self.w.request_bytes;
        let Some(c) = self.servers.get_mut(slot) else {
            return;
        };
        if c.phase == ServerPhase::Reading && c.got >= want {
            return self.server_write(slot, now);
        }
        loop {
            match read(&c.fd, &mut self.buf) {
                Ok(0) => {
                    let c = self.servers.remove(slot).expect("present");
                    if c.phase == ServerPhase::Reading {
                        *self.server_errors.entry(EARLY_EOF.into()).or_default() += 1;
                    }
                    drop(c.fd);
                    return;
                }
                Ok(n) => {
                    c.got = c.got.saturating_add(n as u32);
                    if c.phase == ServerPhase::Reading && c.got >= want {
                        return self.server_write(slot, now);
                    }
                }
                Err(Errno::EAGAIN) => {
                    let want = Some(EpollFlags::EPOLLIN);
                    return self.interest_server(slot, want);
                }
                Err(e) => {
                    return self.server_failed(slot, format!("{e:?}"));
                }
            }
        }
    }

    fn server_write(&mut self, slot: u32, now: Instant) {
        let want = self.w.response_bytes;
        let Some(c) = self.servers.get_mut(slot) else {
            return;
        };
        c.phase = ServerPhase::Writing;
        match send_up_to(&c.fd, &mut c.sent, want, &self.buf) {
            Ok(true) => {}
            Ok(false) => return self.interest_server(slot, Some(EpollFlags::EPOLLOUT)),
            Err(e) => return self.server_failed(slot, format!("{e:?}")),
        }
        match self.w.close.by {
            Role::Server if self.think.is_zero() => {
                let c = self.servers.remove(slot).expect("present");
                close_as(c.fd, self.w.close.how);
            }
            Role::Server => {
                self.interest_server(slot, None);
                let c = self.servers.get_mut(slot).expect("present");
                c.phase = ServerPhase::Holding;
                let generation = c.generation;
                self.timers.push(Reverse((
                    now + self.think,
                    TimerKind::Hold,
                    token(SERVER, slot),
                    generation,
                )));
            }
            Role::Client if self.w.close.peer == PeerAction::StayOpen => {
                let c = self.servers.remove(slot).expect("present");
                self.parked.push(c.fd);
            }
            Role::Client => {
                let c = self.servers.get_mut(slot).expect("present");
                c.phase = ServerPhase::AwaitEof;
                self.server_read(slot, now);
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, kind, tok, generation))) = self.timers.peek().copied() {
            if at > now {
                return;
            }
            self.timers.pop();
            let slot = tok as u32;
            if tok >> KIND_SHIFT == CLIENT {
                let Some(c) = self.clients.get_mut(slot) else {
                    continue;
                };
                if c.generation != generation {
                    continue;
                }
                match (kind, c.phase) {
                    (TimerKind::ConnectTimeout, ClientPhase::Connecting) => {
                        self.client_failed(slot, TIMEOUT.into(), now)
                    }
                    (TimerKind::Hold, ClientPhase::Holding) => self.client_close(slot, now),
                    _ => {}
                }
            } else {
                let Some(c) = self.servers.get_mut(slot) else {
                    continue;
                };
                if c.generation == generation && c.phase == ServerPhase::Holding {
                    let c = self.servers.remove(slot).expect("present");
                    close_as(c.fd, self.w.close.how);
                }
            }
        }
    }
}

/// Whether the socket is connected: getpeername answers ENOTCONN until it is.
fn peer_known(fd: &OwnedFd) -> bool {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the buffer and its length describe one sockaddr_storage we own.
    let rc = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    rc == 0
}

fn set_interest(
    epoll: &Epoll,
    fd: &OwnedFd,
    current: &mut Option<EpollFlags>,
    want: Option<EpollFlags>,
    data: u64,
) {
    if *current == want {
        return;
    }
    // A failed epoll_ctl leaves the socket unwatched: its timer (or the drain) ends it.
    let _ = match (*current, want) {
        (None, Some(f)) => epoll.add(fd, EpollEvent::new(f, data)),
        (Some(_), Some(f)) => epoll.modify(fd, &mut EpollEvent::new(f, data)),
        (Some(_), None) => epoll.delete(fd),
        (None, None) => Ok(()),
    };
    *current = want;
}

/// Closes a socket the way the case says the side closing first does.
fn close_as(fd: OwnedFd, how: CloseHow) {
    match how {
        CloseHow::Fin => {}
        CloseHow::Abort => {
            let _ = so::set_linger(&fd, 0);
        }
        CloseHow::Linger(s) => {
            let _ = so::set_linger(&fd, s);
        }
    }
    drop(fd);
}

/// Sends from `buf` until `sent` reaches `want`: `Ok(true)` when it has, `Ok(false)` when the
/// socket's buffer is full (wait for EPOLLOUT and call again).
fn send_up_to(fd: &OwnedFd, sent: &mut u32, want: u32, buf: &[u8]) -> nix::Result<bool> {
    while *sent < want {
        let n = (want - *sent).min(buf.len() as u32) as usize;
        match write(fd, &buf[..n]) {
            Ok(k) => *sent += k as u32,
            Err(Errno::EAGAIN) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> nix::Result<usize> {
    // SAFETY: reading into a buffer we own, of its length.
    let n = unsafe { libc::read(fd.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    Errno::result(n).map(|n| n as usize)
}

fn write(fd: &OwnedFd, buf: &[u8]) -> nix::Result<usize> {
    // SAFETY: writing from a buffer we own, of its length; MSG_NOSIGNAL: a reset peer is an
    // EPIPE to count, not a signal.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    Errno::result(n).map(|n| n as usize)
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
        count: h.len(),
    }
}
