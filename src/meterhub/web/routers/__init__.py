"""API routers of capabilities beyond the live display (listed in meterhub.web.app.ROUTERS)."""
