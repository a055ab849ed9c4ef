//! An axum 0.8 JSON service under four allocators (issue 16, §2): glibc,
//! mimalloc, `Bumper` over the system allocator with
//! `bumper::tower::ArenaLayer`, and `Bumper<MiMalloc>` with the layer.
//!
//! `POST /json` takes `{"id":N,"user":"..","op":"stats","values":[16 ints]}`
//! (serde derive), sorts the values, computes their count, sum, min, max
//! and median, builds a hex label per value and answers with about 300
//! bytes of JSON. In the bumper variants the router is
//! `Router::new().route(..).layer(ArenaLayer::new(&pool))`: the handler, the
//! extractor, serde and the response all allocate from the request's arena.
//!
//! A binary has one global allocator, so each variant runs in a child
//! process of this example (`serve VARIANT`), whose global allocator is a
//! switch that picks the variant's allocator from the environment
//! (`BUMPER_AXUM_ALLOC`) at its first allocation: one predictable branch
//! per call, the same in all four variants. The child serves on 127.0.0.1
//! with 2 tokio workers until its standard input closes, then prints what
//! it served, its CPU time (user + system) and its peak RSS (`VmHWM`).
//!
//! Drivers (the parent process):
//!
//! - `cargo run --release --example axum`: the bounded built-in client
//!   (hyper's) that CI runs: 64 keep-alive connections x 200 requests per
//!   child, every response checked byte for byte, 3 interleaved rounds of
//!   the four variants, medians. Every call has a deadline.
//! - `cargo run --release --example axum -- wrk SECS ROUNDS`: `wrk -t1
//!   -c64 -dSECS` as the load generator against each child (after a short
//!   checked round with the built-in client), `ROUNDS` interleaved rounds,
//!   medians. Needs `wrk` (`apt-get install wrk`).
//! - `cargo run --release --example axum -- client ADDR CONNS REQS`: the
//!   built-in client against a server started by hand with
//!   `BUMPER_AXUM_ALLOC=VARIANT .../axum serve VARIANT` (under a profiler,
//!   say); the server stops when its standard input closes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use bumper::tower::ArenaLayer;
use bumper::{Bumper, Pool};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mimalloc::MiMalloc;
use serde::{Deserialize, Serialize};

// ---- the allocator switch ----------------------------------------------

/// The variants, in table order: name, and whether the router has the
/// layer.
const VARIANTS: [(&str, bool); 4] = [
    ("glibc", false),
    ("mimalloc", false),
    ("bumper", true),
    ("bumper-mimalloc", true),
];

static BUMPER_SYSTEM: Bumper = Bumper::system();
static BUMPER_MIMALLOC: Bumper<MiMalloc> = Bumper::new(MiMalloc);
/// 0: not read yet; otherwise 1 + the index in [`VARIANTS`].
static MODE: AtomicU8 = AtomicU8::new(0);

/// Picks the allocator named by `BUMPER_AXUM_ALLOC` (glibc if unset) for
/// the whole process, at the first allocation.
struct Switch;

#[inline(always)]
fn mode() -> u8 {
    let m = MODE.load(Relaxed);
    if m != 0 { m } else { read_mode() }
}

#[cold]
fn read_mode() -> u8 {
    // SAFETY: a NUL-terminated name; `getenv` reads the environment without
    // allocating, and nothing in this program changes it.
    let p = unsafe { libc::getenv(c"BUMPER_AXUM_ALLOC".as_ptr()) };
    let name: &[u8] = if p.is_null() {
        b"glibc"
    } else {
        // SAFETY: `getenv` returned a NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes()
    };
    let i = VARIANTS
        .iter()
        .position(|(n, _)| n.as_bytes() == name)
        .unwrap_or(0);
    // Threads racing here compute the same value.
    MODE.store(i as u8 + 1, Relaxed);
    i as u8 + 1
}

macro_rules! dispatch {
    ($method:ident($($arg:expr),*)) => {
        match mode() {
            1 => System.$method($($arg),*),
            2 => MiMalloc.$method($($arg),*),
            3 => BUMPER_SYSTEM.$method($($arg),*),
            _ => BUMPER_MIMALLOC.$method($($arg),*),
        }
    };
}

