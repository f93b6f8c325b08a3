//! Scheduler rules, one test each, plus a property test of the
//! exactly-one-final-answer invariant under random operations.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tile_math::{LngLatBbox, TileRange};

use super::*;

fn t(z: u8, x: u32, y: u32) -> TileCoord {
    TileCoord::new(z, x, y).unwrap()
}

fn meta(tile: TileCoord) -> Metatile {
    Metatile::containing(tile, 8).unwrap()
}

fn request(
    client: ClientId,
    id: RequestId,
    tiles: &[TileCoord],
    class: PriorityClass,
) -> TileRequest {
    TileRequest {
        client,
        request_id: id,
        map: 0,
        tiles: tiles.to_vec(),
        class,
        deadline: None,
        force: false,
    }
}

fn scheduler() -> Scheduler {
    Scheduler::new(SchedulerConfig::default())
}

/// Runs every queued job to completion, returning metatiles in render order.
fn run_all(s: &mut Scheduler, now: Instant) -> Vec<Metatile> {
    let mut order = Vec::new();
    while let Some(job) = s.next_job(now) {
        order.push(job.metatile);
        s.complete(job.id);
    }
    order
}

fn screen(z: u8, x0: u32, y0: u32, x1: u32, y1: u32) -> Viewport {
    Viewport::from_tile_range(TileRange::new(t(z, x0, y0), t(z, x1, y1)).unwrap())
}

#[test]
fn classes_come_in_order_and_fifo_within_a_class() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Dirty));
    s.submit(request(1, 2, &[t(10, 8, 0)], PriorityClass::Bulk));
    s.submit(request(1, 3, &[t(10, 16, 0)], PriorityClass::Explicit));
    s.submit(request(1, 4, &[t(10, 24, 0)], PriorityClass::Explicit));
    s.submit(request(1, 5, &[t(10, 32, 0)], PriorityClass::Viewport));
    let order = run_all(&mut s, now);
    let expected: Vec<_> = [32, 16, 24, 8, 0]
        .iter()
        .map(|&x| meta(t(10, x, 0)))
        .collect();
    assert_eq!(order, expected);
    assert!(s.is_idle());
}

#[test]
fn tiles_on_screen_come_first_then_neighbours_then_by_distance() {
    let mut s = scheduler();
    let now = Instant::now();
    // Queued as explicit work, far and near.
    let far = t(10, 400, 400);
    let near = t(10, 120, 100);
    let ring = t(10, 104, 100);
    let on_screen = t(10, 100, 100);
    for (id, tile) in [far, near, ring, on_screen].into_iter().enumerate() {
        s.submit(request(1, id as u64, &[tile], PriorityClass::Explicit));
    }
    // Screen: columns 97..=103, rows 98..=102 at z10. Each tile above is in
    // a metatile of its own (columns 96.., 104.., 120.., 400..).
    s.set_viewport(1, screen(10, 97, 98, 103, 102));
    let order = run_all(&mut s, now);
    assert_eq!(
        order,
        vec![meta(on_screen), meta(ring), meta(near), meta(far)]
    );
}

#[test]
fn a_new_viewport_reranks_queued_work_at_once() {
    let mut s = scheduler();
    let now = Instant::now();
    // The user looks at screen A, then drags to screen B before A is drawn.
    let a: Vec<_> = (0..3).map(|i| t(12, 100 + i * 8, 200)).collect();
    let b: Vec<_> = (0..3).map(|i| t(12, 300 + i * 8, 200)).collect();
    s.set_viewport(1, screen(12, 100, 200, 117, 200));
    s.submit(request(1, 1, &a, PriorityClass::Viewport));
    s.set_viewport(1, screen(12, 300, 200, 317, 200));
    s.submit(request(1, 2, &b, PriorityClass::Viewport));
    let stats = s.stats();
    assert_eq!(
        stats.queued_tiles_by_class[PriorityClass::Viewport.index()],
        3
    );
    assert_eq!(
        stats.queued_tiles_by_class[PriorityClass::Explicit.index()],
        3
    );
    let order = run_all(&mut s, now);
    // Screen B first, nearest its centre (column 309) first: 308, 316, 300.
    let b_metas: Vec<_> = [1, 2, 0].iter().map(|&i| meta(b[i])).collect();
    assert_eq!(&order[..3], &b_metas[..], "screen B first");
    // Screen A is still drawn (demoted, not lost), nearest to B first.
    let a_metas: Vec<_> = a.iter().rev().map(|t| meta(*t)).collect();
    assert_eq!(&order[3..], &a_metas[..]);
}

