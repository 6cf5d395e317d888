//! The Kafka backend (librdkafka through `rdkafka`), for marketd scaled out
//! over several processes.
//!
//! - Topics: `<prefix><topic>` for every [`Topic`], created on connect when
//!   absent with the configured partitions and replication; the command
//!   topics (`polling-jobs`, `connectors`) are compacted (the latest command
//!   per unit id is its state).
//! - Producing: one JSON [`Envelope`] per message (`docs/events.md`), the
//!   envelope key as the Kafka key, the partition chosen by [`partition_of`]
//!   (Kafka's Java default partitioner), idempotent producer with
//!   `acks=all`. `publish*` returns once the broker acknowledged every message,
//!   so an acknowledged tick is in the replicated log; `send_batch` returns
//!   once the batch is queued, with a receipt for the acknowledgements, so
//!   feeds keep several batches in flight.
//! - Consuming: one librdkafka consumer per (topic, group) member, group id
//!   `<prefix><group>`, offsets committed only by [`Consumer::commit`] (after
//!   the caller made the work durable: at-least-once, and the idempotent
//!   sinks make it exactly-once in the store). A new group starts at the
//!   earliest offset, so nothing published before a worker first started is
//!   skipped. Rebalances update the member's [`Assignment`].
//! - Tailing ([`Bus::tail`]): a consumer of its own per tail, assigned every
//!   partition at its high watermark (read when the tail starts, so nothing
//!   published after `tail` returns is missed), never committing; its group
//!   id is unique and never joins a group, so it takes no partitions from
//!   anyone.
//! - A message that is not a valid envelope is logged, counted
//!   (`marketd_bus_rejected_total`) and skipped, never fatal.

use crate::{
    AnyConsumer, AnyTail, Assignment, Bus, BusOptions, Consumer, Delivery, Error, Receipt, Result,
    Tailed, partition_of, topic_index,
};
use futures::FutureExt;
use marketd_model::{Envelope, Event, Topic};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long connect waits for the broker before failing start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a readiness probe waits for the broker.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// How often librdkafka reports consumer statistics (the lag gauge).
const STATS_INTERVAL_MS: &str = "5000";
/// How long a consumer waits for the description of its group.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    brokers: String,
    opts: BusOptions,
    producer: FutureProducer,
    /// Wire name per topic, indexed like [`Topic::ALL`].
    names: Vec<String>,
    /// Partition count per topic as the broker reports it.
    partitions: Vec<u32>,
    /// Closed topics (ordered shutdown), indexed like [`Topic::ALL`].
    closed: Vec<CancellationToken>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.inner.brokers)
            .field("partitions", &self.inner.partitions)
            .finish_non_exhaustive()
    }
}

/// Settings every client of this bus shares.
fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "marketd")
        .set("socket.keepalive.enable", "true")
        // A restarted broker is found again within seconds.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

impl KafkaBus {
    /// Connects to `kafka://host:port[,host:port...]`, creates the topics
    /// that are absent and reads their partition counts. Fails (naming the
    /// brokers) when no broker answers within 10 s.
    pub async fn connect(url: &str, opts: BusOptions) -> Result<KafkaBus> {
        let brokers = url
            .strip_prefix("kafka://")
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_string();
        if brokers.is_empty() || brokers.contains('/') {
            return Err(Error::UnsupportedUrl(url.to_string()));
        }
        let base = base_config(&brokers);
        let names: Vec<String> = Topic::ALL
            .iter()
            .map(|t| format!("{}{}", opts.topic_prefix, t.name()))
            .collect();
        create_topics(&base, &brokers, &names, &opts).await?;

        let producer: FutureProducer = base
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set("queue.buffering.max.kbytes", "524288")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| Error::kafka(&brokers, "creating the producer", e))?;

