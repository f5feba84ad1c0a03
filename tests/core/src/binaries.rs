//! Where `bitcoind` and `bitcoin-cli` are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Environment variable naming a `bitcoind` to use instead of the built one.
pub const BITCOIND_ENV: &str = "BITCOIND";
/// Environment variable naming a `bitcoin-cli` to use instead of the built one.
pub const BITCOIN_CLI_ENV: &str = "BITCOIN_CLI";

/// The two Core programs the harness runs.
#[derive(Debug, Clone)]
pub struct CoreBinaries {
    /// The node.
    pub bitcoind: PathBuf,
    /// Its RPC client.
    pub bitcoin_cli: PathBuf,
}

impl CoreBinaries {
    /// `BITCOIND`/`BITCOIN_CLI` if set, else what `tests/core/build` has
    /// cached on this machine (it is asked with `--find`, so the cache key
    /// lives in one place). Fails, saying how to build Core, when neither
    /// exists.
    pub fn find() -> Result<CoreBinaries> {
        let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        let (bitcoind, bitcoin_cli) = match (from_env(BITCOIND_ENV), from_env(BITCOIN_CLI_ENV)) {
            (Some(d), Some(c)) => (d, c),
            (d, c) => {
                let dir = cached_dir()?;
                (
                    d.unwrap_or_else(|| dir.join("bitcoind")),
                    c.unwrap_or_else(|| dir.join("bitcoin-cli")),
                )
            }
        };
        for program in [&bitcoind, &bitcoin_cli] {
            if !is_executable(program) {
                bail!(
                    "{} is not an executable file (set {BITCOIND_ENV}/{BITCOIN_CLI_ENV}, or run `bash tests/core/build`)",
                    program.display()
                );
            }
        }
        Ok(CoreBinaries {
            bitcoind,
            bitcoin_cli,
        })
    }

    /// `bitcoind -version`'s first line, e.g. `Bitcoin Core daemon version v31.99.0`.
    pub fn version(&self) -> Result<String> {
        let out = Command::new(&self.bitcoind).arg("-version").output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }
}

/// The build script's cache directory for this crate version and flag set.
fn cached_dir() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--find")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text.lines().last().unwrap_or_default().trim();
    Ok(PathBuf::from(dir))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a test that needs Bitcoin Core can run: the binaries, or `None`
/// after a loud skip message. In CI (`CI=true`) a missing Core panics, so
/// the test fails instead of passing unseen.
pub fn core_required(test: &str) -> Option<CoreBinaries> {
    let found = CoreBinaries::find();
    let status = found
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    if nightjar_privnet::required(test, "Bitcoin Core (bitcoind, bitcoin-cli)", status) {
        found.ok()
    } else {
        None
    }
}
