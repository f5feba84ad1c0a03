//! `nightjar-cli`: the command-line client of a running nightjar daemon.
//!
//! It will speak bitcoin-cli's language (`nightjar-cli [-datadir=…] METHOD
//! ARGS…`) once the daemon serves JSON-RPC; until then it says so plainly
//! instead of pretending.

use std::process::ExitCode;

use clap::Parser;

/// Command-line client for the nightjar daemon.
#[derive(Debug, Parser)]
#[command(name = "nightjar-cli", version, about)]
struct Args {
    /// The RPC method to call, then its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    call: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let method = args.call.first().map_or("(none)", String::as_str);
    #[allow(clippy::print_stderr)]
    {
        eprintln!("nightjar-cli: cannot call {method}: this nightjar build has no RPC server yet");
    }
    ExitCode::FAILURE
}
