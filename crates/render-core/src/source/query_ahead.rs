//! PostGIS queries run ahead of the drawing, several at once: while a
//! metatile's layer is drawn, the database already answers the next layers'
//! queries, on more than one connection.
//!
//! Contract:
//! - One [`QueryAhead`] per renderer (per worker). Its query threads, started
//!   on the first PostGIS query, each own a [`PostgisConnections`] (one
//!   connection per database, reconnecting after failures, as before):
//!   `connections` of them (at least 1).
//! - [`QueryAhead::start`] takes a metatile's PostGIS queries in the order
//!   the layers are drawn and returns [`Answers`]; [`Answers::next`] gives
//!   each layer's result in that order. At most [`AHEAD`] queries are asked
//!   and not yet taken, so memory stays bounded by a few layers' rows.
//! - Dropping the [`Answers`] early (an error, a stopped render) cancels the
//!   queries not yet started; those running finish and are thrown away.
//!
//! Why: drawing a PostGIS layer waits for its query. On openstreetmap-carto
//! rendered tile by tile, the database is most of the time (PostgreSQL's CPU
//! for the 135 benchmark tiles is ~6.7 s, tessera's own drawing ~6 s, and
//! with one connection the drawing waited 9 s of a 12 s run for answers).
//! The database works in its own processes: queries on two connections run
//! on two cores, and both run while the renderer draws. Mapnik's PostGIS
//! plugin waits for each query in turn (its asynchronous mode is off unless
//! a style sets `max_async_connection`, which osm-carto does not). By
//! metatile with every core busy rendering, the overlap gains little; it
//! costs nothing but a connection per worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::postgis::{PostgisConnections, PostgisLayer, QueryArea};
use super::vector::{SourceError, VectorLayer};

/// How many queries may be asked and not yet taken by the drawing.
pub const AHEAD: usize = 8;

/// One layer's query of a metatile.
#[derive(Debug, Clone)]
pub struct LayerQuery {
    /// The layer's index in the map (to check answers match layers).
    pub layer: usize,
    /// Its query.
    pub postgis: PostgisLayer,
    /// The area, scale and pixel size.
    pub area: QueryArea,
}

/// Queries and connections so far, for tests and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostgisCounts {
    /// Queries run (one per layer per metatile).
    pub queries: u64,
    /// Connections opened (per query thread: one per database, plus one
    /// after each failure).
    pub connects: u64,
    /// Statements prepared (per query thread: one per layer, again after a
    /// reconnection).
    pub prepares: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queries: AtomicU64,
    connects: AtomicU64,
    prepares: AtomicU64,
}

type Answer = Result<VectorLayer, SourceError>;

/// One query for a query thread, and where its answer goes.
struct Job {
    query: LayerQuery,
    answer: Sender<Answer>,
    /// Set when the metatile is given up: do not start the query.
    abandoned: Arc<AtomicBool>,
}

/// A worker's query threads (started on first use).
#[derive(Debug)]
pub struct QueryAhead {
    statement_timeout_ms: Option<u64>,
    connections: usize,
    jobs: Option<Sender<Job>>,
    counters: Arc<Counters>,
}

/// A metatile's answers, taken in the order of its queries.
pub struct Answers {
    /// Asked, in order: the layer and where its answer arrives.
    asked: VecDeque<(usize, Receiver<Answer>)>,
    /// Not asked yet.
    rest: std::vec::IntoIter<LayerQuery>,
    jobs: Option<Sender<Job>>,
    abandoned: Arc<AtomicBool>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("asked", &self.asked.len())
            .field("rest", &self.rest.len())
            .finish()
    }
}

