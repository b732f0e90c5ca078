"""API routers contributed by capabilities (included by meterhub.web.app)."""
