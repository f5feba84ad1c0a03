//! `nightjar-cli`: the command-line client of a running nightjar daemon,
//! speaking `bitcoin-cli`'s language so scripts and habits carry over:
//!
//! ```text
//! nightjar-cli [options] <method> [params...]
//! nightjar-cli [options] -named <method> [name=value...]
//! ```
//!
//! Options are single-dash, `-name=value`, and come before the method (as
//! in `bitcoin-cli`, everything after the method is a parameter, so `-1` is
//! a number there). `--name` is the same as `-name`, `-noname` turns a
//! switch off.
//!
//! Parameters: `bitcoin-cli` knows from a table which parameters of which
//! method are JSON; nightjar-cli has no table and instead reads each
//! parameter as JSON if it parses (numbers, `true`, `null`, `[...]`,
//! `{...}`, `"quoted"`), and as a plain string otherwise. So `getblockhash
//! 0` sends a number and `addnode host.onion add` sends strings; to send
//! text that looks like JSON as a string (say the label `true` or an
//! all-digit value), quote it as JSON: `'"true"'`.
//!
//! Output and exit status are `bitcoin-cli`'s: a string result is printed
//! raw, `null` prints nothing, anything else as JSON indented by two
//! spaces; an RPC error goes to stderr as `error code: …` / `error
//! message:` / the message, with exit status |code| (truncated to 8 bits by
//! the operating system, as for `bitcoin-cli`; we use 1 where that would
//! give 0), and every other failure as `error: …` with exit status 1.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bitcoin::Network;
use nightjar::paths::DataPaths;
use nightjar::rpc::client::{ClientError, RpcClient};
use nightjar::rpc::codes;
use nightjar::rpc::cookie::read_cookie;
use nightjar::rpc::default_rpc_port;
use serde_json::{Map, Value};

/// Where the daemon is looked for without `-rpcconnect`.
const DEFAULT_RPCCONNECT: &str = "127.0.0.1";

/// `-rpcwait` gives up after this long without `-rpcwaittimeout` (Core
/// waits forever by default; a script stuck forever on a typo in `-chain`
/// helps nobody).
const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 60;

/// Time limit of one call (Core's `-rpcclienttimeout` default).
const DEFAULT_CLIENT_TIMEOUT_SECS: u64 = 900;

/// Pause between `-rpcwait` attempts (Core's too).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The command-line options.
#[derive(Debug, Default)]
struct Options {
    datadir: Option<PathBuf>,
    chain: Option<String>,
    regtest: bool,
    testnet: bool,
    testnet4: bool,
    signet: bool,
    rpcconnect: Option<String>,
    rpcport: Option<String>,
    rpccookiefile: Option<PathBuf>,
    rpcuser: Option<String>,
    rpcpassword: Option<String>,
    named: bool,
    rpcwait: bool,
    rpcwaittimeout: Option<String>,
    rpcclienttimeout: Option<String>,
    stdin: bool,
    stdinrpcpass: bool,
    help: bool,
    version: bool,
}

/// How an option takes its value.
#[derive(Clone, Copy)]
enum Kind {
    /// A switch: `-x`, `-x=1`, `-x=0`, `-nox`.
    Flag,
    /// `-x=value`.
    Value,
}

