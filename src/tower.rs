//! A tower layer that runs every HTTP request in an arena of a [`Pool`]
//! (feature `tower`): [`ArenaLayer`], for axum 0.8 and hyper 1.x.
//!
//! For each request the [`ArenaService`] takes a [`Lease`], calls the inner
//! service and polls its future inside the lease's region (on whichever
//! worker polls it), and wraps the response body in an [`ArenaBody`] whose
//! frames are polled in the same region. The handler's scratch, the
//! response's headers and body, whatever serde or axum allocate: all of it
//! comes from the arena, with no copy. The arena goes back to the pool,
//! reset, once the body is dropped and the server has let go of the last
//! chunk it sent.
//!
//! Three things are moved out of the arena, because the HTTP stack keeps
//! them past the response:
//!
//! - the response's `HeaderMap` table: hyper keeps the emptied map of each
//!   response to parse the connection's next request into. The layer moves
//!   the entries into a map on the heap (the header values themselves are
//!   not copied; hyper drops them when it writes the head);
//! - the body's data chunks, which hyper may queue until the socket takes
//!   them, after the body is gone: each is handed on as a `Bytes` that
//!   holds a share of the lease (its small owner box is on the heap), so the
//!   arena is reset only after the last one is dropped;
//! - a panic's message (`&str` or `String` payloads), copied to the heap
//!   before the panic continues out of the layer.
//!
//! A service *error* (not an error response) that holds arena memory
//! escapes the reset (kept valid, counted in [`PoolStats`](crate::PoolStats)).
//!
//! ```
//! # #[global_allocator]
//! # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
//! use bumper::tower::ArenaLayer;
//! use bumper::{is_arena_pointer, Pool};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let pool = Pool::new();
//! let service = ServiceBuilder::new()
//!     .layer(ArenaLayer::new(&pool))
//!     .service(service_fn(|req: http::Request<String>| async move {
//!         let body = format!("{{\"echo\": {:?}}}", req.body()); // in the arena
//!         assert!(is_arena_pointer(body.as_ptr()));
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::<bytes::Bytes>::from(body)))
//!     }));
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let bytes = rt.block_on(async {
//!     let response = service.oneshot(http::Request::new("hi".to_string())).await.unwrap();
//!     response.into_body().collect().await.unwrap().to_bytes()
//! });
//! assert_eq!(&bytes[..], br#"{"echo": "hi"}"#);
//! drop(bytes); // the last chunk: the arena goes back, reset
//! let s = pool.stats();
//! assert_eq!((s.leases, s.resets, s.unclean_resets), (1, 1, 0));
//! ```

use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body::{Body, Frame, SizeHint};

use crate::lease::Lease;
use crate::pool::Pool;
use crate::region::{outside_regions, with_bumper};
use crate::route;
use crate::scratch::rehome_payload;

/// A [`tower_layer::Layer`] that runs each request of the service it wraps
/// in an arena leased from a [`Pool`] (see the [module docs](self)).
///
/// With axum 0.8: `Router::new().route(..).layer(ArenaLayer::new(pool))`;
/// with hyper 1.x: `ServiceBuilder::new().layer(ArenaLayer::new(pool))`.
///
/// ```
/// use bumper::tower::ArenaLayer;
/// use bumper::Pool;
///
/// let pool = Pool::new();
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(ArenaLayer::new(&pool));
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct ArenaLayer {
    pool: Pool,
}

impl ArenaLayer {
    /// A layer over `pool` (a [`Pool`], or `&Pool` for another handle to
    /// it).
    ///
    /// ```
    /// let layer = bumper::tower::ArenaLayer::new(bumper::Pool::new());
    /// # drop(layer);
    /// ```
    pub fn new(pool: impl Into<Pool>) -> ArenaLayer {
        ArenaLayer { pool: pool.into() }
    }

    /// The pool the layer leases from.
    ///
    /// ```
    /// let pool = bumper::Pool::new();
    /// let layer = bumper::tower::ArenaLayer::new(&pool);
    /// assert_eq!(layer.pool().stats(), pool.stats());
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl<S> tower_layer::Layer<S> for ArenaLayer {
    type Service = ArenaService<S>;

    fn layer(&self, inner: S) -> ArenaService<S> {
        ArenaService {
            inner,
            pool: self.pool.clone(),
        }
    }
}

/// The service [`ArenaLayer`] makes: each call runs in an arena leased from
/// the pool, and its response body is an [`ArenaBody`].
///
/// ```
/// use bumper::tower::{ArenaLayer, ArenaService};
/// use tower::Layer;
///
/// let inner = tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let service: ArenaService<_> = ArenaLayer::new(bumper::Pool::new()).layer(inner);
/// # drop(service);
/// ```
#[derive(Clone, Debug)]
pub struct ArenaService<S> {
    inner: S,
    pool: Pool,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for ArenaService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
    ResBody::Data: Into<Bytes>,
{
    type Response = Response<ArenaBody<ResBody>>;
    type Error = S::Error;
    type Future = ArenaFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> ArenaFuture<S::Future> {
        let lease = self.pool.take();
        let fut = with_bumper(&*lease, || self.inner.call(req));
        ArenaFuture {
            fut: ManuallyDrop::new(fut),
            live: true,
            lease: Some(lease),
        }
    }
}

/// The future of an [`ArenaService`] call: polls the inner service's future
/// inside the lease's region, and hands the lease on to the response body.
#[must_use = "futures do nothing unless polled"]
pub struct ArenaFuture<F> {
    /// Structurally pinned; dropped in place, inside the region.
    fut: ManuallyDrop<F>,
    /// `fut` has not been dropped yet.
    live: bool,
    lease: Option<Lease>,
}

impl<F> ArenaFuture<F> {
    /// Drops the inner future inside the lease's region (its frees then take
    /// the owner's fast path), once.
    fn drop_inner(&mut self) {
        if !self.live {
            return;
        }
        self.live = false;
        let fut = &mut self.fut;
        match &self.lease {
            Some(lease) => with_bumper(&**lease, || {
                // SAFETY: dropped once (guarded by `live`), in place, and
                // never used again.
                unsafe { ManuallyDrop::drop(fut) }
            }),
            // SAFETY: as above.
            None => unsafe { ManuallyDrop::drop(fut) },
        }
    }
}

impl<F, ResBody, E> Future for ArenaFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
    ResBody::Data: Into<Bytes>,
{
    type Output = Result<Response<ArenaBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: never moved out (it is
        // dropped in place by `drop_inner`); the wrapper is `Unpin` only if
        // `F` is. The other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(this.live, "`ArenaFuture` polled after it completed");
        let lease = this.lease.as_ref().expect("a live future holds its lease");
        let (slot, live) = (&mut this.fut, &mut this.live);
        let polled = with_bumper(&**lease, || {
            // SAFETY: as above.
            let fut = unsafe { Pin::new_unchecked(&mut **slot) };
            let polled = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
            if let Ok(Poll::Ready(_)) = polled {
                // Done: dropped now, in the same entry of the region.
                *live = false;
                // SAFETY: dropped once (`live` is now false), in place, and
                // never used again.
                unsafe { ManuallyDrop::drop(slot) };
            }
            // The response's header table goes to the heap here, so that the
            // old table's frees are local ones.
            polled.map(|p| {
                p.map(|out| {
                    out.map(|mut response| {
                        let headers = core::mem::take(response.headers_mut());
                        *response.headers_mut() = headers_to_heap(headers);
                        response
                    })
                })
            })
        });
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => out,
            Err(payload) => resume_unwind(rehome_payload(payload)),
        };
        let lease = this.lease.take().expect("the lease is still here");
        Poll::Ready(out.map(|response| {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, ArenaBody::new(body, lease))
        }))
    }
}

impl<F> Drop for ArenaFuture<F> {
    fn drop(&mut self) {
        self.drop_inner();
    }
}

impl<F> core::fmt::Debug for ArenaFuture<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArenaFuture")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A response body whose frames are polled in the region of the request's
/// arena, holding the lease until it is dropped (and each data chunk it
/// yields holds a share of it until hyper drops that chunk).
///
/// Its data chunks are [`Bytes`], so that axum takes it as a response body.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::tower::ArenaBody;
/// use http_body_util::{BodyExt, Full};
///
/// let pool = bumper::Pool::new();
/// let body = ArenaBody::new(Full::<bytes::Bytes>::from("made in the arena"), pool.take());
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
/// assert_eq!(&bytes[..], b"made in the arena");
/// drop(bytes);
/// assert_eq!(pool.stats().resets, 1);
/// ```
pub struct ArenaBody<B> {
    /// Structurally pinned; dropped in place, inside the region.
    body: ManuallyDrop<B>,
    lease: Lease,
}

impl<B> ArenaBody<B> {
    /// `body`, polled in `lease`'s region.
    ///
    /// ```
    /// let pool = bumper::Pool::new();
    /// let body = bumper::tower::ArenaBody::new(String::from("x"), pool.take());
    /// assert_eq!(body.lease().stats().allocations, 0);
    /// ```
    pub fn new(body: B, lease: Lease) -> ArenaBody<B> {
        ArenaBody {
            body: ManuallyDrop::new(body),
            lease,
        }
    }

    /// The lease the body holds.
    ///
    /// ```
    /// let body = bumper::tower::ArenaBody::new((), bumper::Pool::new().take());
    /// assert!(body.lease().id() > 0);
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl<B> Body for ArenaBody<B>
where
    B: Body,
    B::Data: Into<Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // SAFETY: `body` is structurally pinned (never moved out, dropped in
        // place); `lease` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let body = unsafe { Pin::new_unchecked(&mut *this.body) };
        let lease = &this.lease;
        let polled = with_bumper(&**lease, || {
            catch_unwind(AssertUnwindSafe(|| body.poll_frame(cx)))
        });
        let frame = match polled {
            Ok(Poll::Ready(Some(Ok(frame)))) => frame,
            Ok(Poll::Ready(Some(Err(e)))) => return Poll::Ready(Some(Err(e))),
            Ok(Poll::Ready(None)) => return Poll::Ready(None),
            Ok(Poll::Pending) => return Poll::Pending,
            Err(payload) => resume_unwind(rehome_payload(payload)),
        };
        let frame = match frame.into_data() {
            Ok(data) => Frame::data(chunk_with_lease(data.into(), lease)),
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => Frame::trailers(headers_to_heap(trailers)),
                // A frame of a kind http-body does not know yet: dropped.
                Err(_) => Frame::trailers(HeaderMap::new()),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for ArenaBody<B> {
    fn drop(&mut self) {
        let body = &mut self.body;
        with_bumper(&*self.lease, || {
            // SAFETY: dropped once, here, in place, and never used again.
            unsafe { ManuallyDrop::drop(body) }
        });
        // Then `lease`, a field: the arena goes back once the chunks sent
        // are gone too.
    }
}

impl<B> core::fmt::Debug for ArenaBody<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArenaBody")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A data chunk and a share of the lease of the arena it may live in.
struct LeasedChunk {
    // Declared first: dropped before the share.
    bytes: Bytes,
    _share: Lease,
}

impl AsRef<[u8]> for LeasedChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// `bytes` as a `Bytes` that keeps a share of `lease` until it is dropped.
/// Its owner box is on the heap: in the arena, it would still be alive when
/// its own drop resets the arena.
fn chunk_with_lease(bytes: Bytes, lease: &Lease) -> Bytes {
    if bytes.is_empty() {
        return Bytes::new();
    }
    let chunk = LeasedChunk {
        bytes,
        _share: lease.share(),
    };
    on_heap(|| Bytes::from_owner(chunk))
}

/// The entries of `map` in a map on the heap (the values are moved, not
/// copied). An empty map without a table is returned as it is.
///
/// May run inside the region: the new table is made on the heap, and when
/// every name has one value, moving the entries into it allocates nothing
/// more (the table has room for them all), while the old table's frees stay
/// local. Otherwise (a name with several values needs the map's extra-value
/// list) the whole move runs outside regions.
fn headers_to_heap(map: HeaderMap) -> HeaderMap {
    if map.capacity() == 0 {
        return map;
    }
    if map.len() == map.keys_len() {
        let mut out = on_heap(|| HeaderMap::with_capacity(map.keys_len()));
        for (name, value) in map {
            let name = name.expect("each name has one value: every item has its name");
            out.insert(name, value);
        }
        return out;
    }
    on_heap(|| {
        let mut out = HeaderMap::with_capacity(map.keys_len());
        let mut last: Option<HeaderName> = None;
        for (name, value) in map {
            let name = match name {
                Some(name) => {
                    last = Some(name.clone());
                    name
                }
                None => last
                    .clone()
                    .expect("a header's first value comes with its name"),
            };
            out.append(name, value);
        }
        out
    })
}

/// Runs `f` with its allocations on the heap: directly when no region is
/// active on this thread (the usual case here, right after the request's
/// region was left), through [`outside_regions`] otherwise.
#[inline]
fn on_heap<R>(f: impl FnOnce() -> R) -> R {
    if route::route().is_null() {
        f()
    } else {
        outside_regions(f)
    }
}
