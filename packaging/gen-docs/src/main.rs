//! `nightjar-gen-docs OUT_DIR [NIGHTJAR_CLI]`: writes the files packages
//! ship that are derived from the code, so they cannot drift from it:
//!
//! - `man/nightjar.8` and the bash/zsh/fish completions of `nightjar`, from
//!   the clap definition the daemon itself parses with
//!   ([`nightjar::config::Cli`]);
//! - `man/nightjar-cli.1` and its completions, from the binary's own
//!   `nightjar-cli -help` text (nightjar-cli parses bitcoin-cli style
//!   single-dash options by hand, so it has no clap definition) and from the
//!   RPC method table [`nightjar::rpc::methods::METHODS`];
//! - `nightjar.toml`, the packaged `/etc/nightjar/nightjar.toml`:
//!   `config/nightjar.toml` with every setting commented out, because the
//!   system unit runs `--privacy` and the shipped example sets every key
//!   explicitly (which the preset would reject as a contradiction). The
//!   result is checked here against `--privacy` before it is written.
//!
//! `NIGHTJAR_CLI` defaults to the `nightjar-cli` next to this executable
//! (both are built by the same `cargo build --release`). The output depends
//! only on the sources, never on the time or the machine.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use nightjar::config::{self, Cli, Environment};
use nightjar::paths::{
    CACHE_DIRECTORY, CONFIG_FILE_NAME, CONFIGURATION_DIRECTORY, STATE_DIRECTORY,
};
use nightjar::rpc::methods::METHODS;
use roff::{Roff, bold, italic, roman};

/// The example configuration the packaged one is derived from.
const EXAMPLE_CONFIG: &str = include_str!("../../../config/nightjar.toml");

