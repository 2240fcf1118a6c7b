//! The direct-request queue against a real nats-server: created by whoever comes first,
//! updated by nodes, holding requests for a node that has no consumer yet, a broker
//! without JetStream recognised as such; each node's bounded share of the queue, a publish
//! acknowledgement aimed at the purge API, and the stream and consumers an administrator
//! sets up for nodes that may only look theirs up.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use mco_testsupport::NatsServer;
use mco_transport::{
    consumer_name, ensure_stream, existing_consumer, node_consumer, probe, refusal, setup,
    stream_name, Ownership, QueueError, QueueSettings, Refusal,
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

/// Publishes `payload` to `subject` through JetStream; the broker's refusal if any.
async fn queue(js: &jetstream::Context, subject: &str, payload: &'static str) -> Option<Refusal> {
    match js.publish(subject.to_string(), payload.into()).await {
        Ok(ack) => ack.await.err().map(|e| refusal(&e)),
        Err(e) => Some(refusal(&e)),
    }
}

#[tokio::test]
async fn a_full_node_share_refuses_new_requests_and_drops_none_of_the_others() {
    let server = NatsServer::start();
    let js = connect(&server).await;
    let settings = QueueSettings {
        max_msgs: 6,
        max_msgs_per_subject: 2,
        ..QueueSettings::default()
    };
    let mut stream = ensure_stream(&js, "mco", &settings, Ownership::Configure)
        .await
        .unwrap();
    assert_eq!(queue(&js, "mco.node.web2", "junk").await, None);
    assert_eq!(queue(&js, "mco.node.web2", "junk").await, None);
    // web2's share is full: the new one is refused, the queued ones stay...
    assert_eq!(
        queue(&js, "mco.node.web2", "junk").await,
        Some(Refusal::NodeFull)
    );
    // ...and web1 still gets its requests queued.
    assert_eq!(queue(&js, "mco.node.web1", "real").await, None);
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    // The collective's total is a bound of its own.
    for node in ["a", "b", "c"] {
        let _ = queue(&js, &format!("mco.node.{node}"), "x").await;
    }
    match queue(&js, "mco.node.d", "x").await {
        Some(Refusal::QueueFull(why)) => assert!(why.contains("maximum messages"), "{why}"),
        other => panic!("expected QueueFull, got {other:?}"),
    }
}

#[tokio::test]
async fn a_publish_ack_sent_to_the_purge_api_does_not_purge_the_queue() {
    // The broker sends a publish acknowledgement, {"stream":..,"seq":N}, to whatever reply
    // subject the publisher names; the purge API reads it as "purge everything before N".
    async fn purged_by_an_ack(config: async_nats::jetstream::stream::Config) -> u64 {
        let server = NatsServer::start();
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = jetstream::new(client.clone());
        let mut stream = js.create_stream(config).await.unwrap();
        for _ in 0..3 {
            js.publish("mco.node.web1", "queued".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        client
            .publish_with_reply(
                "mco.node.web2",
                format!("$JS.API.STREAM.PURGE.{}", stream_name("mco")),
                "junk".into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        // The purge, if any, is done by the time a later API request is answered.
        stream.info().await.unwrap();
        4 - stream.info().await.unwrap().state.messages
    }
    // One server: one copy (what "auto" settles for there).
    let mco = QueueSettings {
        replicas: mco_transport::Replicas::Fixed(1),
        ..QueueSettings::default()
    }
    .stream_config("mco");
    let unprotected = async_nats::jetstream::stream::Config {
        deny_purge: false,
        deny_delete: false,
        ..mco.clone()
    };
    assert_eq!(purged_by_an_ack(unprotected).await, 3, "the attack works");
    assert_eq!(purged_by_an_ack(mco).await, 0);
}

#[tokio::test]
async fn an_administrator_sets_up_what_nodes_then_only_look_up() {
    let server = NatsServer::start();
    let js = connect(&server).await;
    let consumer_settings = (8, Duration::from_secs(30));
    // Before setup: the node says what is missing and what to run.
    match existing_consumer(&js, "mco", "web1", 8, Duration::from_secs(30)).await {
        Err(e @ QueueError::Missing { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("stream MCO_DIRECT_mco") && text.contains("mco broker setup"),
                "{text}"
            );
        }
        other => panic!("expected Missing, got {:?}", other.map(|_| ())),
    }
    let nodes = vec!["web1".to_string(), "db1.example.net".to_string()];
    let report = setup(
        &js,
        "mco",
        &QueueSettings::default(),
        &nodes,
        consumer_settings,
    )
    .await
    .unwrap();
    assert!(report.created);
    assert_eq!(report.consumers, 2);
    match existing_consumer(&js, "mco", "web2", 8, Duration::from_secs(30)).await {
        Err(e @ QueueError::Missing { .. }) => {
            assert!(e.to_string().contains(&consumer_name("web2")), "{e}")
        }
        other => panic!("expected Missing, got {:?}", other.map(|_| ())),
    }
    // A node with other consumer settings uses the consumer as it is.
    let consumer = existing_consumer(&js, "mco", "db1.example.net", 64, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(consumer.cached_info().config.max_ack_pending, 8);
    js.publish("mco.node.db1.example.net", "queued".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first.payload[..], b"queued");
    // A work queue with purges and deletes denied still removes what its node acknowledged.
    first.double_ack().await.unwrap();
    let mut stream = js.get_stream(stream_name("mco")).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    // Running setup again updates, and is harmless.
    let again = setup(
        &js,
        "mco",
        &QueueSettings::default(),
        &nodes,
        consumer_settings,
    )
    .await
    .unwrap();
    assert!(!again.created);
}

#[tokio::test]
async fn auto_replicas_keep_one_copy_on_a_single_server() {
    // A single server refuses three copies ("replicas > 1 not supported in non-clustered
    // mode"); "auto" settles for one rather than no queue, and a node leaves it so.
    let server = NatsServer::start();
    let js = connect(&server).await;
    let settings = QueueSettings::default();
    assert_eq!(settings.replicas, mco_transport::Replicas::Auto);
    let stream = ensure_stream(&js, "mco", &settings, Ownership::UseExisting)
        .await
        .unwrap();
    assert_eq!(stream.cached_info().config.num_replicas, 1);
    let mut again = ensure_stream(&js, "mco", &settings, Ownership::Configure)
        .await
        .unwrap();
    assert_eq!(again.info().await.unwrap().config.num_replicas, 1);
}
