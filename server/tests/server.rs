//! The server's integration tests: the request pipeline, stage by stage, without a broker.
//! (End-to-end tests with a real nats-server and real mcod processes are in `e2e/`.)

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mco_server::config::{parse, Settings};
use mco_server::facts::FactStore;
use mco_server::pipeline::Route;
use mco_server::Node;
use mco_spec::message::{new_request_id, now_millis};
use mco_spec::{subjects, Filter, ReplyEnvelope, Request, RequestEnvelope, StatusCode, TargetSet};
use serde_json::{json, Map, Value};

fn node(extra: &str) -> Arc<Node> {
    let config = parse(
        &format!("insecure = true\nidentity = \"web1\"\ncollectives = [\"mco\", \"uk\"]\n{extra}"),
        "t",
    )
    .unwrap();
    let settings = Settings::resolve(config, Path::new("/"), None, "t").unwrap();
    let facts = FactStore::new(
        json!({"country": "uk", "cpus": 4, "os": {"family": "debian"}}),
        vec![],
        None,
    );
    Arc::new(Node::new(
        settings,
        facts,
        mco_agents::registry::builtin_agents(),
    ))
}

fn request(agent: &str, action: &str, data: Value, filter: Filter) -> Request<'static> {
    let id = new_request_id();
    Request {
        reply_to: subjects::reply("mco", "alice", &id).into(),
        id: id.into(),
        collective: "mco".into(),
        agent: agent.to_string().into(),
        action: action.to_string().into(),
        data: data.as_object().cloned().unwrap_or_default(),
        filter,
        caller: "alice".into(),
        sender: "admin".into(),
        time: now_millis(),
        ttl: 60,
        targets: None,
    }
}

fn bytes(request: &Request<'_>) -> Vec<u8> {
    RequestEnvelope::unsigned(request)
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// `request` bound to `targets`, and the copy of it that carries the proof for `copy_for`.
fn targeted(
    mut request: Request<'static>,
    targets: &[&str],
    copy_for: &str,
) -> (Request<'static>, Vec<u8>) {
    let set = TargetSet::new(targets.iter().copied()).unwrap();
    request.targets = Some(set.targets());
    let proof = set.proof(copy_for).unwrap();
    let copy = RequestEnvelope::append_target(&bytes(&request), &proof).unwrap();
    (request, copy)
}

async fn send_bytes(
    node: &Arc<Node>,
    route: Route,
    request: &Request<'_>,
    bytes: &[u8],
) -> Option<mco_spec::Reply> {
    let out = node.handle(&request.collective, route, bytes).await?;
    assert_eq!(out.subject, request.reply_to);
    Some(ReplyEnvelope::decode(&out.payload).unwrap().body().unwrap())
}

async fn send(node: &Arc<Node>, route: Route, request: &Request<'_>) -> Option<mco_spec::Reply> {
    send_bytes(node, route, request, &bytes(request)).await
}

fn count(node: &Node, name: &str) -> u64 {
    node.stats
        .snapshot()
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

#[tokio::test]
async fn a_matching_request_runs_and_replies() {
    let node = node("");
    let mut filter = Filter::default();
    filter.add_fact("country=uk").unwrap();
    filter.add_agent("rpcutil").unwrap();
    let reply = send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "get_fact", json!({"fact": "os.family"}), filter),
    )
    .await
    .unwrap();
    assert_eq!(reply.statuscode, StatusCode::Ok);
    assert_eq!(reply.sender, "web1");
    assert_eq!(reply.data["value"], "debian");
    assert_eq!(count(&node, "replies"), 1);
    assert_eq!(count(&node, "passed"), 1);
}