/// Where the system unit keeps its files (StateDirectory=, CacheDirectory=,
/// ConfigurationDirectory= of packaging/systemd/nightjar.service).
const SYSTEM_STATE: &str = "/var/lib/nightjar";
const SYSTEM_CACHE: &str = "/var/cache/nightjar";
const SYSTEM_CONFIG: &str = "/etc/nightjar";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (out, cli_bin) = match args.as_slice() {
        [out] => (PathBuf::from(out), None),
        [out, cli] => (PathBuf::from(out), Some(PathBuf::from(cli))),
        _ => {
            let _ = writeln!(
                io::stderr(),
                "usage: nightjar-gen-docs OUT_DIR [PATH_TO_NIGHTJAR_CLI]"
            );
            return ExitCode::from(2);
        }
    };
    match generate(&out, cli_bin) {
        Ok(files) => {
            let mut stdout = io::stdout().lock();
            for f in files {
                let _ = writeln!(stdout, "{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "nightjar-gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Write everything under `out`; returns the files written.
fn generate(out: &Path, cli_bin: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    let cli_bin = match cli_bin {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find my own executable: {e}"))?
            .with_file_name("nightjar-cli"),
    };
    let mut files = Files::new(out);

    // nightjar: man page and completions from the clap definition.
    files.write("man/nightjar.8", &nightjar_man()?)?;
    for (shell, name) in [
        (Shell::Bash, "completions/nightjar.bash"),
        (Shell::Zsh, "completions/_nightjar"),
        (Shell::Fish, "completions/nightjar.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "nightjar", &mut buf);
        files.write(name, &buf)?;
    }

    // nightjar-cli: from its -help text and the RPC method table.
    let help = CliHelp::parse(&run_help(&cli_bin)?)?;
    files.write("man/nightjar-cli.1", cli_man(&help).as_bytes())?;
    files.write("completions/nightjar-cli.bash", cli_bash(&help).as_bytes())?;
    files.write("completions/_nightjar-cli", cli_zsh(&help).as_bytes())?;
    files.write("completions/nightjar-cli.fish", cli_fish(&help).as_bytes())?;

    // The packaged config file, checked against --privacy.
    let packaged = packaged_config(EXAMPLE_CONFIG);
    check_packaged_config(&packaged)?;
    files.write(CONFIG_FILE_NAME, packaged.as_bytes())?;
    Ok(files.written)
}

/// Writes files under one directory.
struct Files {
    root: PathBuf,
    written: Vec<PathBuf>,
}

impl Files {
    fn new(root: &Path) -> Self {
        Files {
            root: root.to_path_buf(),
            written: Vec::new(),
        }
    }

    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
        self.written.push(path);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// nightjar(8)

/// One `.SH` section: a title and paragraphs, each a list of inlines.
fn section(roff: &mut Roff, title: &str, paragraphs: &[Vec<roff::Inline>]) {
    roff.control("SH", [title]);
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text(p.clone());
    }
}

/// A `.TP` list entry: a bold term and its description.
fn entry(roff: &mut Roff, term: Vec<roff::Inline>, text: Vec<roff::Inline>) {
    roff.control("TP", []);
    roff.text(term);
    roff.text(text);
}

/// One of clap_mangen's section renderers.
type RenderPart = fn(&clap_mangen::Man, &mut dyn Write) -> io::Result<()>;

fn nightjar_man() -> Result<Vec<u8>> {
    let cmd = Cli::command().disable_help_subcommand(true);
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual");
    // clap_mangen's own SUBCOMMANDS section points at one page per
    // subcommand; nightjar's two are small, so they are described here
    // instead, from the same clap definitions.
    let mut buf = Vec::new();
    let parts: [RenderPart; 5] = [
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
    ];
    let preamble = Roff::new().render();
    for (i, render) in parts.iter().enumerate() {
        let mut part = Vec::new();
        render(&man, &mut part).map_err(|e| format!("rendering nightjar.8: {e}"))?;
        // Each part starts with roff's apostrophe preamble; keep one.
        let part = match i {
            0 => &part[..],
            _ => part.strip_prefix(preamble.as_bytes()).unwrap_or(&part),
        };
        buf.extend_from_slice(part);
    }
    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    commands.text([roman(
        "Instead of running the node, nightjar can only read the configuration; the options \
         above work before or after the command:",
    )]);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        entry(
            &mut commands,
            vec![
                bold(format!("nightjar {} ", sub.get_name())),
                roman("[OPTIONS]"),
            ],
            vec![roman(about)],
        );
    }
    buf.extend_from_slice(commands.to_roff().as_bytes());
    let mut version = Vec::new();
    man.render_version_section(&mut version)
        .map_err(|e| format!("rendering nightjar.8: {e}"))?;
    buf.extend_from_slice(
        version
            .strip_prefix(preamble.as_bytes())
            .unwrap_or(&version),
    );

    // What clap does not know: files, environment, exit status.
    let mut extra = Roff::new();
    section(&mut extra, "FILES", &[]);
    let conf = format!("{SYSTEM_CONFIG}/{CONFIG_FILE_NAME}");
    entry(
        &mut extra,
        vec![italic(conf)],
        vec![roman(
            "The configuration file of the system service (nightjar.service reads it through \
             $CONFIGURATION_DIRECTORY). As packaged, every setting in it is commented out, so \
             the privacy preset the service runs with decides.",
        )],
    );
    entry(
        &mut extra,
        vec![italic(format!("~/.config/nightjar/{CONFIG_FILE_NAME}"))],
        vec![roman(
            "The configuration file when nightjar runs outside a system service, e.g. from the \
             user unit (systemctl --user start nightjar).",
        )],
    );
    entry(
        &mut extra,
        vec![italic(SYSTEM_STATE)],
        vec![roman(
            "The system service's data directory ($STATE_DIRECTORY): the address book \
             (peers.dat), the RPC cookie (.cookie) and the Tor client's state (tor/state); \
             other chains in subdirectories (testnet4, signet, regtest).",
        )],
    );
    entry(
        &mut extra,
        vec![italic(SYSTEM_CACHE)],
        vec![roman(
            "The system service's cache ($CACHE_DIRECTORY): the Tor directory cache; safe to \
             delete while the service is stopped.",
        )],
    );
    entry(
        &mut extra,
        vec![
            italic("~/.local/share/nightjar"),
            roman(", "),
            italic("~/.cache/nightjar"),
        ],
        vec![roman("Data and Tor cache outside a system service.")],
    );
    section(&mut extra, "ENVIRONMENT", &[]);
    entry(
        &mut extra,
        vec![bold(STATE_DIRECTORY), roman(", "), bold(CACHE_DIRECTORY)],
        vec![roman(
            "Set by systemd for a unit with StateDirectory= and CacheDirectory=; used for the \
             data directory and the Tor cache unless --datadir or datadir is given.",
        )],
    );
    entry(
        &mut extra,
        vec![bold(CONFIGURATION_DIRECTORY)],
        vec![roman(format!(
            "Set by systemd for a unit with ConfigurationDirectory=; {CONFIG_FILE_NAME} is \
             read from it unless --conf is given."
        ))],
    );
    entry(
        &mut extra,
        vec![bold("NOTIFY_SOCKET")],
        vec![roman(
            "Set by systemd for a Type=notify unit; nightjar reports READY=1 once its Tor \
             client has bootstrapped, and its progress as STATUS=.",
        )],
    );
    entry(
        &mut extra,
        vec![bold("JOURNAL_STREAM")],
        vec![roman(
            "When set (output goes to the journal), log lines carry no timestamp or colour.",
        )],
    );
    entry(
        &mut extra,
        vec![bold("RUST_LOG")],
        vec![roman("A tracing filter; overrides --debug.")],
    );
    section(
        &mut extra,
        "EXIT STATUS",
        &[vec![roman(
            "0 when the node stopped on SIGTERM or SIGINT, or a subcommand succeeded; 1 on a \
             configuration error (with one line naming the file, key and fix) or a failure to \
             start.",
        )]],
    );
    section(
        &mut extra,
        "SEE ALSO",
        &[vec![
            bold("nightjar-cli"),
            roman("(1), "),
            bold("systemctl"),
            roman("(1), "),
            bold("systemd.exec"),
            roman("(5), "),
            bold("bitcoind"),
            roman("(1)"),
        ]],
    );
    buf.extend_from_slice(extra.to_roff().as_bytes());
    Ok(buf)
}

// ---------------------------------------------------------------------------
// nightjar-cli(1)

fn run_help(bin: &Path) -> Result<String> {
    let output = std::process::Command::new(bin)
        .arg("-help")
        .output()
        .map_err(|e| format!("running {} -help: {e}", bin.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} -help exited with {}",
            bin.display(),
            output.status
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| "nightjar-cli -help is not UTF-8".to_owned())
}

/// One option of `nightjar-cli -help`.
#[derive(Debug)]
struct CliOption {
    /// `-chain=<chain>` or `-help, -h, -?`.
    spec: String,
    /// The names as typed, with `=` when a value follows: `-chain=`.
    names: Vec<String>,
    /// The description.
    text: String,
}

/// `nightjar-cli -help`, taken apart.
#[derive(Debug)]
struct CliHelp {
    /// `0.1.0`.
    version: String,
    /// Usage lines: synopsis and what it does.
    usage: Vec<(String, String)>,
    /// The free text between the usage and the options.
    notes: Vec<String>,
    options: Vec<CliOption>,
}

impl CliHelp {
    fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let version = first
            .rsplit_once(" v")
            .map(|(_, v)| v.trim().to_owned())
            .ok_or_else(|| format!("unexpected first line of nightjar-cli -help: {first:?}"))?;
        let mut usage = Vec::new();
        let mut notes = Vec::new();
        let mut options = Vec::new();
        let mut part = "";
        for line in lines {
            match line.trim_end() {
                "" => continue,
                "Usage:" | "Options:" => {
                    part = line.trim_end();
                    continue;
                }
                _ => {}
            }
            match part {
                "Usage:" if line.starts_with("  ") => {
                    let (syn, what) = split_columns(line.trim());
                    usage.push((syn.to_owned(), what.to_owned()));
                }
                "Options:" => options.push(parse_option(line.trim())?),
                _ => {
                    part = "notes";
                    notes.push(line.trim().to_owned());
                }
            }
        }
        if usage.is_empty() || options.is_empty() {
            return Err("nightjar-cli -help has no usage or no options section".to_owned());
        }
        Ok(CliHelp {
            version,
            usage,
            notes,
            options,
        })
    }

    /// Every option name (`-chain=`, `-regtest`, ...).
    fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options
            .iter()
            .flat_map(|o| o.names.iter().map(|n| (n.as_str(), o.text.as_str())))
    }
}

/// `synopsis  description` (two or more spaces apart).
fn split_columns(line: &str) -> (&str, &str) {
    match line.find("  ") {
        Some(i) => (line[..i].trim(), line[i..].trim()),
        None => (line, ""),
    }
}

/// `-name=<value>  Description` or `-a, -b, -c  Description`: the spec is
/// the leading words that start with `-`.
fn parse_option(line: &str) -> Result<CliOption> {
    let mut names = Vec::new();
    let mut rest = line;
    while rest.starts_with('-') {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = rest[..end].trim_end_matches(',');
        let name = match word.split_once('=') {
            Some((name, _)) => format!("{name}="),
            None => word.to_owned(),
        };
        names.push(name);
        rest = rest[end..].trim_start();
    }
    if names.is_empty() || rest.is_empty() {
        return Err(format!("cannot read this nightjar-cli option: {line:?}"));
    }
    let spec = line[..line.len() - rest.len()].trim().to_owned();
    Ok(CliOption {
        spec,
        names,
        text: rest.to_owned(),
    })
}

fn cli_man(help: &CliHelp) -> String {
    let mut r = Roff::new();
    let source = format!("nightjar-cli {}", help.version);
    r.control(
        "TH",
        ["NIGHTJAR-CLI", "1", "", source.as_str(), "User Commands"],
    );
    section(
        &mut r,
        "NAME",
        &[vec![roman(
            "nightjar-cli - command-line client of the nightjar daemon's JSON-RPC interface",
        )]],
    );
    r.control("SH", ["SYNOPSIS"]);
    for (i, (syn, _)) in help.usage.iter().enumerate() {
        if i > 0 {
            r.control("br", []);
        }
        r.text([bold(syn.clone())]);
    }
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "nightjar-cli sends one JSON-RPC call to a running nightjar(8) and prints the result. \
         It speaks bitcoin-cli's language: options are single-dash (-name=value; --name is the \
         same, -noname turns a switch off) and come before the command; everything after the \
         command is a parameter. It authenticates with the cookie file the daemon writes.",
    )]);
    for (syn, what) in &help.usage {
        entry(&mut r, vec![bold(syn.clone())], vec![roman(what.clone())]);
    }
    if !help.notes.is_empty() {
        r.control("PP", []);
        r.text([roman(help.notes.join(" "))]);
    }
    r.control("PP", []);
    r.text([roman(
        "A string result is printed as it is, null prints nothing, anything else is printed \
         as JSON indented by two spaces.",
    )]);
    r.control("SH", ["OPTIONS"]);
    for o in &help.options {
        entry(
            &mut r,
            vec![bold(o.spec.clone())],
            vec![roman(o.text.clone())],
        );
    }
    r.control("SH", ["COMMANDS"]);
    r.text([roman(
        "The methods nightjar answers (nightjar-cli help COMMAND shows the details):",
    )]);
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (group, _, usage) in METHODS {
        groups.entry(*group).or_default().push(*usage);
    }
    for (group, usages) in groups {
        r.control("SS", [group]);
        for u in usages {
            r.text([bold(u)]);
            r.control("br", []);
        }
    }
    section(
        &mut r,
        "EXIT STATUS",
        &[vec![roman(
            "0 on success. When the node answers with an RPC error, the error code and message \
             go to standard error and the exit status is the absolute value of the code \
             (truncated to 8 bits; 1 where that would give 0). Any other failure (bad option, \
             no connection, no cookie) prints error: ... and exits with 1.",
        )]],
    );
    section(
        &mut r,
        "FILES",
        &[vec![
            italic(format!("{SYSTEM_STATE}/.cookie")),
            roman(
                " is the cookie of the system service, readable by the nightjar user only: \
                 run nightjar-cli as that user (sudo -u nightjar nightjar-cli -datadir=",
            ),
            roman(SYSTEM_STATE),
            roman(
                " getnetworkinfo). A node run by you (for instance through the user unit) \
                 keeps it in ~/.local/share/nightjar/.cookie, which nightjar-cli finds \
                 without options. Other chains use the chain's subdirectory.",
            ),
        ]],
    );
    section(
        &mut r,
        "SEE ALSO",
        &[vec![
            bold("nightjar"),
            roman("(8), "),
            bold("bitcoin-cli"),
            roman("(1)"),
        ]],
    );
    r.render()
}