// SAFETY: every call goes to the one allocator the process picked at its
// first allocation (the mode never changes afterwards), with the caller's
// arguments, so each block goes back to the allocator that made it.
unsafe impl GlobalAlloc for Switch {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { dispatch!(alloc(layout)) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { dispatch!(alloc_zeroed(layout)) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on; `ptr` came from the same
        // allocator.
        unsafe { dispatch!(dealloc(ptr, layout)) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`.
        unsafe { dispatch!(realloc(ptr, layout, new_size)) }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

// ---- the service -------------------------------------------------------

/// Values per request.
const VALUES: usize = 16;

#[derive(Deserialize, Serialize)]
pub struct StatsRequest {
    id: u64,
    user: String,
    op: String,
    values: Vec<i64>,
}

#[derive(Deserialize, Serialize, PartialEq, Debug)]
pub struct StatsResponse {
    id: u64,
    user: String,
    op: String,
    count: usize,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
    median: Option<i64>,
    labels: String,
}

/// The handler's work: allocates as ordinary code does.
pub fn answer(req: StatsRequest) -> StatsResponse {
    let mut values = req.values;
    values.sort_unstable();
    let labels: Vec<String> = values.iter().map(|v| format!("{v:x}")).collect();
    StatsResponse {
        id: req.id,
        user: req.user.to_uppercase(),
        op: req.op,
        count: values.len(),
        sum: values.iter().sum(),
        min: values.first().copied(),
        max: values.last().copied(),
        median: values.get(values.len() / 2).copied(),
        labels: labels.join(","),
    }
}

/// Requests served by this process.
static SERVED: AtomicU64 = AtomicU64::new(0);

async fn stats(Json(req): Json<StatsRequest>) -> Json<StatsResponse> {
    SERVED.fetch_add(1, Relaxed);
    Json(answer(req))
}

/// The router, with the layer over `pool` if given.
pub fn router(pool: Option<&Pool>) -> axum::Router {
    let app = axum::Router::new().route("/json", post(stats));
    match pool {
        Some(pool) => app.layer(ArenaLayer::new(pool)),
        None => app,
    }
}

/// xorshift64 on a per-request seed.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// Request `i` of connection `conn`.
pub fn request(conn: usize, i: usize) -> StatsRequest {
    let mut below = rng(((conn as u64) << 32) + i as u64 + 1);
    StatsRequest {
        id: (conn * 1_000_000 + i) as u64,
        user: format!("user-{conn}"),
        op: "stats".to_string(),
        values: (0..VALUES)
            .map(|_| below(2_000_000) as i64 - 1_000_000)
            .collect(),
    }
}

// ---- the child: a server ------------------------------------------------

/// CPU time of this process so far (user + system), in nanoseconds.
fn cpu_ns() -> u64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The process's peak resident memory (`VmHWM`, Linux), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Serves until standard input closes; prints `ready ADDR` once listening,
/// and `served N cpu_ns C peak_rss B leases L unclean U` at the end.
fn serve(variant: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the server's runtime");
    // tokio's per-worker list of deferred wakers grows on the heap before
    // any request (see the guide); done in every variant alike.
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| tokio::spawn(async { tokio::task::yield_now().await }))
            .collect();
        for t in tasks {
            t.await.expect("a warm-up task");
        }
    });
    let pool = VARIANTS[variant].1.then(Pool::new);
    let app = router(pool.as_ref());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the address");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    println!("ready {addr}");
    std::io::stdout().flush().expect("stdout");
    let cpu0 = cpu_ns();
    let served0 = SERVED.load(Relaxed);
    rt.block_on(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .expect("serve")
    });
    let cpu = cpu_ns() - cpu0;
    let served = SERVED.load(Relaxed) - served0;
    let (leases, unclean) = pool.as_ref().map_or((0, 0), |p| {
        let s = p.stats();
        (s.leases, s.unclean_resets)
    });
    println!(
        "served {served} cpu_ns {cpu} peak_rss {} leases {leases} unclean {unclean}",
        peak_rss()
    );
}

// ---- the parent: drivers -----------------------------------------------

/// Connections of the load (built-in client and wrk).
pub const CONNS: usize = 64;
/// Requests per connection of the built-in client.
pub const REQS: usize = 200;
/// Every client call ends by then or fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running child server.
struct Server {
    child: Child,
    addr: SocketAddr,
}

fn start(variant: usize) -> Server {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["serve", VARIANTS[variant].0])
        .env("BUMPER_AXUM_ALLOC", VARIANTS[variant].0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a child server");
    let mut line = String::new();
    let out = child.stdout.as_mut().expect("the child's stdout");
    BufReader::new(out)
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .strip_prefix("ready ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child said {line:?}"));
    Server { child, addr }
}

/// What a child reported: served, CPU ns, peak RSS, leases, unclean resets.
fn stop(mut server: Server) -> [u64; 5] {
    drop(server.child.stdin.take());
    let mut text = String::new();
    let mut out = server.child.stdout.take().expect("stdout");
    out.read_to_string(&mut text).expect("the child's report");
    let status = server.child.wait().expect("the child's exit");
    assert!(status.success(), "the child failed: {text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let get = |k: &str| -> u64 {
        let i = words.iter().position(|w| *w == k).expect("a field");
        words[i + 1].parse().expect("a number")
    };
    [
        get("served"),
        get("cpu_ns"),
        get("peak_rss"),
        get("leases"),
        get("unclean"),
    ]
}

/// The built-in client: `conns` connections x `reqs` requests, every
/// response checked. Returns the wall time.
fn drive(rt: &tokio::runtime::Runtime, addr: SocketAddr, conns: usize, reqs: usize) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..conns)
            .map(|c| {
                tokio::spawn(async move {
                    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                    for i in 0..reqs {
                        let req = request(c, i);
                        let body = serde_json::to_vec(&req).expect("serialise");
                        let expected = answer(req);
                        let http_req = http::Request::post(format!("http://{addr}/json"))
                            .header("content-type", "application/json")
                            .body(Full::from(body))
                            .expect("a request");
                        let call = async {
                            let res = client.request(http_req).await.expect("a response");
                            assert_eq!(res.status(), 200);
                            res.into_body().collect().await.expect("a body").to_bytes()
                        };
                        let bytes = tokio::time::timeout(DEADLINE, call)
                            .await
                            .expect("the client passed its deadline");
                        let got: StatsResponse = serde_json::from_slice(&bytes).expect("JSON");
                        assert_eq!(got, expected, "a wrong response");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("a client connection");
        }
    });
    start.elapsed()
}

/// Runs `wrk` against `addr` for `secs`; returns its requests per second.
fn wrk(addr: SocketAddr, secs: u64, script: &std::path::Path) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{CONNS}"), &format!("-d{secs}s"), "-s"])
        .arg(script)
        .arg(format!("http://{addr}/json"))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw error responses:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let name = args.get(1).expect("a variant");
        let v = VARIANTS
            .iter()
            .position(|(n, _)| n == name)
            .expect("a known variant");
        return serve(v);
    }
    if args.first().map(String::as_str) == Some("client") {
        // `client ADDR CONNS REQS`: the built-in client against a server
        // started by hand (under a profiler, say).
        let addr: SocketAddr = args.get(1).expect("an address").parse().expect("ADDR");
        let conns = args.get(2).map_or(CONNS, |s| s.parse().expect("CONNS"));
        let reqs = args.get(3).map_or(REQS, |s| s.parse().expect("REQS"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the client's runtime");
        let t = drive(&rt, addr, conns, reqs);
        println!("{} requests in {t:?}", conns * reqs);
        return;
    }
    let wrk_secs: Option<u64> = (args.first().map(String::as_str) == Some("wrk"))
        .then(|| args.get(1).map_or(4, |s| s.parse().expect("seconds")));
    let rounds: usize = args.get(2).map_or(3, |s| s.parse().expect("rounds"));
    let script = std::env::temp_dir().join(format!("bumper-axum-{}.lua", std::process::id()));
    if wrk_secs.is_some() {
        let body = serde_json::to_string(&request(1, 1)).expect("serialise");
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = {body:?}\n"
        );
        std::fs::write(&script, lua).expect("write the wrk script");
    }
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the client's runtime");

    // Per variant: req/s, CPU µs per request, peak RSS, unclean resets.
    let mut rows: Vec<Vec<[f64; 4]>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..rounds {
        for (v, row) in rows.iter_mut().enumerate() {
            let server = start(v);
            let (rps, requests) = match wrk_secs {
                None => {
                    let t = drive(&client_rt, server.addr, CONNS, REQS);
                    let n = (CONNS * REQS) as f64;
                    (n / t.as_secs_f64(), n as u64)
                }
                Some(secs) => {
                    drive(&client_rt, server.addr, CONNS, 10); // checked
                    (wrk(server.addr, secs, &script), 0)
                }
            };
            let [served, cpu, peak, leases, unclean] = stop(server);
            if requests > 0 {
                assert_eq!(served, requests, "requests lost");
            }
            if VARIANTS[v].1 {
                assert_eq!(leases, served, "a request without a lease");
            }
            row.push([
                rps,
                cpu as f64 / 1000.0 / served as f64,
                peak as f64,
                unclean as f64,
            ]);
        }
    }
    let _ = std::fs::remove_file(&script);

    let load = match wrk_secs {
        None => format!(
            "built-in hyper client, {CONNS} keep-alive connections x {REQS} requests, every response checked"
        ),
        Some(s) => format!("wrk -t1 -c{CONNS} -d{s}s, one JSON body"),
    };
    println!(
        "axum 0.8 JSON service on 127.0.0.1, 2 tokio workers; {load}; {rounds} interleaved rounds, medians\n"
    );
    println!(
        "| variant | requests/s | vs glibc | server CPU µs/request | peak RSS | unclean resets |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let glibc = median(rows[0].iter().map(|r| r[0]).collect());
    for (v, row) in rows.iter().enumerate() {
        let rps = median(row.iter().map(|r| r[0]).collect());
        let cpu = median(row.iter().map(|r| r[1]).collect());
        let peak = median(row.iter().map(|r| r[2]).collect());
        let unclean: f64 = row.iter().map(|r| r[3]).sum();
        let name = match VARIANTS[v] {
            (n, true) => format!("{n} + ArenaLayer"),
            (n, false) => n.to_string(),
        };
        println!(
            "| {name} | {rps:.0} | {:.2}x | {cpu:.1} | {} | {unclean:.0} |",
            rps / glibc,
            bumper::Bytes(peak as u64)
        );
        assert_eq!(unclean, 0.0, "{name}: unclean resets");
    }
}
