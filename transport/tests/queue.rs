//! The direct-request queue against a real nats-server: created by whoever comes first,
//! updated by nodes, holding requests for a node that has no consumer yet, and a broker
//! without JetStream recognised as such.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use mco_testsupport::NatsServer;
use mco_transport::{
    consumer_name, ensure_stream, node_consumer, probe, stream_name, Ownership, QueueError,
    QueueSettings,
};

async fn connect(server: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(server.url()).await.unwrap())
}

#[tokio::test]
async fn the_stream_is_created_once_and_nodes_bring_its_settings_in_line() {
    let server = NatsServer::start();
    let js = connect(&server).await;
    probe(&js).await.unwrap();
    let mut settings = QueueSettings::default();
    let mut stream = ensure_stream(&js, "mco", &settings, Ownership::UseExisting)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().config.name, stream_name("mco"));

    // A node with another max age updates the stream; a client never does.
    settings.max_age_seconds = 600;
    let mut stream = ensure_stream(&js, "mco", &settings, Ownership::Configure)
        .await
        .unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.max_age,
        Duration::from_secs(600)
    );
    let mut stream = ensure_stream(
        &js,
        "mco",
        &QueueSettings::default(),
        Ownership::UseExisting,
    )
    .await
    .unwrap();
    assert_eq!(
        stream.info().await.unwrap().config.max_age,
        Duration::from_secs(600)
    );
}

#[tokio::test]
async fn a_request_waits_for_a_node_that_has_no_consumer_yet() {
    let server = NatsServer::start();
    let js = connect(&server).await;
    let stream = ensure_stream(
        &js,
        "mco",
        &QueueSettings::default(),
        Ownership::UseExisting,
    )
    .await
    .unwrap();
    js.publish("mco.node.web1.example.net", "queued".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("mco.node.web2", "other".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let consumer = node_consumer(
        &stream,
        "mco",
        "web1.example.net",
        8,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first.payload[..], b"queued");
    first.ack().await.unwrap();
    // Only its own subject: web2's request is not delivered to web1.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), messages.next())
            .await
            .is_err()
    );
    // The same consumer again (a restart) is reused, and another max_ack_pending updates it.
    let again = node_consumer(
        &stream,
        "mco",
        "web1.example.net",
        16,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let mut again = again;
    assert_eq!(again.info().await.unwrap().config.max_ack_pending, 16);
    assert_eq!(
        again.info().await.unwrap().name,
        consumer_name("web1.example.net")
    );
}

#[tokio::test]
async fn a_broker_without_jetstream_is_recognised() {
    let server = NatsServer::start_with(false);
    let js = connect(&server).await;
    match probe(&js).await {
        Err(QueueError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match ensure_stream(&js, "mco", &QueueSettings::default(), Ownership::Configure).await {
        Err(QueueError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
}
