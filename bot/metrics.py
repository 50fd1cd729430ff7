"""Prometheus metrics of the service (exported on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# `event` is a GitHub event name for verified deliveries, `other` for an unknown name, and `unverified`
# for every request refused before (or by) the signature check: no client can mint label values.
DELIVERIES = Counter(
    "modelship_webhook_deliveries_total", "Webhook deliveries by event and outcome", ["event", "outcome"]
)
CONNECTIONS_SHED = Counter(
    "modelship_http_connections_shed_total",
    "Connections closed by the listener's limits: evicted (cap reached), refused (all busy), timeout",
    ["reason"],
)
OPEN_CONNECTIONS = Gauge("modelship_http_connections", "Open HTTP connections (sampled each second)")
BODY_BYTES_IN_FLIGHT = Gauge("modelship_webhook_body_bytes_in_flight", "Bytes of request bodies being read")
ACK_LATENCY = Histogram(
    "modelship_webhook_ack_seconds",
    "Time from request to acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
QUEUE_DEPTH = Gauge("modelship_jobs", "Jobs by state", ["state"])
JOB_DURATION = Histogram(
    "modelship_job_duration_seconds",
    "Job run time by kind and outcome",
    ["kind", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
WORKERS_ALIVE = Gauge("modelship_workers_alive", "Worker tasks currently running")
FINAL_FAILURE_HOOK_ERRORS = Counter(
    "modelship_final_failure_hook_errors_total",
    "Final-failure hooks that raised or timed out (users were not told that a job ended), by job kind",
    ["kind"],
)
SANDBOX_INPUTS_DELETE_FAILURES = Counter(
    "modelship_sandbox_inputs_delete_failures_total",
    "Review-input manifests (Kubernetes sandbox) the bot could not delete from the registry, or sweeps that failed",
)
