"""devhub: a local GitHub simulator (REST subset, app auth, git hosting, signed webhooks).

running = await start(tmp_path, webhook_url=..., webhook_secret=...)
hub = running.hub
app_id, private_key = await hub.create_app()
await hub.create_repo("acme/models", {"README.md": "hi"})
await hub.install("acme", ["acme/models"])
"""

from bot.devhub.faults import Fault
from bot.devhub.hub import DevHub, DevHubError
from bot.devhub.server import RunningDevHub, start

__all__ = ["DevHub", "DevHubError", "Fault", "RunningDevHub", "start"]
