//! Every inbound event shape, as committed JSON fixtures in the shapes AWS
//! sends, deserialized into the `aws_lambda_events` types the binaries
//! receive and run through the library handlers on embedded adapters.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::sqs::SqsEvent;
use fanout_core::auth::TokenVerifier;
use fanout_core::clock::ManualClock;
use fanout_core::handlers::authorizer::{Unauthorized, authorize, is_allowed};
use fanout_core::handlers::broadcaster::{self, BroadcasterDeps, BroadcasterSettings, JobSettings};
use fanout_core::handlers::message::MessageDeps;
use fanout_core::handlers::planner::{self, PlannerDeps, PlannerSettings};
use fanout_core::handlers::sweeper::SweeperDeps;
use fanout_core::handlers::{GatewayDeps, GatewaySettings, connect, disconnect, message, sweeper};
use fanout_core::ids::{ConnectionId, RoomId, TenantId, UserId};
use fanout_core::metrics::MetricTotals;
use fanout_core::ports::{ConnectionStore, MemberSet};
use fanout_core::token::{DEV_JWT_SECRET, TokenSigner};
use fanout_embedded::pattern::Pattern;
use fanout_embedded::{BusRule, MemoryBus, MemoryPoster, MemoryQueue, MemoryStore, QueueSettings};
use tokio::time::Instant;

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses a fixture and checks it survives a round trip through the type.
fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(text: &str) -> T {
    let value: T = serde_json::from_str(text).expect("fixture parses");
    let again: T = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&value).unwrap(),
        serde_json::to_value(&again).unwrap()
    );
    value
}

/// When the fixtures happen: 10 s after their `connectedAt`.
const NOW_MS: i64 = 1_795_338_010_000;

struct World {
    store: Arc<MemoryStore>,
    gateway: GatewayDeps,
    message: MessageDeps,
    sweeper: SweeperDeps,
    plan: Arc<MemoryQueue>,
}

fn world() -> World {
    let clock = ManualClock::at_ms(NOW_MS);
    let store = Arc::new(MemoryStore::new(clock.clone(), 4));
    let plan = MemoryQueue::new("fanout-plan", QueueSettings::default());
    let rule = BusRule::new(
        "broadcasts",
        Pattern::parse(r#"{"detail-type":["fanout.broadcast"]}"#).unwrap(),
        plan.clone(),
    );
    let bus = Arc::new(MemoryBus::new("fanout", clock.clone(), vec![rule]));
    let gateway = GatewayDeps {
        store: store.clone(),
        bus,
        clock,
        settings: GatewaySettings::default(),
        presence: store.clone(),
        presence_settings: Default::default(),
    };
    let poster = Arc::new(MemoryPoster::new());
    World {
        message: MessageDeps {
            gateway: gateway.clone(),
            verifier: Arc::new(TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes())),
            poster: poster.clone(),
            streams: store.clone(),
            stream: Default::default(),
            abuse: Default::default(),
        },
        sweeper: SweeperDeps {
            gateway: gateway.clone(),
            poster,
        },
        gateway,
        store,
        plan,
    }
}