#[tokio::test]
async fn non_matching_broadcasts_are_ignored_and_counted() {
    let node = node("");
    let mut filter = Filter::default();
    filter.add_fact("country=de").unwrap();
    assert!(send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "ping", json!({}), filter.clone())
    )
    .await
    .is_none());
    assert_eq!(count(&node, "filtered"), 1);
    // The same broadcast re-sent on the node's direct subject is filtered all the same: a
    // request without targets is selected by its filter, whatever subject it came on.
    assert!(send(
        &node,
        Route::Direct,
        &request("rpcutil", "ping", json!({}), filter)
    )
    .await
    .is_none());
    assert_eq!(count(&node, "filtered"), 2);
    // A compound filter is decided with the node's data plugins.
    let mut compound = Filter::default();
    compound
        .add_compound("fact('os.family').value=debian and collective('uk').member=true")
        .unwrap();
    assert!(send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "ping", json!({}), compound)
    )
    .await
    .is_some());
}

#[tokio::test]
async fn an_agent_only_filter_selects_as_the_same_filter_compiled_does() {
    // Filters see the agents a node serves except `discovery`; a disabled agent is not
    // served.
    let serving = node("");
    let disabled = node("disabled_agents = [\"rpcutil\"]");
    let cases: &[(&Arc<Node>, &[&str], bool)] = &[
        (&serving, &["rpcutil"], true),
        (&serving, &["rpcutil", "rpcutil"], true),
        (&serving, &["discovery"], false),
        (&serving, &["rpcutil", "discovery"], false),
        (&serving, &["rpcutil", "nope"], false),
        (&serving, &["/^rpc/"], true),
        (&serving, &["/^disc/"], false),
        (&disabled, &["rpcutil"], false),
    ];
    for (node, agents, selected) in cases {
        let mut plain = Filter::default();
        for agent in *agents {
            plain.add_agent(agent).unwrap();
        }
        // The same agents with an identity entry that names the node: compiled, not looked up.
        let mut compiled = plain.clone();
        compiled.add_identity("web1").unwrap();
        for filter in [plain, compiled] {
            let answered = send(
                node,
                Route::Broadcast,
                &request("rpcutil", "ping", json!({}), filter.clone()),
            )
            .await
            .is_some();
            assert_eq!(answered, *selected, "{filter:?}");
        }
    }
    assert_eq!(count(&serving, "filtered"), 2 * 4);
    assert_eq!(count(&disabled, "filtered"), 2);
}

#[tokio::test]
async fn unknown_agents_actions_and_bad_inputs_get_status_codes() {
    let node = node("");
    let table = [
        (
            "nope",
            "x",
            json!({}),
            StatusCode::UnknownAction,
            "Unknown agent 'nope'",
        ),
        (
            "rpcutil",
            "explode",
            json!({}),
            StatusCode::UnknownAction,
            "Unknown action 'explode' for agent 'rpcutil'",
        ),
        (
            "rpcutil",
            "get_fact",
            json!({}),
            StatusCode::MissingData,
            "needs a fact argument",
        ),
        (
            "rpcutil",
            "get_fact",
            json!({"fact": 5}),
            StatusCode::InvalidData,
            "invalid input fact",
        ),
        (
            "rpcutil",
            "get_facts",
            json!({"facts": "a;b"}),
            StatusCode::InvalidData,
            "invalid input facts",
        ),
        (
            "rpcutil",
            "ping",
            json!({"extra": 1}),
            StatusCode::InvalidData,
            "invalid input extra",
        ),
    ];
    for (agent, action, data, status, message) in table {
        let reply = send(
            &node,
            Route::Direct,
            &request(agent, action, data, Filter::default()),
        )
        .await
        .unwrap();
        assert_eq!(reply.statuscode, status, "{agent}#{action}");
        assert!(
            reply.statusmsg.contains(message),
            "{message:?} not in {:?}",
            reply.statusmsg
        );
    }
    assert_eq!(count(&node, "failed"), 6);
}

