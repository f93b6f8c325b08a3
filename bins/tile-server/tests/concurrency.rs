use std::collections::HashMap;

use ipc_proto::Priority;
use tile_client::{Event, RequestOptions};
use tile_math::TileCoord;

use crate::support::{connect, start, t, write_small_style};

/// A tiny deterministic generator (xorshift), so the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn clients_that_vanish_do_not_cost_the_others_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| {
        c.render.threads = 2;
        // Small metatiles keep the many renders of this test quick.
        c.render.metatile = 2;
    });
    let priorities = [
        Priority::Viewport,
        Priority::Neighbour,
        Priority::Explicit,
        Priority::Bulk,
        Priority::Dirty,
    ];
    std::thread::scope(|scope| {
        for worker in 0..6u64 {
            let server = &server;
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (worker + 1));
                for round in 0..6 {
                    let mut client = connect(server, (worker % 2) as usize);
                    let mut asked: HashMap<u64, Vec<TileCoord>> = HashMap::new();
                    for _ in 0..3 {
                        let z = 6 + rng.below(3) as u8;
                        let n = 1 + rng.below(12);
                        let tiles: Vec<TileCoord> = (0..n)
                            .map(|_| t(z, rng.below(1 << z) as u32, rng.below(1 << z) as u32))
                            .collect();
                        let priority = priorities[rng.below(5) as usize];
                        let options = RequestOptions {
                            priority,
                            ..RequestOptions::default()
                        };
                        let id = client.request_tiles(tiles.clone(), &options).unwrap();
                        let mut distinct = tiles;
                        distinct.sort();
                        distinct.dedup();
                        asked.insert(id, distinct);
                    }
                    if rng.below(3) == 0 {
                        // Vanish with work queued.
                        drop(client);
                        continue;
                    }
                    // Stay: every tile gets exactly one final answer.
                    let mut answered: HashMap<u64, Vec<TileCoord>> = HashMap::new();
                    let mut open = asked.len();
                    while open > 0 {
                        let event = client.next_event().unwrap().expect("connection closed");
                        match &event {
                            Event::Done(d) => {
                                answered.entry(d.request_id).or_default().push(d.tile)
                            }
                            Event::Failed(f) => {
                                answered.entry(f.request_id).or_default().push(f.tile)
                            }
                            Event::Cancelled { request_id, tile } => {
                                answered.entry(*request_id).or_default().push(*tile)
                            }
                            Event::Rejected(r) => {
                                panic!("worker {worker} round {round}: rejected {r:?}")
                            }
                            Event::BatchDone(b) => {
                                let got = answered.get(&b.request_id).map_or(0, Vec::len);
                                assert_eq!((b.done + b.failed + b.cancelled) as usize, got);
                                open -= 1;
                            }
                        }
                    }
                    for (id, mut tiles) in answered {
                        tiles.sort();
                        assert_eq!(
                            tiles, asked[&id],
                            "worker {worker} round {round} request {id}: each tile once"
                        );
                    }
                }
            });
        }
    });
    // The server is healthy and its queue empties.
    let mut client = connect(&server, 0);
    let events = crate::support::render(&mut client, vec![t(4, 8, 4)], &RequestOptions::default());
    assert!(matches!(events.last(), Some(Event::BatchDone(b)) if b.done == 1));
    // Work of the clients that vanished drains away (it is dropped once
    // their sessions notice; some of it may be rendered first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stats: HashMap<_, _> = client.stats().unwrap().into_iter().collect();
        if stats["queued_jobs"] == 0 && stats["running_jobs"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queue never drained: {stats:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.shutdown();
}