#[test]
fn fifo_mode_ignores_classes_and_viewports() {
    let mut s = Scheduler::new(SchedulerConfig {
        fifo: true,
        ..SchedulerConfig::default()
    });
    let now = Instant::now();
    // Bulk first, then an old screen, then the screen the user is on now:
    // first come, first served, whatever the class or the viewport says.
    s.submit(request(1, 1, &[t(12, 0, 0)], PriorityClass::Bulk));
    s.set_viewport(1, screen(12, 100, 200, 105, 203));
    s.submit(request(1, 2, &[t(12, 100, 200)], PriorityClass::Viewport));
    s.set_viewport(1, screen(12, 300, 200, 305, 203));
    s.submit(request(1, 3, &[t(12, 300, 200)], PriorityClass::Viewport));
    s.submit(request(1, 4, &[t(12, 500, 200)], PriorityClass::Dirty));
    let stats = s.stats();
    assert_eq!(
        stats.queued_tiles_by_class[PriorityClass::Explicit.index()],
        4
    );
    let order = run_all(&mut s, now);
    let expected: Vec<_> = [(0, 0), (100, 200), (300, 200), (500, 200)]
        .iter()
        .map(|&(x, y)| meta(t(12, x, y)))
        .collect();
    assert_eq!(order, expected);
}

#[test]
fn duplicate_requests_are_rendered_once_and_everyone_is_answered() {
    let mut s = scheduler();
    let now = Instant::now();
    let tile = t(10, 5, 5);
    s.submit(request(1, 10, &[tile], PriorityClass::Explicit));
    s.submit(request(
        2,
        20,
        &[tile, t(10, 6, 5)],
        PriorityClass::Explicit,
    ));
    let job = s.next_job(now).unwrap();
    assert_eq!(job.metatile, meta(tile));
    assert!(s.next_job(now).is_none(), "one render for both clients");
    let mut deliveries = s.complete(job.id);
    deliveries.sort_by_key(|d| d.client);
    assert_eq!(
        deliveries,
        vec![
            Delivery {
                client: 1,
                request_id: 10,
                tiles: vec![tile]
            },
            Delivery {
                client: 2,
                request_id: 20,
                tiles: vec![tile, t(10, 6, 5)]
            },
        ]
    );
}

#[test]
fn a_higher_priority_duplicate_promotes_the_queued_job() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Explicit));
    s.submit(request(1, 2, &[t(10, 64, 0)], PriorityClass::Bulk));
    s.submit(request(2, 3, &[t(10, 64, 0)], PriorityClass::Viewport));
    let first = s.next_job(now).unwrap();
    assert_eq!(first.metatile, meta(t(10, 64, 0)));
    let deliveries = s.complete(first.id);
    assert_eq!(
        deliveries.len(),
        2,
        "the bulk requester is answered by the same render"
    );
}

#[test]
fn a_request_for_a_metatile_being_rendered_joins_that_render() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 1, 1)], PriorityClass::Explicit));
    let job = s.next_job(now).unwrap();
    s.submit(request(2, 2, &[t(10, 2, 2)], PriorityClass::Explicit));
    assert!(s.next_job(now).is_none());
    let deliveries = s.complete(job.id);
    assert_eq!(deliveries.len(), 2);
    assert!(s.is_idle());
}

