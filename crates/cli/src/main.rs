//! The `hashforge` binary: parses the command line and wires the crates together. Logic
//! lives in the crates; this file and its modules only present it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod assets;
mod bench;
mod board;
mod fleet;
mod header;
mod mine;
mod pool;
mod up;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hashforge",
    version,
    about = "The open stack that runs a Bitcoin ASIC mining operation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure hashforge's engines on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Hash boards: the factory and repair-bench test.
    #[command(subcommand)]
    Board(board::BoardCommand),
    /// Decode an 80-byte block header: fields, hash, difficulty, and whether it meets its
    /// own nBits.
    Header {
        /// The header as 160 hex digits.
        hex: String,
    },
    /// Run a Stratum V1 pool on your own bitcoind, or on an embedded regtest chain (the
    /// default, for demos and tests).
    Pool(Box<pool::PoolArgs>),
    /// Mine: pools with failover, CPU (or BM13xx) devices, the cgminer API fleet tools read,
    /// REST, Prometheus metrics and a status page.
    Mine(Box<mine::MineArgs>),
    /// The embedded regtest chain.
    #[command(subcommand)]
    Chain(pool::ChainCommand),
    /// Everything on one machine: a pool on an embedded regtest chain and a miner on it.
    Up(Box<up::UpArgs>),
    /// The fleet console: discover miners, poll them, raise alerts, serve the web UI
    /// (`fleet scan` discovers once; `fleet simulate` runs a simulated fleet).
    Fleet(Box<fleet::FleetArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The environment is outside input too: a backend name that is wrong stops here, named,
    // instead of every scanner quietly falling back to the fastest one.
    if let Err(e) = hashforge_sha256d::Scanner::forced() {
        eprintln!("error: {}: {e}", hashforge_sha256d::BACKEND_ENV);
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Board(cmd) => match board::run(cmd) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Command::Header { hex } => header::run(&hex).map(|report| print!("{report}")),
        Command::Pool(args) => pool::run(*args),
        Command::Chain(cmd) => pool::chain(cmd),
        Command::Up(args) => up::run(*args),
        Command::Mine(args) => mine::run(*args),
        Command::Fleet(args) => fleet::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The help of every `--fault` flag: the kinds are listed once, in `hashforge_asic::Fault`.
pub(crate) fn fault_help() -> String {
    format!(
        "A fault for emulated machines (repeatable): {}",
        hashforge_asic::Fault::SYNTAX
    )
}

/// Logs to stderr; `RUST_LOG` overrides the default level (info).
pub(crate) fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices (`relation ... already exists, skipping` from a migration
        // another process ran first) are not news.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal; plain text for a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
