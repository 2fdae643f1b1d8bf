"""Deny by default for pages too: every web route declares who may reach it; the API's own
route walk (and its list of public API routes) is untouched by the web apps."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from diboas.api.app import create_app, iter_api_routes
from diboas.identity.roles import ROLE_PERMISSIONS
from diboas.settings import Settings
from diboas.web import web_routes
from diboas.web.assets import Assets
from diboas.web.routing import GUEST, OPEN, PUBLIC, WebRoute
from diboas.web.templating import TEMPLATES_DIR, create_environment

EXPECTED_PUBLIC = {
    "/",
    "/banking",
    "/investing",
    "/defi",
    "/fees",
    "/learn",
    "/learn/{slug}",
    "/app/{path:path}",  # the 404 page for addresses under /app that are no page
    "/business/{path:path}",  # the same under /business
    # The installable app's files and its offline page: nothing personal in them.
    "/app/manifest.webmanifest",
    "/app/sw.js",
    "/app/offline",
}
EXPECTED_GUEST = {"/app/signup", "/app/login", "/app/forgot-password"}
# The pages emailed links lead to: reachable signed in or not.
EXPECTED_OPEN = {"/app/verify-email", "/app/reset-password"}


def _app() -> object:
    return create_app(Settings(env="test"), database_url="postgresql://postgres@127.0.0.1:9/none")


def test_every_web_route_declares_its_access() -> None:
    routes = web_routes()
    assert len(routes) > 15
    known = set().union(*ROLE_PERMISSIONS.values()) | {PUBLIC, GUEST, OPEN}
    assert {r.path: r.access for r in routes if r.access not in known} == {}
    assert {r.path for r in routes if r.access == PUBLIC} == EXPECTED_PUBLIC
    assert {r.path for r in routes if r.access == GUEST} == EXPECTED_GUEST
    assert {r.path for r in routes if r.access == OPEN} == EXPECTED_OPEN
    # Everything else under /app needs a signed-in user with a permission.
    assert all(
        r.access not in (PUBLIC, GUEST, OPEN)
        for r in routes
        if r.path.startswith("/app")
        and r.path not in EXPECTED_GUEST | EXPECTED_OPEN | EXPECTED_PUBLIC
    )
    assert routes[-1].path == "/app/{path:path}"  # last: it only sees what nothing matched


def test_the_app_serves_only_declared_plain_routes() -> None:
    app = _app()
    plain = [
        r
        for r in app.router.routes  # type: ignore[attr-defined]
        if isinstance(r, Route) and type(r).__module__.startswith("diboas.web")
    ]
    undeclared = [
        r.path for r in plain if not isinstance(r, WebRoute) and r.path != "/static/{name:path}"
    ]
    assert undeclared == []
    api_paths = {path for path, _ in iter_api_routes(app)}  # type: ignore[arg-type]
    assert not any(p == "/" or p.startswith(("/app", "/static", "/learn")) for p in api_paths)
    assert "/api/v1/openapi.json" not in {r.path for r in plain}


def test_every_template_compiles() -> None:
    env = create_environment(Assets())
    names = [p.relative_to(TEMPLATES_DIR).as_posix() for p in TEMPLATES_DIR.rglob("*.html")]
    assert len(names) > 15
    for name in names:
        env.get_template(name)  # raises on a syntax error
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


async def test_an_unknown_app_address_is_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/app/no-such-page")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert response.headers["content-type"].startswith("text/html")
    # The API keeps its own 404s.
    api = await client.get("/api/v1/no-such-route")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"
