use std::io::{self, Read, Write};

use ipc_proto::message::NONCE_LEN;
use ipc_proto::*;
use proptest::prelude::*;
use tile_math::{LngLatBbox, TileCoord};

/// A stream whose reads return the input in chunks of the given sizes
/// (cycling), and whose writes are collected.
pub struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    next: usize,
    pub written: Vec<u8>,
}

impl Chunked {
    pub fn new(data: Vec<u8>, chunks: Vec<usize>) -> Self {
        assert!(chunks.iter().all(|&c| c > 0));
        Self {
            data,
            pos: 0,
            chunks,
            next: 0,
            written: Vec::new(),
        }
    }
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.chunks[self.next % self.chunks.len()];
        self.next += 1;
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Chunked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn tile(z: u8, x: u32, y: u32) -> TileCoord {
    TileCoord::new(z, x, y).unwrap()
}

/// One of each message, with non-trivial contents.
pub fn samples() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            versions: vec![1, 2],
            client_name: "tile-client".into(),
            capabilities: Capabilities::INLINE_PNG | Capabilities::VIEWPORT,
        }),
        Message::Welcome(Welcome {
            version: 1,
            server_name: "tessera".into(),
            capabilities: Capabilities(0xF),
            max_frame: 1 << 20,
        }),
        Message::Goodbye {
            reason: "bye ✓".into(),
        },
        Message::Ping { token: u64::MAX },
        Message::Pong { token: 0 },
        Message::AuthNone,
        Message::AuthChallenge { nonce: [7; 32] },
        Message::AuthResponse {
            client_nonce: [1; 32],
            proof: [2; 32],
        },
        Message::AuthOk { proof: [3; 32] },
        Message::AuthFailed {
            reason: "nope".into(),
        },
        Message::RenderRequest(RenderRequest {
            request_id: 9,
            map: "osm".into(),
            priority: Priority::Bulk,
            delivery: Delivery::StorePath,
            force: false,
            deadline_ms: None,
            tiles: TileSet::Bbox {
                bbox: LngLatBbox::new(129.0, 31.0, 146.0, 45.5),
                min_zoom: 3,
                max_zoom: 9,
            },
        }),
        Message::Viewport(ViewportUpdate {
            zoom: 16,
            area: ViewArea::Tiles {
                nw: tile(16, 58000, 25479),
                se: tile(16, 58002, 25481),
            },
        }),
        Message::Cancel { ids: vec![1, 2, 3] },
        Message::CancelOutsideViewport { keep_ring: 1 },
        Message::StatsRequest,
        Message::TileDone(TileDone {
            request_id: 9,
            tile: tile(16, 58001, 25480),
            render_ms: 12,
            cached: false,
            payload: TilePayload::Png(vec![0x89, b'P', b'N', b'G']),
        }),
        Message::TileFailed(TileFailed {
            request_id: 9,
            tile: tile(3, 1, 2),
            kind: FailureKind::DataSource,
            message: "no such layer".into(),
        }),
        Message::Cancelled {
            request_id: 9,
            tile: tile(0, 0, 0),
        },
        Message::Rejected(Rejected {
            request_id: 10,
            reason: RejectReason::QueueFull,
            retry_after_ms: Some(250),
            message: "busy".into(),
        }),
        Message::BatchDone(BatchDone {
            request_id: 9,
            done: 5,
            failed: 1,
            cancelled: 2,
        }),
        Message::StatsReply {
            entries: vec![("queued_tiles".into(), 3), ("render_ms_p99".into(), 85)],
        },
        Message::ListMaps,
        Message::MapList {
            maps: vec!["osm".into(), "demo".into()],
        },
        Message::Reload,
        Message::Reloaded(Reloaded {
            error: String::new(),
            maps: vec![
                MapReload {
                    map: "osm".into(),
                    status: MapReloadStatus::Reloaded,
                    detail: String::new(),
                },
                MapReload {
                    map: "demo".into(),
                    status: MapReloadStatus::Failed,
                    detail: "style.xml:3:1: unknown element".into(),
                },
            ],
            restart_needed: vec!["render.threads".into()],
        }),
        Message::Expire(Expire {
            request_id: 11,
            map: "osm".into(),
            touch_from: Some(15),
            delete_from: Some(18),
            block_size: 8,
            tiles: vec![tile(17, 72817, 37800), tile(3, 4, 2)],
        }),
        Message::ExpireDone(ExpireDone {
            request_id: 11,
            deleted: 1,
            touched: 2,
            queued: 3,
            absent: 4,
            failed: 0,
            error: String::new(),
        }),
    ]
}

