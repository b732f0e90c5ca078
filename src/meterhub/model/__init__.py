"""Domain model: the quantity catalogue, topology enums and readings."""

from meterhub.model.quantities import CATALOGUE, Kind, Quantity, Total, UnknownQuantityError, get, obis_code
from meterhub.model.readings import Quality, Reading, SeriesKey, Spectrum, iso_utc
from meterhub.model.topology import PHASES_OF_WIRING, Phase, Purpose, Wiring

__all__ = [
    "CATALOGUE",
    "PHASES_OF_WIRING",
    "Kind",
    "Phase",
    "Purpose",
    "Quality",
    "Quantity",
    "Reading",
    "SeriesKey",
    "Spectrum",
    "Total",
    "UnknownQuantityError",
    "Wiring",
    "get",
    "iso_utc",
    "obis_code",
]
