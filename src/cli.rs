//! The command line: every flag `long` + `env`, its doc comment the help
//! text; parsed once in `main` into the typed configs of each command. Also
//! the stderr logger (`tracing`, filtered by `CCFRAUD_LOG`, default `info`;
//! plain text, or one JSON object per line with `--log-format json`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Credit-card fraud detection: SageMaker training and hosting in one binary.
#[derive(Debug, Parser)]
#[command(name = "ccfraud", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: text, or json (one object per line, fields as
    /// keys: for log shippers such as CloudWatch Logs Insights).
    #[arg(long, env = "CCFRAUD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Values of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the SageMaker `/opt/ml` tree lives.
#[derive(Debug, Clone, clap::Args)]
pub struct MlRootArg {
    /// Root of the SageMaker tree (input/, model/, output/).
    #[arg(long, env = "CCFRAUD_ML_ROOT", default_value = crate::sagemaker::DEFAULT_ML_ROOT)]
    pub ml_root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on <ml-root>/input/data/{train,validation,test}; write <ml-root>/model.
    Train {
        #[command(flatten)]
        root: MlRootArg,
        #[command(flatten)]
        remote: RemoteTrainArgs,
        #[command(flatten)]
        hosts: HostsArgs,
    },
    /// Upload the prepared train_data.csv / test_data.csv (any columns, as
    /// `prepare` wrote them) to s3://bucket/prefix/{train,test}/ (the lab's
    /// first step).
    UploadData {
        /// Folder holding train_data.csv (and test_data.csv).
        #[arg(long = "from", env = "CCFRAUD_UPLOAD_FROM")]
        from: PathBuf,
        /// Destination prefix, e.g. s3://my-bucket/ccfraud/
        destination: String,
    },
    /// Split a CSV into train_data.csv and test_data.csv: Kaggle's
    /// creditcard.csv into the lab's files (standard time-ordered split), or
    /// any CSV with a header, header and rows copied as they are.
    Prepare(PrepareArgs),
    /// Serve <ml-root>/model over HTTP: GET /ping, POST /invocations.
    Serve(ServeArgs),
    /// The lab's web app: a page that calls the prediction API and raises
    /// alerts at or above the threshold.
    Demo(DemoArgs),
}

/// Flags of `ccfraud prepare`.
#[derive(Debug, Clone, clap::Args)]
pub struct PrepareArgs {
    /// CSV with a header, may be gzip-compressed: Kaggle's creditcard.csv
    /// (Time, V1..V28, Amount, Class), or any columns with a 0/1 label.
    #[arg(long, env = "CCFRAUD_PREPARE_INPUT")]
    pub input: PathBuf,
    /// Folder for train_data.csv and test_data.csv.
    #[arg(long, env = "CCFRAUD_PREPARE_OUT")]
    pub out: PathBuf,
    /// Name of the 0/1 label column [default: Class]. With it (or any
    /// option below, or a header that is not Kaggle's), both files keep the
    /// header and every row byte for byte instead of becoming the lab's.
    #[arg(long, env = "CCFRAUD_PREPARE_LABEL")]
    pub label: Option<String>,
    /// time: rows in file order, the last --test-fraction is test; random:
    /// rows drawn with --seed, stratified by label [default: time].
    #[arg(long, env = "CCFRAUD_PREPARE_SPLIT", value_enum)]
    pub split: Option<SplitKind>,
    /// Share of rows in test_data.csv, above 0 and below 1 [default: 0.2].
    #[arg(long, env = "CCFRAUD_PREPARE_TEST_FRACTION")]
    pub test_fraction: Option<f64>,
    /// Seed of --split random [default: 42].
    #[arg(long, env = "CCFRAUD_PREPARE_SEED")]
    pub seed: Option<u64>,
}

/// Values of `prepare --split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    Time,
    Random,
}

impl PrepareArgs {
    /// The options of `prepare`; `--seed` without `--split random` is
    /// refused (it would choose nothing).
    pub fn options(
        &self,
    ) -> Result<crate::data::prepare::Options, crate::data::prepare::PrepareError> {
        use crate::data::prepare::{Options, PrepareError, Split, DEFAULT_SEED};
        let split = match (self.split, self.seed) {
            (Some(SplitKind::Random), seed) => Some(Split::Random {
                seed: seed.unwrap_or(DEFAULT_SEED),
            }),
            (_, Some(_)) => return Err(PrepareError::SeedWithoutRandom),
            (Some(SplitKind::Time), None) => Some(Split::Time),
            (None, None) => None,
        };
        Ok(Options {
            label: self.label.clone(),
            split,
            test_fraction: self.test_fraction,
        })
    }
}