#[test]
fn a_running_job_ranks_by_its_best_requester_as_screens_move() {
    // A cluster front re-ranks published jobs with this: a bulk job that a
    // screen joins is on-screen work now, and drops back when it leaves.
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Bulk));
    let job = s.next_job(now).unwrap();
    assert_eq!(s.running_class(job.id), Some(PriorityClass::Bulk));
    s.set_viewport(2, screen(10, 0, 0, 1, 1));
    s.submit(request(2, 1, &[t(10, 0, 0)], PriorityClass::Viewport));
    assert_eq!(s.running_class(job.id), Some(PriorityClass::Viewport));
    // The screen moves far away: the join was asked as on-screen work,
    // which now ranks as explicit; the bulk requester still counts.
    s.set_viewport(2, screen(10, 500, 500, 501, 501));
    assert_eq!(s.running_class(job.id), Some(PriorityClass::Explicit));
    s.complete(job.id);
    assert_eq!(s.running_class(job.id), None);
}

#[test]
fn cancel_answers_every_queued_tile_of_the_request() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(
        1,
        1,
        &[t(10, 0, 0), t(10, 1, 0), t(10, 9, 0)],
        PriorityClass::Explicit,
    ));
    s.submit(request(1, 2, &[t(10, 0, 0)], PriorityClass::Explicit));
    s.cancel_requests(1, &[1]);
    let answers = s.drain_answers();
    assert_eq!(answers.len(), 3);
    assert!(answers
        .iter()
        .all(|a| a.request_id == 1 && a.outcome == Outcome::Cancelled(CancelReason::ByClient)));
    // Request 2 still wants metatile 0,0.
    let job = s.next_job(now).unwrap();
    assert_eq!(s.complete(job.id)[0].request_id, 2);
    assert!(s.next_job(now).is_none());
    assert_eq!(s.queued_tiles(), 0);
}

#[test]
fn cancel_outside_viewport_keeps_the_screen_and_its_ring() {
    let mut s = scheduler();
    s.set_viewport(1, screen(10, 100, 100, 103, 103));
    s.submit(request(1, 1, &[t(10, 101, 101)], PriorityClass::Viewport));
    s.submit(request(1, 2, &[t(10, 104, 100)], PriorityClass::Neighbour));
    s.submit(request(1, 3, &[t(10, 300, 300)], PriorityClass::Viewport));
    s.submit(request(1, 4, &[t(9, 50, 50)], PriorityClass::Explicit));
    s.cancel_outside_viewport(1, 1);
    let mut cancelled: Vec<_> = s
        .drain_answers()
        .into_iter()
        .map(|a| a.request_id)
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, vec![3, 4]);
    assert_eq!(s.queued_tiles(), 2);
}

#[test]
fn a_full_queue_refuses_the_lowest_priority_work_with_busy() {
    let config = SchedulerConfig {
        max_queued_tiles: 4,
        retry_after_ms: 250,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    let bulk: Vec<_> = (0..6).map(|i| t(10, i * 8, 0)).collect();
    s.submit(request(1, 1, &bulk, PriorityClass::Bulk));
    let refused = s.drain_answers();
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|a| a.outcome
        == Outcome::Busy {
            retry_after_ms: 250
        }));
    assert_eq!(s.queued_tiles(), 4);
    // Screen work evicts bulk work (answered Busy, never dropped silently)...
    s.submit(request(2, 2, &[t(10, 500, 500)], PriorityClass::Viewport));
    let evicted = s.drain_answers();
    assert_eq!(evicted.len(), 1);
    assert_eq!(
        (evicted[0].client, evicted[0].tile),
        (1, t(10, 24, 0)),
        "the newest bulk tile goes"
    );
    assert_eq!(s.queued_tiles(), 4);
    // ...but more bulk work cannot evict bulk work.
    s.submit(request(3, 3, &[t(10, 600, 600)], PriorityClass::Bulk));
    assert_eq!(s.drain_answers().len(), 1);
    assert_eq!(
        s.next_job(Instant::now()).unwrap().metatile,
        meta(t(10, 500, 500))
    );
}

