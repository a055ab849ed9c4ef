//! A tokio TCP server on 127.0.0.1 with an arena per request, and a bounded
//! client that drives it (issue 11, item 3).
//!
//! The protocol is one line of JSON per request and one per response. A
//! request is `{"id":N,"user":"user-C","op":"stats","values":[..16 ints..]}`;
//! the handler parses it with serde_json, sorts the values, computes their
//! count, sum, min, max and median, builds a label per value and serialises
//! a response of about 300 bytes. An unparsable line gets an `error`
//! response.
//!
//! In the bumper mode, each request is handled in an arena leased from a
//! `bumper::Pool` (which keeps up to [`POOL`] idle arenas): the connection's
//! task takes a lease, runs the handler in
//! `bumper::in_region(lease.region(), ..)`, writes the response (which lives
//! in the arena) to the socket outside the region, and drops the response
//! and then the lease, which resets the arena and gives it back. Only
//! the handling runs inside the region, not tokio's socket calls, so none of
//! the runtime's own memory (wakers, its deferred-waker lists) is ever made
//! in an arena. In the heap mode the same handler runs with no region.
//!
//! The client opens [`CONNS`] connections at once and sends [`REQS`]
//! requests on each, one after the other, checking every response byte for
//! byte against the handler's output for that request computed on the
//! client's side (on the heap). Server and client run on two tokio runtimes
//! of their own in one process (2 and 1 worker threads), after a warm-up
//! round of 10 requests per connection, and everything has a deadline
//! ([`DEADLINE`]): the example fails rather than hang.
//!
//! The global allocator is `Bumper<Counting>`: `Counting` counts, with
//! atomic counters, every call that reaches the inner allocator (the system
//! allocator), on every thread, split into the client's threads and all the
//! others (the server's runtime and the main thread outside the client).
//! `bumper::measure` would only see the calling thread. Each mode runs in a
//! child process of this example, [`ROUNDS`] times interleaved, so that
//! each peak RSS (`VmHWM`) is that mode's alone; the table shows the median
//! requests per second and the last round's counts and peak RSS.
//!
//! Run it with `cargo run --release --example server`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bumper::{Bumper, Bytes, Pool, in_region};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: Bumper<Counting> = Bumper::new(Counting);

/// Concurrent connections in the example's run.
pub const CONNS: usize = 64;
/// Requests per connection in the example's run.
pub const REQS: usize = 200;
/// Idle arenas the pool keeps.
pub const POOL: usize = 16;
/// Values per request.
const VALUES: usize = 16;
/// Requests per connection in the warm-up round.
const WARM_UP_REQS: usize = 10;
/// Every run, warm-up included, ends by then or fails.
pub const DEADLINE: Duration = Duration::from_secs(120);
/// Interleaved rounds of the two modes in `main`.
const ROUNDS: usize = 3;

/// Counts every call that reaches the inner allocator, then passes it on
/// to the system allocator.
pub struct Counting;