/// Flags of `ccfraud demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port of the demo page.
    #[arg(long, env = "CCFRAUD_DEMO_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "CCFRAUD_DEMO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Prediction API the page calls: ccfraud serve's /invocations, or a
    /// deployed API Gateway URL.
    #[arg(
        long,
        env = "CCFRAUD_API_URL",
        default_value = "http://127.0.0.1:8080/invocations"
    )]
    pub api_url: String,
    /// Fraud score at or above which the page alerts (the lab: 0.9).
    #[arg(long, env = "CCFRAUD_ALERT_THRESHOLD", default_value_t = 0.9)]
    pub threshold: f64,
    /// File that receives one JSON line per alert.
    #[arg(
        long,
        env = "CCFRAUD_ALERT_LOG",
        default_value = "ccfraud-alerts.jsonl"
    )]
    pub alert_log: PathBuf,
    /// Optional http:// URL that receives each alert as a JSON POST.
    #[arg(long, env = "CCFRAUD_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
}

/// Training jobs of several hosts (`resourceconfig.json`): the first host
/// trains, the others wait for it and write nothing.
#[derive(Debug, Clone, clap::Args)]
pub struct HostsArgs {
    /// TCP port on which the first host of a multi-instance job tells the
    /// others it is still training.
    #[arg(long, env = "CCFRAUD_LEADER_PORT", default_value_t = crate::sagemaker::hosts::DEFAULT_LEADER_PORT)]
    pub leader_port: u16,
    /// Seconds a host other than the first tries to reach it before exiting
    /// 0 without waiting.
    #[arg(long, env = "CCFRAUD_LEADER_WAIT", default_value_t = crate::sagemaker::hosts::DEFAULT_LEADER_WAIT.as_secs())]
    pub leader_wait: u64,
}

impl HostsArgs {
    pub fn settings(&self) -> crate::sagemaker::hosts::Settings {
        crate::sagemaker::hosts::Settings {
            port: self.leader_port,
            wait: Duration::from_secs(self.leader_wait),
        }
    }
}

/// Training outside SageMaker with data and model on S3.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteTrainArgs {
    /// s3:// prefix (or object) of the training channel; channels are
    /// downloaded into a temporary ml-root.
    #[arg(long = "train", env = "CCFRAUD_TRAIN_URI", requires = "output")]
    pub train: Option<String>,
    /// s3:// prefix of the test channel.
    #[arg(long = "test", env = "CCFRAUD_TEST_URI", requires = "train")]
    pub test: Option<String>,
    /// s3:// prefix of the validation channel.
    #[arg(
        long = "validation",
        env = "CCFRAUD_VALIDATION_URI",
        requires = "train"
    )]
    pub validation: Option<String>,
    /// s3:// prefix receiving model.tar.gz and metrics.json.
    #[arg(long = "output", env = "CCFRAUD_OUTPUT_URI", requires = "train")]
    pub output: Option<String>,
}

impl RemoteTrainArgs {
    /// The typed training config: S3 channels when `--train` is given (clap
    /// guarantees `--output` then; `hosts` does not apply), else the
    /// ml-root's own channels.
    pub fn into_config(
        self,
        ml_root: PathBuf,
        hosts: &HostsArgs,
    ) -> Result<crate::train::Config, crate::s3::S3Error> {
        use crate::s3::S3Uri;
        let config_root = crate::sagemaker::MlRoot::new(ml_root);
        let (Some(train), Some(output)) = (&self.train, &self.output) else {
            return Ok(crate::train::Config::Local {
                root: config_root,
                hosts: hosts.settings(),
            });
        };
        let mut channels = vec![("train".to_string(), S3Uri::parse(train)?)];
        for (name, uri) in [("test", &self.test), ("validation", &self.validation)] {
            if let Some(uri) = uri {
                channels.push((name.to_string(), S3Uri::parse(uri)?));
            }
        }
        Ok(crate::train::Config::Remote {
            config_root,
            channels,
            output: S3Uri::parse(output)?,
        })
    }
}

