"""devhub: a local GitHub simulator (REST subset, app auth, git hosting, signed webhooks)."""
