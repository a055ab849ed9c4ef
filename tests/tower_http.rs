//! `bumper::tower::ArenaLayer` (issue 16, §2) under axum 0.8 and hyper 1.x,
//! driven by hyper's client over 127.0.0.1: JSON in and out with serde
//! derive, a streamed body, error responses, a handler that panics and a
//! client that disconnects mid-body. Every response is checked, the pool's
//! arenas end clean (no escape over thousands of requests), and peak RSS
//! does not grow with the number of requests. Bounded by counts and by a
//! deadline on every client call; no timing is asserted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bumper::tower::ArenaLayer;
use bumper::{Pool, is_arena_pointer};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

/// Every client call ends by then or fails.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Deserialize, Serialize, Clone)]
struct Input {
    id: u64,
    name: String,
    values: Vec<i64>,
}

#[derive(Deserialize, Serialize, PartialEq, Debug)]
struct Output {
    id: u64,
    name: String,
    sum: i64,
    sorted: Vec<i64>,
    labels: Vec<String>,
    in_arena: bool,
}

fn answer(input: Input) -> Output {
    let mut sorted = input.values.clone();
    sorted.sort_unstable();
    let labels: Vec<String> = sorted.iter().map(|v| format!("{v:x}")).collect();
    Output {
        id: input.id,
        name: input.name.to_uppercase(),
        sum: sorted.iter().sum(),
        in_arena: is_arena_pointer(labels.as_ptr()),
        sorted,
        labels,
    }
}

fn input(i: u64) -> Input {
    Input {
        id: i,
        name: format!("user {}", i % 17),
        values: (0..16)
            .map(|k| ((i * 7919 + k * 104_729) % 20_001) as i64 - 10_000)
            .collect(),
    }
}

/// A body of `n` chunks, made one per poll in the handler's arena, with a
/// pending poll between two chunks.
struct Chunks {
    next: usize,
    n: usize,
    size: usize,
    ready: bool,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next == self.n {
            return Poll::Ready(None);
        }
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        let i = self.next;
        self.next += 1;
        let mut chunk = format!("chunk {i}\n").into_bytes();
        chunk.resize(chunk.len().max(self.size), b'.');
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

fn stream_body(n: usize, size: usize) -> Response {
    axum::body::Body::new(Chunks {
        next: 0,
        n,
        size,
        ready: false,
    })
    .into_response()
}

fn expected_stream(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("chunk {i}\n").into_bytes())
        .collect()
}

fn app(pool: &Pool) -> axum::Router {
    axum::Router::new()
        .route(
            "/json",
            post(|Json(i): Json<Input>| async move { Json(answer(i)) }),
        )
        .route(
            "/stream/{n}",
            get(|Path(n): Path<usize>| async move { stream_body(n, 0) }),
        )
        .route(
            "/big/{n}",
            get(|Path(n): Path<usize>| async move { stream_body(n, 16 << 10) }),
        )
        .route(
            "/error/{x}",
            get(|Path(x): Path<String>| async move {
                (StatusCode::IM_A_TEAPOT, format!("no {x} here"))
            }),
        )
        .route(
            "/panic",
            get(|| async {
                let _scratch = std::hint::black_box(vec![1u8; 100]);
                std::panic::panic_any(String::from("the handler panics on purpose"));
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(ArenaLayer::new(pool))
}

/// Silences the panics these tests cause on purpose (the test harness does
/// not capture output of the runtime's worker threads).
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_purpose = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s.contains("on purpose"));
            if !on_purpose {
                default(info);
            }
        }));
    });
}

/// A server runtime of 2 workers, warmed up: tokio's per-worker list of
/// deferred wakers grows on the heap before any request (see the guide).
fn server_runtime() -> Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    rt
}

