"""The consumer app as an installable web app (PWA) with an offline shell.

``/app/manifest.webmanifest`` describes the app; ``/app/sw.js`` is its service worker, which
keeps the offline page and the (hashed, immutable) static files, and answers a page request it
cannot get from the network with the offline page. Pages with personal data are never stored by
the service worker; the offline page shows the last balance the device saw on the dashboard
(kept in the browser's local storage by ``static/js/app.js``), marked as not current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import cast

from starlette.responses import Response

from diboas.web.routing import PUBLIC, Page, WebRoutes

routes = WebRoutes()
OFFLINE_PATH = "/app/offline"
# What the service worker keeps: the offline page and what it needs to show.
SHELL_ASSETS = ("css/diboas.css", "js/app.js", "img/logo.svg")

_WORKER = """// diBoaS service worker (generated: the list names this release's hashed files).
"use strict";
var CACHE = "diboas-shell-%(version)s";
var SHELL = %(shell)s;
var OFFLINE = "%(offline)s";

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(SHELL); }));
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf("diboas-shell-") === 0 && name !== CACHE;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    // Only navigations from the platform's own pages (or typed in, with no referrer) pass
    // through the worker: a request another site started is left to the browser untouched,
    // so SameSite cookie rules apply to it exactly as without a worker.
    var referrer = request.referrer ? new URL(request.referrer).origin : self.location.origin;
    if (referrer !== self.location.origin) return;
    // Pages always come from the network (they hold personal data and must be current);
    // only when there is no network does the offline page answer.
    event.respondWith(fetch(request).catch(function () { return caches.match(OFFLINE); }));
    return;
  }
  if (new URL(request.url).pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) { return hit || fetch(request); }));
  }
});
"""


def _static_url(page: Page) -> Callable[[str], str]:
    # The hashed-name lookup the templates use (web/templating.py).
    return cast("Callable[[str], str]", page.state.env.globals["static_url"])


def _shell(page: Page) -> list[str]:
    static_url = _static_url(page)
    return [OFFLINE_PATH, *(static_url(name) for name in SHELL_ASSETS)]


@routes.add("/app/sw.js", access=PUBLIC)
async def service_worker(page: Page) -> Response:
    shell = _shell(page)
    body = _WORKER % {
        "version": hashlib.sha256("\n".join(shell).encode()).hexdigest()[:12],
        "shell": json.dumps(shell),
        "offline": OFFLINE_PATH,
    }
    # Not cached by HTTP caches: a new release's worker (new file list) must be seen at once.
    return Response(
        body,
        media_type="text/javascript",
        # Scope "/app", not "/app/": the dashboard itself lives at /app.
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/app"},
    )


@routes.add("/app/manifest.webmanifest", access=PUBLIC)
async def manifest(page: Page) -> Response:
    static_url = _static_url(page)
    body = {
        "name": "diBoaS",
        "short_name": "diBoaS",
        "description": "One account for cash, crypto and DeFi yield.",
        "start_url": "/app",
        "scope": "/app",
        "display": "standalone",
        "background_color": "#0b1220",
        "theme_color": "#0b1220",
        "icons": [{"src": static_url("img/logo.svg"), "sizes": "any", "type": "image/svg+xml"}],
    }
    return Response(
        json.dumps(body),
        media_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@routes.add(OFFLINE_PATH, access=PUBLIC)
async def offline(page: Page) -> Response:
    return page.render("consumer/offline.html")