impl Answers {
    /// The result of layer `layer`'s query, the next one in order. An error
    /// if the layers are taken out of order or the query threads are gone.
    pub fn next(&mut self, layer: usize) -> Answer {
        let gone = || SourceError::Gdal {
            what: "querying PostGIS".into(),
            message: "the query threads ended".into(),
        };
        let Some((asked, answer)) = self.asked.pop_front() else {
            return Err(SourceError::Gdal {
                what: "querying PostGIS".into(),
                message: format!("layer {layer}'s query was not asked"),
            });
        };
        self.ask();
        if asked != layer {
            return Err(SourceError::Gdal {
                what: "querying PostGIS".into(),
                message: format!("the answer of layer {asked} came where {layer} was expected"),
            });
        }
        answer.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// Asks queries until [`AHEAD`] are outstanding.
    fn ask(&mut self) {
        while self.asked.len() < AHEAD {
            let Some(query) = self.rest.next() else {
                return;
            };
            let (answer, receiver) = bounded(1);
            let layer = query.layer;
            let job = Job {
                query,
                answer,
                abandoned: Arc::clone(&self.abandoned),
            };
            if let Some(jobs) = &self.jobs {
                // A send to threads that are gone fails; the receiver then
                // reports it when the answer is taken.
                let _ = jobs.send(job);
            }
            self.asked.push_back((layer, receiver));
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        // Queries not started yet are not needed any more.
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

impl QueryAhead {
    /// Query threads with `connections` connections (at least 1) whose
    /// sessions set `statement_timeout` (ms).
    pub fn new(statement_timeout_ms: Option<u64>, connections: usize) -> QueryAhead {
        QueryAhead {
            statement_timeout_ms,
            connections: connections.max(1),
            jobs: None,
            counters: Arc::default(),
        }
    }

    /// Queries and connections so far.
    pub fn counts(&self) -> PostgisCounts {
        PostgisCounts {
            queries: self.counters.queries.load(Ordering::Relaxed),
            connects: self.counters.connects.load(Ordering::Relaxed),
            prepares: self.counters.prepares.load(Ordering::Relaxed),
        }
    }

    /// Starts a metatile's queries (in drawing order).
    pub fn start(&mut self, queries: Vec<LayerQuery>) -> Answers {
        let mut answers = Answers {
            asked: VecDeque::with_capacity(AHEAD),
            rest: queries.into_iter(),
            jobs: self.jobs(),
            abandoned: Arc::new(AtomicBool::new(false)),
        };
        answers.ask();
        answers
    }

    /// The job queue, starting the threads the first time.
    fn jobs(&mut self) -> Option<Sender<Job>> {
        if let Some(jobs) = &self.jobs {
            return Some(jobs.clone());
        }
        let (jobs, receiver) = unbounded::<Job>();
        for index in 0..self.connections {
            let receiver = receiver.clone();
            let counters = Arc::clone(&self.counters);
            let connections = PostgisConnections::new(self.statement_timeout_ms);
            let spawned = std::thread::Builder::new()
                .name(format!("postgis-{index}"))
                .spawn(move || run(&receiver, connections, &counters));
            if spawned.is_err() && index == 0 {
                return None;
            }
        }
        Some(self.jobs.insert(jobs).clone())
    }
}

/// A query thread: jobs in, answers out. Ends when its renderer (the last
/// sender) is dropped.
fn run(jobs: &Receiver<Job>, mut connections: PostgisConnections, counters: &Counters) {
    for job in jobs {
        if job.abandoned.load(Ordering::Relaxed) {
            continue;
        }
        let (queries, connects, prepares) = (
            connections.queries,
            connections.connects,
            connections.prepares,
        );
        let result = connections.query(&job.query.postgis, &job.query.area);
        counters
            .prepares
            .fetch_add(connections.prepares - prepares, Ordering::Relaxed);
        counters
            .queries
            .fetch_add(connections.queries - queries, Ordering::Relaxed);
        counters
            .connects
            .fetch_add(connections.connects - connects, Ordering::Relaxed);
        // The drawing may have given the metatile up meanwhile.
        let _ = job.answer.send(result);
    }
}
