"""Sign-in with GitHub: the App's user-authorization web flow, and what the signed-in user may read.

GitHub's flow: redirect to ``{web}/login/oauth/authorize?client_id&redirect_uri&state``; GitHub comes
back with ``code`` and ``state``; ``POST {web}/login/oauth/access_token`` trades the code for a user
token; ``GET /user`` says who it is and ``GET /user/repos`` (paginated) what they can read, with their
permission on each. The token never leaves this module's caller's server-side session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

_ROLES = ("admin", "maintain", "push", "triage", "pull")
_ROLE_NAMES = {"push": "write", "pull": "read"}
MAX_PAGES = 20  # 2,000 repositories: enough for a person; more is cut, never guessed


class SignInError(Exception):
    """Sign-in failed; the message is safe to show (it never holds a token)."""


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    web_url: str
    api_url: str
    session: aiohttp.ClientSession

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self.client_id, "redirect_uri": redirect_uri, "state": state})
        return f"{self.web_url}/login/oauth/authorize?{query}"

    async def exchange(self, code: str, redirect_uri: str) -> str:
        data = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        async with self.session.post(
            f"{self.web_url}/login/oauth/access_token", data=data, headers={"Accept": "application/json"}
        ) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            error = body.get("error", f"HTTP {resp.status}") if isinstance(body, dict) else "no JSON"
            raise SignInError(f"GitHub refused the sign-in code ({error}); sign in again")
        return token

    async def _get(self, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
        async with self.session.get(f"{self.api_url}{path}", headers=headers, params=params) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise SignInError(f"GitHub answered {resp.status} to GET {path}")
            return await resp.json()

    async def login(self, token: str) -> str:
        user = await self._get(token, "/user")
        if not isinstance(user, dict) or not isinstance(user.get("login"), str):
            raise SignInError("GitHub did not say who signed in")
        return str(user["login"])

    async def readable_repos(self, token: str) -> dict[str, str]:
        """Full name -> the user's role, for every repository GET /user/repos lists."""
        found: dict[str, str] = {}
        for page in range(1, MAX_PAGES + 1):
            items = await self._get(token, "/user/repos", {"per_page": 100, "page": page})
            if not isinstance(items, list):
                break
            for repo in items:
                perms = repo.get("permissions") or {}
                role = next((r for r in _ROLES if perms.get(r)), None)
                if role is not None:
                    found[str(repo["full_name"])] = _ROLE_NAMES.get(role, role)
            if len(items) < 100:
                break
        return found

    async def member_of(self, token: str, login: str, allowed: str) -> bool:
        """Is the user in ``allowed``: an org (``acme``) or a team (``acme/ml``)?"""
        org, _, team = allowed.partition("/")
        if team:
            found = await self._get(token, f"/orgs/{org}/teams/{team}/memberships/{login}")
            return isinstance(found, dict) and found.get("state") == "active"
        orgs = await self._get(token, "/user/orgs", {"per_page": 100}) or []
        return any(isinstance(o, dict) and str(o.get("login", "")).lower() == org.lower() for o in orgs)