/// Calls that reached the inner allocator: from the client's threads, and
/// from all the others.
static CLIENT_CALLS: AtomicU64 = AtomicU64::new(0);
static OTHER_CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is one of the client's.
    static CLIENT: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if CLIENT.try_with(Cell::get).unwrap_or(false) {
        CLIENT_CALLS.fetch_add(1, Relaxed);
    } else {
        OTHER_CALLS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// counting touches only atomics and a const-initialised thread-local `Cell`,
// neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on; `ptr` came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        // SAFETY: the caller's contract, passed on; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// xorshift64 on a per-request seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// Writes request `i` of connection `conn` into `out` (cleared first), as
/// one line.
pub fn request_line(conn: usize, i: usize, out: &mut String) {
    let mut rng = XorShift::new(((conn as u64) << 32) + i as u64 + 1);
    out.clear();
    let id = conn * 1_000_000 + i;
    let _ = write!(
        out,
        r#"{{"id":{id},"user":"user-{conn}","op":"stats","values":["#
    );
    for k in 0..VALUES {
        if k > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", rng.below(2_000_000) as i64 - 1_000_000);
    }
    out.push_str("]}\n");
}

/// The handler: one request line in, one response line out. Allocates on
/// purpose, as ordinary code does: a parsed `Value`, a `Vec`, `String`s, a
/// response `Value` and its serialisation.
pub fn handle(line: &str) -> String {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return format!("{}\n", json!({ "error": e.to_string() })),
    };
    let mut values: Vec<i64> = req["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    values.sort_unstable();
    let user = req["user"].as_str().unwrap_or("anonymous").to_uppercase();
    let labels: Vec<String> = values.iter().map(|v| format!("{v:x}")).collect();
    let response = json!({
        "id": req["id"],
        "user": user,
        "op": req["op"],
        "count": values.len(),
        "sum": values.iter().sum::<i64>(),
        "min": values.first(),
        "max": values.last(),
        "median": values.get(values.len() / 2),
        "labels": labels.join(","),
    });
    let mut out = serde_json::to_string(&response).expect("a Value serialises");
    out.push('\n');
    out
}

/// The server's pool: `bumper::Pool` keeping up to [`POOL`] idle arenas.
pub fn pool() -> Pool {
    Pool::builder()
        .max_idle(POOL)
        .build()
        .expect("default arena settings")
}

/// Serves one connection until the client closes it; returns the requests
/// served.
async fn serve(stream: TcpStream, pool: Option<Pool>) -> std::io::Result<u64> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = String::with_capacity(1024);
    let mut served = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(served);
        }
        match &pool {
            None => writer.write_all(handle(&line).as_bytes()).await?,
            Some(pool) => {
                let lease = pool.take();
                let response = in_region(lease.region(), async { handle(&line) }).await;
                let written = writer.write_all(response.as_bytes()).await;
                drop(response);
                // Outside the region, with everything the request made dead:
                // the lease resets the arena and gives it back.
                drop(lease);
                written?;
            }
        }
        served += 1;
    }
}

/// Accepts exactly `conns` connections, serves each in a task of its own,
/// and returns the requests served once all are closed.
async fn server(listener: TcpListener, conns: usize, pool: Option<Pool>) -> u64 {
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        tasks.push(tokio::spawn(serve(stream, pool.clone())));
    }
    let mut served = 0;
    for t in tasks {
        served += t
            .await
            .expect("a connection task")
            .expect("a connection's I/O");
    }
    served
}

/// What the client saw: responses and wrong responses.
#[derive(Default, Clone, Copy)]
struct Seen {
    responses: u64,
    wrong: u64,
}

/// One connection of the client: `reqs` requests, each checked.
async fn client_conn(addr: std::net::SocketAddr, conn: usize, reqs: usize) -> Seen {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let (mut req, mut resp) = (String::with_capacity(1024), String::with_capacity(1024));
    let mut seen = Seen::default();
    for i in 0..reqs {
        request_line(conn, i, &mut req);
        writer.write_all(req.as_bytes()).await.expect("send");
        resp.clear();
        if reader.read_line(&mut resp).await.expect("receive") == 0 {
            break;
        }
        seen.responses += 1;
        if resp != handle(&req) {
            seen.wrong += 1;
        }
    }
    seen
}

async fn client(addr: std::net::SocketAddr, conns: usize, reqs: usize) -> Seen {
    let tasks: Vec<_> = (0..conns)
        .map(|c| tokio::spawn(client_conn(addr, c, reqs)))
        .collect();
    let mut all = Seen::default();
    for t in tasks {
        let s = t.await.expect("a client task");
        all.responses += s.responses;
        all.wrong += s.wrong;
    }
    all
}

/// What a measured round produced and what it cost.
pub struct ServerRun {
    /// Requests sent, responses received, and wrong ones among them.
    pub requests: u64,
    pub responses: u64,
    pub wrong: u64,
    /// Requests the server says it served.
    pub served: u64,
    /// Wall time of the client's round.
    pub elapsed: Duration,
    /// Inner-allocator calls during the round: from the client's threads,
    /// and from all the others (the server's).
    pub client_calls: u64,
    pub server_calls: u64,
}

