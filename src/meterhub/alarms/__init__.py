"""Alarms: rules over live readings, events, notifications and control (issue 11; not implemented yet).

Alarms will be a bus sink (:class:`meterhub.bus.Sink`): its own subscription, registered in
:data:`meterhub.runtime.sinks.SINK_FACTORIES` under a new :class:`meterhub.bus.SinkKind` member — see
docs/ARCHITECTURE.md, "Adding a sink". Until then the site file's ``alarms:`` section is refused.
"""
