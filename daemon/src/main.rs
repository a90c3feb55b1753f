//! The `conveyor` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = conveyor::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(conveyor::EXIT_FAILED);
        }
    };
    runtime.block_on(conveyor::main(cli))
}