#[tokio::test]
async fn expired_malformed_and_misrouted_messages_are_dropped_and_counted() {
    let node = node("");
    // Direct: it may have waited in the node's queue (an old broadcast is clock trouble).
    let mut old = request("rpcutil", "ping", json!({}), Filter::default());
    old.time = now_millis() - 120_000;
    assert!(send(&node, Route::Direct, &old).await.is_none());
    assert_eq!(count(&node, "ttlexpired"), 1);

    for junk in [
        &b"{nope"[..],
        b"",
        b"[]",
        b"{\"protocol\":\"mco.request.v1\",\"request\":{}}",
        &vec![b'x'; 2 << 20],
    ] {
        assert!(node.handle("mco", Route::Broadcast, junk).await.is_none());
    }
    assert_eq!(count(&node, "unvalidated"), 5);

    // Sent in one collective, received on another's subject.
    let r = request("rpcutil", "ping", json!({}), Filter::default());
    assert!(node
        .handle("uk", Route::Broadcast, &bytes(&r))
        .await
        .is_none());
    assert_eq!(count(&node, "unvalidated"), 6);

    // A filter that cannot be evaluated never matches.
    let mut bad = request("rpcutil", "ping", json!({}), Filter::default());
    bad.filter.class.push("/[/".into());
    assert!(send(&node, Route::Broadcast, &bad).await.is_none());
    assert_eq!(count(&node, "total"), 8);
}

#[tokio::test]
async fn sub_collectives_and_disabled_agents() {
    let node = node("disabled_agents = [\"rpcutil\"]");
    assert!(node.agent("rpcutil").is_none());
    assert!(node.agent("discovery").is_some());
    assert!(node.agent_names().is_empty());
    let reply = send(
        &node,
        Route::Direct,
        &request("rpcutil", "ping", json!({}), Filter::default()),
    )
    .await
    .unwrap();
    assert_eq!(reply.statuscode, StatusCode::UnknownAction);

    let node = self::node("");
    let mut r = request("discovery", "ping", json!({}), Filter::default());
    r.collective = "uk".into();
    r.reply_to = subjects::reply("uk", "alice", &r.id).into();
    let reply = send(&node, Route::Broadcast, &r).await.unwrap();
    assert!(reply.data["pong"].as_u64().is_some());
    let stats = send(
        &node,
        Route::Direct,
        &request("rpcutil", "daemon_stats", json!({}), Filter::default()),
    )
    .await
    .unwrap();
    assert_eq!(stats.data["total"], 2);
    assert_eq!(stats.data["agents"], json!(["rpcutil"]));
    assert_eq!(node.stats.replies.load(Ordering::Relaxed), 2);
    let _: Map<String, Value> = stats.data.as_object().unwrap().clone();
}

/// An insecure node `web1` with no facts, serving the built-in agents and `agent`.
fn node_serving(agent: std::sync::Arc<dyn mco_agents::Agent>) -> Arc<Node> {
    let config = parse("insecure = true\nidentity = \"web1\"\n", "t").unwrap();
    let settings = Settings::resolve(config, Path::new("/"), None, "t").unwrap();
    let facts = FactStore::new(json!({}), vec![], None);
    let mut agents = mco_agents::registry::builtin_agents();
    agents.push(agent);
    Arc::new(Node::new(settings, facts, agents))
}

/// An agent that provides a data plugin, as service('x').status will.
struct Widget {
    ddl: mco_ddl::AgentDdl,
}

#[async_trait::async_trait]
impl mco_agents::Agent for Widget {
    fn ddl(&self) -> &mco_ddl::AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        _: &mco_agents::ActionContext<'_>,
        _: &str,
        _: &Map<String, Value>,
    ) -> mco_agents::Outcome {
        mco_agents::Outcome::ok(Map::new())
    }

    fn data_query(&self, query: Option<&str>) -> Option<Result<Value, String>> {
        Some(match query {
            Some(q) => Ok(json!({"size": q.len(), "name": q})),
            None => Err("widget needs a name".into()),
        })
    }
}

