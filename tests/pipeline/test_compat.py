"""Compatibility matrix: loading, validation messages, built-in and generated defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.errors import InputError, ParameterError
from pipeline.compat import (
    WEEK2_MATRIX_PATH,
    default_matrix,
    generated_weight,
    load_matrix,
    parse_matrix,
    resolve_matrix,
    week2_matrix,
)

WEEK2 = ["qa", "support", "legal", "analyst", "content"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "compat.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_week2_default_uses_every_pair_with_domain_weights() -> None:
    m = week2_matrix()
    assert list(m.agents) == WEEK2
    assert m.pairs_used() == 25
    for t in WEEK2:
        assert m.weight(t, t) == 1.0
        for s in WEEK2:
            if s != t:
                assert 0.2 <= m.weight(t, s) <= 0.8
        assert m.role(t) != f"the specialist for {t} tasks"  # week2 ships real role text
    assert m.weight("support", "content") > m.weight("support", "analyst")


def test_mapping_file_fills_missing_pairs_with_zero_and_diagonal_with_one(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: [a, b, c]\nweights:\n  a: {b: 0.5}\n  b: {b: 1.0}\n")
    m = load_matrix(path)
    assert m.weight("a", "b") == 0.5
    assert m.weight("a", "a") == 1.0 and m.weight("c", "c") == 1.0
    assert m.weight("a", "c") == 0.0
    assert m.sources("a") == [("a", 1.0), ("b", 0.5)]
    assert m.sources("c") == [("c", 1.0)]
    assert m.pairs_used() == 4


def test_list_form_is_read_in_agent_order(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: [a, b]\nweights: [[1.0, 0.25], [0.75, 1]]\n")
    m = load_matrix(path)
    assert m.weight("a", "b") == 0.25 and m.weight("b", "a") == 0.75


@pytest.mark.parametrize(("text", "message"), [
    ("agents: [qa, legal]\nweights: {qa: {legal: 1.4}}\n", "weights.qa.legal: 1.4 is outside [0, 1]"),
    ("agents: [qa, legal]\nweights: {qa: {legal: -0.1}}\n", "weights.qa.legal: -0.1 is outside [0, 1]"),
    ("agents: [qa, legal]\nweights: {qa: {legal: high}}\n", "weights.qa.legal: 'high' is not a number"),
    ("agents: [qa, legal]\nweights: {qa: {qa: 0.9}}\n", "weights.qa.qa: 0.9 on the diagonal"),
    ("agents: [qa, legal]\nweights: {ops: {qa: 0.5}}\n", "weights.ops: unknown agent 'ops'"),
    ("agents: [qa, legal]\nweights: {qa: {ops: 0.5}}\n", "weights.qa.ops: unknown agent 'ops'"),
    ("agents: [qa, legal]\nweights: [[1.0, 0.5]]\n", "weights: matrix is not square: 1 rows for 2 agents"),
    ("agents: [qa, legal]\nweights: [[1.0, 0.5], [0.5]]\n", "weights[1]: matrix is not square"),
    ("agents: [qa, qa]\nweights: {}\n", "agents[1]: duplicate agent 'qa'"),
    ("agents: [qa, ../x]\nweights: {}\n", "agents[1]: invalid agent name"),
    ("agents: [qa]\n", "weights: missing"),
    ("agents: [qa]\nweights: {}\nroles: {ops: tester}\n", "roles.ops: unknown agent 'ops'"),
])
def test_validation_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_matrix(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: [qa]\nweights: {qa: [\n")
    with pytest.raises(InputError) as info:
        load_matrix(path)
    assert info.value.line is not None and str(path) in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_matrix(tmp_path / "nope.yaml")


def test_fifteen_agent_generated_default_is_stable_symmetric_and_in_band() -> None:
    agents = [f"agent{i:02d}" for i in range(15)]
    m = default_matrix(agents)
    again = default_matrix(list(agents))
    assert m.to_dict() == again.to_dict()
    assert m.pairs_used() == 15 * 15
    off = [m.weight(t, s) for t in agents for s in agents if s != t]
    assert all(0.2 <= w <= 0.8 for w in off)
    assert len(set(off)) > 10  # varied, not one constant
    assert all(m.weight(t, s) == m.weight(s, t) for t in agents for s in agents)
    assert all(m.weight(a, a) == 1.0 for a in agents)
    # the value depends only on the pair, not on the list it came from
    assert default_matrix(["agent03", "agent07"]).weight("agent03", "agent07") == m.weight("agent03", "agent07")
    assert generated_weight("x", "y") == generated_weight("y", "x")


def test_default_keeps_week2_weights_and_generates_the_rest() -> None:
    m = default_matrix(["qa", "legal", "ops"])
    w2 = week2_matrix()
    assert m.weight("qa", "legal") == w2.weight("qa", "legal")
    assert m.weight("ops", "qa") == generated_weight("ops", "qa")


def test_fifteen_agent_file_round_trips(tmp_path: Path) -> None:
    agents = [f"a{i}" for i in range(15)]
    rows = [[1.0 if i == j else round(0.2 + 0.04 * ((i + j) % 15), 2) for j in range(15)]
            for i in range(15)]
    m = parse_matrix({"agents": agents, "weights": rows}, origin="inline")
    again = parse_matrix(m.to_dict(), origin="again")
    assert again.weights == m.weights
    assert m.weight("a3", "a4") == rows[3][4]


def test_resolve_restricts_a_file_and_rejects_unknown_agents() -> None:
    m = resolve_matrix(["legal", "qa"], WEEK2_MATRIX_PATH)
    assert list(m.agents) == ["legal", "qa"]
    assert m.weight("qa", "legal") == week2_matrix().weight("qa", "legal")
    with pytest.raises(ParameterError, match="'ops'"):
        resolve_matrix(["qa", "ops"], WEEK2_MATRIX_PATH)
    with pytest.raises(ParameterError):
        week2_matrix().weight("qa", "ops")