pub fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out, DEFAULT_MAX_FRAME).unwrap();
    }
    out
}

// ---- proptest strategies ----

pub fn arb_tile() -> impl Strategy<Value = TileCoord> {
    (0u8..=30).prop_flat_map(|z| {
        let n = 1u64 << z;
        (Just(z), 0..n, 0..n).prop_map(|(z, x, y)| TileCoord::new(z, x as u32, y as u32).unwrap())
    })
}

fn arb_bbox() -> impl Strategy<Value = LngLatBbox> {
    (
        -180.0f64..=180.0,
        -90.0f64..=90.0,
        -180.0f64..=180.0,
        -90.0f64..=90.0,
    )
        .prop_map(|(w, a, e, b)| LngLatBbox::new(w, a.min(b), e, a.max(b)))
}

fn arb_string() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn arb_nonce() -> impl Strategy<Value = [u8; NONCE_LEN]> {
    any::<[u8; NONCE_LEN]>()
}

fn arb_tile_set() -> BoxedStrategy<TileSet> {
    prop_oneof![
        arb_tile().prop_map(TileSet::One),
        prop::collection::vec(arb_tile(), 0..20).prop_map(TileSet::List),
        (arb_bbox(), 0u8..=30, 0u8..=30).prop_map(|(bbox, a, b)| TileSet::Bbox {
            bbox,
            min_zoom: a.min(b),
            max_zoom: a.max(b),
        }),
    ]
    .boxed()
}

fn arb_view_area() -> BoxedStrategy<ViewportUpdate> {
    prop_oneof![
        (0u8..=30, arb_bbox()).prop_map(|(zoom, b)| ViewportUpdate {
            zoom,
            area: ViewArea::Bbox(b),
        }),
        (0u8..=30)
            .prop_flat_map(|z| {
                let n = 1u64 << z;
                (Just(z), 0..n, 0..n, 0..n, 0..n)
            })
            .prop_map(|(z, x0, x1, y0, y1)| ViewportUpdate {
                zoom: z,
                area: ViewArea::Tiles {
                    nw: TileCoord::new(z, x0 as u32, y0.min(y1) as u32).unwrap(),
                    se: TileCoord::new(z, x1 as u32, y0.max(y1) as u32).unwrap(),
                },
            }),
    ]
    .boxed()
}

