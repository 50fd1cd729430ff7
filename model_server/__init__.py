"""The production model server (Open Inference Protocol v2 + Prometheus metrics): what charts/model-server runs.

Imports no `bot`: it ships in the product image and runs as `modelship serve-model`."""
