//! `hashforge board test`: the repair bench. The test itself lives in
//! `hashforge_asic::board_test`; this module parses options and presents the report.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use hashforge_asic::board_test::{self, BoardTestConfig, Progress};
use hashforge_asic::emulator::HashPool;
use hashforge_asic::shell::open_serial;
use hashforge_asic::{BoardReport, ChipFamily, EmulatedSpec, Fault};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Subcommand)]
pub enum BoardCommand {
    /// Test a hash board: enumerate its chips, send known work to every chip, check every
    /// nonce, read temperatures (emulated boards), and name the bad positions. Exit code 0 only on a pass.
    Test(TestArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// A real chain on a serial port (e.g. /dev/ttyUSB0), or a pseudo-terminal.
    #[arg(long, value_name = "PATH", conflicts_with = "emulated")]
    serial: Option<String>,
    /// The chips on the serial chain.
    #[arg(long, default_value = "bm1370")]
    chip: ChipFamily,
    /// How many chips the serial chain should have.
    #[arg(long, default_value_t = 1)]
    chips: usize,
    /// An emulated machine or one of its boards: s21pro, s21, t21, s19xp, bitaxe-gamma,
    /// optionally `:BOARD` (s21pro:0).
    #[arg(long, value_name = "MACHINE[:BOARD]")]
    emulated: Option<EmulatedSpec>,
    #[arg(long = "fault", value_name = "KIND:ARGS", help = crate::fault_help())]
    faults: Vec<Fault>,
    /// Seconds of hashing per run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Run the test this many times; the board passes only if every run passes (a
    /// repaired board must pass twice).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Run {
    run: u32,
    board: Option<usize>,
    target: String,
    #[serde(flatten)]
    report: BoardReport,
}

pub fn run(cmd: BoardCommand) -> Result<ExitCode, String> {
    let BoardCommand::Test(args) = cmd;
    if args.serial.is_none() && args.emulated.is_none() {
        return Err("say which board to test: --serial PATH (with --chip and --chips) or --emulated MACHINE[:BOARD]".into());
    }
    if !args.faults.is_empty() && args.emulated.is_none() {
        return Err("--fault injects faults into emulated boards only; add --emulated".into());
    }
    if !(args.seconds > 0.0 && args.seconds <= 86_400.0) {
        return Err(format!(
            "--seconds must be between 0 and 86400, got {}",
            args.seconds
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let started = Instant::now();
    let mut runs = Vec::new();
    let pool = args.emulated.is_some().then(HashPool::per_core);
    for run in 1..=args.repeat.max(1) {
        match (&args.serial, &args.emulated, &pool) {
            (Some(path), _, _) => {
                args.chip.check_drivable()?;
                let cfg = BoardTestConfig::real(args.chip, args.chips, args.seconds);
                let label = format!("{} chain of {} on {path}", args.chip, args.chips);
                let bar = progress_bar(args.json, &label, run, args.repeat);
                let link = open_serial(path).map_err(|e| e.to_string())?;
                let report = rt
                    .block_on(board_test::run(link, &cfg, |p| show(&bar, p)))
                    .map_err(|e| e.to_string())?;
                bar.finish_and_clear();
                runs.push(Run {
                    run,
                    board: None,
                    target: label,
                    report,
                });
            }
            (None, Some(spec), Some(pool)) => {
                for board in spec.boards() {
                    let label = format!("emulated {} board {board}", spec.profile.model);
                    let bar = progress_bar(args.json, &label, run, args.repeat);
                    let report = rt
                        .block_on(board_test::run_emulated(
                            spec,
                            board,
                            &args.faults,
                            args.seconds,
                            &pool.handle(),
                            |p| show(&bar, p),
                        ))
                        .map_err(|e| e.to_string())?;
                    bar.finish_and_clear();
                    runs.push(Run {
                        run,
                        board: Some(board),
                        target: label,
                        report,
                    });
                }
            }
            _ => unreachable!("checked above"),
        }
        if !args.json {
            for r in runs.iter().filter(|r| r.run == run) {
                print!("{}", table(r, args.repeat));
            }
        }
    }
    let passed = runs.iter().all(|r| r.report.passed);
    if args.json {
        let out = serde_json::json!({
            "passed": passed,
            "seconds_total": started.elapsed().as_secs_f64(),
            "runs": runs,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("reports serialise")
        );
    } else {
        println!(
            "{} ({} run{}, {:.1} s)",
            if passed {
                "BOARD PASSES"
            } else {
                "BOARD FAILS"
            },
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_bar(json: bool, label: &str, run: u32, repeat: u32) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("run {run}/{repeat} {label}"));
    bar
}

fn show(bar: &ProgressBar, p: Progress) {
    bar.set_position((p.elapsed / p.total.max(1e-9) * 1000.0).min(1000.0) as u64);
    bar.set_message(format!(
        "{:.0}/{:.0} s, {} nonces, {} HW",
        p.elapsed, p.total, p.nonces, p.hardware_errors
    ));
}

fn table(r: &Run, repeat: u32) -> String {
    use std::fmt::Write;
    let rep = &r.report;
    let e = &rep.enumeration;
    let mut s = String::new();
    let _ = writeln!(s, "\n{} — run {} of {}", r.target, r.run, repeat);
    let _ = writeln!(
        s,
        "chips found: {} of {}{}",
        e.found,
        e.expected,
        match e.suspects() {
            Some((a, b)) if e.found > 0 =>
                format!(" — chain breaks after chip {a} (suspects {a}-{b})"),
            Some(_) => " — chain finds no chips".to_string(),
            None => String::new(),
        }
    );
    let _ = writeln!(
        s,
        "{:>4} {:>6} {:>5} {:>8} {:>9} {:>5} {:>7}  verdict",
        "pos", "domain", "addr", "nonces", "expected", "HW", "max C"
    );
    for c in &rep.chips {
        let _ = writeln!(
            s,
            "{:>4} {:>6} {:>5} {:>8} {:>9.0} {:>5} {:>7}  {}",
            c.position,
            c.domain,
            c.address.map_or("-".to_string(), |a| format!("{a:#04x}")),
            c.nonces,
            c.expected_nonces,
            c.hardware_errors,
            c.temperature
                .map_or("-".to_string(), |t| format!("{:.1}", t.0)),
            c.verdict.label()
        );
    }
    let _ = writeln!(
        s,
        "link: {} frames, {} CRC errors, {} garbage bytes; {} unknown-job, {} duplicate nonces",
        rep.link.frames,
        rep.link.bad_crc,
        rep.link.garbage_bytes,
        rep.anomalies.unknown_job,
        rep.anomalies.duplicates
    );
    let _ = writeln!(
        s,
        "{} valid nonces, {} hardware errors in {:.1} s; {} from shares",
        rep.valid_nonces, rep.hardware_errors, rep.seconds, rep.hashrate
    );
    if !rep.suspects.is_empty() {
        let _ = writeln!(s, "suspects:");
        for sus in &rep.suspects {
            let range = if sus.first == sus.last {
                format!("chip {}", sus.first)
            } else {
                format!("chips {}-{}", sus.first, sus.last)
            };
            let _ = writeln!(s, "  {range}: {}", sus.reason);
        }
    }
    for f in &rep.findings {
        let _ = writeln!(s, "  board: {f}");
    }
    let _ = writeln!(s, "result: {}", if rep.passed { "PASS" } else { "FAIL" });
    s
}
