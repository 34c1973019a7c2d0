//! `kubectl serin`: steer Serin rollouts and gate CI on them. kubectl finds this binary on PATH as
//! `kubectl-serin`; it reads the same kubeconfig kubectl does, or with `--standalone URL` talks to
//! a standalone controller's API instead (see `source`).
//!
//! Exit codes of `wait`: 0 promoted, 1 failed or aborted, 2 timed out, 3 waiting for approval (with
//! `--for paused`). Every other command exits 1 on an error, naming what and where.

mod get;
mod request;
mod revision;
mod source;
mod standalone;
mod status;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serin_crds::operator_request::RequestAction;

#[derive(Parser)]
#[command(name = "kubectl serin", version, about = "Steer Serin rollouts and gate CI on them")]
struct Cli {
    /// The Canary's namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// A standalone controller's API to talk to instead of a cluster, e.g. http://127.0.0.1:9090.
    #[arg(long, global = true, env = "SERIN_STANDALONE", value_name = "URL")]
    standalone: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One Canary, or those of the namespace: name, strategy, phase, weight, step, failed checks,
    /// last transition.
    Get {
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum)]
        output: Option<get::Output>,
    },
    /// The Canaries of the namespace (or of all, with -A), as `get` prints them.
    List {
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum)]
        output: Option<get::Output>,
    },
    /// One Canary's rollout: revisions, phase, step and weight, metrics against their thresholds,
    /// gates and recent events.
    Status {
        name: String,
        /// Keep the view up to date (redrawn in place on a terminal).
        #[arg(short, long)]
        watch: bool,
        /// No colour (also with NO_COLOR set, or when stdout is not a terminal).
        #[arg(long)]
        no_color: bool,
    },
    /// Skip what is left of the analysis and gates, and promote now.
    Promote {
        name: String,
    },
    /// Roll back now.
    Abort {
        name: String,
    },
    /// Hold the current step (safety checks still act).
    Pause {
        name: String,
    },
    /// Go on from a pause.
    Resume {
        name: String,
    },
    /// Run a failed revision again.
    Retry {
        name: String,
    },
    /// Open or close a gate (rollout, traffic-increase, promotion, rollback).
    Gate {
        #[arg(value_parser = ["open", "close"])]
        change: String,
        #[arg(value_parser = serin_crds::operator_request::GATES)]
        gate: String,
        name: String,
    },
    /// Check manifests without a cluster: the schema, and the rules the API cannot express. Every
    /// problem is named by file, document, object and field; exit 1 if there is any.
    Lint {
        /// A YAML file of one or more documents; `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    Simulate(serin_engine::simulate::SimulateArgs),
    /// Print a shell completion script, e.g. `kubectl serin completion bash > /etc/bash_completion.d/kubectl-serin`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Wait for the rollout of the target's current revision: exit 0 promoted, 1 failed or
    /// aborted, 2 timed out, 3 waiting for approval (with --for paused), 4 the rollout could not
    /// be read (no such Canary, no right to read it, or no answer from the API until the timeout).
    Wait {
        name: String,
        #[arg(long = "for", value_enum, default_value_t = wait::WaitFor::Promoted)]
        wanted: wait::WaitFor,
        /// How long to wait, e.g. 10m, 90s, 1h.
        #[arg(long, default_value = "30m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    serin_crds::duration::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("kubectl serin: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Lint { files } => return lint(files),
        Command::Simulate(args) => {
            let timeline = args.clone().run().map_err(anyhow::Error::msg)?;
            print!("{}", timeline.render());
            return Ok(timeline.exit_code());
        }
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "kubectl-serin", &mut std::io::stdout());
            return Ok(0);
        }
        _ => {}
    }
    let source = source::Source::connect(cli.standalone.as_deref()).await?;
    let namespace = cli.namespace.clone().unwrap_or_else(|| source.default_namespace());
    let (name, action, gate) = match cli.command {
        Command::Get { name, all_namespaces, output } => {
            if all_namespaces && name.is_some() {
                anyhow::bail!("a Canary is named within one namespace: drop -A or the name");
            }
            let scope = (!all_namespaces).then_some(namespace.as_str());
            let found = source.canaries(scope, name.as_deref()).await?;
            print!("{}", get::render(&found, output, all_namespaces)?);
            return Ok(0);
        }
        Command::Status { name, watch, no_color } => {
            use std::io::IsTerminal;
            let terminal = std::io::stdout().is_terminal();
            let colour = terminal && !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let style = status::Style { colour, redraw: terminal };
            // SERIN_STATUS_FOR bounds a watch (seconds), for scripts and tests.
            let until = std::env::var("SERIN_STATUS_FOR").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
            status::show(&source, &namespace, &name, watch, style, until).await?;
            return Ok(0);
        }
        Command::List { all_namespaces, output } => {
            let scope = (!all_namespaces).then_some(namespace.as_str());
            let found = source.canaries(scope, None).await?;
            print!("{}", get::render(&found, output, all_namespaces)?);
            return Ok(0);
        }
        Command::Wait { name, wanted, timeout } => {
            let outcome = wait::wait(&source, &namespace, &name, wanted, timeout).await;
            match &outcome {
                wait::Outcome::Promoted => println!("promoted"),
                wait::Outcome::Failed(reason) => println!("failed: {reason}"),
                wait::Outcome::TimedOut => println!("timed out after {}", humanize(timeout)),
                wait::Outcome::WaitingForApproval(why) => println!("waiting for approval: {why}"),
                wait::Outcome::CannotTell(why) => eprintln!("kubectl serin: cannot tell how the rollout went: {why}"),
            }
            return Ok(outcome.code());
        }
        Command::Lint { .. } | Command::Completion { .. } | Command::Simulate(_) => {
            unreachable!("handled without a cluster")
        }
        Command::Promote { name } => (name, RequestAction::Promote, None),
        Command::Abort { name } => (name, RequestAction::Abort, None),
        Command::Pause { name } => (name, RequestAction::Pause, None),
        Command::Resume { name } => (name, RequestAction::Resume, None),
        Command::Retry { name } => (name, RequestAction::Retry, None),
        Command::Gate { change, gate, name } => {
            let action = if change == "open" { RequestAction::OpenGate } else { RequestAction::CloseGate };
            (name, action, Some(gate))
        }
    };
    let answer = request::send(&source, &namespace, &name, action, gate.as_deref()).await?;
    println!("{answer}");
    Ok(0)
}

fn lint(files: &[String]) -> anyhow::Result<u8> {
    let mut failed = false;
    for file in files {
        let text = if file == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{file}: {e}"))?
        };
        let source = if file == "-" { "(stdin)" } else { file.as_str() };
        let (objects, problems) = serin_crds::manifest::lint(source, &text);
        for problem in &problems {
            println!("{problem}");
        }
        if problems.is_empty() {
            println!("{source}: {objects} objects, no problems");
        }
        failed |= !problems.is_empty();
    }
    Ok(u8::from(failed))
}

fn humanize(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}
