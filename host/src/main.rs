//! The `wasmhook` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    wasmhook::cli::main(wasmhook::cli::Cli::parse())
}
