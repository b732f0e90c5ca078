"""The quantity catalogue: one name per quantity, units and OBIS codes as IEC 62056-61 gives them."""

import pytest

from meterhub.model import CATALOGUE, Kind, Phase, UnknownQuantityError, get, obis_code


def test_catalogue_ids_are_snake_case_and_unique():
    assert all(q.id == q.id.lower() and " " not in q.id for q in CATALOGUE.values())
    assert len({q.id for q in CATALOGUE.values()}) == len(CATALOGUE)


@pytest.mark.parametrize(
    ("quantity", "phase", "code"),
    [
        ("energy_active_import", Phase.TOTAL, "1.0.1.8.0"),
        ("energy_active_export", Phase.TOTAL, "1.0.2.8.0"),
        ("energy_active_import", Phase.L1, "1.0.21.8.0"),
        ("energy_active_import", Phase.L3, "1.0.61.8.0"),
        ("energy_reactive_q1", Phase.TOTAL, "1.0.5.8.0"),
        ("energy_reactive_q4", Phase.TOTAL, "1.0.8.8.0"),
        ("voltage", Phase.L1, "1.0.32.7.0"),
        ("voltage", Phase.L2, "1.0.52.7.0"),
        ("current", Phase.N, "1.0.91.7.0"),
        ("active_power", Phase.TOTAL, "1.0.16.7.0"),
        ("frequency", Phase.TOTAL, "1.0.14.7.0"),
        ("demand_active_import", Phase.TOTAL, "1.0.1.4.0"),
        ("max_demand_active_import", Phase.TOTAL, "1.0.1.6.0"),
        ("energy_reactive_import", Phase.TOTAL, "1.0.3.8.0"),
        ("energy_reactive_export", Phase.L2, "1.0.44.8.0"),
        ("demand_reactive_import", Phase.TOTAL, "1.0.3.4.0"),
        ("demand_reactive_export", Phase.TOTAL, "1.0.4.4.0"),
        ("max_demand_reactive_import", Phase.TOTAL, "1.0.3.6.0"),
        ("max_demand_reactive_export", Phase.TOTAL, "1.0.4.6.0"),
    ],
)
def test_obis_codes_follow_iec_62056_61(quantity, phase, code):
    assert obis_code(get(quantity), phase) == code


def test_tariff_registers_use_value_group_e():
    assert obis_code(get("energy_active_import"), Phase.TOTAL, tariff=2) == "1.0.1.8.2"


def test_energy_registers_are_cumulative_and_in_wh():
    for name in ("energy_active_import", "energy_active_export", "energy_apparent"):
        q = get(name)
        assert q.kind is Kind.CUMULATIVE
        assert q.unit in ("Wh", "VAh")


def test_catalogue_covers_the_measurement_features():
    # FEATURES.md "Measurement" and "Energy", by catalogue id
    needed = """voltage voltage_line voltage_zero_sequence current current_neutral_calculated active_power
    reactive_power nonactive_power apparent_power power_factor displacement_power_factor frequency angle_voltage
    angle_current thd_voltage thd_current tohd_voltage tehd_voltage harmonics_voltage harmonics_current
    crest_factor_voltage crest_factor_current k_factor factor_k voltage_unbalance_negative voltage_unbalance_zero
    current_unbalance_negative current_unbalance_zero voltage_max voltage_min voltage_line_max voltage_line_min
    power_predicted energy_active_import energy_active_export energy_active_net energy_active_absolute
    energy_reactive_q1 energy_reactive_q2 energy_reactive_q3 energy_reactive_q4 energy_apparent
    demand_active_import max_demand_active_import demand_current max_demand_current cost co2 operating_hours
    pulse_count volume_gas volume_water temperature digital_input relay_output analog_input""".split()
    assert [n for n in needed if n not in CATALOGUE] == []


def test_unknown_quantity_error_suggests_close_names():
    with pytest.raises(UnknownQuantityError) as err:
        get("voltage_phase")
    assert "voltage" in str(err.value)


def test_q_symbols_name_exactly_the_catalogue_ids_in_order():
    from meterhub.model.quantities import CATALOGUE, Q

    assert [q.value for q in Q] == list(CATALOGUE)
    assert Q.ENERGY_ACTIVE_IMPORT == "energy_active_import"


