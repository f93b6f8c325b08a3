//! The command line, described with clap's derive API.
//!
//! ```text
//! echo-demo serve  [--addr ADDR | --transport tcp|unix] [--mode M] [--framing F]
//!                  [--upper] [--stop-word WORD] [--reply same|callback]
//! echo-demo client [--addr ADDR | --transport tcp|unix] [--framing F]
//!                  [--send LINE]... [--eof] [--timeout SECS] [--reply same|callback]
//! echo-demo module-server [--addr ADDR] [--interval-ms MS] [--words W,W,...]
//! echo-demo module-client [--addr ADDR] [--send LINE]... [--linger SECS]
//! echo-demo bench server --addr ADDR --max-seconds S
//! echo-demo bench client --addr ADDR --mode rtt|pipelined --size N --count N ...
//! ```

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipc_proto::Endpoint;

use crate::framing::Framing;
use crate::reply::ReplyPath;

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
    /// A Julius-style "module mode" server: one client, line commands
    /// (arguments on the following lines), and pushed events.
    ModuleServer(ModuleServerArgs),
    /// Talk to `module-server`: send commands, print replies and events as
    /// they arrive.
    ModuleClient(ModuleClientArgs),
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
    /// Where replies go: on the request's connection, or on a new
    /// connection to the client's IP at our port + `--callback-offset`
    /// (seeds 000 and 003). TCP only; not with `--mode poll`.
    #[arg(long, value_enum, default_value_t = ReplyPath::Same)]
    pub reply: ReplyPath,
    /// With `--reply callback`: call back on our port + this.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub callback_offset: u16,
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
    /// Where replies arrive: on this connection, or (`callback`) on a
    /// listener this client opens first on the server's port +
    /// `--callback-offset`, one connection per reply.
    #[arg(long, value_enum, default_value_t = ReplyPath::Same,
          conflicts_with_all = ["eof", "connect_per_message"])]
    pub reply: ReplyPath,
    /// With `--reply callback`: listen on the server's port + this.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub callback_offset: u16,
}

/// Julius's default module port.
pub const DEFAULT_MODULE: &str = "tcp:127.0.0.1:10500";

/// `echo-demo module-server`.
#[derive(Debug, Args)]
pub struct ModuleServerArgs {
    /// Where to listen (`tcp:HOST:PORT` or `unix:PATH`).
    #[arg(long, value_parser = parse_endpoint, default_value = DEFAULT_MODULE)]
    pub addr: Endpoint,
    /// Push one recognition event this often.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub interval_ms: u64,
    /// The initial vocabulary, comma-separated (ADDWORD adds to it).
    #[arg(long, value_delimiter = ',', default_value = "tessera,tile,render")]
    pub words: Vec<String>,
}

/// `echo-demo module-client`.
#[derive(Debug, Args)]
pub struct ModuleClientArgs {
    /// The module server.
    #[arg(long, value_parser = parse_endpoint, default_value = DEFAULT_MODULE)]
    pub addr: Endpoint,
    /// Send this line instead of reading stdin (repeatable). A command's
    /// arguments are lines of their own: `--send ADDWORD --send g --send w
    /// --send DICEND`.
    #[arg(long, value_name = "LINE")]
    pub send: Vec<String>,
    /// After the last line, keep printing what arrives for this long before
    /// half-closing (scripted use).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub linger: f64,
    /// Give up if the server sends nothing for this long.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
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
                if a.reply == ReplyPath::Callback {
                    if !is_tcp(&a.addr.endpoint()) {
                        return Err("--reply callback calls back over TCP: use a tcp: address \
                                    (a Unix socket has no peer IP to call)"
                            .into());
                    }
                    if a.mode == Mode::Poll {
                        return Err("--reply callback connects (and blocks) once per reply, \
                                    which would stall every client of the readiness loop: \
                                    use --mode single, sequential or threaded"
                            .into());
                    }
                }
            }
            Command::Client(a) => {
                check_timeout(a.timeout)?;
                if a.reply == ReplyPath::Callback && !is_tcp(&a.addr.endpoint()) {
                    return Err("--reply callback calls back over TCP: use a tcp: address".into());
                }
            }
            Command::ModuleServer(a) => {
                if let Some(w) = a
                    .words
                    .iter()
                    .find(|w| crate::module::check_word(w).is_err())
                {
                    return Err(format!(
                        "--words: {w:?} is not a word (letters, digits, '-' and '_')"
                    ));
                }
            }
            Command::ModuleClient(a) => {
                check_timeout(a.timeout)?;
                if !(a.linger >= 0.0 && a.linger.is_finite()) {
                    return Err("--linger must be zero or a positive number of seconds".into());
                }
            }
            Command::Bench(BenchCommand::Server(a)) => check_bench_addr(&a.addr, a.max_seconds)?,
            Command::Bench(BenchCommand::Client(a)) => check_bench_addr(&a.addr, a.max_seconds)?,
        }
        Ok(())
    }
}

fn check_timeout(timeout: Option<f64>) -> Result<(), String> {
    if timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        return Err("--timeout must be a positive number of seconds".into());
    }
    Ok(())
}

fn is_tcp(endpoint: &Endpoint) -> bool {
    matches!(endpoint, Endpoint::Tcp { .. })
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