/// Flags of `ccfraud serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub root: MlRootArg,
    /// Port to listen on (SageMaker sets SAGEMAKER_BIND_TO_PORT; default 8080).
    #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "CCFRAUD_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// HTTP worker threads (default: number of cores).
    #[arg(long, env = "SAGEMAKER_MODEL_SERVER_WORKERS")]
    pub workers: Option<usize>,
    /// Download (s3://…) or read (a local path) model.tar.gz and serve it,
    /// instead of <ml-root>/model.
    #[arg(long, env = "CCFRAUD_MODEL_URI")]
    pub model_uri: Option<String>,
    /// Which trained model to serve: dnn, logistic, forest, gbdt or blend (default: the one
    /// training marked best).
    #[arg(long, env = "CCFRAUD_MODEL")]
    pub model: Option<crate::model::ModelKind>,
    /// Access-Control-Allow-Origin sent with answers, so browser pages (the
    /// demo) can call the server.
    #[arg(long, env = "CCFRAUD_CORS_ORIGIN", default_value = "*")]
    pub cors_origin: String,
    /// Largest request body accepted, in bytes. Precedence: this flag (or
    /// CCFRAUD_MAX_BODY_BYTES), else --max-payload-in-mb, else 6 MiB
    /// (SageMaker's real-time limit).
    #[arg(long, env = "CCFRAUD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Batch transform's MaxPayloadInMB (0-100, set by SageMaker): the body
    /// limit in MiB when --max-body-bytes is not given; 0 (chunked, no
    /// limit) gets the largest, 100 MiB.
    #[arg(long, env = "SAGEMAKER_MAX_PAYLOAD_IN_MB",
          value_parser = clap::value_parser!(u16).range(0..=MAX_PAYLOAD_IN_MB as i64))]
    pub max_payload_in_mb: Option<u16>,
    /// Seconds a client has to send the whole request body (SageMaker gives
    /// an invocation 60 s); then 408 and the connection is closed.
    #[arg(long, env = "CCFRAUD_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
    /// Seconds a new connection has to send its first request head; then 408
    /// and the connection is closed.
    #[arg(long, env = "CCFRAUD_HEAD_TIMEOUT_SECS", default_value_t = 5)]
    pub head_timeout_secs: u64,
    /// Open connections at most (default and ceiling: the open-file limit,
    /// raised to its hard limit at start, less a reserve); /invocations on
    /// a new request is shed with 503 above three quarters of it.
    #[arg(long, env = "CCFRAUD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Request-body bytes being received and parsed at once, across all
    /// requests; beyond it /invocations is shed with 503 (default 64 MiB).
    #[arg(long, env = "CCFRAUD_MAX_IN_FLIGHT_BYTES", default_value_t = 64 * MIB)]
    pub max_in_flight_bytes: usize,
    /// Largest --model-uri archive, in MiB: compressed, and unpacked (files
    /// and tar headers); the artifact file itself may have at most 1024.
    #[arg(long, env = "CCFRAUD_MAX_UNPACKED_MB", default_value_t = crate::sagemaker::archive::DEFAULT_MAX_UNPACKED_MB)]
    pub max_unpacked_mb: u64,
    /// Rows in the drift window of GET /metrics: the PSI per column
    /// compares the last this-many scored rows with the training rows
    /// (0: no drift gauges).
    #[arg(long, env = "CCFRAUD_DRIFT_WINDOW_ROWS", default_value_t = 10_000)]
    pub drift_window_rows: usize,
    /// Requests that take at least this many milliseconds are logged (as
    /// every answer that is not 2xx is).
    #[arg(long, env = "CCFRAUD_SLOW_REQUEST_MS", default_value_t = 1_000)]
    pub slow_request_ms: u64,
    /// The name the model is served under on the TF Serving
    /// (/v1/models/NAME) and Open Inference Protocol (/v2/models/NAME)
    /// paths.
    #[arg(long, env = "CCFRAUD_MODEL_NAME", default_value = "ccfraud")]
    pub model_name: String,
    /// The answer format for requests without an Accept header (or with
    /// */*): application/json, text/csv or application/jsonlines (batch
    /// transform sets it from the model's settings).
    #[arg(long, env = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")]
    pub default_accept: Option<String>,
    /// What each CSV or JSON Lines answer line holds, comma-separated:
    /// predicted_label, probability, probabilities, labels (default: the
    /// score and the 0/1 decision).
    #[arg(long, env = "SAGEMAKER_INFERENCE_OUTPUT")]
    pub inference_output: Option<String>,
}

const MIB: usize = 1024 * 1024;
/// The largest MaxPayloadInMB SageMaker batch transform allows.
const MAX_PAYLOAD_IN_MB: u16 = 100;
/// The body limit when neither --max-body-bytes nor MaxPayloadInMB is set.
const DEFAULT_MAX_BODY_BYTES: usize = 6 * MIB;

