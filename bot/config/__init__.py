"""The repository config `.modelship.yml`: schema, loader, errors (bot.config.repo)."""