/// Every option: name, kind, help text (`None`: not listed in `-help`).
const OPTIONS: &[(&str, Kind, Option<&str>)] = &[
    (
        "chain",
        Kind::Value,
        Some(
            "-chain=<chain>        Use the chain <chain>: main, test, testnet4, signet or regtest",
        ),
    ),
    (
        "regtest",
        Kind::Flag,
        Some("-regtest              Use the regression test chain (same as -chain=regtest)"),
    ),
    (
        "testnet4",
        Kind::Flag,
        Some("-testnet4             Use testnet4 (same as -chain=testnet4)"),
    ),
    (
        "signet",
        Kind::Flag,
        Some("-signet               Use signet (same as -chain=signet)"),
    ),
    (
        "testnet",
        Kind::Flag,
        Some("-testnet              Use testnet3 (same as -chain=test)"),
    ),
    (
        "datadir",
        Kind::Value,
        Some("-datadir=<dir>        The daemon's data directory (default: the platform's)"),
    ),
    (
        "rpcconnect",
        Kind::Value,
        Some("-rpcconnect=<ip>      Send commands to the node at <ip>[:port] (default: 127.0.0.1)"),
    ),
    (
        "rpcport",
        Kind::Value,
        Some(
            "-rpcport=<port>       Connect to JSON-RPC on <port> (default: 8332, testnet: 18332, testnet4: 48332, signet: 38332, regtest: 18443)",
        ),
    ),
    (
        "rpccookiefile",
        Kind::Value,
        Some(
            "-rpccookiefile=<loc>  Location of the auth cookie (default: <chain data directory>/.cookie; relative paths are taken from there)",
        ),
    ),
    (
        "rpcuser",
        Kind::Value,
        Some("-rpcuser=<user>       Username for JSON-RPC connections"),
    ),
    (
        "rpcpassword",
        Kind::Value,
        Some("-rpcpassword=<pw>     Password for JSON-RPC connections (instead of the cookie)"),
    ),
    (
        "stdinrpcpass",
        Kind::Flag,
        Some("-stdinrpcpass         Read the RPC password from the first line of standard input"),
    ),
    (
        "named",
        Kind::Flag,
        Some("-named                Pass named instead of positional arguments (name=value)"),
    ),
    (
        "stdin",
        Kind::Flag,
        Some("-stdin                Read extra arguments from standard input, one per line"),
    ),
    (
        "rpcwait",
        Kind::Flag,
        Some("-rpcwait              Wait for the RPC server to start"),
    ),
    (
        "rpcwaittimeout",
        Kind::Value,
        Some("-rpcwaittimeout=<n>   Give up waiting after <n> seconds, 0 for never (default: 60)"),
    ),
    (
        "rpcclienttimeout",
        Kind::Value,
        Some("-rpcclienttimeout=<n> Timeout in seconds for one call, 0 for none (default: 900)"),
    ),
    (
        "version",
        Kind::Flag,
        Some("-version              Print version and exit"),
    ),
    (
        "help",
        Kind::Flag,
        Some("-help, -h, -?          Print this help message and exit"),
    ),
    ("h", Kind::Flag, None),
    ("?", Kind::Flag, None),
];

/// Applies one parsed option: `flag` is the state of a switch, `value`
/// the text of an option that takes one.
fn set_option(options: &mut Options, name: &str, flag: bool, value: Option<String>) {
    match name {
        "chain" => options.chain = value,
        "regtest" => options.regtest = flag,
        "testnet4" => options.testnet4 = flag,
        "signet" => options.signet = flag,
        "testnet" => options.testnet = flag,
        "datadir" => options.datadir = value.map(PathBuf::from),
        "rpcconnect" => options.rpcconnect = value,
        "rpcport" => options.rpcport = value,
        "rpccookiefile" => options.rpccookiefile = value.map(PathBuf::from),
        "rpcuser" => options.rpcuser = value,
        "rpcpassword" => options.rpcpassword = value,
        "stdinrpcpass" => options.stdinrpcpass = flag,
        "named" => options.named = flag,
        "stdin" => options.stdin = flag,
        "rpcwait" => options.rpcwait = flag,
        "rpcwaittimeout" => options.rpcwaittimeout = value,
        "rpcclienttimeout" => options.rpcclienttimeout = value,
        "version" => options.version = flag,
        "help" | "h" | "?" => options.help |= flag,
        _ => {}
    }
}

/// Core's reading of a switch value: empty is true, else a number ≠ 0.
fn flag_value(text: Option<&str>) -> bool {
    match text {
        None => true,
        Some(t) if t.trim().is_empty() => true,
        Some(t) => t.trim().parse::<i64>().is_ok_and(|n| n != 0),
    }
}

