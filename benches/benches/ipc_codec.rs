//! ipc-proto: encode and decode time per message, for a few representative
//! messages (a ping, a one-tile request, a 64-tile list request, a TileDone
//! with a path, a TileDone with a 4 KiB inline PNG).
//!
//! `cargo bench -p tessera-benches --bench ipc_codec`. Socket round trips
//! and throughput belong to the loopback benchmarks, not here.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipc_proto::frame;
use ipc_proto::{
    Delivery, Message, Priority, RenderRequest, TileDone, TilePayload, TileSet, DEFAULT_MAX_FRAME,
};
use tile_math::TileCoord;

fn tile(z: u8, x: u32, y: u32) -> TileCoord {
    TileCoord::new(z, x, y).unwrap_or(TileCoord::WORLD)
}

fn samples() -> Vec<(&'static str, Message)> {
    let request = |tiles| {
        Message::RenderRequest(RenderRequest {
            request_id: 7,
            map: "osm-bright".into(),
            priority: Priority::Viewport,
            delivery: Delivery::StorePath,
            force: false,
            deadline_ms: Some(2000),
            tiles,
        })
    };
    vec![
        ("ping", Message::Ping { token: 42 }),
        ("render_one", request(TileSet::One(tile(16, 58001, 25480)))),
        (
            "render_list_64",
            request(TileSet::List(
                (0..64)
                    .map(|i| tile(16, 58000 + i % 8, 25480 + i / 8))
                    .collect(),
            )),
        ),
        (
            "tile_done_path",
            Message::TileDone(TileDone {
                request_id: 7,
                tile: tile(16, 58001, 25480),
                render_ms: 35,
                cached: false,
                payload: TilePayload::Path("/var/cache/tessera/osm/16/58001/25480.png".into()),
            }),
        ),
        (
            "tile_done_png_4k",
            Message::TileDone(TileDone {
                request_id: 7,
                tile: tile(16, 58001, 25480),
                render_ms: 35,
                cached: false,
                payload: TilePayload::Png(vec![0x5a; 4096]),
            }),
        ),
    ]
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipc_encode");
    group.throughput(Throughput::Elements(1));
    for (name, msg) in samples() {
        let mut buf = Vec::with_capacity(8192);
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&msg)
                    .encode(&mut buf, DEFAULT_MAX_FRAME)
                    .map(|()| buf.len())
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipc_decode");
    group.throughput(Throughput::Elements(1));
    for (name, msg) in samples() {
        let Ok(bytes) = msg.to_bytes() else { continue };
        group.bench_function(name, |b| {
            b.iter(|| {
                let Ok(Some((f, _))) = frame::decode_ref(black_box(&bytes), DEFAULT_MAX_FRAME)
                else {
                    return None;
                };
                Message::decode(f).ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
