//! `kubectl-factory`: the kubectl plugin (`kubectl factory …`).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = kubectl_factory::Cli::parse();
    match kubectl_factory::run(cli, &mut std::io::stdout()).await {
        Ok(kubectl_factory::Outcome::Done) => ExitCode::SUCCESS,
        Ok(kubectl_factory::Outcome::Changes) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
