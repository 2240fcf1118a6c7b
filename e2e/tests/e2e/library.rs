//! The client library used the way a web application uses it: one shared `Client`, many
//! concurrent calls from different tasks, results with statistics.

use std::time::Duration;

use mco_client::{Call, Client, Mode};
use mco_spec::{Filter, StatusCode};

use crate::five_nodes;

#[test]
fn a_shared_client_serves_concurrent_calls() {
    let fleet = five_nodes();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let builder = Client::builder()
            .collectives(["mco", "uk", "eu"])
            .discovery_timeout(Duration::from_secs(2))
            // 3 uk nodes are more than 2: broadcast; the 2 others get direct requests.
            .direct_threshold(2);
        let client = crate::signed_client(&fleet, builder).await;

        // Ten "HTTP handlers" at once, each with its own filter, on one connection.
        let mut handlers = Vec::new();
        for i in 0..10 {
            let client = client.clone();
            handlers.push(tokio::spawn(async move {
                let mut filter = Filter::default();
                filter
                    .add_fact(if i % 2 == 0 {
                        "country=uk"
                    } else {
                        "country!=uk"
                    })
                    .unwrap();
                let result = client
                    .call(
                        Call::new("rpcutil", "get_fact")
                            .arg("fact", "country")
                            .filter(filter),
                    )
                    .await
                    .unwrap()
                    .collect()
                    .await;
                (i, result)
            }));
        }
        for handler in handlers {
            let (i, result) = handler.await.unwrap();
            let want = if i % 2 == 0 { 3 } else { 2 };
            assert_eq!(result.stats.discovered, want);
            assert_eq!(result.stats.responded, want);
            assert_eq!(result.stats.ok, want);
            assert!(result.stats.no_response_from.is_empty());
            let mode = if i % 2 == 0 {
                Mode::Broadcast
            } else {
                Mode::Direct
            };
            assert_eq!(
                result.stats.mode,
                Some(mode),
                "{}",
                result.stats.mode_reason
            );
            for reply in &result.replies {
                assert_eq!(reply.statuscode, StatusCode::Ok);
                assert_eq!(reply.data["value"] == "uk", i % 2 == 0);
            }
        }

        // A known node list: direct requests, and an explicit row for the node that is absent.
        let result = client
            .call(
                Call::new("rpcutil", "ping")
                    .nodes(["web1", "db2", "ghost"])
                    .timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(result.stats.mode, Some(Mode::Direct));
        assert_eq!(result.stats.discovered, 3);
        assert_eq!(result.stats.responded, 2);
        assert_eq!(result.stats.no_response_from, ["ghost"]);

        // Replies as a stream, as a handler streaming results to a browser would read them.
        let mut replies = client
            .call(Call::new("rpcutil", "ping").collective("eu"))
            .await
            .unwrap();
        let mut senders = Vec::new();
        while let Some(reply) = replies.next().await {
            senders.push(reply.sender);
        }
        senders.sort();
        assert_eq!(senders, ["db1", "web3"]);

        let nodes = client
            .discover(&Filter::default(), Some("uk"), None)
            .await
            .unwrap();
        assert_eq!(nodes, ["db2", "web1", "web2"]);
        assert!(client
            .discover(&Filter::default(), Some("nowhere"), None)
            .await
            .is_err());
    });
}

#[test]
fn connecting_to_a_dead_broker_fails_fast_with_its_own_error_kind() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("nats://127.0.0.1:{}", mco_testsupport::free_port());
        let err = Client::builder()
            .broker(url)
            .insecure(true)
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, mco_client::ClientError::BrokerUnavailable { .. }),
            "{err}"
        );
    });
}
