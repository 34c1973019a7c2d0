//! The e2e rig's kubelet; see `serin_e2e::podrunner`.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serin_e2e::init_logging();
    let config = serin_e2e::podrunner::RunnerConfig::parse();
    let client = kube::Client::try_default().await?;
    serin_e2e::podrunner::run(config, client).await
}
