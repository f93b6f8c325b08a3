//! The command line, described with clap's derive API.
//!
//! ```text
//! echo-demo serve  [--addr ADDR | --transport tcp|unix] [--mode M] [--framing F]
//!                  [--upper] [--stop-word WORD]
//! echo-demo client [--addr ADDR | --transport tcp|unix] [--framing F]
//!                  [--send LINE]... [--eof] [--timeout SECS]
//! echo-demo bench server --addr ADDR --max-seconds S
//! echo-demo bench client --addr ADDR --mode rtt|pipelined --size N --count N ...
//! ```

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipc_proto::Endpoint;

use crate::framing::Framing;

/// Echo server and client: the socket lessons, one mode per pitfall.
#[derive(Debug, Parser)]
#[command(name = "echo-demo", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an echo server.
    Serve(ServeArgs),
    /// Talk to an echo server: interactive on a terminal, else scripted.
    Client(ClientArgs),
    /// The benchmark peer of `shared/bench/ipc` (external-peer contract).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where to listen or connect: `--addr`, or just `--transport` for the
/// default address of that transport.
#[derive(Debug, Args, Clone)]
pub struct AddrArgs {
    /// `tcp:HOST:PORT` or `unix:PATH` (port 0: the OS picks one).
    #[arg(long, value_parser = parse_endpoint, conflicts_with = "transport")]
    pub addr: Option<Endpoint>,
    /// Use the default address of this transport
    /// (tcp:127.0.0.1:9876 or unix:/tmp/echo-demo.sock).
    #[arg(long, value_enum)]
    pub transport: Option<TransportKind>,
}

/// The two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// TCP on loopback.
    Tcp,
    /// A Unix domain socket.
    Unix,
}

/// The default TCP address (the port of the lessons' `server1.py`).
pub const DEFAULT_TCP: &str = "tcp:127.0.0.1:9876";
/// The default Unix socket path.
pub const DEFAULT_UNIX: &str = "/tmp/echo-demo.sock";

impl AddrArgs {
    /// The endpoint these arguments name.
    pub fn endpoint(&self) -> Endpoint {
        match (&self.addr, self.transport) {
            (Some(e), _) => e.clone(),
            (None, Some(TransportKind::Unix)) => Endpoint::unix(PathBuf::from(DEFAULT_UNIX)),
            (None, _) => Endpoint::tcp("127.0.0.1", 9876),
        }
    }
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse::<Endpoint>().map_err(|e| e.to_string())
}

/// How the server serves its clients (one lesson each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Serve one client, then exit (`server1.py`).
    Single,
    /// Serve clients one after another; the next one waits (`server2.py`).
    Sequential,
    /// One thread per client: many at once.
    Threaded,
    /// One thread, a readiness loop over all sockets (asyncore, `wait()`).
    Poll,
}

/// `echo-demo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[command(flatten)]
    pub addr: AddrArgs,
    /// How clients are served.
    #[arg(long, value_enum, default_value_t = Mode::Threaded)]
    pub mode: Mode,
    /// What a message is on the byte stream.
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    pub framing: Framing,
    /// The Unix-socket lesson: read everything up to EOF, then answer it
    /// upper-cased and close. Needs `--framing raw`.
    #[arg(long)]
    pub upper: bool,
    /// A message that shuts the whole server down (e.g. `balse`).
    #[arg(long, value_name = "WORD")]
    pub stop_word: Option<String>,
    /// Print every message received to stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

/// `echo-demo client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Where to connect.
    #[command(flatten)]
    pub addr: AddrArgs,
    /// What a message is on the byte stream (must match the server's).
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    pub framing: Framing,
    /// Send this line instead of reading stdin (repeatable; scripted mode).
    #[arg(long, value_name = "LINE")]
    pub send: Vec<String>,
    /// Send all input, then half-close (shutdown(SHUT_WR)) and print
    /// everything the server sends until EOF: the cure for `--upper`.
    #[arg(long)]
    pub eof: bool,
    /// Give up waiting for a reply after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Leave TCP_NODELAY off (Nagle's algorithm on), for the Nagle lesson.
    #[arg(long)]
    pub nagle: bool,
    /// Write each message in two `write` calls (first byte, then the rest).
    #[arg(long)]
    pub split_writes: bool,
    /// Open a new connection for every message (the TIME_WAIT lesson).
    #[arg(long)]
    pub connect_per_message: bool,
    /// Send each message this many times and print timings on stderr.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}

/// `echo-demo bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Echo server of the benchmark contract; prints `READY ADDR`.
    Server(BenchServerArgs),
    /// One measurement; prints one JSON line.
    Client(BenchClientArgs),
}

/// `echo-demo bench server`.
#[derive(Debug, Args)]
pub struct BenchServerArgs {
    /// `tcp:127.0.0.1:PORT` or `unix:/tmp/PATH`.
    #[arg(long, value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Exit by itself after this long.
    #[arg(long, default_value_t = 300.0)]
    pub max_seconds: f64,
    /// Stop accepting after this many connections.
    #[arg(long, default_value_t = 20_000)]
    pub max_conns: u64,
}

/// The benchmark modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// One message at a time.
    Rtt,
    /// A sender thread writes back to back while the reader counts echoes.
    Pipelined,
}

/// `echo-demo bench client`.
#[derive(Debug, Args)]
pub struct BenchClientArgs {
    /// The address from the server's READY line.
    #[arg(long, value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// rtt or pipelined.
    #[arg(long, value_enum)]
    pub mode: BenchMode,
    /// Payload bytes per message (>= 8).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=16 * 1024 * 1024))]
    pub size: u32,
    /// Measured messages.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// rtt: unmeasured round trips first.
    #[arg(long, default_value_t = 500)]
    pub warmup: u64,
    /// Abort (exit 1) after this long.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
    /// Label in the JSON line.
    #[arg(long, default_value = "tessera-echo-demo")]
    pub peer: String,
}

impl Cli {
    /// Checks what clap cannot: returns the usage error message.
    pub fn validate(&self) -> Result<(), String> {
        match &self.command {
            Command::Serve(a) => {
                if a.upper && a.framing != Framing::Raw {
                    return Err("--upper reads a raw byte stream to EOF: use it with \
                                --framing raw"
                        .into());
                }
                if a.stop_word.as_deref() == Some("") {
                    return Err("--stop-word must not be empty".into());
                }
            }
            Command::Client(a) => {
                if a.timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
                    return Err("--timeout must be a positive number of seconds".into());
                }
            }
            Command::Bench(BenchCommand::Server(a)) => check_bench_addr(&a.addr, a.max_seconds)?,
            Command::Bench(BenchCommand::Client(a)) => check_bench_addr(&a.addr, a.max_seconds)?,
        }
        Ok(())
    }
}

/// The contract's addresses: loopback TCP, or a Unix socket under /tmp/.
fn check_bench_addr(addr: &Endpoint, max_seconds: f64) -> Result<(), String> {
    if !(max_seconds > 0.0 && max_seconds.is_finite()) {
        return Err("--max-seconds must be a positive number".into());
    }
    match addr {
        Endpoint::Tcp { host, .. } if host == "127.0.0.1" => Ok(()),
        Endpoint::Unix(p) if p.starts_with("/tmp/") => Ok(()),
        _ => Err(format!(
            "--addr must be tcp:127.0.0.1:PORT or unix:/tmp/PATH, got {addr}"
        )),
    }
}