// ---------------------------------------------------------------------------
// nightjar-cli completions

/// Method names, in help order.
fn method_names() -> Vec<&'static str> {
    METHODS.iter().map(|(_, name, _)| *name).collect()
}

/// Quote for a single-quoted shell word.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn cli_bash(help: &CliHelp) -> String {
    let opts: Vec<&str> = help.names().map(|(n, _)| n).collect();
    format!(
        r#"# bash completion for nightjar-cli
# Generated by nightjar-gen-docs from `nightjar-cli -help` and nightjar's RPC
# method table; do not edit.

_nightjar_cli() {{
    local opts={opts} methods={methods}
    local line=${{COMP_LINE:0:COMP_POINT}} w method=""
    local -a words
    read -ra words <<<"$line"
    [[ $line == *[[:space:]] ]] && words+=("")
    local cur=${{words[-1]}} n=${{#words[@]}} i
    COMPREPLY=()
    for ((i = 1; i < n - 1; i++)); do
        w=${{words[i]}}
        if [[ $w != -* ]]; then
            method=$w
            break
        fi
    done
    if [[ -n $method ]]; then
        # `help <command>`: the command names.
        if [[ $method == help ]] && ((i == n - 2)); then
            mapfile -t COMPREPLY < <(compgen -W "$methods" -- "$cur")
        fi
        return 0
    fi
    if [[ $cur == -*=* ]]; then
        return 0
    elif [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        if [[ ${{#COMPREPLY[@]}} -eq 1 && ${{COMPREPLY[0]}} == *= ]]; then
            compopt -o nospace 2>/dev/null
        fi
    else
        mapfile -t COMPREPLY < <(compgen -W "$methods" -- "$cur")
    fi
}}
complete -F _nightjar_cli nightjar-cli
"#,
        opts = sq(&opts.join(" ")),
        methods = sq(&method_names().join(" ")),
    )
}

/// Escape a `name:description` item for zsh's `_describe`.
fn zsh_item(name: &str, text: &str) -> String {
    sq(&format!("{}:{}", name.replace(':', r"\:"), text))
}

fn cli_zsh(help: &CliHelp) -> String {
    let mut flags = Vec::new();
    let mut values = Vec::new();
    for (name, text) in help.names() {
        if name.ends_with('=') {
            values.push(zsh_item(name, text));
        } else {
            flags.push(zsh_item(name, text));
        }
    }
    let methods: Vec<String> = METHODS
        .iter()
        .map(|(_, name, usage)| zsh_item(name, usage))
        .collect();
    format!(
        r#"#compdef nightjar-cli
# zsh completion for nightjar-cli
# Generated by nightjar-gen-docs from `nightjar-cli -help` and nightjar's RPC
# method table; do not edit.

_nightjar_cli() {{
    local -a flags values methods
    flags=(
        {flags}
    )
    values=(
        {values}
    )
    methods=(
        {methods}
    )
    local i
    for (( i = 2; i < CURRENT; i++ )); do
        if [[ $words[i] != -* ]]; then
            if [[ $words[i] == help ]] && (( i == CURRENT - 1 )); then
                _describe -t commands 'command' methods
            fi
            return
        fi
    done
    if [[ $PREFIX == -*=* ]]; then
        return 1
    elif [[ $PREFIX == -* ]]; then
        _describe -t options 'option' flags
        _describe -t options 'option' values -S ''
    else
        _describe -t commands 'command' methods
    fi
}}

_nightjar_cli "$@"
"#,
        flags = flags.join("\n        "),
        values = values.join("\n        "),
        methods = methods.join("\n        "),
    )
}

fn cli_fish(help: &CliHelp) -> String {
    let mut out = String::from(
        "# fish completion for nightjar-cli\n\
         # Generated by nightjar-gen-docs from `nightjar-cli -help` and nightjar's RPC\n\
         # method table; do not edit.\n\n\
         function __fish_nightjar_cli_no_command\n\
         \x20   for t in (commandline -opc)[2..-1]\n\
         \x20       string match -q -- '-*' $t; or return 1\n\
         \x20   end\n\
         \x20   return 0\n\
         end\n\n\
         function __fish_nightjar_cli_after_help\n\
         \x20   set -l t (string match -v -- '-*' (commandline -opc)[2..-1])\n\
         \x20   test (count $t) -eq 1; and test $t[1] = help\n\
         end\n\n\
         complete -c nightjar-cli -f\n",
    );
    for (name, text) in help.names() {
        let bare = name.trim_start_matches('-').trim_end_matches('=');
        let value = if name.ends_with('=') { " -r" } else { "" };
        out.push_str(&format!(
            "complete -c nightjar-cli -n __fish_nightjar_cli_no_command -o {}{value} -d {}\n",
            sq(bare),
            sq(text)
        ));
    }
    for (_, name, usage) in METHODS {
        for cond in [
            "__fish_nightjar_cli_no_command",
            "__fish_nightjar_cli_after_help",
        ] {
            out.push_str(&format!(
                "complete -c nightjar-cli -n {cond} -a {} -d {}\n",
                sq(name),
                sq(usage)
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The packaged config file

/// The header of `/etc/nightjar/nightjar.toml`.
const PACKAGED_HEADER: &str = "\
# /etc/nightjar/nightjar.toml: installed by the nightjar package.
#
# The system service (nightjar.service) runs `nightjar --privacy`, so every
# setting below is commented out and the privacy preset decides. A setting
# you turn on here that contradicts the preset stops the service with a
# message naming it; check your changes with
#   nightjar --privacy --conf /etc/nightjar/nightjar.toml check-config
# Everything below is the documented example config (config/nightjar.toml in
# the source), each setting commented out; the values shown are the defaults
# without --privacy.
#
";

/// The example's note that its uncommented lines are defaults, which is
/// not true of the packaged copy (it has none).
const EXAMPLE_NOTE: &str = "\
# Every uncommented line below sets a key to its default, so this file as
# shipped changes nothing. The commented lines are keys whose default depends
# on the chain or the system.
";

/// `example` with every key line commented out (table headers stay).
fn packaged_config(example: &str) -> String {
    let mut out = String::from(PACKAGED_HEADER);
    let example = example.replace(
        EXAMPLE_NOTE,
        "# In this packaged copy every setting is commented out.\n",
    );
    for line in example.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
            out.push_str(line);
        } else {
            out.push_str("# ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The packaged config must be accepted by `nightjar --privacy` as the
/// system unit runs it.
fn check_packaged_config(text: &str) -> Result<()> {
    let cli = Cli::try_parse_from(["nightjar", "--privacy"]).map_err(|e| e.to_string())?;
    let env = Environment::new(
        |name| match name {
            STATE_DIRECTORY => Some(SYSTEM_STATE.into()),
            CACHE_DIRECTORY => Some(SYSTEM_CACHE.into()),
            CONFIGURATION_DIRECTORY => Some(SYSTEM_CONFIG.into()),
            _ => None,
        },
        None,
    );
    let path = PathBuf::from(format!("{SYSTEM_CONFIG}/{CONFIG_FILE_NAME}"));
    config::resolve(&cli.options, Some((path.as_path(), text)), &env)
        .map(|_| ())
        .map_err(|e| format!("the packaged config is not accepted with --privacy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_the_help_text_are_read() {
        let o = parse_option("-rpcclienttimeout=<n> Timeout in seconds").unwrap();
        assert_eq!(o.names, ["-rpcclienttimeout="]);
        assert_eq!(o.spec, "-rpcclienttimeout=<n>");
        assert_eq!(o.text, "Timeout in seconds");
        let o = parse_option("-help, -h, -?          Print this help").unwrap();
        assert_eq!(o.names, ["-help", "-h", "-?"]);
        assert_eq!(o.spec, "-help, -h, -?");
    }

    #[test]
    fn the_packaged_config_comments_out_every_setting() {
        let text = packaged_config(EXAMPLE_CONFIG);
        for line in text.lines() {
            let t = line.trim_start();
            assert!(
                t.is_empty() || t.starts_with('#') || t.starts_with('['),
                "{line}"
            );
        }
        check_packaged_config(&text).unwrap();
    }
}
