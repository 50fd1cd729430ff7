"""The dashboard: server-rendered pages under /ui (aiohttp + Jinja2, htmx fragments), signed in with GitHub.

It reads through the tables' owners (bot.store.*, bot.chatops.store, bot.guard.store) and acts (retry,
cancel) through chat-ops' authorization and audit. A user sees only repositories their GitHub account
can read; their GitHub token stays in this process's session store, never in a cookie or a page.
"""
