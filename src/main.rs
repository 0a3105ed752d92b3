//! The `ccfraud` binary: parse the command line, dispatch, and map errors to
//! exit codes (and, for training, to `<ml-root>/output/failure`).

use ccfraud::cli::{init_logging, Cli, Command};
use ccfraud::sagemaker::Exit;
use ccfraud::train;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format) {
        return fail(&e, Exit::Usage);
    }
    match cli.command {
        Command::Train {
            root,
            remote,
            hosts,
        } => match remote.into_config(root.ml_root, &hosts) {
            Ok(config) => run_train(config),
            Err(e) => fail(&e, Exit::Usage),
        },
        Command::UploadData { from, destination } => {
            match ccfraud::s3::S3Uri::parse(&destination)
                .and_then(|d| ccfraud::s3::upload_data(&from, &d))
            {
                Ok(uris) => {
                    for u in uris {
                        println!("{u}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e, Exit::Transfer),
            }
        }
        Command::Prepare(args) => {
            let run = args.options().and_then(|options| {
                ccfraud::data::prepare::prepare_with(&args.input, &args.out, &options)
            });
            match run {
                Ok(p) => {
                    println!(
                        "wrote {} ({} rows, {} frauds) and {} ({} rows, {} frauds)",
                        p.train_path.display(),
                        p.train_rows,
                        p.train_frauds,
                        p.test_path.display(),
                        p.test_rows,
                        p.test_frauds
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e, e.exit()),
            }
        }
        Command::Demo(args) => {
            let run = args.into_config().and_then(|config| {
                let listener = config.listen()?;
                ccfraud::demo::run(config, listener)
            });
            run.map_or_else(|e| fail(&e, e.exit()), |()| ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let run = args.into_config().and_then(|config| {
                let listener = config.listen()?;
                ccfraud::serve::run(config, listener)
            });
            run.map_or_else(|e| fail(&e, e.exit()), |()| ExitCode::SUCCESS)
        }
    }
}

/// Prints a failure as `error: …` and gives its exit code.
fn fail(e: &impl std::fmt::Display, exit: Exit) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(exit)
}

/// Trains until done or SIGTERM/SIGINT (which cancel the run: fitting stops
/// at its next check and nothing is committed); on failure prints the error
/// chain and, for runs on an ml-root, writes it to the failure file.
fn run_train(config: train::Config) -> ExitCode {
    let cancel = train::CancellationToken::new();
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            let cancel = cancel.clone();
            // Blocks on the signal pipe; no polling.
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!("signal {sig}: stopping training");
                    cancel.cancel();
                }
            });
        }
        Err(e) => tracing::warn!("cannot install the SIGTERM/SIGINT handler: {e}"),
    }
    match train::run(&config, &cancel) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = error_chain(&e);
            eprintln!("error: {msg}");
            // With S3 channels the ml-root is temporary: the reason is on
            // stderr and in the exit code.
            if let train::Config::Local { root, .. } = &config {
                root.write_failure(&msg);
            }
            ExitCode::from(e.exit())
        }
    }
}

/// An error and its sources, each cause once.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