        let client = producer.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(None, CONNECT_TIMEOUT)
        })
        .await
        .map_err(|e| Error::KafkaOther {
            brokers: brokers.clone(),
            message: format!("metadata task failed: {e}"),
        })?
        .map_err(|e| Error::kafka(&brokers, "reading topic metadata", e))?;
        let mut partitions = Vec::with_capacity(names.len());
        for name in &names {
            let n = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .map(|t| t.partitions().len() as u32)
                .unwrap_or(0);
            if n == 0 {
                return Err(Error::KafkaOther {
                    brokers: brokers.clone(),
                    message: format!("topic {name} has no partitions after creation"),
                });
            }
            partitions.push(n);
        }
        tracing::info!(%brokers, ?partitions, "kafka bus connected");
        Ok(KafkaBus {
            inner: Arc::new(Inner {
                brokers,
                opts,
                producer,
                names,
                partitions,
                closed: Topic::ALL
                    .iter()
                    .map(|_| CancellationToken::new())
                    .collect(),
            }),
        })
    }

    /// Waits until every message handed to the producer is acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let producer = self.inner.producer.clone();
        blocking(&self.inner.brokers, "flushing the producer", move || {
            producer.flush(Duration::from_secs(30))
        })
        .await
    }

    /// The brokers this bus talks to (`host:port,...`).
    pub fn brokers(&self) -> &str {
        &self.inner.brokers
    }

    /// The wire name of `topic` (`marketd.ticks`).
    pub fn topic_name(&self, topic: Topic) -> &str {
        &self.inner.names[topic_index(topic)]
    }

    /// Hands `envelopes` to the producer in order and returns their pending
    /// acknowledgements. A full local queue makes the caller wait
    /// (backpressure), it does not drop messages. librdkafka keeps the order
    /// of what it was handed per partition (idempotent producer), so batches
    /// enqueued one after another stay in order while their acks are pending.
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<PendingAcks> {
        let inner = &*self.inner;
        let mut acks = Vec::with_capacity(envelopes.len());
        // One buffer for the whole batch: librdkafka copies each payload.
        let mut payload = Vec::with_capacity(512);
        for env in &envelopes {
            let topic = env.event.topic();
            let i = topic_index(topic);
            if inner.closed[i].is_cancelled() {
                return Err(Error::Closed(topic));
            }
            payload.clear();
            env.encode(inner.opts.codec, &mut payload)
                .map_err(|e| Error::KafkaOther {
                    brokers: inner.brokers.clone(),
                    message: format!("encoding an envelope: {e}"),
                })?;
            let partition = partition_of(&env.key, inner.partitions[i]) as i32;
            let mut record = FutureRecord::to(&inner.names[i])
                .key(env.key.as_str())
                .payload(payload.as_slice())
                .partition(partition);
            loop {
                match inner.producer.send_result(record) {
                    Ok(ack) => {
                        acks.push(ack);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(Error::kafka(&inner.brokers, "producing", e)),
                }
            }
        }
        Ok(PendingAcks {
            brokers: inner.brokers.clone(),
            acks,
        })
    }
}

/// Acknowledgements the producer still owes for one batch.
pub(crate) struct PendingAcks {
    brokers: String,
    acks: Vec<DeliveryFuture>,
}

impl std::fmt::Debug for PendingAcks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAcks")
            .field("pending", &self.acks.len())
            .finish_non_exhaustive()
    }
}

