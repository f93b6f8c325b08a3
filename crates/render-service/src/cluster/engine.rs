//! The engine: one blocking Redis connection and the five Lua scripts of a
//! job's life (`lua/*.lua`, each with its keys and arguments at its top).
//!
//! Every call has a timeout (connect, read, write), so no role ever hangs
//! on a vanished engine: a call fails with [`EngineError`], the connection
//! is dropped, and the next call connects again. Scripts run by their SHA
//! and are loaded again when the engine has forgotten them (a restart).
//! Each script is atomic in Redis, which is what makes a job's state
//! consistent across fronts and nodes without locks of our own.
//!
//! The calls are public for tools and benchmarks (`engine_ceiling` drives
//! whole job lifecycles with them); fronts and nodes are the callers that
//! keep a job's promises.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Connection, RedisResult, Script, Value};

use super::JobName;

/// The engine did not answer, or answered something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No connection, a timeout, or a command refused.
    #[error("the engine at {url}: {source}")]
    Redis {
        /// The engine's address.
        url: String,
        /// What the client says.
        source: redis::RedisError,
    },
    /// A render node's thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// How long a connection may take to open, and a command to answer (a
/// blocking read adds its own wait to this).
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A completion read from a front's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The stream entry's id (reading goes on after it).
    pub id: String,
    /// The job's name.
    pub job: String,
    /// `done`, `failed:<kind code>` or `stopped`.
    pub status: String,
    /// Why it failed, if it did.
    pub message: String,
    /// How long a tile took to draw, as the node measured it.
    pub render_ms: u32,
}

/// A script with the helpers every script shares (`lua/common.lua`)
/// before it.
fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/common.lua")))
}