/// Splits the command line into options and the words after them (the
/// method and its parameters).
fn parse_args(args: &[String]) -> Result<(Options, Vec<String>), String> {
    let mut options = Options::default();
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            break;
        };
        if body.is_empty() {
            return Err(format!("Invalid parameter {arg}"));
        }
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        // `-noX` turns the switch X off (and `-noX=0` on, as in Core).
        let (name, kind, negated) = match lookup(name) {
            Some(kind) => (name, kind, false),
            None => match name.strip_prefix("no").map(|n| (n, lookup(n))) {
                Some((n, Some(Kind::Flag))) => (n, Kind::Flag, true),
                _ => return Err(format!("Invalid parameter -{name}")),
            },
        };
        match (kind, value) {
            (Kind::Flag, _) => set_option(&mut options, name, flag_value(value) != negated, None),
            (Kind::Value, Some(value)) => {
                set_option(&mut options, name, false, Some(value.to_owned()))
            }
            (Kind::Value, None) => return Err(format!("-{name} needs a value: -{name}=<value>")),
        }
        index += 1;
    }
    Ok((options, args.get(index..).unwrap_or_default().to_vec()))
}

/// The kind of a known option.
fn lookup(name: &str) -> Option<Kind> {
    OPTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, _)| *kind)
}

/// The chain the options select (at most one way of selecting it).
fn network(options: &Options) -> Result<Network, String> {
    let mut chosen = Vec::new();
    if let Some(chain) = &options.chain {
        chosen.push(match chain.as_str() {
            "main" => Network::Bitcoin,
            "test" => Network::Testnet,
            "testnet4" => Network::Testnet4,
            "signet" => Network::Signet,
            "regtest" => Network::Regtest,
            other => {
                return Err(format!(
                    "Unknown chain {other}. Use one of main, test, testnet4, signet, regtest."
                ));
            }
        });
    }
    for (set, net) in [
        (options.regtest, Network::Regtest),
        (options.testnet, Network::Testnet),
        (options.testnet4, Network::Testnet4),
        (options.signet, Network::Signet),
    ] {
        if set {
            chosen.push(net);
        }
    }
    match chosen.as_slice() {
        [] => Ok(Network::Bitcoin),
        [one] => Ok(*one),
        _ => Err(
            "Invalid combination of -regtest, -signet, -testnet, -testnet4 and -chain. Can use at most one."
                .to_owned(),
        ),
    }
}

/// Core's name of a chain.
fn chain_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "main",
        Network::Testnet => "test",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// `host:port` to connect to: `-rpcconnect` may carry a port, `-rpcport`
/// overrides it, the chain's default port otherwise.
fn server_address(options: &Options, network: Network) -> Result<String, String> {
    let connect = options.rpcconnect.as_deref().unwrap_or(DEFAULT_RPCCONNECT);
    let (host, port_in_host) = split_host_port(connect)?;
    let port = match &options.rpcport {
        Some(text) => {
            parse_port(text).ok_or_else(|| format!("Invalid port provided in -rpcport: {text}"))?
        }
        None => port_in_host.unwrap_or_else(|| default_rpc_port(network)),
    };
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// A port number 1–65535.
fn parse_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let invalid = || format!("Invalid -rpcconnect value: {text}");
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        return match after {
            "" => Ok((host.to_owned(), None)),
            _ => {
                let port = after
                    .strip_prefix(':')
                    .and_then(parse_port)
                    .ok_or_else(invalid)?;
                Ok((host.to_owned(), Some(port)))
            }
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => {
            let port = parse_port(port).ok_or_else(invalid)?;
            Ok((host.to_owned(), Some(port)))
        }
        _ if text.is_empty() => Err(invalid()),
        _ => Ok((text.to_owned(), None)),
    }
}