impl PendingAcks {
    /// Waits for every acknowledgement; the first failure is the error.
    pub(crate) async fn wait(self) -> Result<()> {
        for ack in self.acks {
            match ack.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    metrics::counter!("marketd_bus_produce_errors_total").increment(1);
                    return Err(Error::kafka(&self.brokers, "delivering", e));
                }
                Err(_) => {
                    return Err(Error::KafkaOther {
                        brokers: self.brokers.clone(),
                        message: "producer stopped before acknowledging".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

async fn create_topics(
    base: &ClientConfig,
    brokers: &str,
    names: &[String],
    opts: &BusOptions,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base
        .create()
        .map_err(|e| Error::kafka(brokers, "creating the admin client", e))?;
    let partitions = i32::try_from(opts.partitions.max(1)).unwrap_or(i32::MAX);
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(Topic::ALL)
        .map(|(name, topic)| {
            let t = NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(opts.replication_factor.max(1)),
            );
            if topic.is_compacted() {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let admin_opts = AdminOptions::new()
        .request_timeout(Some(CONNECT_TIMEOUT))
        .operation_timeout(Some(CONNECT_TIMEOUT));
    let results = admin
        .create_topics(&topics, &admin_opts)
        .await
        .map_err(|e| Error::kafka(brokers, "creating topics", e))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, partitions, "kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::KafkaOther {
                    brokers: brokers.to_string(),
                    message: format!("creating topic {name}: {code}"),
                });
            }
        }
    }
    Ok(())
}

impl Bus for KafkaBus {
    async fn publish(&self, event: Event) -> Result<()> {
        self.enqueue(vec![Envelope::new(event)]).await?.wait().await
    }

    async fn publish_batch(&self, events: Vec<Event>) -> Result<()> {
        self.send_batch(events).await?.wait().await
    }

    async fn send_batch(&self, events: Vec<Event>) -> Result<Receipt> {
        let pending = self
            .enqueue(events.into_iter().map(Envelope::new).collect())
            .await?;
        Ok(Receipt::kafka(pending))
    }

    async fn subscribe(&self, topic: Topic, group: &str) -> Result<AnyConsumer> {
        let inner = &*self.inner;
        let i = topic_index(topic);
        if inner.closed[i].is_cancelled() {
            return Err(Error::Closed(topic));
        }
        let session = inner.opts.session_timeout_ms.max(1_000);
        let (tx, rx) = watch::channel(Assignment::default());
        let assigned = Arc::new(Notify::new());
        let lag = Arc::new(AtomicI64::new(-1));
        let context = GroupContext {
            topic: inner.names[i].clone(),
            topic_label: topic.name(),
            group: group.to_string(),
            lag: lag.clone(),
            assignment: tx,
            last: Mutex::new(None),
            unchanged: AtomicBool::new(false),
            assigned: assigned.clone(),
        };
        let group_id = format!("{}{group}", inner.opts.topic_prefix);
        let consumer: StreamConsumer<GroupContext> = base_config(&inner.brokers)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 5).max(100).to_string())
            .set("fetch.wait.max.ms", "100")
            // Statistics carry each partition's lag (high watermark minus
            // committed offset), exported as marketd_bus_consumer_lag.
            .set("statistics.interval.ms", STATS_INTERVAL_MS)
            .create_with_context(context)
            .map_err(|e| Error::kafka(&inner.brokers, "creating a consumer", e))?;
        consumer
            .subscribe(&[&inner.names[i]])
            .map_err(|e| Error::kafka(&inner.brokers, "subscribing", e))?;
        Ok(AnyConsumer::Kafka(KafkaConsumer {
            consumer: Arc::new(consumer),
            brokers: inner.brokers.clone(),
            topic,
            topic_name: inner.names[i].clone(),
            prefix: inner.opts.topic_prefix.clone(),
            group_id,
            partitions: inner.partitions[i],
            closed: inner.closed[i].clone(),
            assignment: rx,
            assigned,
            check: None,
            describing: None,
            members_seen: 0,
            check_failures: 0,
            lag,
        }))
    }

    async fn tail(&self, topic: Topic) -> Result<AnyTail> {
        let inner = &*self.inner;
        let i = topic_index(topic);
        if inner.closed[i].is_cancelled() {
            return Err(Error::Closed(topic));
        }
        let name = inner.names[i].clone();
        // librdkafka wants a group id even for assigned partitions; a
        // unique one that never joins (no `subscribe`) and never commits.
        let group_id = format!(
            "{}tail-{}",
            inner.opts.topic_prefix,
            uuid::Uuid::now_v7().simple()
        );
        let consumer: StreamConsumer = base_config(&inner.brokers)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(|e| Error::kafka(&inner.brokers, "creating a tail consumer", e))?;
        let consumer = Arc::new(consumer);
        let partitions = inner.partitions[i];
        let (c, n) = (consumer.clone(), name.clone());
        blocking(&inner.brokers, "assigning a tail", move || {
            let mut list = TopicPartitionList::new();
            for p in 0..partitions as i32 {
                let (_, high) = c.fetch_watermarks(&n, p, DESCRIBE_TIMEOUT)?;
                list.add_partition_offset(&n, p, Offset::Offset(high))?;
            }
            c.assign(&list)
        })
        .await?;
        Ok(AnyTail::Kafka(KafkaTail {
            consumer,
            brokers: inner.brokers.clone(),
            topic,
            topic_name: name,
            closed: inner.closed[i].clone(),
        }))
    }

