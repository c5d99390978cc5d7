//! The `chainwatch` command line: run the service, feed a broker from the simulator (or write its
//! history to a file), check and unit-test rules, backtest rules on recorded history.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use chainwatch::config::Config;
use chainwatch::demo::Feeder;
use chainwatch::ingest::kafka;
use chainwatch::pipeline;
use chainwatch::sim::{SimConfig, Simulator};

/// jemalloc returns freed memory to the system where glibc's malloc kept it resident
/// (docs/benchmarks.md, "Fourteenth session").
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Replay recorded events through the rules in event time and score the alerts against the
    /// late deliveries and stock-outs in the data.
    Backtest(BacktestArgs),
    /// Supplier feed tooling (definitions in feeds/*.yaml; docs/feeds.md).
    Feeds {
        #[command(subcommand)]
        command: FeedsCommand,
    },
    /// Supply network tooling (network/*.yaml; docs/network.md).
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
}

#[derive(Subcommand)]
enum FeedsCommand {
    /// Check every feed definition of a directory strictly; exit 1 on any error.
    Check {
        /// Feeds directory.
        #[arg(default_value = "feeds")]
        dir: PathBuf,
    },
    /// Dry run: map a sample file through a feed definition and report what would be ingested,
    /// every rejected record with its row and reason, and field coverage. Nothing is
    /// subscribed or produced. Exit 0 when every record maps, 1 when some are rejected, 2 when
    /// the definition itself is invalid.
    Validate {
        /// The feed definition file.
        feed: PathBuf,
        /// A sample message: one file as the supplier sends it.
        #[arg(long)]
        sample: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Check the network files (and the feeds' supplier blocks); exit 1 on any error.
    Check {
        /// Network directory.
        #[arg(long, default_value = "network")]
        network: PathBuf,
        /// Feeds directory whose supplier blocks join the network.
        #[arg(long, default_value = "feeds")]
        feeds: PathBuf,
    },
    /// Rank the supplier nodes by risk exposure: time to survive (LP over stock, alternates'
    /// capacity and lead time) against time to recover, and the lost value.
    Exposure {
        /// Network directory.
        #[arg(long, default_value = "network")]
        network: PathBuf,
        /// Feeds directory whose supplier blocks join the network.
        #[arg(long, default_value = "feeds")]
        feeds: PathBuf,
        /// Recorded events (JSON lines) giving stock and demand: the state at their end is
        /// used. Without it, every part counts with no stock and no demand.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Use the simulator's network (seed 42) instead of the files: a demo.
        #[arg(long)]
        sim: bool,
        /// Time to survive is capped at this.
        #[arg(long, default_value = "365d")]
        horizon: String,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
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
    /// Run rule unit tests (promtool-style YAML); exit 1 when one fails.
    Test {
        /// Test files, e.g. rules/tests/*.test.yaml.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Html,
}

#[derive(Args)]
struct BacktestArgs {
    /// Recorded events: JSON lines of canonical events (`chainwatch simulate --out` writes one).
    #[arg(long, conflicts_with = "topic", required_unless_present = "topic")]
    events: Option<PathBuf>,
    /// Read events from these topics instead, from their beginning to their current end
    /// (no consumer group is joined, nothing is committed).
    #[arg(long)]
    topic: Vec<String>,
    /// Kafka bootstrap servers for --topic.
    #[arg(long, env = "CHAINWATCH_BROKERS")]
    brokers: Option<String>,
    /// Configuration file: its [kafka.options] are used for --topic.
    #[arg(long, short, env = "CHAINWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Rules directory (holding *.yaml and indicators/*.sql).
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Evaluation step in event time.
    #[arg(long, default_value = "1h")]
    step: String,
    /// How far ahead an alert may predict a breach (and back a breach may be warned of).
    #[arg(long, default_value = "14d")]
    horizon: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threads running indicator SQL (the result does not depend on it); default: one per CPU.
    #[arg(long)]
    jobs: Option<usize>,
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
    #[arg(long, env = "CHAINWATCH_BROKERS", required_unless_present = "out")]
    brokers: Option<String>,
    /// Write the history as JSON lines to this file instead of producing it (for
    /// `chainwatch backtest --events`); takes precedence over --brokers.
    #[arg(long, conflicts_with = "live")]
    out: Option<PathBuf>,
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
            Some(Command::Rules {
                command: RulesCommand::Test { files },
            }) => rules_test(files).await,
            Some(Command::Backtest(args)) => backtest(args).await,
            Some(Command::Feeds { command }) => feeds_command(command),
            Some(Command::Network { command }) => network_command(command),
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
        let (running, live) = chainwatch::demo::start_demo(config.clone()).await?;
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
    let mut sc = SimConfig {
        seed: args.seed,
        malformed_every: args.malformed_every,
        disruptions: !args.no_disruptions,
        ..SimConfig::default()
    };
    if let Some(s) = args.start {
        sc.start = s;
    }
    sc.validate()?;
    let mut sim = Simulator::new(sc);
    let until = sim.now() + chrono::Duration::days(i64::from(args.days));
    if let Some(path) = args.out {
        let n = write_history(&mut sim, until, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {n} events up to {until} to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let brokers = args.brokers.context("--brokers or --out")?;
    let mut config = load_config(args.config.as_ref())?;
    config.kafka.brokers = Some(brokers.clone());
    kafka::ensure_topics(&config.kafka, &brokers).await?;
    let producer = kafka::producer_config(&config.kafka, &brokers)
        .create()
        .context("producer")?;
    let feeder = Feeder {
        producer,
        topics: config.kafka.topics.clone(),
    };
    // The tier-2 suppliers' own feeds (feeds/*.yaml map them) and the supply network on its
    // compacted topic, as in the embedded demo.
    chainwatch::demo::ensure_feed_topics(&config.kafka, &brokers).await?;
    let topic = config.network.topic.as_str();
    if let Err(e) = kafka::create_topics(
        &config.kafka,
        &brokers,
        &[topic],
        &[("cleanup.policy", "compact")],
    )
    .await
    {
        eprintln!("could not create the network topic {topic}: {e}");
    }
    let net = chainwatch::network::Network::from_sim(sim.network());
    let records = chainwatch::catalog::publish_network(&feeder.producer, topic, &net).await?;
    println!("published the network ({records} records) to {topic}");
    let mut feeds = chainwatch::sim::Tier2Feeds::new(sim.network(), args.seed, sim.now());
    let n = feeder
        .history_with_feeds(&mut sim, Some(&mut feeds), until)
        .await?;
    println!("produced {n} events up to {until}");
    if args.live {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let live = tokio::spawn(async move {
            feeder
                .live_with_feeds(sim, Some(feeds), args.speed, rx)
                .await
        });
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
                "{}: {} indicators ({} views), {} rules in {} groups: OK",
                dir.display(),
                book.indicators.defs().len(),
                book.indicators.views().len(),
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

/// Writes the simulator's events up to `until` as JSON lines, a simulated day at a time.
fn write_history(
    sim: &mut Simulator,
    until: DateTime<Utc>,
    path: &std::path::Path,
) -> std::io::Result<usize> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut n = 0;
    while sim.now() < until {
        let step = (sim.now() + chrono::Duration::days(1)).min(until);
        for e in sim.run_until(step) {
            out.write_all(&e.payload)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}

async fn rules_test(files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for f in &files {
        let report = chainwatch::ruletest::run_file(f).await;
        ok &= report.passed();
        print!("{report}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn backtest(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    use chainwatch::backtest::{replay, report, score, source};
    let step = parse_ms("--step", &args.step)?;
    let horizon = parse_ms("--horizon", &args.horizon)?;
    let book = match pipeline::load_rulebook(&args.rules).await {
        Ok(b) => b,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let started = std::time::Instant::now();
    let (log, source_name) = match (&args.events, args.topic.is_empty()) {
        (Some(path), _) => (
            source::EventLog::read_jsonl(path)?,
            path.display().to_string(),
        ),
        (None, false) => {
            let brokers = args
                .brokers
                .clone()
                .context("--topic needs --brokers (or CHAINWATCH_BROKERS)")?;
            let config = load_config(args.config.as_ref())?;
            let src = source::TopicSource {
                brokers: brokers.clone(),
                topics: args.topic.clone(),
                options: config.kafka.options.into_iter().collect(),
                idle_timeout: std::time::Duration::from_secs(30),
            };
            let log = tokio::task::spawn_blocking(move || source::read_topics(&src)).await??;
            (log, format!("{} on {brokers}", args.topic.join(",")))
        }
        (None, true) => anyhow::bail!("give --events FILE or --topic T"),
    };
    let read_s = started.elapsed().as_secs_f64();
    let Some(schedule) = replay::Schedule::covering(log.times(), step) else {
        anyhow::bail!(
            "{source_name}: no valid event in {} records{}",
            log.records,
            log.rejects
                .first()
                .map(|r| format!(" (first rejected: {}: {})", r.at, r.detail))
                .unwrap_or_default()
        );
    };
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut workers = Vec::new();
    for _ in 0..jobs.max(1) {
        let indicators =
            chainwatch::indicators::Indicators::load_dir(&args.rules.join("indicators"))
                .await
                .map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    anyhow::anyhow!("indicators:\n{}", lines.join("\n"))
                })?;
        workers.push(indicators);
    }
    let bar = progress_bar(schedule.len());
    let outcome = tokio::task::block_in_place(|| {
        replay::run_parallel(
            &book,
            &log,
            schedule,
            chainwatch::state::Retention::default(),
            workers,
            &mut |done, _| bar.set_position(done),
        )
    })?;
    bar.finish_and_clear();
    let replay_s = started.elapsed().as_secs_f64() - read_s;
    let scores = score::score(&outcome, &book, horizon);
    let meta = report::Meta {
        source: source_name,
        rules_dir: args.rules.display().to_string(),
        records: log.records,
        events: log.len(),
        rejects: log
            .rejects
            .iter()
            .map(|r| format!("{}: {}: {}", r.at, r.reason.as_str(), r.detail))
            .collect(),
        step: args.step.clone(),
        horizon: args.horizon.clone(),
        static_labels: book
            .rules
            .rules()
            .map(|r| (r.name.clone(), r.labels.keys().cloned().collect()))
            .collect(),
    };
    let evaluations = outcome.evaluations;
    let report = report::Report::new(meta, outcome, scores);
    let text = match args.format {
        Format::Table => report.table(),
        Format::Json => report.json(),
        Format::Html => report.html(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    // Wall-clock figures go to stderr: the report itself depends only on its inputs.
    eprintln!(
        "chainwatch backtest: {} events read in {read_s:.1}s, {evaluations} evaluations replayed in {replay_s:.1}s",
        log.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn feeds_command(command: FeedsCommand) -> anyhow::Result<ExitCode> {
    match command {
        FeedsCommand::Check { dir } => match chainwatch::feeds::load_dir(&dir) {
            Ok(set) => {
                println!("{}: {} feeds: OK", dir.display(), set.len());
                for f in set.iter() {
                    println!(
                        "  {} (supplier {}, tier {}) on topic {}",
                        f.name, f.supplier.id, f.supplier.tier, f.topic
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{} error(s)", errors.len());
                Ok(ExitCode::from(1))
            }
        },
        FeedsCommand::Validate { feed, sample, json } => {
            let def = match chainwatch::feeds::load_file(&feed) {
                Ok(def) => def,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("{} error(s) in the definition", errors.len());
                    return Ok(ExitCode::from(2));
                }
            };
            let report = chainwatch::feeds::validate::validate_file(&def, &sample)
                .with_context(|| format!("reading {}", sample.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// The network of the files plus the feeds' supplier blocks, or every error.
fn load_network(
    network: &std::path::Path,
    feeds: &std::path::Path,
) -> Result<chainwatch::network::Network, Vec<String>> {
    let files = chainwatch::catalog::load_network(network).map_err(|e| vec![e.to_string()])?;
    let feeds = chainwatch::catalog::load_feeds(feeds).map_err(|e| vec![e.to_string()])?;
    let mut net = files;
    net.merge(chainwatch::catalog::network_of_feeds(&feeds));
    let problems = net.check();
    if problems.is_empty() {
        Ok(net)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

fn network_command(command: NetworkCommand) -> anyhow::Result<ExitCode> {
    match command {
        NetworkCommand::Check { network, feeds } => match load_network(&network, &feeds) {
            Ok(net) => {
                println!(
                    "network: {} suppliers, {} links, {} parts: OK",
                    net.suppliers.len(),
                    net.links.len(),
                    net.parts.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                Ok(ExitCode::from(1))
            }
        },
        NetworkCommand::Exposure {
            network,
            feeds,
            events,
            sim,
            horizon,
            json,
        } => {
            let horizon = chainwatch::config::parse_duration(&horizon)
                .map_err(|e| anyhow::anyhow!("--horizon: {e}"))?;
            let net = if sim {
                chainwatch::network::Network::from_sim(
                    Simulator::new(SimConfig::default()).network(),
                )
            } else {
                match load_network(&network, &feeds) {
                    Ok(net) => net,
                    Err(errors) => {
                        for e in &errors {
                            eprintln!("{e}");
                        }
                        return Ok(ExitCode::from(1));
                    }
                }
            };
            let supply = match &events {
                Some(path) => {
                    let log = chainwatch::backtest::source::EventLog::read_jsonl(path)?;
                    let mut state = chainwatch::state::State::new(Config::default().retention);
                    if let Some(batch) = &log.batch {
                        let times = batch
                            .column(chainwatch::events::col::EVENT_TIME)
                            .as_any()
                            .downcast_ref::<arrow::array::TimestampMillisecondArray>()
                            .map(|a| a.values().iter().copied().max().unwrap_or(0))
                            .unwrap_or(0);
                        state.apply(batch, times);
                    }
                    chainwatch::catalog::part_supply(&state.snapshot(), &net)
                }
                None => Vec::new(),
            };
            let options = chainwatch::network::ExposureOptions {
                horizon_days: horizon.as_secs_f64() / 86_400.0,
                ..Default::default()
            };
            let nodes = chainwatch::network::ranking(&net, &supply, &options);
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                print!("{}", chainwatch::network::RankingTable(&nodes));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_ms(flag: &str, text: &str) -> anyhow::Result<i64> {
    let d = chainwatch::config::parse_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    anyhow::ensure!(ms > 0, "{flag} must be positive");
    // Keeps event-time arithmetic (ms since 1970, dates up to 2100) far from overflow.
    anyhow::ensure!(
        ms <= 100 * 366 * 86_400_000,
        "{flag} must be at most 100 years"
    );
    Ok(ms)
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "replaying {bar:40} {pos}/{len} evaluations, {elapsed} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
