//! `bakeoff`: reads the command line, sets the allocator, and serves (until
//! SIGTERM or SIGINT) or seeds the database.

use std::process::ExitCode;

use bakeoff::config::{Cli, Command, ServeConfig};
use bakeoff::startup::{Server, Shutdown};
use clap::Parser;
use clap::error::ErrorKind;

// mimalloc: fast thread-local free lists suit a server whose every request
// allocates and frees a few buffers on one thread. jemalloc is the
// alternative; the three allocators measured within the run-to-run spread
// of each other (docs/PERFORMANCE.md, allocator).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => error.exit(),
            _ => return fail(first_line(&error.to_string())),
        },
    };
    let result = match cli.command {
        Some(Command::Seed(seed)) => bakeoff::seed::run_blocking(&seed),
        Some(Command::Serve(serve)) => serve_until_signal(&serve),
        None => serve_until_signal(&cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn serve_until_signal(config: &ServeConfig) -> Result<(), String> {
    Server::bind(config)?.run(Shutdown::Signals)
}

/// One line on stderr, exit code 2.
fn fail(message: &str) -> ExitCode {
    eprintln!("bakeoff: {message}");
    ExitCode::from(2)
}

/// clap's first line, without its `error: ` prefix (the rest is usage).
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line)
}