    fn close_topic(&self, topic: Topic) {
        self.inner.closed[topic_index(topic)].cancel();
    }

    async fn ping(&self) -> Result<()> {
        let producer = self.inner.producer.clone();
        let topic = self.inner.names[topic_index(Topic::Ticks)].clone();
        blocking(&self.inner.brokers, "ping", move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), PING_TIMEOUT)
                .map(|_| ())
        })
        .await
    }

    /// Kafka keeps the backlog in the broker; consumer lag is the broker's
    /// figure (committed offsets vs. high watermarks), not a local buffer.
    fn depth(&self) -> Vec<(Topic, usize)> {
        Vec::new()
    }

    fn partition_for(&self, topic: Topic, key: &str) -> u32 {
        partition_of(key, self.inner.partitions[topic_index(topic)])
    }

    fn backend_name(&self) -> &'static str {
        "kafka"
    }
}

/// Runs a blocking librdkafka call (`what`, for messages) off the async
/// threads.
async fn blocking<T: Send + 'static>(
    brokers: &str,
    what: &'static str,
    call: impl FnOnce() -> rdkafka::error::KafkaResult<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| Error::KafkaOther {
            brokers: brokers.to_string(),
            message: format!("{what}: task failed: {e}"),
        })?
        .map_err(|e| Error::kafka(brokers, what, e))
}

/// Decodes one message in whichever codec it was written; a message that is
/// not an envelope is logged, counted and skipped (`None`).
fn decode(topic: Topic, topic_name: &str, m: &BorrowedMessage<'_>) -> Option<Delivery> {
    let decoded = m
        .payload()
        .ok_or_else(|| "empty payload".to_string())
        .and_then(|p| Envelope::decode(p).map_err(|e| e.to_string()));
    match decoded {
        Ok(envelope) => Some(Delivery {
            envelope: Arc::new(envelope),
            topic,
            partition: m.partition() as u32,
            offset: m.offset() as u64,
        }),
        Err(error) => {
            metrics::counter!("marketd_bus_rejected_total", "topic" => topic.name()).increment(1);
            tracing::warn!(
                topic = %topic_name,
                partition = m.partition(),
                offset = m.offset(),
                %error,
                "skipping a message that is not a marketd envelope"
            );
            None
        }
    }
}

/// A consumer group as the broker describes it: state, members, and
/// whether any member's assignment is reported; `None` when not listed.
type Described = rdkafka::error::KafkaResult<Option<(String, usize, bool)>>;

/// Follows rebalances of one consumer into its [`Assignment`].
struct GroupContext {
    topic: String,
    /// The topic's name without the prefix, for metric labels.
    topic_label: &'static str,
    group: String,
    /// Messages of the topic this member's partitions hold beyond the
    /// group's committed offsets, at the last statistics (-1: not known yet).
    lag: Arc<AtomicI64>,
    assignment: watch::Sender<Assignment>,
    /// The partitions of the last assignment.
    last: Mutex<Option<Vec<u32>>>,
    /// Whether the last rebalance handed back exactly the partitions of the
    /// one before (see [`KafkaConsumer::check_group`]).
    unchanged: AtomicBool,
    /// Raised after every assignment: the consumer then describes its group.
    assigned: Arc<Notify>,
}

