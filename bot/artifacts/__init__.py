"""Model artifacts in an OCI registry: the reviewed bytes, pinned by digest, with the review as evidence."""
