//! `nightjar`: the Tor-first Bitcoin node daemon.
//!
//! `nightjar [OPTIONS]` runs the node; `nightjar check-config` and
//! `nightjar print-config` only read the configuration. The configuration
//! is resolved completely (file, command line, `--privacy` contradictions,
//! directories) before anything starts, so a bad option never leaves a
//! half-started Tor client behind.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use nightjar::config::{self, Cli, Command, Config, Environment};
use nightjar::daemon;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli.options, &Environment::process()) {
        Ok(c) => c,
        // Logging is not set up yet (its settings are part of what failed),
        // so the one message goes straight to stderr.
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            let mut err = std::io::stderr();
            for w in &config.warnings {
                let _ = writeln!(err, "warning: {w}");
            }
            output(&format!("configuration OK: {}\n", config.describe_file()))
        }
        Some(Command::PrintConfig) => output(&config.to_toml()),
        None => run(&config),
    }
}

/// Write a subcommand's result to stdout. A closed pipe (`| head`) is an
/// error exit, not the panic `print!` would give.
fn output(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Run the node until SIGINT or SIGTERM.
fn run(config: &Config) -> ExitCode {
    // Held until main returns: with sensitive logging on, dropping it would
    // turn redaction back on mid-run.
    let _log_guard = nightjar::logging::init(&config.log_settings());
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        config = %config.describe_file(),
        datadir = %config.dirs.datadir.display(),
        datadir_from = config.dirs.origin.describe(),
        "configuration loaded"
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(daemon::run(config.daemon_options()));
    runtime.shutdown_timeout(daemon::SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Said already, as it happened; the status tells systemd not to
        // restart into the same refusal.
        Err(e) if e.is::<nightjar::tor_obsolete::TorObsolete>() => {
            ExitCode::from(nightjar::tor_obsolete::EXIT_STATUS)
        }
        Err(e) => {
            tracing::error!("{}", nightjar::error_text::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
