"""Sign-in with GitHub for devhub: the App's user-authorization web flow and the user-token REST calls.

github.com's side of the flow (not in the REST description): ``GET /login/oauth/authorize`` shows a page
that signs in a chosen devhub user (a form per known user, or a login typed in) and redirects to the
app's redirect URI with ``code`` and ``state``; ``POST /login/oauth/access_token`` trades the code (once,
within ten minutes, with the client secret) for a user access token. With that token: ``GET /user``,
``GET /user/repos`` (with the user's permissions) and ``GET /user/orgs`` — REST calls the contract checks.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from aiohttp import web

from devkit.devhub import render
from devkit.devhub.auth import bearer
from devkit.devhub.http import GitHubError, json_response, paginate
from devkit.devhub.hub import DevHub
from devkit.devhub.model import Account, iso

_PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")
_RANK = {"read": 0, "triage": 1, "write": 2, "maintain": 3, "admin": 4}


class OAuth:
    def __init__(self, hub: DevHub) -> None:
        self.hub = hub

    # -- github.com pages ------------------------------------------------------------------------
    async def authorize_page(self, request: web.Request) -> web.Response:
        q = request.query
        app = self.hub.app_by_client_id(q.get("client_id", ""))
        if app is None:
            return web.Response(status=404, text="The client_id is not an app on this devhub.\n")
        users = sorted(u.login for u in self.hub.users.values() if u.type == "User")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(q.get(k, ""))}">'
            for k in ("client_id", "redirect_uri", "state")
        )
        buttons = "".join(
            f'<li><form method="post">{hidden}<button name="login" value="{html.escape(u)}">'
            f"Sign in as {html.escape(u)}</button></form></li>"
            for u in users
        )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to devhub</title></head>'
            f"<body><main><h1>Authorize {html.escape(app.name)}</h1><ul>{buttons}</ul>"
            f'<form method="post">{hidden}<label for="login">Login</label>'
            '<input id="login" name="login"><button>Sign in</button></form></main></body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        form = await request.post()
        app = self.hub.app_by_client_id(str(form.get("client_id", "")))
        login, redirect_uri = str(form.get("login", "")).strip(), str(form.get("redirect_uri", ""))
        if app is None or not login or not redirect_uri.startswith(("http://", "https://")):
            return web.Response(status=400, text="client_id, login and an http(s) redirect_uri are required\n")
        code = self.hub.grant_code(app, login, redirect_uri)
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': form.get('state', '')})}")

    async def access_token(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.content_type != "application/json" else await request.json()
        token = self.hub.exchange_code(
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
            str(form.get("code", "")),
            str(form.get("redirect_uri", "")) or None,
        )
        if token is None:  # GitHub answers 200 with an error document here
            return json_response(
                {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                    "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
                }
            )
        return json_response({"access_token": token, "token_type": "bearer", "scope": "", "expires_in": 28800})

    # -- REST with a user token ------------------------------------------------------------------
    def user_auth(self, request: web.Request) -> Account:
        user = self.hub.token_user(bearer(request.headers))
        if user is None:
            raise GitHubError(401, "Bad credentials")
        return user

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.user_auth(request)
        created = iso(0)
        return json_response(
            render.user(user, self.hub.urls)
            | {
                "name": user.login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": created,
                "updated_at": created,
            }
        )

    async def list_repos(self, request: web.Request) -> web.Response:
        user = self.user_auth(request)
        found = sorted(self.hub.repos_of(user.login), key=lambda pair: pair[0].full_name)
        page, headers = paginate(request, found)
        items = []
        for r, role in page:
            rank = _RANK.get(role, -1)
            permissions = {name: rank >= i for i, name in enumerate(_PERMISSIONS)}
            items.append(render.repo(r, self.hub.urls) | {"permissions": permissions})
        return json_response(items, headers=headers)

    async def list_orgs(self, request: web.Request) -> web.Response:
        user = self.user_auth(request)
        page, headers = paginate(request, self.hub.orgs_of(user.login))
        return json_response([render.org_simple(o, self.hub.urls) for o in page], headers=headers)

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        return [
            web.get("/login/oauth/authorize", self.authorize_page),
            web.post("/login/oauth/authorize", self.authorize),
            web.post("/login/oauth/access_token", self.access_token),
            web.get(prefix + "/user", self.get_user),
            web.get(prefix + "/user/repos", self.list_repos),
            web.get(prefix + "/user/orgs", self.list_orgs),
        ]
