"""meterhub.web — the REST API under ``/api/v1``, the WebSocket stream and the web UI.

* :mod:`.app` — ``create_app(gateway) -> FastAPI`` (the routers it lists in ``ROUTERS``);
* :mod:`.deps` — typed dependencies, the only view routes have of the gateway; :mod:`.errors` — one error mapping;
* :mod:`.auth` — users and roles, sessions, CSRF, API tokens, rate limiting, the setup token;
* :mod:`.live_api`, :mod:`.stream`, :mod:`.site_api`, :mod:`.config_api`, :mod:`.auth_api` — the API;
* ``static/`` — the single-page UI (ES modules, no build step; ECharts from ``make web-assets``).

Kept free of imports so that ``meterhub user …`` can use :mod:`.auth` without loading FastAPI's app.
"""
