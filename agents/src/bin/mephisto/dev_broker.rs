//! `mephisto dev-broker`: runs the in-memory development broker (`mephisto-dev-broker`) until
//! SIGINT or SIGTERM, printing `MEPHISTO_BROKER=kafka://ADDR` once it listens.

use std::time::Duration;

use mephisto_dev_broker::{DevBroker, DevBrokerConfig};

use crate::args::DevBrokerArgs;
use crate::error::CliError;

/// Runs the broker.
pub async fn run(args: DevBrokerArgs) -> Result<(), CliError> {
    let config = DevBrokerConfig {
        listen: args.listen,
        default_partitions: args.partitions,
        retention_bytes: args.retention_bytes,
        initial_rebalance_delay: Duration::from_millis(args.initial_rebalance_delay_ms),
        ..DevBrokerConfig::default()
    };
    let broker = DevBroker::start(config)
        .await
        .map_err(|e| CliError::DevBroker(e.to_string()))?;
    println!("MEPHISTO_BROKER={}", broker.url());
    eprintln!(
        "mephisto dev-broker: listening on {} (in memory, for development and tests only)",
        broker.local_addr()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::DevBroker(format!("cannot watch SIGTERM: {e}")))?;
    let limit = args.exit_after_ms.map(Duration::from_millis);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        } => {}
    }
    broker.shutdown().await;
    Ok(())
}
