"""The guard's Prometheus metrics (exported on the service's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Numeric so it can be graphed and alerted on: 1 healthy, 0 degraded, -1 inconclusive, -2 error.
HEALTH_VALUES = {"healthy": 1.0, "degraded": 0.0, "inconclusive": -1.0, "error": -2.0}

HEALTH = Gauge(
    "modelship_guard_health",
    "Guard verdict per deployment: 1 healthy, 0 degraded, -1 inconclusive, -2 error (Prometheus failing)",
    ["repo", "env", "model"],
)
CHECK_VALUE = Gauge(
    "modelship_guard_check_value",
    "Last finite value a guard check read from Prometheus",
    ["repo", "env", "model", "check"],
)
CHECK_FAILURES = Gauge(
    "modelship_guard_check_consecutive_failures",
    "Breaches in a row of a guard check (a rollback opens at its failure_limit)",
    ["repo", "env", "model", "check"],
)
ALERTS = Counter(
    "modelship_guard_alerts_total",
    "Guard checks that reached consecutive_error_limit (Prometheus errors; never a rollback)",
    ["repo", "env", "model", "check"],
)
ALERT_OPEN = Gauge(
    "modelship_guard_alert_open",
    "1 while a guard check's Prometheus queries keep failing past consecutive_error_limit",
    ["repo", "env", "model", "check"],
)
ROLLBACKS = Counter("modelship_guard_rollbacks_total", "Rollback incidents opened", ["repo", "env", "model", "trigger"])
OPEN_INCIDENTS = Gauge("modelship_guard_open_incidents", "Rollback incidents whose PR is not merged or closed")
ROUND_SECONDS = Histogram(
    "modelship_guard_round_seconds",
    "Wall time of one watcher round",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUERIES = Counter("modelship_guard_queries_total", "PromQL queries the guard sent")
LEADING = Gauge("modelship_guard_leading", "1 while this process holds the watcher lease (one replica watches)")
