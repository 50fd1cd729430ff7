"""The contract between the bot and the sandbox: stdlib only, imported by both `bot` and `pipelines`.

`contract.schema` is the wire schema (the JSON documents the bot writes and the sandbox returns);
`contract.metrics` is the one metric catalogue. Nothing here may import numpy, scikit-learn or ONNX
Runtime, nor `bot` or `pipelines`: the service process imports this package."""
