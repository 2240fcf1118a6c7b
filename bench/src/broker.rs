//! Waiting for the broker to catch up with a connection.
//!
//! async-nats's `flush` hands buffered bytes to the socket; it is not a round trip, so after
//! subscribing and flushing the broker may not have processed the subscriptions yet, and a
//! message published on another connection at once can miss them. A fleet that has just
//! subscribed thousands of subjects must wait for a real round trip before it is measured,
//! or its first round loses replies for good.
//!
//! Not for: the client library or `mcod`, which publish on the connection they subscribed
//! on (the broker processes one connection's protocol in order).

use std::time::Duration;

use futures::StreamExt;

/// Why the broker did not answer a round trip.
#[derive(Debug, thiserror::Error)]
#[error("the broker did not complete a round trip: {0}")]
pub struct RoundTripError(String);

/// Returns once the broker has processed everything sent on `client` so far, subscriptions
/// included: a message to a fresh inbox on the same connection comes back only after the
/// broker has read what came before it.
pub async fn round_trip(
    client: &async_nats::Client,
    limit: Duration,
) -> Result<(), RoundTripError> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| RoundTripError(e.to_string()))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| RoundTripError(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| RoundTripError(e.to_string()))?;
    match tokio::time::timeout(limit, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(RoundTripError("the connection closed".into())),
        Err(_) => Err(RoundTripError(format!("no answer within {limit:?}"))),
    }
}
