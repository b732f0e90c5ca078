"""Publishers: MQTT out, Modbus server, HTTP upload (issues 12, 13; not implemented yet).

Each publisher will be a bus sink (:class:`meterhub.bus.Sink`) with a SPILL subscription, so that an
outage delays delivery and never loses it — see docs/ARCHITECTURE.md, "Adding a sink". Until then the
site file's ``publish:`` section is refused.
"""