impl ServeArgs {
    /// The checked settings of `ccfraud serve`: the address resolved, 0
    /// workers meaning one per core, the model folder or URI, the CORS
    /// origin parsed, the body limit chosen; zero limits are refused.
    pub fn into_config(self) -> Result<crate::serve::Config, crate::serve::ServeError> {
        use crate::serve::{Config, CorsOrigin, ModelSource, ServeError};
        use std::num::NonZeroUsize;
        let bind = resolve(&self.host, self.port).map_err(|source| ServeError::Host {
            host: self.host.clone(),
            source,
        })?;
        let workers = self
            .workers
            .and_then(NonZeroUsize::new)
            .or_else(|| NonZeroUsize::new(rayon::current_num_threads()))
            .unwrap_or(NonZeroUsize::MIN);
        let max_unpacked_mb =
            std::num::NonZeroU64::new(self.max_unpacked_mb).ok_or(ServeError::Zero {
                flag: "max-unpacked-mb",
            })?;
        let max_body_bytes = nonzero(self.max_body_bytes(), "max-body-bytes")?;
        let model = match self.model_uri {
            Some(uri) => {
                ModelSource::Uri(uri, crate::sagemaker::archive::Limits::new(max_unpacked_mb))
            }
            None => ModelSource::Dir(crate::sagemaker::MlRoot::new(self.root.ml_root).model_dir()),
        };
        Ok(Config {
            bind,
            workers,
            model,
            model_kind: self.model,
            cors_origin: CorsOrigin::parse(&self.cors_origin)?,
            max_body_bytes,
            body_timeout: Duration::from_secs(
                nonzero(self.body_timeout_secs as usize, "body-timeout-secs")?.get() as u64,
            ),
            head_timeout: Duration::from_secs(
                nonzero(self.head_timeout_secs as usize, "head-timeout-secs")?.get() as u64,
            ),
            max_connections: self
                .max_connections
                .map(|n| nonzero(n, "max-connections"))
                .transpose()?,
            max_in_flight_bytes: nonzero(self.max_in_flight_bytes, "max-in-flight-bytes")?,
            watch: crate::serve::metrics::WatchConfig {
                drift_window_rows: self.drift_window_rows,
                slow_request: Duration::from_millis(self.slow_request_ms),
            },
            model_name: crate::serve::protocols::ModelName::parse(&self.model_name)?,
            default_accept: match self.default_accept.as_deref().map(str::trim) {
                None | Some("") => crate::serve::response::ResponseFormat::Json,
                Some(v) => {
                    crate::serve::response::ResponseFormat::parse_default(v).ok_or_else(|| {
                        ServeError::DefaultAccept {
                            value: v.to_string(),
                        }
                    })?
                }
            },
            outputs: match self.inference_output.as_deref().map(str::trim) {
                None | Some("") => Vec::new(),
                Some(v) => crate::serve::response::OutputKey::parse_list(v)?,
            },
        })
    }

    /// `--max-body-bytes` if given, else MaxPayloadInMB in MiB (0: the
    /// largest SageMaker allows), else the 6 MiB default.
    fn max_body_bytes(&self) -> usize {
        match (self.max_body_bytes, self.max_payload_in_mb) {
            (Some(bytes), _) => bytes,
            (None, Some(0)) => usize::from(MAX_PAYLOAD_IN_MB) * MIB,
            (None, Some(mb)) => usize::from(mb) * MIB,
            (None, None) => DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// `n`, or the usage error naming `--flag`.
fn nonzero(
    n: usize,
    flag: &'static str,
) -> Result<std::num::NonZeroUsize, crate::serve::ServeError> {
    std::num::NonZeroUsize::new(n).ok_or(crate::serve::ServeError::Zero { flag })
}

impl DemoArgs {
    /// The checked settings of `ccfraud demo`.
    pub fn into_config(self) -> Result<crate::demo::Config, crate::demo::DemoError> {
        let bind =
            resolve(&self.host, self.port).map_err(|source| crate::demo::DemoError::Host {
                host: self.host.clone(),
                source,
            })?;
        crate::demo::Config::new(
            bind,
            &self.host,
            &self.api_url,
            self.threshold,
            self.alert_log,
            self.alert_webhook.as_deref(),
        )
    }
}

/// `--host`/`--port` → the first address they resolve to.
fn resolve(host: &str, port: u16) -> std::io::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for this name")
    })
}

