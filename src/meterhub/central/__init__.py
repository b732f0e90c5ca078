"""meterhub central: many gateways' ``meterhub-json`` over MQTT into one PostgreSQL database, with a
fleet API (issue 15, docs/fleet.md). It sits above ``web`` in the layers: its API is served by the same
FastAPI stack and static UI as a gateway's."""

__all__: list[str] = []
