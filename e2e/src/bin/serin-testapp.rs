//! Serin's sample service; see `serin_e2e::testapp`.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    serin_e2e::init_logging();
    serin_e2e::testapp::serve(serin_e2e::testapp::Config::parse()).await
}