impl ClientContext for GroupContext {
    /// Consumer lag of this member: the sum over its assigned partitions of
    /// high watermark minus committed offset, as librdkafka last saw them.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let lag: i64 = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
        metrics::gauge!("marketd_bus_consumer_lag", "topic" => self.topic_label, "group" => self.group.clone())
            .set(lag as f64);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let mut partitions: Vec<u32> = list
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition() as u32)
                    .collect();
                partitions.sort_unstable();
                tracing::info!(topic = %self.topic, group = %self.group, ?partitions, "partitions assigned");
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                let unchanged = !partitions.is_empty() && last.as_ref() == Some(&partitions);
                *last = Some(partitions.clone());
                drop(last);
                self.unchanged.store(unchanged, Ordering::Relaxed);
                self.assignment.send_replace(Assignment { partitions });
                self.assigned.notify_one();
            }
            Rebalance::Revoke(_) => {
                tracing::info!(topic = %self.topic, group = %self.group, "partitions revoked");
                self.assignment.send_replace(Assignment::default());
            }
            Rebalance::Error(e) => {
                tracing::warn!(topic = %self.topic, group = %self.group, error = %e, "rebalance failed");
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            // At-least-once: the messages are redelivered, and the sinks are idempotent.
            tracing::debug!(topic = %self.topic, group = %self.group, error = %e, "offset commit failed");
        }
    }
}

/// A member of a consumer group on Kafka.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<GroupContext>>,
    brokers: String,
    topic: Topic,
    topic_name: String,
    /// The bus's topic and group prefix.
    prefix: String,
    /// The group id on the wire (`<prefix><group>`).
    group_id: String,
    /// Partitions of the topic.
    partitions: u32,
    closed: CancellationToken,
    assignment: watch::Receiver<Assignment>,
    /// Raised by [`GroupContext`] after every assignment.
    assigned: Arc<Notify>,
    /// A group check still to do: `Some(unchanged)` after an assignment,
    /// cleared once the check completed.
    check: Option<bool>,
    /// The description of the group the pending check waits for: a task of
    /// its own, so a receive cancelled meanwhile (the aggregator's flush
    /// timer does that every interval) does not start it over. Awaited
    /// beside the messages, never before them.
    describing: Option<JoinHandle<Described>>,
    /// Members of the group at the last completed check.
    members_seen: usize,
    /// Failed attempts of the pending check.
    check_failures: u32,
    /// Updated by [`GroupContext`]'s statistics.
    lag: Arc<AtomicI64>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaConsumer {{ topic: {:?}, .. }}", self.topic_name)
    }
}