#[tokio::test]
async fn agents_provide_data_plugins_for_filters_and_get_data() {
    let ddl = mco_ddl::AgentDdl::from_json(
        r#"{"metadata":{"name":"widget","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":5},
            "actions":[{"action":"noop","description":"d","input":{},"output":{}}]}"#,
        "widget.json",
    )
    .unwrap();
    let node = node_serving(std::sync::Arc::new(Widget { ddl }));

    let mut hit = Filter::default();
    hit.add_compound("widget('abc').size=3 and fstat('/etc').present=true")
        .unwrap();
    assert!(send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "ping", json!({}), hit)
    )
    .await
    .is_some());
    let mut miss = Filter::default();
    miss.add_compound("widget('abc').size>3").unwrap();
    assert!(send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "ping", json!({}), miss)
    )
    .await
    .is_none());

    let data = send(
        &node,
        Route::Direct,
        &request(
            "rpcutil",
            "get_data",
            json!({"source": "widget", "query": "hello"}),
            Filter::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(data.data["size"], 5);
    let none = send(
        &node,
        Route::Direct,
        &request(
            "rpcutil",
            "get_data",
            json!({"source": "nothing"}),
            Filter::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(none.statuscode, StatusCode::Aborted);
    assert!(
        none.statusmsg.contains("no data plugin called \"nothing\""),
        "{}",
        none.statusmsg
    );
}

#[tokio::test]
async fn a_targeted_request_runs_only_on_the_nodes_it_names() {
    let node = node("");
    // Addressed to web1 (this node) among others: its copy proves it, it runs.
    let (r, copy) = targeted(
        request("rpcutil", "ping", json!({}), Filter::default()),
        &["web1", "web2", "db1"],
        "web1",
    );
    let reply = send_bytes(&node, Route::Direct, &r, &copy).await.unwrap();
    assert_eq!(reply.statuscode, StatusCode::Ok);

    // Another node's copy of a request that does not name web1, republished to web1.
    let (r, copy) = targeted(
        request("rpcutil", "ping", json!({}), Filter::default()),
        &["web2", "db1"],
        "web2",
    );
    assert!(send_bytes(&node, Route::Direct, &r, &copy).await.is_none());
    // Without any proof, on either subject.
    assert!(send(&node, Route::Direct, &r).await.is_none());
    assert!(send(&node, Route::Broadcast, &r).await.is_none());
    assert_eq!(count(&node, "unvalidated"), 3);
    assert_eq!(count(&node, "replies"), 1);
}

#[tokio::test]
async fn only_requests_that_run_enter_the_replay_memory() {
    let node = node("replay_cache_size = 10\nreplay_caller_share = 3");
    // A broadcast that does not select this node leaves no trace: the same id may still run.
    let mut miss = Filter::default();
    miss.add_fact("country=de").unwrap();
    let mut r = request("rpcutil", "ping", json!({}), miss);
    assert!(send(&node, Route::Broadcast, &r).await.is_none());
    r.filter = Filter::default();
    assert!(send(&node, Route::Broadcast, &r).await.is_some());
    assert!(
        send(&node, Route::Broadcast, &r).await.is_none(),
        "a replay"
    );
    assert_eq!(count(&node, "replayed"), 1);
    // Invalid inputs are answered, but do not take an id either.
    let mut bad = request("rpcutil", "get_fact", json!({}), Filter::default());
    let reply = send(&node, Route::Broadcast, &bad).await.unwrap();
    assert_eq!(reply.statuscode, StatusCode::MissingData);
    bad.data.insert("fact".into(), json!("country"));
    let reply = send(&node, Route::Broadcast, &bad).await.unwrap();
    assert_eq!(reply.statuscode, StatusCode::Ok);
}

#[tokio::test]
async fn one_caller_cannot_take_the_replay_memory_from_the_others() {
    let node = node("replay_cache_size = 10\nreplay_caller_share = 3");
    let from = |caller: &str| {
        let mut r = request("rpcutil", "ping", json!({}), Filter::default());
        r.caller = caller.to_string().into();
        r.reply_to = subjects::reply("mco", caller, &r.id).into();
        r.ttl = 3600;
        r
    };
    for _ in 0..3 {
        let reply = send(&node, Route::Broadcast, &from("mallory"))
            .await
            .unwrap();
        assert_eq!(reply.statuscode, StatusCode::Ok);
    }
    let refused = send(&node, Route::Broadcast, &from("mallory"))
        .await
        .unwrap();
    assert_eq!(refused.statuscode, StatusCode::Aborted);
    assert!(
        refused.statusmsg.contains("replay_caller_share"),
        "{}",
        refused.statusmsg
    );
    assert_eq!(count(&node, "throttled"), 1);
    for caller in ["alice", "bob", "carol"] {
        let reply = send(&node, Route::Broadcast, &from(caller)).await.unwrap();
        assert_eq!(reply.statuscode, StatusCode::Ok, "{caller}");
    }
}

#[tokio::test]
async fn a_node_whose_clock_is_off_says_so_to_the_callers_it_would_serve() {
    let node = node("");
    let mut ahead = request("rpcutil", "ping", json!({}), Filter::default());
    ahead.time = now_millis() + 600_000;
    let mut behind = request("rpcutil", "ping", json!({}), Filter::default());
    behind.time = now_millis() - 600_000;
    for (request, route, way) in [
        (&ahead, Route::Direct, "600 s behind"),
        (&ahead, Route::Broadcast, "600 s behind"),
        (&behind, Route::Broadcast, "600 s ahead of"),
    ] {
        let reply = send(&node, route, request).await.unwrap();
        assert_eq!(reply.statuscode, StatusCode::Aborted, "{route:?}");
        assert!(
            reply.statusmsg.contains(way) && reply.statusmsg.contains("clock_skew_seconds (30 s)"),
            "{}",
            reply.statusmsg
        );
        assert_eq!(reply.data["clock_skew_seconds"], 30);
        let offset = reply.data[mco_spec::message::CLOCK_OFFSET_FIELD]
            .as_i64()
            .unwrap();
        assert!((offset.abs() - 600).abs() <= 1, "{offset}");
    }
    // A broadcast whose filter does not select the node, or a copy not proven for it:
    // counted as clock trouble, not answered.
    let mut filter = Filter::default();
    filter.add_fact("country=de").unwrap();
    let mut other = request("rpcutil", "ping", json!({}), filter);
    other.time = now_millis() + 600_000;
    assert!(send(&node, Route::Broadcast, &other).await.is_none());
    let mut elsewhere = request("rpcutil", "ping", json!({}), Filter::default());
    elsewhere.time = now_millis() + 600_000;
    let (elsewhere, copy) = targeted(elsewhere, &["web2"], "web2");
    assert!(send_bytes(&node, Route::Direct, &elsewhere, &copy)
        .await
        .is_none());
    // The queued direct request past its TTL is only expired.
    assert!(send(&node, Route::Direct, &behind).await.is_none());
    assert_eq!(count(&node, "clockskew"), 5);
    assert_eq!(count(&node, "ttlexpired"), 1);
    assert_eq!(count(&node, "validated"), 0);
    assert_eq!(count(&node, "filtered"), 0);
    assert_eq!(count(&node, "unvalidated"), 0);
    // Nothing ran, and nothing entered the replay memory: the same ids, in time, run.
    ahead.time = now_millis();
    assert_eq!(
        send(&node, Route::Direct, &ahead).await.unwrap().statuscode,
        StatusCode::Ok
    );
}

#[tokio::test]
async fn the_node_caps_the_ttl_it_honours() {
    let node = node("max_ttl_seconds = 60");
    let mut r = request("rpcutil", "ping", json!({}), Filter::default());
    r.ttl = 7 * 24 * 3600;
    r.time = now_millis() - 120_000;
    assert!(send(&node, Route::Direct, &r).await.is_none());
    assert_eq!(count(&node, "ttlexpired"), 1);
    let mut fresh = request("rpcutil", "ping", json!({}), Filter::default());
    fresh.ttl = 7 * 24 * 3600;
    assert!(send(&node, Route::Direct, &fresh).await.is_some());
}

#[tokio::test]
async fn hostile_filters_are_refused_without_harm() {
    let node = node("");
    let mut deep = request("rpcutil", "ping", json!({}), Filter::default());
    deep.filter
        .compound
        .push("(".repeat(20_000) + "a=1" + &")".repeat(20_000));
    assert!(send(&node, Route::Broadcast, &deep).await.is_none());
    let mut regexes = request("rpcutil", "ping", json!({}), Filter::default());
    regexes.filter.class = vec![r"/\w{200}/".to_string(); 40];
    assert!(send(&node, Route::Broadcast, &regexes).await.is_none());
    let mut one_huge = request("rpcutil", "ping", json!({}), Filter::default());
    one_huge.filter.class = vec![r"/\w{200}/".to_string()];
    assert!(send(&node, Route::Broadcast, &one_huge).await.is_none());
    assert_eq!(count(&node, "unvalidated"), 3);
    // The node still answers.
    assert!(send(
        &node,
        Route::Broadcast,
        &request("rpcutil", "ping", json!({}), Filter::default())
    )
    .await
    .is_some());
}

#[tokio::test]
async fn replies_go_only_under_the_callers_own_prefix() {
    let node = node("");
    for subject in [
        "$JS.API.STREAM.PURGE.MCO_DIRECT_mco".to_string(),
        subjects::reply("mco", "bob", "x"),
        "mco.broadcast.agent.rpcutil".to_string(),
    ] {
        let mut r = request("rpcutil", "ping", json!({}), Filter::default());
        r.reply_to = subject.clone().into();
        let out = node.handle("mco", Route::Broadcast, &bytes(&r)).await;
        assert!(out.is_none(), "{subject}");
    }
    assert_eq!(count(&node, "unvalidated"), 3);
}

/// An agent whose `sleep` action takes longer than its DDL timeout (2 s) and whose `yield`
/// action waits once before answering.
struct Sleepy {
    ddl: mco_ddl::AgentDdl,
}

#[async_trait::async_trait]
impl mco_agents::Agent for Sleepy {
    fn ddl(&self) -> &mco_ddl::AgentDdl {
        &self.ddl
    }

    async fn call(
        &self,
        _: &mco_agents::ActionContext<'_>,
        action: &str,
        _: &Map<String, Value>,
    ) -> mco_agents::Outcome {
        match action {
            "sleep" => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
            _ => tokio::task::yield_now().await,
        }
        mco_agents::Outcome::ok(Map::new())
    }
}

#[tokio::test(start_paused = true)]
async fn an_action_that_answers_later_is_awaited_within_its_timeout_and_no_longer() {
    let ddl = mco_ddl::AgentDdl::from_json(
        r#"{"metadata":{"name":"sleepy","description":"d","author":"a","license":"l","version":"1.0.0","url":"u","timeout":2},
            "actions":[{"action":"sleep","description":"d","input":{},"output":{}},
                       {"action":"yield","description":"d","input":{},"output":{}}]}"#,
        "sleepy.json",
    )
    .unwrap();
    let node = node_serving(std::sync::Arc::new(Sleepy { ddl }));

    let started = tokio::time::Instant::now();
    let reply = send(
        &node,
        Route::Broadcast,
        &request("sleepy", "yield", json!({}), Filter::default()),
    )
    .await
    .unwrap();
    assert_eq!(reply.statuscode, StatusCode::Ok, "{reply:?}");
    let reply = send(
        &node,
        Route::Broadcast,
        &request("sleepy", "sleep", json!({}), Filter::default()),
    )
    .await
    .unwrap();
    assert_eq!(reply.statuscode, StatusCode::Aborted, "{reply:?}");
    assert_eq!(reply.statusmsg, "action timed out after 2 seconds");
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(2));
}
