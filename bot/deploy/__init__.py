"""Deploy: what to write into the deploy repository (manifest) and how to commit it (gitops)."""
