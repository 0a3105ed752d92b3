//! The `ccfraud` binary: parse the command line, dispatch, and map errors to
//! exit codes (and, for training, to `<ml-root>/output/failure`).

use ccfraud::cli::{init_logging, Cli, Command};
use ccfraud::sagemaker::MlRoot;
use ccfraud::train;
use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Train { root, remote } => {
            let channels: Vec<(String, String)> = [
                ("train", &remote.train),
                ("test", &remote.test),
                ("validation", &remote.validation),
            ]
            .into_iter()
            .filter_map(|(n, u)| u.clone().map(|u| (n.to_string(), u)))
            .collect();
            let remote = remote
                .output
                .clone()
                .filter(|_| !channels.is_empty())
                .map(|output| train::RemoteChannels { channels, output });
            run_train(MlRoot::new(root.ml_root), remote)
        }
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
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(4)
                }
            }
        }
        Command::Prepare { input, out } => match ccfraud::data::prepare::prepare(&input, &out) {
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
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Demo(args) => {
            let run = args.into_config().and_then(|config| {
                let listener = config.listen()?;
                ccfraud::demo::run(config, listener)
            });
            match run {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve(args) => {
            let run = args.into_config().and_then(|config| {
                let listener = config.listen()?;
                ccfraud::serve::run(config, listener)
            });
            match run {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

/// Trains; on failure writes the reason to the failure file. SIGTERM/SIGINT
/// stop the fitting loops; if they do not return within a grace period, a
/// watchdog records the failure and exits, never cutting an output commit.
fn run_train(root: MlRoot, remote: Option<train::RemoteChannels>) -> ExitCode {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&signalled)) {
            tracing::warn!("cannot install the handler for signal {sig}: {e}");
        }
    }
    {
        let root = root.clone();
        let local = remote.is_none();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(20));
            if signalled.load(Ordering::Relaxed) {
                train::STOP.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1500));
                let committed = train::COMMIT.lock().unwrap_or_else(|e| e.into_inner());
                if !*committed {
                    let e = train::TrainError::Interrupted;
                    eprintln!("error: {e}");
                    if local {
                        root.write_failure(&e.to_string());
                    }
                    std::process::exit(i32::from(e.exit_code()));
                }
                return;
            }
        });
    }
    let result = match &remote {
        Some(r) => train::run_remote(&root, r),
        None => train::run(&root),
    };
    match result {
        Ok(o) => {
            if remote.is_none() {
                tracing::info!(
                    "wrote {} (default model: {})",
                    root.model_dir()
                        .join(ccfraud::model::ARTIFACT_FILE)
                        .display(),
                    o.artifact.default_model
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let s_text = s.to_string();
                if !msg.contains(&s_text) {
                    msg.push_str(": ");
                    msg.push_str(&s_text);
                }
                src = s.source();
            }
            eprintln!("error: {msg}");
            // With S3 channels the ml-root is temporary: the reason is on
            // stderr and in the exit code.
            if remote.is_none() {
                root.write_failure(&msg);
            }
            ExitCode::from(e.exit_code())
        }
    }
}