#[test]
fn per_client_limit_leaves_room_for_others() {
    let config = SchedulerConfig {
        max_queued_tiles_per_client: 2,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    s.submit(request(
        1,
        1,
        &[t(10, 0, 0), t(10, 8, 0), t(10, 16, 0)],
        PriorityClass::Bulk,
    ));
    assert_eq!(s.drain_answers().len(), 1);
    s.submit(request(2, 2, &[t(10, 24, 0)], PriorityClass::Bulk));
    assert!(s.drain_answers().is_empty());
}

#[test]
fn work_past_its_deadline_is_answered_not_rendered() {
    let mut s = scheduler();
    let start = Instant::now();
    let mut late = request(1, 1, &[t(10, 0, 0)], PriorityClass::Viewport);
    late.deadline = Some(start + Duration::from_millis(10));
    s.submit(late);
    s.submit(request(1, 2, &[t(10, 8, 0)], PriorityClass::Bulk));
    let job = s.next_job(start + Duration::from_millis(20)).unwrap();
    assert_eq!(job.metatile, meta(t(10, 8, 0)));
    let answers = s.drain_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].outcome,
        Outcome::Cancelled(CancelReason::DeadlineExpired)
    );
    // expire() sweeps without picking.
    let mut soon = request(1, 3, &[t(10, 16, 0)], PriorityClass::Bulk);
    soon.deadline = Some(start);
    s.submit(soon);
    s.expire(start + Duration::from_millis(1));
    assert_eq!(s.drain_answers().len(), 1);
    assert_eq!(s.queued_tiles(), 0);
}

#[test]
fn clients_take_turns_within_a_class() {
    let mut s = scheduler();
    let now = Instant::now();
    let heavy: Vec<_> = (0..4).map(|i| t(10, i * 8, 0)).collect();
    s.submit(request(1, 1, &heavy, PriorityClass::Explicit));
    s.submit(request(
        2,
        2,
        &[t(10, 0, 64), t(10, 8, 64)],
        PriorityClass::Explicit,
    ));
    let mut owners = Vec::new();
    while let Some(job) = s.next_job(now) {
        owners.push(s.complete(job.id)[0].client);
    }
    assert_eq!(owners, vec![1, 2, 1, 2, 1, 1]);
}

#[test]
fn a_vanished_client_leaves_nothing_behind() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(
        1,
        1,
        &[t(10, 0, 0), t(10, 8, 8)],
        PriorityClass::Explicit,
    ));
    s.submit(request(2, 2, &[t(10, 0, 0)], PriorityClass::Explicit));
    s.remove_client(1);
    assert_eq!(s.drain_answers().len(), 2);
    let job = s.next_job(now).unwrap();
    assert_eq!(
        s.complete(job.id),
        vec![Delivery {
            client: 2,
            request_id: 2,
            tiles: vec![t(10, 0, 0)]
        }]
    );
    assert!(s.is_idle());
}

#[test]
fn viewport_across_the_antimeridian_ranks_both_sides_as_on_screen() {
    let mut s = scheduler();
    let now = Instant::now();
    let v = Viewport::from_bbox(LngLatBbox::new(179.0, -1.0, -179.0, 1.0), 8).unwrap();
    s.set_viewport(1, v);
    s.submit(request(1, 1, &[t(8, 100, 100)], PriorityClass::Explicit));
    s.submit(request(1, 2, &[t(8, 0, 127)], PriorityClass::Explicit));
    s.submit(request(1, 3, &[t(8, 255, 127)], PriorityClass::Explicit));
    let order = run_all(&mut s, now);
    assert_eq!(order.last(), Some(&meta(t(8, 100, 100))));
}

