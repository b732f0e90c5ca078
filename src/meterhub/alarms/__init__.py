"""Alarms: rules over live readings, ISA-18.2 states, events, notifications and control (issue 11).

The alarm sink (:mod:`meterhub.alarms.sink`, ``SinkKind.ALARMS``) feeds the engine
(:mod:`meterhub.alarms.engine`) with the rules of the site file's ``alarms:`` section
(:mod:`meterhub.alarms.rules`) and the built-in system rules (:mod:`meterhub.alarms.system`); states are
kept in ``DATA/alarms-state.sqlite`` (:mod:`meterhub.alarms.state`). What the parts hand each other is in
:mod:`meterhub.alarms.model`. See docs/alarms.md.

Every output change — a user's command, linkage (alarm or input → output), time programs, demand limiting
(:mod:`meterhub.alarms.demand_limit`) — goes through one audited path, :mod:`meterhub.alarms.control`
(``SinkKind.CONTROL``; docs/control.md).
"""
