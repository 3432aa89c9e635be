//! The server's Prometheus metrics: requests by route and status, latency, batch sizes, queue depth, tokens.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The metrics, shared by the handlers and the model thread.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    batch_requests: Histogram,
    batch_tokens: Histogram,
    queue: Gauge,
    tokens: Counter,
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bertmt");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by route and HTTP status", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register("request_duration_seconds", "Time from a request's arrival to its answer", latency.clone());
        let batch_requests = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register("batch_requests", "Requests in each batch the model ran", batch_requests.clone());
        let batch_tokens = Histogram::new(exponential_buckets(16.0, 2.0, 14));
        registry.register("batch_tokens", "Tokens in each batch the model ran", batch_tokens.clone());
        let queue = Gauge::default();
        registry.register("queue_depth", "Requests waiting for the model", queue.clone());
        let tokens = Counter::default();
        registry.register("tokens", "Tokens of the texts the model read", tokens.clone());
        Self { registry, requests, latency, batch_requests, batch_tokens, queue, tokens }
    }

    /// A request to `route` was answered with `status` after `seconds`.
    pub fn answered(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route: route.into(), status }).inc();
        self.latency.get_or_create(&RouteLabels { route: route.into() }).observe(seconds);
    }

    /// A request joined the queue.
    pub fn enqueued(&self) {
        self.queue.inc();
    }

    /// The model thread took a request from the queue.
    pub fn dequeued(&self) {
        self.queue.dec();
    }

    /// The model ran a batch of `requests` requests and `tokens` tokens.
    pub fn batch(&self, requests: usize, tokens: usize) {
        self.batch_requests.observe(requests as f64);
        self.batch_tokens.observe(tokens as f64);
        self.tokens.inc_by(tokens as u64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!("cannot encode the metrics: {error}");
        }
        text
    }
}