/// Environment variable holding the log filter.
pub const LOG_ENV: &str = "CCFRAUD_LOG";

/// A `CCFRAUD_LOG` value that `tracing-subscriber` cannot parse.
#[derive(Debug, thiserror::Error)]
#[error("{LOG_ENV}='{value}' is not a valid log filter (examples: info, debug, ccfraud=debug,aws=warn): {source}")]
pub struct LogFilterError {
    value: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the stderr logger. `CCFRAUD_LOG` is an `EnvFilter` directive
/// list (`info`, `ccfraud=debug,aws=warn`, …); unset or empty means `info`.
/// An invalid filter is an error, never a silent fallback. Text lines have
/// no time (the platform's log stamps them); JSON lines carry `timestamp`,
/// `level`, `target` and the event's fields at the top level.
pub fn init_logging(format: LogFormat) -> Result<(), LogFilterError> {
    let filter = log_filter(std::env::var(LOG_ENV).ok().as_deref())?;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already set (tests).
    let _ = match format {
        LogFormat::Text => fmt.with_target(false).without_time().try_init(),
        LogFormat::Json => fmt.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Parses a filter value; `None` or blank gives `info`.
pub fn log_filter(value: Option<&str>) -> Result<tracing_subscriber::EnvFilter, LogFilterError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("info");
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map_err(|source| LogFilterError {
            value: value.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_defaults_hold() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["ccfraud", "serve"]).unwrap();
        match c.command {
            Command::Serve(a) => {
                // env may be set by a caller; defaults apply when it is not
                if std::env::var_os("SAGEMAKER_BIND_TO_PORT").is_none() {
                    assert_eq!(a.port, 8080);
                }
                if std::env::var_os("CCFRAUD_ML_ROOT").is_none() {
                    assert_eq!(a.root.ml_root, PathBuf::from("/opt/ml"));
                }
                if std::env::var_os("CCFRAUD_MAX_BODY_BYTES").is_none()
                    && std::env::var_os("SAGEMAKER_MAX_PAYLOAD_IN_MB").is_none()
                {
                    assert_eq!(a.max_body_bytes(), 6 * MIB);
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn train_defaults_to_the_ml_root_and_the_leader_port() {
        let c = Cli::try_parse_from(["ccfraud", "train", "--ml-root", "/r"]).unwrap();
        let Command::Train {
            root,
            remote,
            hosts,
        } = c.command
        else {
            panic!("not train");
        };
        if std::env::var_os("CCFRAUD_LEADER_PORT").is_none()
            && std::env::var_os("CCFRAUD_LEADER_WAIT").is_none()
        {
            assert_eq!(
                hosts.settings(),
                crate::sagemaker::hosts::Settings::default()
            );
            assert_eq!(hosts.leader_port, 27100);
            assert_eq!(hosts.leader_wait, 600);
        }
        let flags = [
            "ccfraud",
            "train",
            "--leader-port",
            "0",
            "--leader-wait",
            "3",
        ];
        let Command::Train { hosts: h, .. } = Cli::try_parse_from(flags).unwrap().command else {
            panic!("not train");
        };
        assert_eq!(h.settings().wait, Duration::from_secs(3));
        if std::env::var_os("CCFRAUD_TRAIN_URI").is_none() {
            let config = remote.into_config(root.ml_root, &hosts).unwrap();
            assert!(
                matches!(&config, crate::train::Config::Local { root, .. } if root.root() == std::path::Path::new("/r")),
                "{config:?}"
            );
        }
    }

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let c = Cli::try_parse_from(["ccfraud", "serve"].iter().chain(args))?;
        match c.command {
            Command::Serve(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn protocol_settings_are_checked() {
        use crate::serve::response::{OutputKey, ResponseFormat};
        let c = serve(&[
            "--model-name",
            "fraud-v2",
            "--default-accept",
            "text/csv",
            "--inference-output",
            "predicted_label,probability",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.model_name.as_str(), "fraud-v2");
        assert_eq!(c.default_accept, ResponseFormat::Csv);
        assert_eq!(
            c.outputs,
            [OutputKey::PredictedLabel, OutputKey::Probability]
        );
        let c = serve(&["--default-accept", " ", "--inference-output", ""])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(
            (c.default_accept, c.outputs.len()),
            (ResponseFormat::Json, 0)
        );
        for bad in [
            &["--model-name", "a/b"][..],
            &["--default-accept", "image/png"],
            &["--inference-output", "score"],
        ] {
            let e = serve(bad).unwrap().into_config().unwrap_err();
            assert_eq!(e.exit(), crate::sagemaker::Exit::Usage, "{bad:?}");
        }
    }

    #[test]
    fn the_body_limit_is_the_flag_else_max_payload_in_mb_else_6_mib() {
        let limit = |args: &[&str]| serve(args).unwrap().max_body_bytes();
        assert_eq!(limit(&["--max-payload-in-mb", "20"]), 20 * MIB);
        assert_eq!(limit(&["--max-payload-in-mb", "0"]), 100 * MIB);
        let both = ["--max-payload-in-mb", "20", "--max-body-bytes", "1000"];
        assert_eq!(limit(&both), 1000);
        assert!(serve(&["--max-payload-in-mb", "101"]).is_err());
        let c = serve(&["--max-payload-in-mb", "100"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.max_body_bytes.get(), 100 * MIB);
        assert_eq!(c.body_timeout, Duration::from_secs(60));
        assert_eq!(c.max_in_flight_bytes.get(), 64 * MIB);
        if std::env::var_os("CCFRAUD_DRIFT_WINDOW_ROWS").is_none()
            && std::env::var_os("CCFRAUD_SLOW_REQUEST_MS").is_none()
        {
            assert_eq!(c.watch.drift_window_rows, 10_000);
            assert_eq!(c.watch.slow_request, Duration::from_millis(1_000));
        }
        let c = serve(&["--slow-request-ms", "5", "--drift-window-rows", "0"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.watch.slow_request, Duration::from_millis(5));
        assert_eq!(c.watch.drift_window_rows, 0);
        let json = Cli::try_parse_from(["ccfraud", "serve", "--log-format", "json"]).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["ccfraud", "--log-format", "xml", "serve"]).is_err());
        for flag in [
            "--body-timeout-secs",
            "--max-connections",
            "--max-in-flight-bytes",
        ] {
            let e = serve(&[flag, "0"]).unwrap().into_config().unwrap_err();
            assert_eq!(e.to_string(), format!("{flag} must be at least 1"));
        }
    }

    fn prepare(args: &[&str]) -> Result<crate::data::prepare::Options, String> {
        let base = ["ccfraud", "prepare", "--input", "x.csv", "--out", "o"];
        let c = Cli::try_parse_from(base.iter().chain(args)).map_err(|e| e.to_string())?;
        match c.command {
            Command::Prepare(a) => a.options().map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prepare_flags_become_options() {
        use crate::data::prepare::{Options, Split};
        let none = ["CCFRAUD_PREPARE_LABEL", "CCFRAUD_PREPARE_SPLIT"]
            .iter()
            .chain(&["CCFRAUD_PREPARE_TEST_FRACTION", "CCFRAUD_PREPARE_SEED"])
            .all(|v| std::env::var_os(v).is_none());
        if none {
            assert_eq!(prepare(&[]), Ok(Options::default()));
        }
        let o = prepare(&[
            "--label",
            "is_fraud",
            "--split",
            "random",
            "--test-fraction",
            "0.3",
        ]);
        assert_eq!(
            o,
            Ok(Options {
                label: Some("is_fraud".into()),
                split: Some(Split::Random { seed: 42 }),
                test_fraction: Some(0.3),
            })
        );
        let o = prepare(&["--split", "random", "--seed", "7"]).unwrap();
        assert_eq!(o.split, Some(Split::Random { seed: 7 }));
        assert_eq!(
            prepare(&["--split", "time"]).unwrap().split,
            Some(Split::Time)
        );
        for args in [&["--seed", "7"][..], &["--split", "time", "--seed", "7"]] {
            let e = prepare(args).unwrap_err();
            assert!(
                e.contains("--seed only chooses the rows of --split random"),
                "{e}"
            );
        }
        let e = prepare(&["--split", "shuffled"]).unwrap_err();
        assert!(e.contains("possible values: time, random"), "{e}");
    }

    #[test]
    fn log_filters_parse_or_fail_loudly() {
        for ok in [
            None,
            Some(""),
            Some("debug"),
            Some("ccfraud=debug,aws=warn"),
        ] {
            assert!(log_filter(ok).is_ok(), "{ok:?}");
        }
        let e = log_filter(Some("ccfraud=loud")).unwrap_err().to_string();
        assert!(e.contains("CCFRAUD_LOG='ccfraud=loud'"), "{e}");
    }
}