#[test]
fn cancelling_a_running_request_answers_it_now_and_abandons_the_render() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(
        1,
        1,
        &[t(10, 0, 0), t(10, 1, 0)],
        PriorityClass::Explicit,
    ));
    let job = s.next_job(now).unwrap();
    s.cancel_requests(1, &[1]);
    let answers = s.drain_answers();
    assert_eq!(answers.len(), 2, "both tiles answered at once");
    assert!(answers
        .iter()
        .all(|a| a.outcome == Outcome::Cancelled(CancelReason::ByClient)));
    assert_eq!(s.drain_abandoned(), vec![job.id]);
    assert!(s.drain_abandoned().is_empty(), "reported once");
    // The stopped render answers nobody and leaves nothing behind.
    s.stopped(job.id);
    assert!(s.drain_answers().is_empty());
    assert!(s.is_idle());
}

#[test]
fn a_render_another_client_still_wants_is_not_abandoned() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Explicit));
    s.submit(request(2, 1, &[t(10, 1, 0)], PriorityClass::Explicit));
    let job = s.next_job(now).unwrap();
    s.cancel_requests(1, &[1]);
    assert_eq!(s.drain_answers().len(), 1);
    assert!(s.drain_abandoned().is_empty());
    let deliveries = s.complete(job.id);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].client, 2);
}

#[test]
fn work_outside_a_new_screen_is_cancelled_even_while_it_renders() {
    let mut s = scheduler();
    let now = Instant::now();
    s.set_viewport(1, screen(10, 0, 0, 3, 2));
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Viewport));
    let job = s.next_job(now).unwrap();
    s.set_viewport(1, screen(10, 100, 100, 103, 102));
    s.cancel_outside_viewport(1, 1);
    let answers = s.drain_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].outcome,
        Outcome::Cancelled(CancelReason::OutsideViewport)
    );
    assert_eq!(s.drain_abandoned(), vec![job.id]);
}

#[test]
fn a_request_for_a_render_being_stopped_is_queued_anew() {
    let mut s = scheduler();
    let now = Instant::now();
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Explicit));
    let old = s.next_job(now).unwrap();
    s.cancel_requests(1, &[1]);
    s.drain_answers();
    assert_eq!(s.drain_abandoned(), vec![old.id]);
    // Asked again while the old render is still stopping: a new job.
    s.submit(request(1, 2, &[t(10, 0, 0)], PriorityClass::Explicit));
    let new = s
        .next_job(now)
        .expect("queued, not joined to the stopping render");
    assert_ne!(new.id, old.id);
    s.stopped(old.id);
    let deliveries = s.complete(new.id);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].request_id, 2);
    assert!(s.is_idle());
}

#[test]
fn a_render_only_left_behind_screens_want_makes_way_for_the_screen() {
    let mut s = scheduler();
    let now = Instant::now();
    s.set_viewport(1, screen(10, 0, 0, 3, 2));
    s.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Viewport));
    let left_behind = s.next_job(now).unwrap();
    // Nothing waits on screen yet: nothing to preempt.
    assert_eq!(s.preempt(), None);
    // The user moves on (demote: the old request stays) and asks for the
    // new screen.
    s.set_viewport(1, screen(10, 100, 100, 103, 102));
    s.submit(request(1, 2, &[t(10, 100, 100)], PriorityClass::Viewport));
    assert_eq!(s.viewport_jobs_waiting(), 1);
    assert_eq!(s.preempt(), Some(left_behind.id));
    assert_eq!(s.preempt(), None, "one job is preempted once");
    s.stopped(left_behind.id);
    assert!(s.drain_answers().is_empty(), "its request is still wanted");
    // The screen first, then the left-behind work again.
    let screen_job = s.next_job(now).unwrap();
    assert_eq!(screen_job.metatile, meta(t(10, 100, 100)));
    assert_eq!(s.complete(screen_job.id)[0].request_id, 2);
    let again = s.next_job(now).unwrap();
    assert_eq!(again.metatile, meta(t(10, 0, 0)));
    assert_eq!(s.complete(again.id)[0].request_id, 1);
    assert!(s.is_idle());
}

