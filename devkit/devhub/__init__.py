"""devhub: a local GitHub simulator (REST subset, app auth, git hosting, signed webhooks).

running = await start(tmp_path, webhook_url=..., webhook_secret=...)
hub = running.hub
app_id, private_key = await hub.create_app()
await hub.create_repo("acme/models", {"README.md": "hi"})
await hub.install("acme", ["acme/models"])
"""

from devkit.devhub.faults import Fault
from devkit.devhub.hub import DevHub, DevHubError
from devkit.devhub.server import RunningDevHub, start

__all__ = ["DevHub", "DevHubError", "Fault", "RunningDevHub", "start"]