pub fn arb_message() -> BoxedStrategy<Message> {
    let priority = prop::sample::select(Priority::ALL.to_vec());
    let delivery = prop::sample::select(vec![Delivery::StorePath, Delivery::InlinePng]);
    let failure = prop::sample::select(FailureKind::ALL.to_vec());
    let reason = prop::sample::select(RejectReason::ALL.to_vec());
    prop_oneof![
        (
            prop::collection::vec(any::<u16>(), 0..5),
            arb_string(),
            any::<u64>()
        )
            .prop_map(|(versions, client_name, c)| Message::Hello(Hello {
                versions,
                client_name,
                capabilities: Capabilities(c),
            })),
        (any::<u16>(), arb_string(), any::<u64>(), any::<u32>()).prop_map(|(version, s, c, m)| {
            Message::Welcome(Welcome {
                version,
                server_name: s,
                capabilities: Capabilities(c),
                max_frame: m,
            })
        }),
        arb_string().prop_map(|reason| Message::Goodbye { reason }),
        any::<u64>().prop_map(|token| Message::Ping { token }),
        any::<u64>().prop_map(|token| Message::Pong { token }),
        Just(Message::AuthNone),
        arb_nonce().prop_map(|nonce| Message::AuthChallenge { nonce }),
        (arb_nonce(), arb_nonce()).prop_map(|(client_nonce, proof)| Message::AuthResponse {
            client_nonce,
            proof
        }),
        arb_nonce().prop_map(|proof| Message::AuthOk { proof }),
        arb_string().prop_map(|reason| Message::AuthFailed { reason }),
        (
            any::<u64>(),
            arb_string(),
            priority,
            delivery,
            any::<bool>(),
            any::<Option<u32>>(),
            arb_tile_set()
        )
            .prop_map(
                |(request_id, map, priority, delivery, force, deadline_ms, tiles)| {
                    Message::RenderRequest(RenderRequest {
                        request_id,
                        map,
                        priority,
                        delivery,
                        force,
                        deadline_ms,
                        tiles,
                    })
                }
            ),
        arb_view_area().prop_map(Message::Viewport),
        prop::collection::vec(any::<u64>(), 0..20).prop_map(|ids| Message::Cancel { ids }),
        any::<u32>().prop_map(|keep_ring| Message::CancelOutsideViewport { keep_ring }),
        Just(Message::StatsRequest),
        (
            any::<u64>(),
            arb_tile(),
            any::<u32>(),
            any::<bool>(),
            prop_oneof![
                arb_string().prop_map(TilePayload::Path),
                prop::collection::vec(any::<u8>(), 0..200).prop_map(TilePayload::Png),
            ]
        )
            .prop_map(|(request_id, tile, render_ms, cached, payload)| {
                Message::TileDone(TileDone {
                    request_id,
                    tile,
                    render_ms,
                    cached,
                    payload,
                })
            }),
        (any::<u64>(), arb_tile(), failure, arb_string()).prop_map(
            |(request_id, tile, kind, message)| Message::TileFailed(TileFailed {
                request_id,
                tile,
                kind,
                message,
            })
        ),
        (any::<u64>(), arb_tile())
            .prop_map(|(request_id, tile)| Message::Cancelled { request_id, tile }),
        (any::<u64>(), reason, any::<Option<u32>>(), arb_string()).prop_map(
            |(request_id, reason, retry_after_ms, message)| Message::Rejected(Rejected {
                request_id,
                reason,
                retry_after_ms,
                message,
            })
        ),
        (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(request_id, done, failed, cancelled)| Message::BatchDone(BatchDone {
                request_id,
                done,
                failed,
                cancelled,
            })
        ),
        prop::collection::vec((arb_string(), any::<u64>()), 0..10)
            .prop_map(|entries| Message::StatsReply { entries }),
        Just(Message::ListMaps),
        prop::collection::vec(arb_string(), 0..10).prop_map(|maps| Message::MapList { maps }),
        Just(Message::Reload),
        (
            arb_string(),
            prop::collection::vec((arb_string(), 0u8..5, arb_string()), 0..6),
            prop::collection::vec(arb_string(), 0..4)
        )
            .prop_map(|(error, maps, restart_needed)| Message::Reloaded(Reloaded {
                error,
                maps: maps
                    .into_iter()
                    .map(|(map, code, detail)| MapReload {
                        map,
                        status: MapReloadStatus::ALL[usize::from(code)],
                        detail,
                    })
                    .collect(),
                restart_needed,
            })),
        (
            any::<u64>(),
            arb_string(),
            prop::option::of(0u8..=30),
            prop::option::of(0u8..=30),
            1u8..=64,
            prop::collection::vec(arb_tile(), 0..20)
        )
            .prop_map(
                |(request_id, map, touch_from, delete_from, block_size, tiles)| {
                    Message::Expire(Expire {
                        request_id,
                        map,
                        touch_from,
                        delete_from,
                        block_size,
                        tiles,
                    })
                }
            ),
        (
            any::<u64>(),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            (any::<u32>(), any::<u32>()),
            arb_string()
        )
            .prop_map(
                |(request_id, (deleted, touched, queued), (absent, failed), error)| {
                    Message::ExpireDone(ExpireDone {
                        request_id,
                        deleted,
                        touched,
                        queued,
                        absent,
                        failed,
                        error,
                    })
                }
            ),
    ]
    .boxed()
}