#[test]
fn explicit_work_and_work_still_on_screen_are_never_preempted() {
    let mut s = scheduler();
    let now = Instant::now();
    // A screen across two metatiles (x 0-7 and 8-15).
    s.set_viewport(1, screen(10, 4, 0, 11, 2));
    // Asked explicitly (tile-client render): not screen work, never preempted.
    s.submit(request(2, 1, &[t(10, 200, 200)], PriorityClass::Explicit));
    let explicit = s.next_job(now).unwrap();
    // On the screen now.
    s.submit(request(1, 1, &[t(10, 4, 0)], PriorityClass::Viewport));
    let on_screen = s.next_job(now).unwrap();
    s.submit(request(
        1,
        2,
        &[t(10, 5, 0), t(10, 9, 0)],
        PriorityClass::Viewport,
    ));
    assert_eq!(s.viewport_jobs_waiting(), 1);
    assert_eq!(s.preempt(), None);
    s.complete(explicit.id);
    s.complete(on_screen.id);
    let mut fifo = Scheduler::new(SchedulerConfig {
        fifo: true,
        ..SchedulerConfig::default()
    });
    fifo.submit(request(1, 1, &[t(10, 0, 0)], PriorityClass::Viewport));
    fifo.next_job(now).unwrap();
    fifo.submit(request(1, 2, &[t(10, 64, 0)], PriorityClass::Viewport));
    assert_eq!(fifo.preempt(), None, "FIFO mode never preempts");
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        client: u64,
        tiles: Vec<(u32, u32)>,
        class: usize,
        deadline_ms: Option<u64>,
    },
    Viewport {
        client: u64,
        x: u32,
        y: u32,
    },
    Cancel {
        client: u64,
        request: u64,
    },
    CancelOutside {
        client: u64,
    },
    Run {
        jobs: usize,
    },
    /// Start a job and keep it running.
    Start,
    /// The oldest running job finishes.
    Finish,
    /// Ask for a job to preempt; stop it if there is one.
    Preempt,
    Leave {
        client: u64,
    },
    Tick {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..4, prop::collection::vec((0u32..64, 0u32..64), 1..12), 0usize..5, prop::option::of(0u64..50))
            .prop_map(|(client, tiles, class, deadline_ms)| Op::Submit { client, tiles, class, deadline_ms }),
        2 => (0u64..4, 0u32..60, 0u32..60).prop_map(|(client, x, y)| Op::Viewport { client, x, y }),
        1 => (0u64..4, 0u64..40).prop_map(|(client, request)| Op::Cancel { client, request }),
        1 => (0u64..4).prop_map(|client| Op::CancelOutside { client }),
        3 => (0usize..4).prop_map(|jobs| Op::Run { jobs }),
        2 => Just(Op::Start),
        1 => Just(Op::Finish),
        1 => Just(Op::Preempt),
        1 => (0u64..4).prop_map(|client| Op::Leave { client }),
        1 => (0u64..30).prop_map(|ms| Op::Tick { ms }),
    ]
}

