"""Notifications: events from review, deploy and guard, told to Slack and to a signed generic webhook."""