impl KafkaConsumer {
    /// Messages on this member's partitions past the group's committed
    /// offsets, as of librdkafka's last statistics (every 5 s while the
    /// member receives); `None` before the first statistics.
    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    /// The group's committed offsets (the next offset to read) of this
    /// member's partitions, as the broker has them. [`Consumer::commit`] is
    /// asynchronous: this is how to know a commit has landed.
    pub async fn committed(&self) -> Result<BTreeMap<u32, u64>> {
        let consumer = self.consumer.clone();
        let list = blocking(&self.brokers, "reading committed offsets", move || {
            consumer.committed(Duration::from_secs(10))
        })
        .await?;
        Ok(list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition() as u32, u64::try_from(o).ok()?)),
                _ => None,
            })
            .collect())
    }

    /// Decodes one message into `out`; a message that is not an envelope is
    /// logged, counted and skipped.
    fn push(&self, m: &BorrowedMessage<'_>, out: &mut Vec<Delivery>) {
        out.extend(decode(self.topic, &self.topic_name, m));
    }

    /// Describes this member's group on a blocking thread, for the check
    /// after every assignment ([`Self::check_group`]).
    fn describe_group(&self) -> JoinHandle<Described> {
        let consumer = self.consumer.clone();
        let group_id = self.group_id.clone();
        tokio::task::spawn_blocking(move || {
            let list = consumer.fetch_group_list(Some(&group_id), DESCRIBE_TIMEOUT)?;
            Ok(list
                .groups()
                .iter()
                .find(|g| g.name() == group_id)
                .map(|g| {
                    let reports_assignments = g
                        .members()
                        .iter()
                        .any(|m| m.assignment().is_some_and(|a| !a.is_empty()));
                    (
                        g.state().to_string(),
                        g.members().len(),
                        reports_assignments,
                    )
                }))
        })
    }

    /// Completes the check after an assignment with the group's description
    /// ([`Self::describe_group`]): notes the group's size, and repairs an
    /// assignment the coordinator failed to move.
    ///
    /// When the rebalance that just completed handed back exactly the
    /// partitions this member had, this member does not hold the whole
    /// topic, and the coordinator either
    /// - describes the group as stable, without member assignments, with
    ///   fewer members than at the last assignment or with this member alone,
    ///   or
    /// - does not list the group at all,
    ///
    /// then the coordinator kept the assignment of a generation whose members
    /// are gone, and their partitions have no owner. Leaving and rejoining the
    /// group makes the coordinator form a new generation with a fresh
    /// assignment. tansu 0.6 does this after a member's session times out
    /// (kill -9 of a worker), and lists only groups with committed offsets.
    /// Apache Kafka moves the partitions in that rebalance, lists every group
    /// and reports member assignments, so this never fires there.
    fn check_group(&mut self, described: std::result::Result<Described, tokio::task::JoinError>) {
        let Some(unchanged) = self.check else {
            return;
        };
        let described = match described {
            Ok(Ok(described)) => described,
            failed => {
                // Described again on the next receive, twice, then given up.
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                self.check_failures += 1;
                tracing::debug!(group = %self.group_id, %error, failures = self.check_failures, "could not describe the consumer group");
                if self.check_failures >= 3 {
                    self.check = None;
                    self.check_failures = 0;
                }
                return;
            }
        };
        self.check = None;
        self.check_failures = 0;
        let held = self.assignment.borrow().partitions.len();
        let orphans = match &described {
            Some((state, members, reports_assignments)) => {
                let before = std::mem::replace(&mut self.members_seen, *members);
                tracing::debug!(group = %self.group_id, unchanged, %state, members, before, reports_assignments, "consumer group described");
                state == "Stable" && !reports_assignments && (*members == 1 || *members < before)
            }
            None => {
                tracing::debug!(group = %self.group_id, unchanged, "consumer group not listed by the broker");
                true
            }
        };
        if unchanged && (held as u32) < self.partitions && orphans {
            tracing::warn!(
                topic = %self.topic_name,
                group = %self.group_id,
                held,
                members = ?described.as_ref().map(|d| d.1),
                "the rebalance kept this member's partitions although the group shrank: leaving and rejoining the group"
            );
            metrics::counter!("marketd_bus_group_rejoins_total", "topic" => self.topic.name())
                .increment(1);
            // librdkafka revokes, sends LeaveGroup (forgetting the member id)
            // and joins again once the unsubscribe completed.
            self.consumer.unsubscribe();
            if let Err(e) = self.consumer.subscribe(&[&self.topic_name]) {
                tracing::error!(topic = %self.topic_name, group = %self.group_id, error = %e, "could not subscribe again");
            }
        }
    }

    /// Takes messages librdkafka already fetched, without waiting.
    fn take_ready(&self, out: &mut Vec<Delivery>, start: usize, max: usize) {
        while out.len() - start < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => self.push(&m, out),
                _ => break,
            }
        }
    }
}

/// A tail of one topic on Kafka: all its partitions, from where they ended
/// when the tail started.
pub struct KafkaTail {
    consumer: Arc<StreamConsumer>,
    brokers: String,
    topic: Topic,
    topic_name: String,
    closed: CancellationToken,
}

impl std::fmt::Debug for KafkaTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaTail {{ topic: {:?}, .. }}", self.topic_name)
    }
}