proptest! {
    /// Whatever happens, every listed tile of every request is answered
    /// exactly once: delivered by a finished render, or answered by the
    /// scheduler (cancelled, busy). Nothing lost, nothing twice. Jobs may
    /// stay running across operations (and be cancelled, abandoned,
    /// preempted and stopped meanwhile). A client that leaves is owed
    /// nothing for its work being rendered then, but never gets a tile
    /// twice.
    #[test]
    fn every_tile_gets_exactly_one_final_answer(ops in prop::collection::vec(op(), 1..60), small in any::<bool>()) {
        let config = if small {
            SchedulerConfig { max_queued_tiles: 20, max_queued_tiles_per_client: 12, ..SchedulerConfig::default() }
        } else {
            SchedulerConfig::default()
        };
        let mut s = Scheduler::new(config);
        let start = Instant::now();
        let mut now = start;
        let mut next_request = 0u64;
        // (client, request, tile) -> how many times asked / answered.
        let mut asked: HashMap<(u64, u64, TileCoord), usize> = HashMap::new();
        let mut answered: HashMap<(u64, u64, TileCoord), usize> = HashMap::new();
        let mut running: Vec<JobId> = Vec::new();
        let mut left: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
        let record = |s: &mut Scheduler, deliveries: Vec<Delivery>, answered: &mut HashMap<_, usize>| {
            for d in deliveries {
                for tile in d.tiles {
                    *answered.entry((d.client, d.request_id, tile)).or_default() += 1;
                }
            }
            for a in s.drain_answers() {
                *answered.entry((a.client, a.request_id, a.tile)).or_default() += 1;
            }
        };
        for op in ops {
            match op {
                Op::Submit { client, tiles, class, deadline_ms } => {
                    let tiles: Vec<_> = tiles.into_iter().map(|(x, y)| t(6, x, y)).collect();
                    for tile in &tiles {
                        *asked.entry((client, next_request, *tile)).or_default() += 1;
                    }
                    let mut r = request(client, next_request, &tiles, PriorityClass::ALL[class]);
                    r.deadline = deadline_ms.map(|ms| start + Duration::from_millis(ms));
                    s.submit(r);
                    next_request += 1;
                }
                Op::Viewport { client, x, y } => s.set_viewport(client, screen(6, x, y, x + 3, y + 2)),
                Op::Cancel { client, request } => s.cancel_requests(client, &[request]),
                Op::CancelOutside { client } => s.cancel_outside_viewport(client, 1),
                Op::Run { jobs } => {
                    for _ in 0..jobs {
                        let Some(job) = s.next_job(now) else { break };
                        let deliveries = s.complete(job.id);
                        record(&mut s, deliveries, &mut answered);
                    }
                }
                Op::Start => {
                    if let Some(job) = s.next_job(now) {
                        running.push(job.id);
                    }
                }
                Op::Finish => {
                    if !running.is_empty() {
                        let deliveries = s.complete(running.remove(0));
                        record(&mut s, deliveries, &mut answered);
                    }
                }
                Op::Preempt => {
                    if let Some(id) = s.preempt() {
                        prop_assert!(running.contains(&id));
                        running.retain(|r| *r != id);
                        s.stopped(id);
                    }
                }
                Op::Leave { client } => {
                    left.extend(asked.keys().filter(|k| k.0 == client).map(|k| (k.0, k.1)));
                    s.remove_client(client);
                }
                Op::Tick { ms } => {
                    now += Duration::from_millis(ms);
                    s.expire(now);
                }
            }
            // The service stops abandoned renders.
            for id in s.drain_abandoned() {
                prop_assert!(running.contains(&id));
                running.retain(|r| *r != id);
                s.stopped(id);
            }
            record(&mut s, Vec::new(), &mut answered);
        }
        // Drain: finish what runs, then render everything left.
        for id in running.drain(..) {
            let deliveries = s.complete(id);
            record(&mut s, deliveries, &mut answered);
        }
        while let Some(job) = s.next_job(now) {
            let deliveries = s.complete(job.id);
            record(&mut s, deliveries, &mut answered);
        }
        record(&mut s, Vec::new(), &mut answered);
        prop_assert!(s.is_idle());
        prop_assert_eq!(s.queued_tiles(), 0);
        for (key, n) in &answered {
            prop_assert!(asked.get(key) == Some(n) || (left.contains(&(key.0, key.1)) && *n <= asked[key]),
                "{:?} answered {} times, asked {:?}", key, n, asked.get(key));
        }
        for (key, n) in &asked {
            if !left.contains(&(key.0, key.1)) {
                prop_assert_eq!(answered.get(key), Some(n), "{:?} not answered", key);
            }
        }
    }
}