/// One connection to the engine, made on first use and again after a
/// failure.
pub struct Engine {
    client: redis::Client,
    url: String,
    prefix: String,
    connection: Option<Connection>,
    publish: Script,
    withdraw: Script,
    claim: Script,
    renew: Script,
    complete: Script,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl Engine {
    /// An engine client for `url`, keys under `prefix`. Nothing connects
    /// until the first call.
    pub fn new(url: &str, prefix: &str) -> Result<Engine, EngineError> {
        // Messages name the engine without its password.
        let shown = super::redacted(url);
        let client = redis::Client::open(url).map_err(|source| EngineError::Redis {
            url: shown.clone(),
            source,
        })?;
        Ok(Engine {
            client,
            url: shown,
            prefix: prefix.to_owned(),
            connection: None,
            publish: script(include_str!("lua/publish.lua")),
            withdraw: script(include_str!("lua/withdraw.lua")),
            claim: script(include_str!("lua/claim.lua")),
            renew: script(include_str!("lua/renew.lua")),
            complete: script(include_str!("lua/complete.lua")),
        })
    }

    /// The engine's address, for messages (without a password).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `call` on the connection (made if needed, with `extra` added
    /// to the read timeout for a blocking command); a failure drops the
    /// connection so the next call starts afresh.
    fn run<T>(
        &mut self,
        extra: Duration,
        call: impl FnOnce(&mut Connection, &Self) -> RedisResult<T>,
    ) -> Result<T, EngineError> {
        let url = self.url.clone();
        let error = |source| EngineError::Redis {
            url: url.clone(),
            source,
        };
        let mut connection = match self.connection.take() {
            Some(c) => c,
            None => {
                let c = self
                    .client
                    .get_connection_with_timeout(IO_TIMEOUT)
                    .map_err(&error)?;
                c.set_write_timeout(Some(IO_TIMEOUT)).map_err(&error)?;
                c
            }
        };
        connection
            .set_read_timeout(Some(IO_TIMEOUT + extra))
            .map_err(&error)?;
        let result = call(&mut connection, self);
        match result {
            Ok(value) => {
                self.connection = Some(connection);
                Ok(value)
            }
            // A script error is the engine's answer on a good
            // connection; anything else may have left it half-read.
            Err(e) if e.kind() == redis::ErrorKind::ResponseError => {
                self.connection = Some(connection);
                Err(error(e))
            }
            Err(e) => Err(error(e)),
        }
    }

    /// Whether the engine answers.
    pub fn ping(&mut self) -> Result<(), EngineError> {
        self.run(Duration::ZERO, |c, _| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    /// Publishes (or re-ranks) `front`'s interest in `job` at `score`;
    /// `true` when a node is drawing it already.
    pub fn publish(
        &mut self,
        front: &str,
        job: &JobName,
        score: f64,
        force: bool,
    ) -> Result<bool, EngineError> {
        let name = job.to_string();
        let answer: String = self.run(Duration::ZERO, |c, e| {
            e.publish
                .key(e.key(&format!("q:{}", job.queue)))
                .key(e.key(&format!("want:{name}")))
                .key(e.key("running"))
                .key(e.key(&format!("force:{name}")))
                .key(e.key("bell"))
                .arg(front)
                .arg(&name)
                .arg(score)
                .arg(if force { "1" } else { "0" })
                .invoke(c)
        })?;
        Ok(answer == "running")
    }

    /// Withdraws `front`'s interest in `job`; how many fronts still want it.
    pub fn withdraw(&mut self, front: &str, job: &JobName) -> Result<u64, EngineError> {
        let name = job.to_string();
        self.run(Duration::ZERO, |c, e| {
            e.withdraw
                .key(e.key(&format!("q:{}", job.queue)))
                .key(e.key(&format!("want:{name}")))
                .key(e.key(&format!("force:{name}")))
                .arg(front)
                .arg(&name)
                .invoke(c)
        })
    }

    /// Takes the most urgent job of `queues` for `node` under a lease:
    /// its name and whether it bypasses the store.
    pub fn claim(
        &mut self,
        node: &str,
        queues: &[String],
        lease: Duration,
    ) -> Result<Option<(String, bool)>, EngineError> {
        let answer: Option<(String, String)> = self.run(Duration::ZERO, |c, e| {
            let mut call = e.claim.key(e.key("running"));
            for queue in queues {
                call.key(e.key(&format!("q:{queue}")));
            }
            call.arg(node)
                .arg(lease.as_millis() as u64)
                .arg(&e.prefix)
                .invoke(c)
        })?;
        Ok(answer.map(|(job, force)| (job, force == "1")))
    }

    /// Extends `node`'s lease on `job`: `false` means stop drawing it.
    pub fn renew(&mut self, node: &str, job: &str, lease: Duration) -> Result<bool, EngineError> {
        let go_on: i64 = self.run(Duration::ZERO, |c, e| {
            e.renew
                .key(e.key("running"))
                .key(e.key(&format!("lease:{job}")))
                .key(e.key(&format!("want:{job}")))
                .arg(node)
                .arg(job)
                .arg(lease.as_millis() as u64)
                .invoke(c)
        })?;
        Ok(go_on == 1)
    }

    /// Reports `job` finished with `status`; how many fronts were told.
    pub fn complete(
        &mut self,
        node: &str,
        job: &JobName,
        status: &str,
        message: &str,
        render_ms: u32,
    ) -> Result<u64, EngineError> {
        let name = job.to_string();
        self.run(Duration::ZERO, |c, e| {
            e.complete
                .key(e.key("running"))
                .key(e.key(&format!("lease:{name}")))
                .key(e.key(&format!("want:{name}")))
                .key(e.key(&format!("q:{}", job.queue)))
                .key(e.key(&format!("force:{name}")))
                .arg(node)
                .arg(&name)
                .arg(status)
                .arg(message)
                .arg(render_ms)
                // A front reads its stream as it goes; the cap only
                // bounds one that is gone for good.
                .arg(100_000)
                .arg(&e.prefix)
                .invoke(c)
        })
    }

    /// Waits up to `wait` for a publication's wake-up token.
    pub fn wait_for_work(&mut self, wait: Duration) -> Result<(), EngineError> {
        let seconds = wait.as_secs_f64().max(0.01);
        self.run(wait, |c, e| {
            redis::cmd("BLPOP")
                .arg(e.key("bell"))
                .arg(seconds)
                .query::<Value>(c)
        })
        .map(drop)
    }

    /// Completions on `front`'s stream after `after` (`0` for all),
    /// waiting up to `wait` for the first.
    pub fn completions(
        &mut self,
        front: &str,
        after: &str,
        wait: Duration,
    ) -> Result<Vec<Completion>, EngineError> {
        use redis::streams::{StreamReadOptions, StreamReadReply};
        let reply: Option<StreamReadReply> = self.run(wait, |c, e| {
            let options = StreamReadOptions::default()
                .count(256)
                .block(wait.as_millis() as usize);
            redis::Commands::xread_options(
                c,
                &[e.key(&format!("done:{front}"))],
                &[after],
                &options,
            )
        })?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                let field = |name: &str| -> String {
                    entry
                        .map
                        .get(name)
                        .and_then(|v| redis::from_redis_value::<String>(v).ok())
                        .unwrap_or_default()
                };
                out.push(Completion {
                    job: field("job"),
                    status: field("status"),
                    message: field("message"),
                    render_ms: field("ms").parse().unwrap_or(0),
                    id: entry.id,
                });
            }
        }
        Ok(out)
    }

    /// Says which style version of each map the fronts serve (`map` name →
    /// version), for render nodes to compare with theirs.
    pub(crate) fn set_versions(
        &mut self,
        versions: &[(String, String)],
    ) -> Result<(), EngineError> {
        if versions.is_empty() {
            return Ok(());
        }
        self.run(Duration::ZERO, |c, e| {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(e.key("versions"));
            for (map, version) in versions {
                cmd.arg(map).arg(version);
            }
            cmd.query::<i64>(c)
        })
        .map(drop)
    }

    /// The style versions the fronts serve.
    pub(crate) fn versions(&mut self) -> Result<HashMap<String, String>, EngineError> {
        self.run(Duration::ZERO, |c, e| {
            redis::cmd("HGETALL").arg(e.key("versions")).query(c)
        })
    }

    /// Deletes `front`'s completion stream (the front is stopping).
    pub(crate) fn forget_front(&mut self, front: &str) -> Result<(), EngineError> {
        self.run(Duration::ZERO, |c, e| {
            redis::cmd("DEL")
                .arg(e.key(&format!("done:{front}")))
                .query::<i64>(c)
        })
        .map(drop)
    }
}
