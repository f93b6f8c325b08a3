//! The hex test vectors in `docs/protocol.md` must match this code, both
//! ways: every vector named here must be in the document with exactly these
//! bytes, every vector in the document must be named here, and the
//! document's bytes must decode back to the message.
//!
//! A vector block in the document is a fenced code block whose first line is
//! `vector NAME`; the other lines are hex bytes, and `#` starts a comment.
//! `PRINT_VECTORS=1 cargo test -p ipc-proto vectors -- --nocapture` prints
//! the blocks (without comments) for pasting.

use std::collections::BTreeMap;

use ipc_proto::legacy::{CallbackMessage, CallbackStyle};
use ipc_proto::*;
use tile_math::LngLatBbox;

use crate::support::tile;

fn nonce(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}

/// `(name, bytes, message the bytes decode to)`.
fn vectors() -> Vec<(&'static str, Vec<u8>, Option<Message>)> {
    let msgs: Vec<(&'static str, Message)> = vec![
        ("ping", Message::Ping { token: 42 }),
        (
            "hello",
            Message::Hello(Hello {
                versions: vec![1],
                client_name: "cs".into(),
                capabilities: Capabilities::STORE_PATH,
            }),
        ),
        (
            "welcome",
            Message::Welcome(Welcome {
                version: 1,
                server_name: "ts".into(),
                capabilities: Capabilities(0x0F),
                max_frame: 1 << 20,
            }),
        ),
        ("auth-none", Message::AuthNone),
        (
            "render-request-one",
            Message::RenderRequest(RenderRequest {
                request_id: 1,
                map: "osm".into(),
                priority: Priority::Viewport,
                delivery: Delivery::StorePath,
                force: false,
                deadline_ms: None,
                tiles: TileSet::One(tile(16, 58001, 25480)),
            }),
        ),
        (
            "render-request-list",
            Message::RenderRequest(RenderRequest {
                request_id: 2,
                map: "osm".into(),
                priority: Priority::Neighbour,
                delivery: Delivery::InlinePng,
                force: true,
                deadline_ms: Some(1000),
                tiles: TileSet::List(vec![tile(1, 0, 0), tile(1, 1, 1)]),
            }),
        ),
        (
            "render-request-bbox",
            Message::RenderRequest(RenderRequest {
                request_id: 3,
                map: "m".into(),
                priority: Priority::Bulk,
                delivery: Delivery::StorePath,
                force: false,
                deadline_ms: None,
                tiles: TileSet::Bbox {
                    bbox: LngLatBbox::new(129.0, 31.0, 146.0, 45.5),
                    min_zoom: 0,
                    max_zoom: 12,
                },
            }),
        ),
        (
            "viewport-tiles",
            Message::Viewport(ViewportUpdate {
                zoom: 2,
                area: ViewArea::Tiles {
                    nw: tile(2, 1, 1),
                    se: tile(2, 2, 2),
                },
            }),
        ),
        ("cancel", Message::Cancel { ids: vec![1, 2] }),
        (
            "cancel-outside-viewport",
            Message::CancelOutsideViewport { keep_ring: 1 },
        ),
        (
            "tile-done-path",
            Message::TileDone(TileDone {
                request_id: 1,
                tile: tile(16, 58001, 25480),
                render_ms: 12,
                cached: false,
                payload: TilePayload::Path("/t/16/58001/25480.png".into()),
            }),
        ),
        (
            "tile-done-png",
            Message::TileDone(TileDone {
                request_id: 2,
                tile: tile(1, 1, 1),
                render_ms: 0,
                cached: true,
                payload: TilePayload::Png(vec![0x89, 0x50, 0x4e, 0x47]),
            }),
        ),
        (
            "tile-failed",
            Message::TileFailed(TileFailed {
                request_id: 1,
                tile: tile(0, 0, 0),
                kind: FailureKind::Timeout,
                message: "late".into(),
            }),
        ),
        (
            "cancelled",
            Message::Cancelled {
                request_id: 2,
                tile: tile(1, 0, 0),
            },
        ),
        (
            "rejected-busy",
            Message::Rejected(Rejected {
                request_id: 4,
                reason: RejectReason::QueueFull,
                retry_after_ms: Some(250),
                message: "busy".into(),
            }),
        ),
        (
            "batch-done",
            Message::BatchDone(BatchDone {
                request_id: 2,
                done: 1,
                failed: 0,
                cancelled: 1,
            }),
        ),
        ("stats-request", Message::StatsRequest),
        (
            "stats-reply",
            Message::StatsReply {
                entries: vec![("queued_tiles".into(), 3)],
            },
        ),
        ("list-maps", Message::ListMaps),
        (
            "map-list",
            Message::MapList {
                maps: vec!["osm".into(), "demo".into()],
            },
        ),
        ("reload", Message::Reload),
        (
            "reloaded",
            Message::Reloaded(Reloaded {
                error: String::new(),
                maps: vec![MapReload {
                    map: "osm".into(),
                    status: MapReloadStatus::Reloaded,
                    detail: String::new(),
                }],
                restart_needed: vec!["render.threads".into()],
            }),
        ),
        (
            "expire",
            Message::Expire(Expire {
                request_id: 5,
                map: "osm".into(),
                touch_from: Some(15),
                delete_from: None,
                block_size: 8,
                tiles: vec![tile(17, 72817, 37800)],
            }),
        ),
        (
            "expire-done",
            Message::ExpireDone(ExpireDone {
                request_id: 5,
                deleted: 0,
                touched: 2,
                queued: 5,
                absent: 1,
                failed: 0,
                error: String::new(),
            }),
        ),
        (
            "goodbye",
            Message::Goodbye {
                reason: "bye".into(),
            },
        ),
    ];
    let mut out: Vec<(&'static str, Vec<u8>, Option<Message>)> = msgs
        .into_iter()
        .map(|(n, m)| (n, m.to_bytes().unwrap(), Some(m)))
        .collect();

    // Authentication: secret "tessera", server nonce 00..1f, client nonce 20..3f.
    let secret = Secret::new("tessera").unwrap();
    let (ns, nc) = (nonce(0x00), nonce(0x20));
    let client_proof = secret.client_proof(&ns, &nc);
    let server_proof = secret.server_proof(&ns, &nc);
    out.push(("auth-client-proof", client_proof.to_vec(), None));
    out.push(("auth-server-proof", server_proof.to_vec(), None));
    let challenge = Message::AuthChallenge { nonce: ns };
    out.push((
        "auth-challenge",
        challenge.to_bytes().unwrap(),
        Some(challenge),
    ));
    let response = Message::AuthResponse {
        client_nonce: nc,
        proof: client_proof,
    };
    out.push((
        "auth-response",
        response.to_bytes().unwrap(),
        Some(response),
    ));
    let ok = Message::AuthOk {
        proof: server_proof,
    };
    out.push(("auth-ok", ok.to_bytes().unwrap(), Some(ok)));

    // Legacy callbacks.
    let t = ipc_proto::legacy::format_tile(tile(16, 58001, 25480));
    out.push((
        "legacy-callback-tile",
        CallbackMessage::Tile(t.clone()).encode(CallbackStyle::ConnectionPerMessage),
        None,
    ));
    out.push((
        "legacy-callback-lines",
        [
            CallbackMessage::Tile(t.clone()).encode(CallbackStyle::Lines),
            CallbackMessage::Done.encode(CallbackStyle::Lines),
        ]
        .concat(),
        None,
    ));

    // renderd's protocol (native byte order: these are little-endian).
    let bulk = RenderdMessage::new(
        RenderdVersion::V2,
        RenderdCommand::RenderBulk,
        (12, 2275, 1185),
        "demo",
    )
    .unwrap();
    out.push(("renderd-v2-render-bulk", bulk.encode(), None));
    let prio = RenderdMessage::new(
        RenderdVersion::V3,
        RenderdCommand::RenderPrio,
        (12, 2275, 1185),
        "demo",
    )
    .unwrap();
    out.push((
        "renderd-v3-done",
        prio.answer(RenderdCommand::Done).encode(),
        None,
    ));
    out
}

/// `vector NAME` blocks of the document: name → bytes.
fn doc_vectors(doc: &str) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("```") {
            continue;
        }
        let Some(first) = lines.next() else { break };
        let Some(name) = first.trim().strip_prefix("vector ") else {
            // Skip a non-vector block up to its closing fence.
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
            }
            continue;
        };
        let mut bytes = Vec::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            let data = l.split('#').next().unwrap_or("");
            for tok in data.split_whitespace() {
                bytes.push(
                    u8::from_str_radix(tok, 16)
                        .unwrap_or_else(|_| panic!("vector {name}: bad hex byte {tok:?}")),
                );
            }
        }
        let old = found.insert(name.trim().to_owned(), bytes);
        assert!(old.is_none(), "vector {name} appears twice in the document");
    }
    found
}

fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn docs_and_code_agree_on_every_vector() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let vectors = vectors();
    if std::env::var_os("PRINT_VECTORS").is_some() {
        for (name, bytes, _) in &vectors {
            println!("```text\nvector {name}\n{}\n```\n", hex_lines(bytes));
        }
    }
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md is readable");
    let in_doc = doc_vectors(&doc);
    let mut problems = Vec::new();
    for (name, bytes, msg) in &vectors {
        match in_doc.get(*name) {
            None => problems.push(format!("vector {name} is missing from the document")),
            Some(doc_bytes) if doc_bytes != bytes => problems.push(format!(
                "vector {name} differs:\n document:\n{}\n code:\n{}",
                hex_lines(doc_bytes),
                hex_lines(bytes)
            )),
            Some(doc_bytes) => {
                if let Some(msg) = msg {
                    let decoded = Message::from_bytes(doc_bytes, DEFAULT_MAX_FRAME);
                    if decoded.as_ref().ok() != Some(msg) {
                        problems.push(format!("vector {name} decodes to {decoded:?}"));
                    }
                }
            }
        }
    }
    for name in in_doc.keys() {
        if !vectors.iter().any(|(n, _, _)| n == name) {
            problems.push(format!("vector {name} is in the document but not checked"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