#[tokio::test]
async fn authorizer_request_allows_a_valid_token_and_refuses_a_missing_one() {
    let token = TokenSigner::new(DEV_JWT_SECRET.as_bytes())
        .mint(
            &TenantId::new("acme").unwrap(),
            &UserId::new("alice").unwrap(),
            chrono_now(),
            Duration::from_secs(600),
        )
        .unwrap();
    let text = fixture("authorizer-request.json").replace("${TOKEN}", &token);
    let request: ApiGatewayCustomAuthorizerRequestTypeRequest = parse(&text);
    let verifier = TokenVerifier::hs256(DEV_JWT_SECRET.as_bytes());
    let response = authorize(&request, &verifier, &[], chrono_now())
        .await
        .unwrap();
    assert!(is_allowed(&response));
    assert_eq!(response.context["tenant"], "acme");
    assert_eq!(response.context["user"], "alice");

    let without: ApiGatewayCustomAuthorizerRequestTypeRequest = parse(
        &fixture("authorizer-request.json")
            .replace("\"token\": \"${TOKEN}\"", "\"other\": \"x\"")
            .replace("\"token\": [\"${TOKEN}\"]", "\"other\": [\"x\"]"),
    );
    assert_eq!(
        authorize(&without, &verifier, &[], chrono_now())
            .await
            .unwrap_err(),
        Unauthorized
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn connect_message_and_disconnect_events_run_through_their_handlers() {
    let w = world();
    let id = ConnectionId::new("Pbk0cdwEoAMCJmw=").unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let lobby = RoomId::new("lobby").unwrap();

    let connect_event: ApiGatewayWebsocketProxyRequest = parse(&fixture("websocket-connect.json"));
    let response = connect::handle(&connect_event, &w.gateway).await;
    assert_eq!(response.status_code, 200);
    let record = w.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(record.user.as_str(), "alice");
    assert_eq!(record.connected_at_ms, 1_795_338_000_000);

    let join: ApiGatewayWebsocketProxyRequest = parse(&fixture("websocket-message.json"));
    let response = message::handle(&join, &w.message).await;
    assert_eq!(response.status_code, 200);
    let body = serde_json::to_value(&response.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!(r#"{"type":"joined","requestId":"r1","room":"lobby","seq":0}"#)
    );
    assert!(w.store.is_member(&id, &tenant, &lobby).await.unwrap());

    let disconnect_event: ApiGatewayWebsocketProxyRequest =
        parse(&fixture("websocket-disconnect.json"));
    let response = disconnect::handle(&disconnect_event, &w.gateway).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(w.store.get_connection(&id).await.unwrap(), None);
    // $disconnect deleted the connection item; the sweeper, handed the
    // stream event of that removal as Lambda hands it (this fixture is a
    // TTL removal of the same connection), deletes the memberships.
    assert!(w.store.is_member(&id, &tenant, &lobby).await.unwrap());
    let removal: aws_lambda_events::dynamodb::Event =
        parse(&fixture("dynamodb-stream-remove.json"));
    assert!(fanout_core::changes::removed_by_ttl(&removal.records[0]));
    let response = sweeper::handle(&removal, &w.sweeper).await;
    assert!(response.batch_item_failures.is_empty());
    let members = w
        .store
        .members_page(
            &MemberSet::Room {
                tenant,
                room: lobby,
            },
            fanout_core::ids::shard_of(&id, 4),
            None,
        )
        .await
        .unwrap();
    assert!(members.items.is_empty());
}

#[tokio::test]
async fn a_plan_queue_event_is_planned_into_deliver_queue_jobs() {
    let w = world();
    // Two members of the fixture's room.
    let connect_event: ApiGatewayWebsocketProxyRequest = parse(&fixture("websocket-connect.json"));
    connect::handle(&connect_event, &w.gateway).await;
    message::handle(&parse(&fixture("websocket-message.json")), &w.message).await;
    let deliver = MemoryQueue::new("fanout-deliver", QueueSettings::default());
    let deps = PlannerDeps {
        store: w.store.clone(),
        dedupe: w.store.clone(),
        deliver_queue: deliver.clone(),
        dead_letter_queue: MemoryQueue::new("fanout-plan-dlq", QueueSettings::default()),
        clock: ManualClock::at_ms(NOW_MS),
        metrics: MetricTotals::new(),
        direct: None,
        settings: PlannerSettings::default(),
        jobs: JobSettings::default(),
        streams: w.store.clone(),
        stream: Default::default(),
    };
    let event: SqsEvent = parse(&fixture("sqs-plan.json"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = planner::handle(event.clone(), deadline, &deps).await;
    assert!(response.batch_item_failures.is_empty());
    let jobs = deliver.peek_bodies();
    assert_eq!(jobs.len(), 1);
    let job: serde_json::Value = serde_json::from_str(&jobs[0]).unwrap();
    assert_eq!(job["eventId"], "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    assert_eq!(job["connections"], serde_json::json!(["Pbk0cdwEoAMCJmw="]));
    assert_eq!(job["frame"]["data"]["status"], "shipped");
    // Its idempotency key is now taken: the same event again is dropped.
    planner::handle(event, deadline, &deps).await;
    assert_eq!(deliver.message_count(), 1);
    assert_eq!(
        w.plan.message_count(),
        0,
        "the gateway's lifecycle events are not broadcasts"
    );
}

#[tokio::test]
async fn a_deliver_queue_event_is_posted_and_gone_connections_are_removed() {
    let w = world();
    let connect_event: ApiGatewayWebsocketProxyRequest = parse(&fixture("websocket-connect.json"));
    connect::handle(&connect_event, &w.gateway).await;
    // The job's second connection is stored but its client is gone.
    let gone = ConnectionId::new("Qcl1dexFpBNDKnx=").unwrap();
    let vanished: ApiGatewayWebsocketProxyRequest =
        parse(&fixture("websocket-connect.json").replace("Pbk0cdwEoAMCJmw=", gone.as_str()));
    connect::handle(&vanished, &w.gateway).await;
    assert!(w.store.get_connection(&gone).await.unwrap().is_some());
    let poster = Arc::new(RecordingPoster::default());
    let deps = BroadcasterDeps {
        store: w.store.clone(),
        poster: poster.clone(),
        deliver_queue: MemoryQueue::new("fanout-deliver", QueueSettings::default()),
        dead_letter_queue: MemoryQueue::new("fanout-deliver-dlq", QueueSettings::default()),
        gate: None,
        metrics: MetricTotals::new(),
        clock: ManualClock::at_ms(NOW_MS),
        settings: BroadcasterSettings::default(),
        jobs: JobSettings::default(),
    };
    let event: SqsEvent = parse(&fixture("sqs-deliver.json"));
    let response =
        broadcaster::handle(event, Instant::now() + Duration::from_secs(30), &deps).await;
    assert!(response.batch_item_failures.is_empty());
    let posted = poster.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].0, "Pbk0cdwEoAMCJmw=");
    assert!(posted[0].1.contains(r#""order":42"#));
    // The second connection answered 410 and is gone from the store.
    assert_eq!(w.store.get_connection(&gone).await.unwrap(), None);
}

/// Accepts posts to the fixture's live connection and answers 410 to any
/// other, as API Gateway does for a client that left without $disconnect.
#[derive(Default)]
struct RecordingPoster {
    posted: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl fanout_core::ports::ConnectionPoster for RecordingPoster {
    async fn post(
        &self,
        id: &ConnectionId,
        frame: &bytes::Bytes,
    ) -> Result<(), fanout_core::ports::PostError> {
        if id.as_str() != "Pbk0cdwEoAMCJmw=" {
            return Err(fanout_core::ports::PostError::Gone);
        }
        self.posted
            .lock()
            .unwrap()
            .push((id.to_string(), String::from_utf8(frame.to_vec()).unwrap()));
        Ok(())
    }
    async fn get(
        &self,
        _id: &ConnectionId,
    ) -> Result<fanout_core::ports::ConnectionInfo, fanout_core::ports::PostError> {
        Err(fanout_core::ports::PostError::Gone)
    }
    async fn delete(&self, _id: &ConnectionId) -> Result<(), fanout_core::ports::PostError> {
        Ok(())
    }
}
