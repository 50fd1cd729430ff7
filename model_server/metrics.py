"""Prometheus metrics of the model server; the PromQL templates in config/promql/ read these names.

Every metric carries ``model``, ``version`` and ``env`` so one Prometheus can tell deployments apart
without relying on how the scrape config labels targets.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model_server.model import Prediction, ServedModel

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# Input statistics are kept for the first features only: one series per feature and the cardinality
# of a wide model would otherwise swamp Prometheus.
MAX_FEATURE_SERIES = 32
# Exported up front so that rate() has a zero baseline before the first error happens.
KNOWN_STATUSES = ("200", "400", "404", "500")


class ServerMetrics:
    def __init__(self, model: ServedModel, registry: CollectorRegistry) -> None:
        ident = ["model", "version", "env"]
        self._ident = (model.name, model.version, model.env)
        self.requests = Counter(
            "modelship_model_requests",
            "Inference requests answered, by HTTP status.",
            [*ident, "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "modelship_model_request_duration_seconds",
            "Time to answer an inference request.",
            ident,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "modelship_model_predictions",
            "Rows predicted, by predicted label (classifiers only).",
            [*ident, "label"],
            registry=registry,
        )
        self.scores = Histogram(
            "modelship_model_prediction_score",
            "Confidence of the predicted label (classifiers), in [0, 1].",
            ident,
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.values = Histogram(
            "modelship_model_prediction_value",
            "Predicted value (regressors); _sum/_count give the mean.",
            ident,
            registry=registry,
        )
        # Sums of the positive and negative parts stay monotonic, so rate() works on inputs of either sign;
        # mean = (positive - negative) / count and variance = squares / count - mean².
        feature = [*ident, "feature"]
        self.feature_count = Counter(
            "modelship_model_input_feature_count",
            "Finite values seen per input feature.",
            feature,
            registry=registry,
        )
        self.feature_positive = Counter(
            "modelship_model_input_feature_positive_sum",
            "Sum of max(x, 0) per input feature.",
            feature,
            registry=registry,
        )
        self.feature_negative = Counter(
            "modelship_model_input_feature_negative_sum",
            "Sum of max(-x, 0) per input feature.",
            feature,
            registry=registry,
        )
        self.feature_squares = Counter(
            "modelship_model_input_feature_squares_sum",
            "Sum of x² per input feature.",
            feature,
            registry=registry,
        )
        for status in KNOWN_STATUSES:
            self.requests.labels(*self._ident, status)
        # One series per replica, always 1: which file this replica serves. The bot's live tracking counts
        # replicas by sha256 (config/promql/live/); the server only exports it once the file is verified and
        # loaded, so a series means "ready and serving exactly these bytes".
        self.info = Gauge(
            "modelship_model_info",
            "The model file this replica serves (always 1): version is the model repository revision.",
            [*ident, "variant", "sha256"],
            registry=registry,
        )
        self.info.labels(*self._ident, model.variant or "original", model.sha256).set(1)

    def request(self, status: int, seconds: float) -> None:
        self.requests.labels(*self._ident, str(status)).inc()
        self.duration.labels(*self._ident).observe(seconds)

    def observe(self, rows: np.ndarray, prediction: Prediction) -> None:
        if prediction.labels is not None:
            labels, counts = np.unique(np.asarray(prediction.labels), return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                self.predictions.labels(*self._ident, str(label)).inc(count)
            histogram = self.scores.labels(*self._ident)
        else:
            histogram = self.values.labels(*self._ident)
        for score in prediction.scores:
            histogram.observe(score)
        self._observe_inputs(rows)

    def _observe_inputs(self, rows: np.ndarray) -> None:
        table = rows.reshape(rows.shape[0], -1)[:, :MAX_FEATURE_SERIES].astype(np.float64)
        finite = np.isfinite(table)
        clean = np.where(finite, table, 0.0)
        count = finite.sum(axis=0)
        positive = np.clip(clean, 0.0, None).sum(axis=0)
        negative = np.clip(-clean, 0.0, None).sum(axis=0)
        squares = (clean * clean).sum(axis=0)
        for i in range(table.shape[1]):
            feature = (*self._ident, str(i))
            self.feature_count.labels(*feature).inc(float(count[i]))
            self.feature_positive.labels(*feature).inc(float(positive[i]))
            self.feature_negative.labels(*feature).inc(float(negative[i]))
            self.feature_squares.labels(*feature).inc(float(squares[i]))
