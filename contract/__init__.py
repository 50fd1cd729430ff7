"""The contract between the bot and the sandbox: stdlib only, imported by both `bot` and `pipelines`.

`contract.schema` is the wire schema (the JSON documents the bot writes and the sandbox returns);
`contract.metrics` is the one metric catalogue; `contract.oci` the model-artifact format and `contract.lfs`
Git LFS pointers and their download, shared by the bot and the model server. Nothing here may import
numpy, scikit-learn or ONNX Runtime, nor `bot` or `pipelines`: the service process imports this package."""
