"""The business routes' declared actions: every organisation route goes through org_access,
and the scopes keys can hold are exactly those the actions use."""

from __future__ import annotations

import typing

from diboas.api.app import create_app, iter_api_routes
from diboas.business import access
from diboas.business.schemas import Scope
from diboas.business.service.api_keys import SCOPES
from diboas.settings import Settings


def test_every_organisation_route_is_guarded_by_org_access() -> None:
    app = create_app(Settings(env="test"), database_url="postgresql://postgres@127.0.0.1:9/none")
    routes = [(p, r) for p, r in iter_api_routes(app) if p.startswith("/api/v1/business/")]
    assert len(routes) >= 15
    for path, route in routes:
        guards = [d.call.__qualname__ for d in route.dependant.dependencies]
        if "{organisation_id}" in path:
            assert "org_access.<locals>.check" in guards, path
        else:
            assert "org_access.<locals>.check" not in guards, path


def test_scopes_are_the_actions_scopes() -> None:
    actions = [v for v in vars(access).values() if isinstance(v, access.Action)]
    used = {a.scope for a in actions if a.scope is not None}
    assert used == SCOPES == set(typing.get_args(Scope))
    assert access.MANAGE.scope is None and access.MANAGE.min_role is access.OrgRole.ADMIN
