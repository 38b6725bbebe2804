//! The `hashforge` binary: parses the command line and wires the crates together. Logic
//! lives in the crates; this file and its modules only present it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod board;
mod header;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Board(cmd) => match board::run(cmd) {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Command::Header { hex } => header::run(&hex).map(|report| print!("{report}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
