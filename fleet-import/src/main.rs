//! `emotion-fleet-import`: the binary behind `emotion-fleet model import` (which runs it with
//! its arguments). One JSON line on stdout; exit 0, 1 when the package is written but tract
//! computes other outputs than the reference runtime, 2 on a refusal (nothing written).
#![forbid(unsafe_code)]

use clap::Parser;
use emotion_fleet_import::{ImportArgs, import};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "emotion-fleet model import",
    bin_name = "emotion-fleet model import",
    about = "Make a package folder from your own model: shapes checked for the task, test \
             vectors computed by the model's own runtime (its library named) or the pure-Rust \
             engine, a PROVENANCE.md to fill in"
)]
struct Cli {
    #[command(flatten)]
    args: ImportArgs,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tract_linalg=warn"),
    )
    .init();
    let cli = Cli::parse();
    match import(&cli.args) {
        Ok(done) => {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{}", done.report);
            if done.tract_agrees {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "emotion-fleet: the package is written, but tract computes other outputs than {}: devices that run tract (the default, and every fallback) refuse it",
                    cli.args.model.display()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("emotion-fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