/// The cookie file: `-rpccookiefile` (relative to the chain's data
/// directory), or `.cookie` there.
fn cookie_path(options: &Options, network: Network) -> Result<PathBuf, String> {
    if let Some(path) = &options.rpccookiefile
        && path.is_absolute()
    {
        return Ok(path.clone());
    }
    let chain_dir = match &options.datadir {
        Some(datadir) => DataPaths::under(datadir, network).chain_dir,
        None => DataPaths::platform_default(network)
            .map(|paths| paths.chain_dir)
            .ok_or_else(|| {
                "Could not find the data directory (no home directory); use -datadir, -rpccookiefile or -rpcuser/-rpcpassword".to_owned()
            })?,
    };
    Ok(match &options.rpccookiefile {
        Some(relative) => chain_dir.join(relative),
        None => chain_dir.join(".cookie"),
    })
}

/// Parameters that are always strings, by method, position and name:
/// hex that may happen to look like a JSON number (a txid of digits only)
/// must reach the server as written. bitcoin-cli keeps the opposite list
/// (the parameters it converts); with this one, everything else is JSON if
/// it parses, as before.
const STRING_PARAMS: &[(&str, usize, &str)] = &[
    ("sendrawtransaction", 0, "hexstring"),
    ("abortprivatebroadcast", 0, "id"),
    ("addpeeraddress", 0, "address"),
    ("getblockheader", 0, "blockhash"),
];

/// One parameter: JSON if it parses, a string otherwise (or always a
/// string, for [`STRING_PARAMS`]).
fn convert(text: &str, always_string: bool) -> Value {
    if always_string {
        return Value::String(text.to_owned());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The `params` member for the words after `method`.
fn build_params(method: &str, named: bool, words: &[String]) -> Result<Value, String> {
    let by_position = |i: usize| {
        STRING_PARAMS
            .iter()
            .any(|(m, p, _)| *m == method && *p == i)
    };
    let by_name = |n: &str| {
        STRING_PARAMS
            .iter()
            .any(|(m, _, p)| *m == method && *p == n)
    };
    if !named {
        return Ok(Value::Array(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| convert(w, by_position(i)))
                .collect(),
        ));
    }
    let mut map = Map::new();
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "No '=' in named argument '{word}', this needs to be present for every argument (even if it is empty)"
            ));
        };
        if map
            .insert(name.to_owned(), convert(value, by_name(name)))
            .is_some()
        {
            return Err(format!("Parameter {name} specified multiple times"));
        }
    }
    Ok(Value::Object(map))
}

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    /// The server's RPC error.
    Rpc { code: i64, message: String },
    /// Anything else, with whether `-rpcwait` should try again.
    Other { message: String, transient: bool },
}