/// A round: a server for `conns` connections, and a client that makes
/// `reqs` requests on each. Panics if it passes the deadline.
fn round(
    server_rt: &Runtime,
    client_rt: &Runtime,
    conns: usize,
    reqs: usize,
    pool: Option<Pool>,
) -> ServerRun {
    let listener = server_rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    let (client0, other0) = (CLIENT_CALLS.load(Relaxed), OTHER_CALLS.load(Relaxed));
    let start = Instant::now();
    let served = server_rt.spawn(server(listener, conns, pool));
    CLIENT.set(true);
    let seen = client_rt.block_on(async {
        tokio::time::timeout(DEADLINE, client(addr, conns, reqs))
            .await
            .expect("the client passed its deadline")
    });
    CLIENT.set(false);
    let elapsed = start.elapsed();
    let served = server_rt.block_on(async {
        tokio::time::timeout(DEADLINE, served)
            .await
            .expect("the server passed its deadline")
            .expect("the server task")
    });
    ServerRun {
        requests: (conns * reqs) as u64,
        responses: seen.responses,
        wrong: seen.wrong,
        served,
        elapsed,
        client_calls: CLIENT_CALLS.load(Relaxed) - client0,
        server_calls: OTHER_CALLS.load(Relaxed) - other0,
    }
}

/// Builds the two runtimes, runs a warm-up round (10 requests per
/// connection) and then the measured round, in the pool's arenas if given,
/// on the heap otherwise.
pub fn run(conns: usize, reqs: usize, pool: Option<&Pool>) -> ServerRun {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the server's runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(|| CLIENT.set(true))
        .build()
        .expect("the client's runtime");
    let warm = round(&server_rt, &client_rt, conns, WARM_UP_REQS, pool.cloned());
    assert_eq!((warm.responses, warm.wrong), (warm.requests, 0));
    round(&server_rt, &client_rt, conns, reqs, pool.cloned())
}

/// The process's peak resident memory (`VmHWM`, Linux), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A child's figures: requests, responses, wrong, served, nanoseconds,
/// client calls, server calls, peak RSS, resets, unclean resets.
fn child(mode: &str) -> [u64; 10] {
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg(mode)
        .output()
        .expect("run a child");
    assert!(
        out.status.success(),
        "the {mode} child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().expect("a number"))
        .collect();
    v.try_into().expect("ten figures")
}

fn main() {
    let mode = std::env::args().nth(1);
    if let Some(mode @ ("child-heap" | "child-bumper")) = mode.as_deref() {
        let pool = (mode == "child-bumper").then(pool);
        let r = run(CONNS, REQS, pool.as_ref());
        let (resets, unclean) = pool.as_ref().map_or((0, 0), |p| {
            let s = p.stats();
            (s.resets, s.unclean_resets)
        });
        println!(
            "{} {} {} {} {} {} {} {} {resets} {unclean}",
            r.requests,
            r.responses,
            r.wrong,
            r.served,
            r.elapsed.as_nanos(),
            r.client_calls,
            r.server_calls,
            peak_rss(),
        );
        return;
    }

    let mut rows: [Vec<[u64; 10]>; 2] = Default::default();
    for _ in 0..ROUNDS {
        rows[0].push(child("child-heap"));
        rows[1].push(child("child-bumper"));
    }
    println!(
        "{} requests over {CONNS} connections to 127.0.0.1 ({REQS} each), after a warm-up of \
         {WARM_UP_REQS} per connection; server 2 worker threads, client 1; bumper pool of {POOL} \
         idle `LockedArena`s (`bumper::Pool`), a reset per request; req/s: median of {ROUNDS} interleaved child \
         processes per mode; counts and peak RSS: the last one\n",
        CONNS * REQS
    );
    println!(
        "| run | requests/s | correct responses | server heap calls/request | client heap calls/request | clean resets | peak RSS (own process) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, runs) in [
        ("heap (System)", &rows[0]),
        ("bumper, arena per request", &rows[1]),
    ] {
        let mut rps: Vec<f64> = runs
            .iter()
            .map(|r| r[0] as f64 / (r[4] as f64 / 1e9))
            .collect();
        rps.sort_by(f64::total_cmp);
        let last = runs.last().expect("a round");
        let [
            requests,
            responses,
            wrong,
            served,
            _,
            client,
            server,
            peak,
            resets,
            unclean,
        ] = *last;
        assert_eq!((responses, wrong, served), (requests, 0, requests));
        assert_eq!(unclean, 0, "{label}: unclean resets");
        println!(
            "| {label} | {:.0} | {}/{requests} | {:.2} | {:.2} | {} | {} |",
            rps[rps.len() / 2],
            responses - wrong,
            server as f64 / requests as f64,
            client as f64 / requests as f64,
            if resets == 0 {
                "–".to_string()
            } else {
                format!("{}/{resets}", resets - unclean)
            },
            Bytes(peak)
        );
    }
}