fn serve_axum(rt: &Runtime, pool: &Pool) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(pool);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(
    client: &HttpClient,
    req: http::Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let fut = async {
        let res = client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .map_err(|_| "deadline".to_string())?
}

fn get_req(addr: SocketAddr, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap()
}

fn post_json(addr: SocketAddr, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/json"))
        .header("content-type", "application/json")
        .body(Full::from(body))
        .unwrap()
}

/// `n` JSON requests over `conns` concurrent connections; every response
/// checked.
async fn json_round(addr: SocketAddr, conns: u64, n: u64) {
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            tokio::spawn(async move {
                let client = client();
                for i in (c..n).step_by(conns as usize) {
                    let inp = input(i);
                    let req = post_json(addr, serde_json::to_vec(&inp).unwrap());
                    let (status, body) = call(&client, req).await.unwrap();
                    assert_eq!(status, StatusCode::OK);
                    let out: Output = serde_json::from_slice(&body).unwrap();
                    let mut expected = answer(inp);
                    expected.in_arena = true; // made in the request's arena
                    assert_eq!(out, expected);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The process's resident memory now (`VmRSS`), in bytes.
/// The tests of this file run one at a time: one of them reads the
/// process's resident size, which the others' servers would change.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Waits (bounded) until every lease has come back: the server drops a
/// response's body, and hyper its last chunk, a moment after the client has
/// it.
fn settle(pool: &Pool) -> bumper::PoolStats {
    for _ in 0..2000 {
        let s = pool.stats();
        if s.resets == s.leases {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("leases did not come back: {}", pool.stats());
}

fn assert_clean(pool: &Pool) -> bumper::PoolStats {
    let s = settle(pool);
    assert_eq!(s.unclean_resets, 0, "{s}");
    assert_eq!(s.escaped_blocks, 0, "{s}");
    for a in pool.idle_arena_stats() {
        assert_eq!((a.live_blocks, a.bytes_in_use, a.escapes), (0, 0, 0), "{a}");
    }
    s
}

#[test]
fn axum_behind_the_layer_answers_every_path_and_every_arena_ends_clean() {
    let _g = serial();
    quiet_panics();
    let rt = server_runtime();
    let crt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = Pool::new();
    let addr = serve_axum(&rt, &pool);

    // JSON in and out, 8 connections.
    crt.block_on(json_round(addr, 8, 1000));
    let s = assert_clean(&pool);
    assert_eq!(s.leases, 1000);
    let rss_1k = rss();

    crt.block_on(async {
        let client = client();
        // A streamed body: 40 chunks, one per poll, with pending polls.
        for n in [0usize, 1, 40] {
            let (status, body) = call(&client, get_req(addr, &format!("/stream/{n}")))
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body.as_ref(), expected_stream(n).as_slice());
        }
        // Error responses: the extractor's rejection, and a handler's.
        let (status, body) = call(&client, post_json(addr, b"{not json".to_vec()))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("JSON"), "{body:?}");
        let (status, body) = call(&client, get_req(addr, "/error/coffee")).await.unwrap();
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body.as_ref(), b"no coffee here");
        // A handler that panics: the connection is closed without a
        // response; the server goes on.
        for _ in 0..3 {
            let fresh = self::client();
            let r = call(&fresh, get_req(addr, "/panic")).await;
            assert!(r.is_err(), "{r:?}");
        }
        let (status, _) = call(&client, get_req(addr, "/error/tea")).await.unwrap();
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
    });
    assert_clean(&pool);

    // A client that disconnects mid-body: reads two chunks of a 32 MiB
    // stream, then drops the response and its connection.
    crt.block_on(async {
        for _ in 0..3 {
            let client = client();
            let res = tokio::time::timeout(DEADLINE, client.request(get_req(addr, "/big/2000")))
                .await
                .unwrap()
                .unwrap();
            let mut body = res.into_body();
            for _ in 0..2 {
                let frame = tokio::time::timeout(DEADLINE, body.frame())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                assert!(frame.is_data());
            }
            drop(body);
            drop(client);
        }
    });
    assert_clean(&pool);

    // Thousands more: resident memory does not grow with the count.
    for _ in 0..4 {
        crt.block_on(json_round(addr, 8, 1000));
    }
    let s = assert_clean(&pool);
    assert!(s.leases > 5000, "{s}");
    let rss_5k = rss();
    assert!(
        rss_5k <= rss_1k + (4 << 20),
        "resident memory grew from {rss_1k} to {rss_5k} bytes"
    );
    assert!(s.arenas_created <= 64, "{s}");
}

#[test]
fn hyper_with_service_builder_and_the_layer() {
    let _g = serial();
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;

    let rt = server_runtime();
    let pool = Pool::new();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(ArenaLayer::new(&pool))
        .service_fn(|req: http::Request<Incoming>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let inp: Input = serde_json::from_slice(&body).unwrap();
            let out = serde_json::to_vec(&answer(inp)).unwrap();
            Ok::<_, Infallible>(http::Response::new(Full::<Bytes>::from(out)))
        });
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let crt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    crt.block_on(json_round(addr, 4, 1000));
    let s = assert_clean(&pool);
    assert_eq!(s.leases, 1000);
}

/// tokio's per-worker list of deferred wakers (`yield_now`) starts empty;
/// its first growth happens inside some request's poll, so that block is
/// in that request's arena, and each later growth moves it to the arena of
/// the request that grows it. That is a handful of blocks per worker over
/// the runtime's life, never one per request: without a warm-up, 2,000
/// requests that each yield make at most a few unclean resets.
#[test]
fn tokios_deferred_waker_list_escapes_a_handful_of_times_per_worker_not_per_request() {
    let _g = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = Pool::with_builder(
        bumper::LockedArena::builder().escape_policy(bumper::EscapePolicy::Keep),
    )
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/json",
            post(|Json(i): Json<Input>| async move {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                Json(answer(i))
            }),
        )
        .layer(ArenaLayer::new(&pool));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let crt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    crt.block_on(json_round(addr, 16, 2000));
    let s = settle(&pool);
    assert_eq!(s.leases, 2000);
    assert!(s.unclean_resets <= 2 * 8, "{s}");
    assert!(s.escaped_blocks <= 2 * 8, "{s}");
}