impl Failure {
    fn fatal(message: impl Into<String>) -> Self {
        Failure::Other {
            message: message.into(),
            transient: false,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        Failure::Other {
            message: message.into(),
            transient: true,
        }
    }
}

/// Where the credentials came from, to explain a refusal.
enum Credentials {
    /// `-rpcuser`/`-rpcpassword`.
    Password,
    /// The cookie file at this path.
    Cookie(PathBuf),
    /// No cookie file at this path (so we sent empty credentials).
    MissingCookie(PathBuf),
}

/// The resolved settings of a call.
struct Target {
    network: Network,
    addr: String,
    options: Options,
    client_timeout: Option<Duration>,
}

/// One attempt at the call.
async fn attempt(target: &Target, method: &str, params: Value) -> Result<Value, Failure> {
    let options = &target.options;
    let (user, password, credentials) =
        match options.rpcpassword.as_deref().filter(|p| !p.is_empty()) {
            Some(password) => (
                options.rpcuser.clone().unwrap_or_default(),
                password.to_owned(),
                Credentials::Password,
            ),
            None => {
                let path = cookie_path(options, target.network).map_err(Failure::fatal)?;
                match read_cookie(&path) {
                    Ok((user, password)) => (user, password, Credentials::Cookie(path)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => (
                        String::new(),
                        String::new(),
                        Credentials::MissingCookie(path),
                    ),
                    Err(e) => return Err(Failure::fatal(unreadable_cookie(&path, &e))),
                }
            }
        };
    let client = RpcClient::new(&target.addr, &user, &password).with_timeout(target.client_timeout);
    let outcome = client.call(method, params.clone()).await;
    if matches!(outcome, Err(ClientError::Unauthorized))
        && let Credentials::Cookie(path) = &credentials
        && let Ok((new_user, new_password)) = read_cookie(path)
        && (new_user.as_str(), new_password.as_str()) != (user.as_str(), password.as_str())
    {
        // A daemon restarting after a crash replaces the cookie it left
        // behind just before it answers; we read the old one a moment too
        // early. The file has changed since, so one more try with it.
        let client = RpcClient::new(&target.addr, &new_user, &new_password)
            .with_timeout(target.client_timeout);
        return client
            .call(method, params)
            .await
            .map_err(|e| explain(e, target, &credentials));
    }
    outcome.map_err(|e| explain(e, target, &credentials))
}

/// The message for a cookie file that exists but cannot be used.
fn unreadable_cookie(path: &Path, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "Could not read the RPC cookie file {}: permission denied. The daemon probably runs as another user: run nightjar-cli as that user (or as a member of its group), or use -rpcuser/-rpcpassword.",
            path.display()
        ),
        _ => format!(
            "Could not read the RPC cookie file {}: {e}. Is the daemon running with this -datadir and -chain? Use -rpccookiefile to name the right file.",
            path.display()
        ),
    }
}

/// Turns a client error into what the user is told.
fn explain(error: ClientError, target: &Target, credentials: &Credentials) -> Failure {
    let addr = &target.addr;
    match error {
        ClientError::Connect { source, .. } => {
            let mut message = format!(
                "Could not connect to the server {addr} ({source})\n\nMake sure the nightjar daemon is running and that nightjar-cli uses the same chain (here -chain={}) and -datadir, or the right -rpcport.",
                chain_name(target.network)
            );
            if let Credentials::MissingCookie(path) = credentials {
                message.push_str(&format!(
                    "\nThere is no RPC cookie at {} either, which also suggests the daemon is not running with this -datadir and -chain.",
                    path.display()
                ));
            }
            message.push_str("\nUse \"nightjar-cli -help\" for more info.");
            Failure::transient(message)
        }
        ClientError::Unauthorized => match credentials {
            Credentials::Password => {
                Failure::fatal("Authorization failed: Incorrect rpcuser or rpcpassword")
            }
            Credentials::Cookie(path) => Failure::fatal(format!(
                "Authorization failed: the server at {addr} did not accept the cookie in {}. The file may be left from an earlier run, or that server is another daemon (check -chain, -datadir and -rpcport).",
                path.display()
            )),
            // The daemon may be up but not yet have written its cookie, so
            // `-rpcwait` keeps trying.
            Credentials::MissingCookie(path) => Failure::transient(format!(
                "Could not locate RPC credentials. No authentication cookie could be found at {}, and -rpcpassword is not set. Is the daemon running with this -datadir and -chain (or with another rpccookiefile)?",
                path.display()
            )),
        },
        ClientError::Rpc(e) => Failure::Rpc {
            code: e.code,
            message: e.message,
        },
        ClientError::Http { status: 503, body } => {
            Failure::fatal(format!("Server response: {body}"))
        }
        ClientError::Http { status, .. } => {
            Failure::fatal(format!("server returned HTTP error {status}"))
        }
        ClientError::Transport(message) => Failure::transient(format!(
            "the connection to the server {addr} failed: {message}"
        )),
        ClientError::Timeout(limit) => Failure::fatal(format!(
            "no reply from the server {addr} within {} s (see -rpcclienttimeout)",
            limit.as_secs()
        )),
        ClientError::Malformed(message) => Failure::fatal(message),
    }
}