impl KafkaTail {
    /// The next message, or `None` once the topic is closed. A Kafka tail
    /// never lags out: the log keeps what it has not read yet.
    pub async fn recv(&mut self) -> Result<Option<Tailed>> {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.closed.cancelled() => return Ok(None),
                m = self.consumer.recv() => m,
            };
            match next {
                Ok(m) => {
                    if let Some(d) = decode(self.topic, &self.topic_name, &m) {
                        return Ok(Some(Tailed::Message(d)));
                    }
                }
                Err(e) => {
                    metrics::counter!("marketd_bus_consumer_errors_total", "topic" => self.topic.name())
                        .increment(1);
                    tracing::warn!(topic = %self.topic_name, brokers = %self.brokers, error = %e, "kafka tail error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

impl Consumer for KafkaConsumer {
    async fn recv(&mut self) -> Result<Option<Delivery>> {
        let mut one = Vec::with_capacity(1);
        let n = self.recv_batch(&mut one, 1).await?;
        Ok((n > 0).then(|| one.pop()).flatten())
    }

    async fn recv_batch(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<usize> {
        let start = out.len();
        let max = max.max(1);
        loop {
            if self.closed.is_cancelled() {
                // Closed: hand over what is already fetched, then end.
                self.take_ready(out, start, max);
                return Ok(out.len() - start);
            }
            if self.check.is_some() && self.describing.is_none() {
                self.describing = Some(self.describe_group());
            }
            let describing = &mut self.describing;
            let next = tokio::select! {
                biased;
                _ = self.closed.cancelled() => continue,
                described = async { describing.as_mut().expect("guarded").await }, if describing.is_some() => {
                    self.describing = None;
                    self.check_group(described);
                    continue;
                }
                _ = self.assigned.notified() => {
                    let unchanged = self.consumer.context().unchanged.swap(false, Ordering::Relaxed);
                    self.check = Some(unchanged || self.check == Some(true));
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            match next {
                Ok(m) => self.push(&m, out),
                Err(e) => {
                    // Transport errors are reported here while librdkafka
                    // reconnects by itself; they are not the end of the stream.
                    metrics::counter!("marketd_bus_consumer_errors_total", "topic" => self.topic.name())
                        .increment(1);
                    tracing::warn!(topic = %self.topic_name, brokers = %self.brokers, error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            self.take_ready(out, start, max);
            if out.len() > start {
                return Ok(out.len() - start);
            }
        }
    }

    async fn commit(&mut self, batch: &[Delivery]) -> Result<()> {
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        for d in batch {
            let e = next.entry(d.partition).or_insert(0);
            *e = (*e).max(d.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(
                &self.topic_name,
                partition as i32,
                Offset::Offset(offset as i64),
            )
            .map_err(|e| Error::kafka(&self.brokers, "committing", e))?;
        }
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(|e| Error::kafka(&self.brokers, "committing", e))
    }

    fn assignment(&self) -> watch::Receiver<Assignment> {
        self.assignment.clone()
    }

    /// Reads this group's committed offsets of the assigned partitions, then
    /// polls `group`'s (through a client that never joins it) every 100 ms.
    /// A partition `group` never committed counts as behind.
    async fn caught_up(&mut self, group: &str, within: Duration) -> Result<bool> {
        let ours = self.committed().await?;
        if ours.is_empty() {
            return Ok(true);
        }
        let reader: BaseConsumer = base_config(&self.brokers)
            .set("group.id", format!("{}{group}", self.prefix))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| Error::kafka(&self.brokers, "creating a group reader", e))?;
        let reader = Arc::new(reader);
        let mut list = TopicPartitionList::new();
        for &p in ours.keys() {
            list.add_partition(&self.topic_name, p as i32);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.closed.is_cancelled() {
                return Err(Error::Closed(self.topic));
            }
            let (r, l) = (reader.clone(), list.clone());
            let theirs = blocking(
                &self.brokers,
                "reading a group's committed offsets",
                move || r.committed_offsets(l, DESCRIBE_TIMEOUT),
            )
            .await?;
            let behind = ours.iter().any(|(&p, &o)| {
                match theirs
                    .find_partition(&self.topic_name, p as i32)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(t)) => u64::try_from(t).map_or(true, |t| t < o),
                    _ => true,
                }
            });
            if !behind {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::select! {
                _ = self.closed.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}