def test_reversed_ct_rules_are_catalogue_attributes():
    from meterhub.model.quantities import CATALOGUE, Q, Reversal

    assert CATALOGUE[Q.ACTIVE_POWER].reversal is Reversal.NEGATE
    assert CATALOGUE[Q.ANGLE_CURRENT].reversal is Reversal.ROTATE
    assert CATALOGUE[Q.VOLTAGE].reversal is Reversal.NONE
    # import ↔ export and quadrants I ↔ III, II ↔ IV (IEC 62053-23 quadrant definitions)
    pairs = {q.id: q.counterpart for q in CATALOGUE.values() if q.reversal is Reversal.SWAP}
    assert pairs[Q.ENERGY_ACTIVE_IMPORT] == Q.ENERGY_ACTIVE_EXPORT
    assert pairs[Q.ENERGY_REACTIVE_Q2] == Q.ENERGY_REACTIVE_Q4
    assert all(pairs[b] == a for a, b in pairs.items())


def test_supply_demand_and_spectrum_sets_come_from_the_catalogue():
    from meterhub.model.quantities import DEMAND_OF, SPECTRUM_QUANTITIES, SUPPLY_QUANTITIES, Q

    assert Q.FREQUENCY in SUPPLY_QUANTITIES and Q.CURRENT not in SUPPLY_QUANTITIES
    assert DEMAND_OF[Q.ENERGY_ACTIVE_IMPORT] == (Q.DEMAND_ACTIVE_IMPORT, Q.MAX_DEMAND_ACTIVE_IMPORT)
    assert set(SPECTRUM_QUANTITIES) == {
        Q.HARMONICS_VOLTAGE,
        Q.HARMONICS_CURRENT,
        Q.HARMONICS_VOLTAGE_PERCENT,
        Q.HARMONICS_CURRENT_PERCENT,
    }


def test_seed_002_register_set_is_in_the_catalogue() -> None:
    """Seed 002 Appendix 3 and seed 004: import/export, absolute and net energy, active and reactive;
    import/export maximum demand; predicted demand of P, Q and S (seed 003)."""
    from meterhub.model.quantities import DEMAND_OF, REACTIVE_QUADRANTS, Q

    assert get(Q.ENERGY_REACTIVE_ABSOLUTE).kind is Kind.CUMULATIVE
    assert get(Q.ENERGY_REACTIVE_ABSOLUTE).unit == "varh"
    net = get(Q.ENERGY_REACTIVE_NET)  # import − export goes down while exporting: not a register
    assert (net.kind, net.unit, net.signed) == (Kind.INSTANTANEOUS, "varh", True)
    assert DEMAND_OF[Q.ENERGY_REACTIVE_IMPORT] == (Q.DEMAND_REACTIVE_IMPORT, Q.MAX_DEMAND_REACTIVE_IMPORT)
    assert DEMAND_OF[Q.ENERGY_REACTIVE_EXPORT] == (Q.DEMAND_REACTIVE_EXPORT, Q.MAX_DEMAND_REACTIVE_EXPORT)
    for q in (Q.DEMAND_REACTIVE_IMPORT_PREDICTED, Q.DEMAND_APPARENT_PREDICTED):
        assert get(q).kind is Kind.INTERVAL and get(q).phases == (Phase.TOTAL,)
    assert get(Q.DEMAND_APPARENT_PREDICTED).unit == "VA"
    # IEC 62053-23: R+ = QI + QII, R− = QIII + QIV
    assert REACTIVE_QUADRANTS == {
        Q.ENERGY_REACTIVE_IMPORT: (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q2),
        Q.ENERGY_REACTIVE_EXPORT: (Q.ENERGY_REACTIVE_Q3, Q.ENERGY_REACTIVE_Q4),
    }


def test_a_reversed_ct_negates_net_energy_and_keeps_absolute() -> None:
    from meterhub.model.quantities import Q, Reversal

    assert get(Q.ENERGY_ACTIVE_NET).reversal is Reversal.NEGATE
    assert get(Q.ENERGY_REACTIVE_NET).reversal is Reversal.NEGATE
    assert get(Q.ENERGY_REACTIVE_ABSOLUTE).reversal is Reversal.NONE
    assert get(Q.ENERGY_REACTIVE_IMPORT).counterpart == Q.ENERGY_REACTIVE_EXPORT