/// Whether and how long to wait for the server (`-rpcwait`).
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Fail at once.
    No,
    /// Retry until it works (`-rpcwaittimeout=0`).
    Forever,
    /// Retry for this long.
    Until(Duration),
}

/// Calls, retrying under `-rpcwait` while the failure is one a starting
/// daemon causes: nothing listening yet, no cookie yet, or warming up.
async fn call_with_wait(
    target: &Target,
    method: &str,
    params: Value,
    wait: Wait,
) -> Result<Value, Failure> {
    let started = Instant::now();
    loop {
        let outcome = attempt(target, method, params.clone()).await;
        let transient = match &outcome {
            Ok(_) => false,
            Err(Failure::Other { transient, .. }) => *transient,
            Err(Failure::Rpc { code, .. }) => *code == codes::IN_WARMUP,
        };
        let limit = match wait {
            _ if !transient => return outcome,
            Wait::No => return outcome,
            Wait::Forever => None,
            Wait::Until(limit) => Some(limit),
        };
        if let Some(limit) = limit
            && started.elapsed() >= limit
        {
            let message = match outcome {
                Err(Failure::Other { message, .. } | Failure::Rpc { message, .. }) => message,
                Ok(_) => String::new(),
            };
            return Err(Failure::fatal(format!(
                "timeout on transient error: {message}"
            )));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// A duration option in seconds; 0 means none.
fn seconds(name: &str, text: Option<&str>, default: u64) -> Result<Option<Duration>, String> {
    let secs = match text {
        None => default,
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("Invalid value for -{name}: {t} (seconds expected)"))?,
    };
    Ok((secs > 0).then_some(Duration::from_secs(secs)))
}

/// Writes to stdout, ignoring failures (a closed pipe is the reader's
/// choice, and there is nowhere left to report it).
fn out(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes to stderr, ignoring failures.
fn err(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// `error: <message>` on stderr, exit status 1.
fn fail(message: &str) -> ExitCode {
    err(&format!("error: {message}\n"));
    ExitCode::FAILURE
}

/// The usage text.
fn usage() -> String {
    let mut text = format!(
        "nightjar RPC client version v{}\n\nUsage:\n  nightjar-cli [options] <command> [params]  Send command to nightjar\n  nightjar-cli [options] -named <command> [name=value]...  Send command to nightjar (with named arguments)\n  nightjar-cli [options] help                List commands\n  nightjar-cli [options] help <command>      Get help for a command\n\nParameters are read as JSON where they parse as JSON, as strings otherwise;\nquote a string that looks like JSON: '\"true\"'.\n\nOptions:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (_, _, help) in OPTIONS {
        if let Some(help) = help {
            text.push_str("  ");
            text.push_str(help);
            text.push('\n');
        }
    }
    text
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                err(&format!(
                    "Error parsing command line arguments: not UTF-8: {arg:?}\n"
                ));
                return ExitCode::FAILURE;
            }
        }
    }
    run(&args)
}

/// The whole command.
fn run(args: &[String]) -> ExitCode {
    let (options, mut words) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            err(&format!(
                "Error parsing command line arguments: {message}\n"
            ));
            return ExitCode::FAILURE;
        }
    };
    if options.version {
        out(&format!(
            "nightjar RPC client version v{}\n",
            env!("CARGO_PKG_VERSION")
        ));
        return ExitCode::SUCCESS;
    }
    if options.help || args.is_empty() {
        out(&usage());
        if args.is_empty() {
            err("Error: too few parameters\n");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let network = match network(&options) {
        Ok(network) => network,
        Err(message) => {
            err(&format!("Error: {message}\n"));
            return ExitCode::FAILURE;
        }
    };
    if let Some(datadir) = &options.datadir
        && !datadir.is_dir()
    {
        err(&format!(
            "Error: Specified data directory \"{}\" does not exist.\n",
            datadir.display()
        ));
        return ExitCode::FAILURE;
    }
    let addr = match server_address(&options, network) {
        Ok(addr) => addr,
        Err(message) => return fail(&message),
    };
    let wait = if options.rpcwait {
        match seconds(
            "rpcwaittimeout",
            options.rpcwaittimeout.as_deref(),
            DEFAULT_WAIT_TIMEOUT_SECS,
        ) {
            Ok(Some(limit)) => Wait::Until(limit),
            Ok(None) => Wait::Forever,
            Err(message) => return fail(&message),
        }
    } else {
        Wait::No
    };
    let client_timeout = match seconds(
        "rpcclienttimeout",
        options.rpcclienttimeout.as_deref(),
        DEFAULT_CLIENT_TIMEOUT_SECS,
    ) {
        Ok(limit) => limit,
        Err(message) => return fail(&message),
    };

    let mut options = options;
    if options.stdinrpcpass || options.stdin {
        let stdin = io::stdin();
        let mut lines = stdin.lock().lines();
        if options.stdinrpcpass {
            match lines.next() {
                Some(Ok(line)) => options.rpcpassword = Some(line),
                Some(Err(e)) => return fail(&format!("could not read standard input: {e}")),
                None => {
                    return fail("-stdinrpcpass specified but failed to read from standard input");
                }
            }
        }
        if options.stdin {
            for line in lines {
                match line {
                    Ok(line) => words.push(line),
                    Err(e) => return fail(&format!("could not read standard input: {e}")),
                }
            }
        }
    }
    let Some((method, rest)) = words.split_first() else {
        return fail("too few parameters (need at least command)");
    };
    let params = match build_params(method, options.named, rest) {
        Ok(params) => params,
        Err(message) => return fail(&message),
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("could not start: {e}")),
    };
    let target = Target {
        network,
        addr,
        options,
        client_timeout,
    };
    match runtime.block_on(call_with_wait(&target, method, params, wait)) {
        Ok(Value::Null) => ExitCode::SUCCESS,
        Ok(Value::String(text)) => {
            out(&format!("{text}\n"));
            ExitCode::SUCCESS
        }
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
            out(&format!("{text}\n"));
            ExitCode::SUCCESS
        }
        Err(Failure::Rpc { code, message }) => {
            err(&format!("error code: {code}\nerror message:\n{message}\n"));
            ExitCode::from(rpc_exit_status(code))
        }
        Err(Failure::Other { message, .. }) => fail(&message),
    }
}

