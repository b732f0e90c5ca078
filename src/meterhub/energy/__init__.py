"""meterhub.energy — registers, demand, tariffs, billing, load profiles, virtual meters and reports.

Pure logic with an injected clock; storage is reached only through :class:`meterhub.storage.Storage`.

=================  ==========================================================================
``registers``      register guard: wrap, reset, replacement, outage → continuous float64 registers
``demand``         block / sliding / thermal / predicted demand, maximum demand, capacity peaks
``tariffs``        ≤ 5 time-of-use rates (seasons, day types, bands) or a digital-input switch; CO2
``billing``        monthly billing snapshots (day 1–28 at an hour; automatic, manual, API)
``profiles``       load profiles (interval and captured quantities)
``virtual``        virtual circuits from formulas, zones, site balance formulas
``timeutil``       UTC storage vs local days and months (DST days of 23 and 25 h)
``reports``        interval reports (energy, per-tariff energy, cost, CO2, maximum demand)
``balance``        site balance report; ``capacity``: capacity-tariff report
``config``         the site file's ``energy:`` section
``pipeline``       :class:`~meterhub.energy.pipeline.EnergyPipeline`, the gateway's energy stage
=================  ==========================================================================
"""

__all__ = [
    "balance",
    "billing",
    "capacity",
    "config",
    "demand",
    "pipeline",
    "profiles",
    "registers",
    "reports",
    "tariffs",
    "timeutil",
    "virtual",
]
