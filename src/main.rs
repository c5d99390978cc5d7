//! The `chainwatch` command line: run the service, feed a broker from the simulator, check rules.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use chainwatch::config::Config;
use chainwatch::feed::Feeder;
use chainwatch::ingest::kafka;
use chainwatch::pipeline;
use chainwatch::sim::{SimConfig, Simulator};

#[derive(Parser)]
#[command(
    name = "chainwatch",
    version,
    about = "Supply-chain risk early warning from Kafka event streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default). Without --brokers: embedded broker + simulator.
    Run(RunArgs),
    /// Produce simulated supply-network events to a Kafka broker.
    Simulate(SimulateArgs),
    /// Rule tooling.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse every rule file strictly, plan every indicator query; exit 1 on any error.
    Check {
        /// Rules directory (holding *.yaml and indicators/*.sql).
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Configuration file (TOML); every key has a default.
    #[arg(long, short, env = "CHAINWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers; overrides the config. Unset: embedded broker + simulator.
    #[arg(long, env = "CHAINWATCH_BROKERS")]
    brokers: Option<String>,
    /// HTTP listen address, e.g. 127.0.0.1:9750.
    #[arg(long, env = "CHAINWATCH_LISTEN")]
    listen: Option<String>,
    /// Rules directory.
    #[arg(long, env = "CHAINWATCH_RULES")]
    rules: Option<PathBuf>,
}

#[derive(Args)]
struct SimulateArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "CHAINWATCH_BROKERS")]
    brokers: String,
    /// Configuration file (topics and Kafka options are taken from it).
    #[arg(long, short, env = "CHAINWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days of history to produce.
    #[arg(long, default_value_t = 40)]
    days: u32,
    /// After the history, keep producing in simulated time.
    #[arg(long)]
    live: bool,
    /// Simulated seconds per wall-clock second when --live.
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// Simulated start time (RFC 3339).
    #[arg(long)]
    start: Option<DateTime<Utc>>,
    /// Replace every n-th event by a malformed one.
    #[arg(long)]
    malformed_every: Option<u64>,
    /// No injected disruptions.
    #[arg(long)]
    no_disruptions: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chainwatch: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => run(cli.run).await,
            Some(Command::Run(args)) => run(args).await,
            Some(Command::Simulate(args)) => simulate(args).await,
            Some(Command::Rules {
                command: RulesCommand::Check { dir },
            }) => check(dir).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chainwatch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(b) = args.brokers {
        config.kafka.brokers = Some(b).filter(|b| !b.is_empty());
    }
    if let Some(l) = args.listen {
        config.http.listen = l.parse().with_context(|| format!("--listen {l:?}"))?;
    }
    if let Some(r) = args.rules {
        config.evaluation.rules = r;
    }
    let embedded = config.kafka.brokers.is_none();
    let mut feeder_task = None;
    let running = if embedded {
        let (running, live) = chainwatch::feed::start_demo(config.clone()).await?;
        feeder_task = Some(live);
        let base = format!("http://{}", running.http_addr);
        println!(
            "chainwatch: embedded broker with a simulated supply network (seed {}).\n\
             Firing alerts appear within a minute at:\n  {base}/api/alerts\n  {base}/metrics  \
             (chainwatch_alerts{{alertstate=\"firing\"}})\n  {base}/api/status\nPress Ctrl-C to stop.",
            config.simulator.seed
        );
        running
    } else {
        let running = pipeline::start(config.clone()).await?;
        let base = format!("http://{}", running.http_addr);
        println!(
            "chainwatch: consuming from {}; metrics at {base}/metrics, alerts at {base}/api/alerts",
            running.brokers
        );
        running
    };
    wait_for_signal().await;
    tracing::info!("Shutting down.");
    running.shutdown().await;
    if let Some(t) = feeder_task {
        t.abort();
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    config.kafka.brokers = Some(args.brokers.clone());
    kafka::ensure_topics(&config.kafka, &args.brokers).await?;
    let producer = kafka::producer_config(&config.kafka, &args.brokers)
        .create()
        .context("producer")?;
    let feeder = Feeder {
        producer,
        topics: config.kafka.topics.clone(),
    };
    let mut sc = SimConfig {
        seed: args.seed,
        malformed_every: args.malformed_every,
        disruptions: !args.no_disruptions,
        ..SimConfig::default()
    };
    if let Some(s) = args.start {
        sc.start = s;
    }
    let mut sim = Simulator::new(sc);
    let until = sim.now() + chrono::Duration::days(i64::from(args.days));
    let n = feeder.history(&mut sim, until).await?;
    println!("produced {n} events up to {until}");
    if args.live {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let live = tokio::spawn(async move { feeder.live(sim, args.speed, rx).await });
        wait_for_signal().await;
        live.abort();
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(dir: PathBuf) -> anyhow::Result<ExitCode> {
    match pipeline::load_rulebook(&dir).await {
        Ok(book) => {
            let rules: usize = book.rules.groups.iter().map(|g| g.rules.len()).sum();
            println!(
                "{}: {} indicators, {} rules in {} groups: OK",
                dir.display(),
                book.indicators.defs().len(),
                rules,
                book.rules.groups.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(1))
        }
    }
}