/// `bitcoin-cli` exits with |code| of an RPC error, which the operating
/// system truncates to 8 bits (-32601 gives 89); 1 where that would be 0,
/// so a failure never looks like success.
fn rpc_exit_status(code: i64) -> u8 {
    match u8::try_from(code.unsigned_abs() % 256) {
        Ok(0) | Err(_) => 1,
        Ok(status) => status,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_stop_at_the_method() {
        let (options, words) = parse_args(&strings(&[
            "-regtest",
            "--rpcport=1234",
            "-norpcwait",
            "getblockhash",
            "-1",
            "-named",
        ]))
        .unwrap();
        assert!(options.regtest);
        assert!(!options.rpcwait);
        assert!(!options.named, "options after the method are parameters");
        assert_eq!(options.rpcport.as_deref(), Some("1234"));
        assert_eq!(words, strings(&["getblockhash", "-1", "-named"]));
        assert!(
            parse_args(&strings(&["-bogus", "x"]))
                .unwrap_err()
                .contains("Invalid parameter -bogus")
        );
        assert!(parse_args(&strings(&["-datadir", "x"])).is_err());
        let (options, _) = parse_args(&strings(&["-regtest=0", "-named=1"])).unwrap();
        assert!(!options.regtest && options.named);
    }

    #[test]
    fn chain_options_conflict_like_core() {
        let (o, _) = parse_args(&strings(&["-chain=signet"])).unwrap();
        assert_eq!(network(&o).unwrap(), Network::Signet);
        let (o, _) = parse_args(&strings(&["-chain=regtest", "-testnet4"])).unwrap();
        assert!(network(&o).unwrap_err().contains("Can use at most one"));
        let (o, _) = parse_args(&strings(&["-chain=mars"])).unwrap();
        assert!(network(&o).is_err());
        assert_eq!(network(&Options::default()).unwrap(), Network::Bitcoin);
    }

    #[test]
    fn addresses_combine_rpcconnect_and_rpcport() {
        let mut o = Options::default();
        assert_eq!(
            server_address(&o, Network::Regtest).unwrap(),
            "127.0.0.1:18443"
        );
        o.rpcconnect = Some("[::1]:9000".to_owned());
        assert_eq!(server_address(&o, Network::Regtest).unwrap(), "[::1]:9000");
        o.rpcport = Some("9001".to_owned());
        assert_eq!(server_address(&o, Network::Regtest).unwrap(), "[::1]:9001");
        o.rpcconnect = Some("::1".to_owned());
        assert_eq!(server_address(&o, Network::Regtest).unwrap(), "[::1]:9001");
        o.rpcconnect = Some("node.local".to_owned());
        o.rpcport = None;
        assert_eq!(
            server_address(&o, Network::Signet).unwrap(),
            "node.local:38332"
        );
        o.rpcport = Some("0".to_owned());
        assert!(server_address(&o, Network::Signet).is_err());
    }

    #[test]
    fn parameters_are_json_when_they_parse() {
        let params = build_params(
            "help",
            false,
            &strings(&["1", "abc", "[1,2]", "true", "\"true\"", ""]),
        )
        .unwrap();
        assert_eq!(
            params,
            serde_json::json!([1, "abc", [1, 2], true, "true", ""])
        );
        let named = build_params("help", true, &strings(&["a=1", "b=x=y", "c="])).unwrap();
        assert_eq!(named, serde_json::json!({"a": 1, "b": "x=y", "c": ""}));
        assert!(build_params("help", true, &strings(&["a"])).is_err());
        assert!(build_params("help", true, &strings(&["a=1", "a=2"])).is_err());
        // A txid of digits stays a string; the other parameters convert.
        let digits = "1".repeat(64);
        assert_eq!(
            build_params("abortprivatebroadcast", false, &strings(&[&digits])).unwrap(),
            serde_json::json!([digits])
        );
        assert_eq!(
            build_params(
                "sendrawtransaction",
                true,
                &strings(&["hexstring=0200", "maxfeerate=0.1"])
            )
            .unwrap(),
            serde_json::json!({"hexstring": "0200", "maxfeerate": 0.1})
        );
    }

    #[test]
    fn exit_status_is_bitcoin_clis() {
        assert_eq!(rpc_exit_status(-8), 8);
        assert_eq!(rpc_exit_status(-1), 1);
        assert_eq!(rpc_exit_status(codes::METHOD_NOT_FOUND), 89);
        assert_eq!(rpc_exit_status(-256), 1);
    }

    #[test]
    fn relative_cookie_files_live_in_the_chain_directory() {
        let mut o = Options {
            datadir: Some(PathBuf::from("/data")),
            ..Options::default()
        };
        assert_eq!(
            cookie_path(&o, Network::Regtest).unwrap(),
            PathBuf::from("/data/regtest/.cookie")
        );
        o.rpccookiefile = Some(PathBuf::from("auth"));
        assert_eq!(
            cookie_path(&o, Network::Regtest).unwrap(),
            PathBuf::from("/data/regtest/auth")
        );
        o.rpccookiefile = Some(PathBuf::from("/etc/c"));
        assert_eq!(
            cookie_path(&o, Network::Bitcoin).unwrap(),
            PathBuf::from("/etc/c")
        );
    }
}
