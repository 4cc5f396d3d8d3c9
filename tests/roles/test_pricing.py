"""Prices: the local YAML table over genai-prices' bundled data, tiers, caches, unknowns."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import genai_prices
import pytest
from genai_prices.data import providers as library_providers
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from coordinator.core.llm import Usage
from roles.providers.errors import ProviderConfigError
from roles.providers.pricing import (
    Price,
    cost_of,
    estimate_cost,
    library_version,
    load_inference_prices,
    price_for,
    price_source,
)

M = 1_000_000


@pytest.fixture
def prices_file(tmp_path, monkeypatch):
    """Write a local price table and make it the one in use (``COORD_PRICES``)."""
    def write(text: str):
        path = tmp_path / "prices.yaml"
        path.write_text(text)
        monkeypatch.setenv("COORD_PRICES", str(path))
        return path
    return write


def test_a_long_context_sonnet_call_is_priced_at_the_providers_tier():
    """Issue 14's example: 300k tokens in, 10k out — $1.05 at the flat rate, $2.03 at the tier."""
    cost = cost_of("claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=10_000))
    assert cost.usd == pytest.approx((300_000 * 6.00 + 10_000 * 22.50) / M)  # the >200k rates
    assert cost.usd == pytest.approx(2.03, abs=0.005) and cost.flag is None
    flat = cost_of("claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=10_000),
                   {"claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75)})  # the old hand-kept row
    assert flat.usd == pytest.approx(1.05)
    assert price_source("claude-sonnet-4-5") == library_version()
    # a dated id and a planned call get the same tier
    assert cost_of("claude-sonnet-4-5-20250929", Usage(input_tokens=300_000, output_tokens=10_000)) == cost
    assert estimate_cost("claude-sonnet-4-5", 300_000, 10_000) == cost


def test_a_short_call_is_priced_at_the_base_rates():
    cost = cost_of("claude-sonnet-4-5", Usage(input_tokens=12_000, output_tokens=800))
    assert cost.usd == pytest.approx((12_000 * 3.00 + 800 * 15.00) / M)
    assert estimate_cost("gpt-4o-mini", 1_000, 500).usd == pytest.approx((1_000 * 0.15 + 500 * 0.60) / M)


def test_the_tier_counts_cache_reads_and_writes_and_prices_the_whole_request():
    at_threshold = Usage(input_tokens=100_000, output_tokens=1_000, cached_tokens=60_000, cache_write_tokens=40_000)
    assert cost_of("claude-sonnet-4-5", at_threshold).usd == pytest.approx(
        (100_000 * 3.00 + 1_000 * 15.00 + 60_000 * 0.30 + 40_000 * 3.75) / M)
    over = Usage(input_tokens=100_001, output_tokens=1_000, cached_tokens=60_000, cache_write_tokens=40_000)
    assert cost_of("claude-sonnet-4-5", over).usd == pytest.approx(
        (100_001 * 6.00 + 1_000 * 22.50 + 60_000 * 0.60 + 40_000 * 7.50) / M)


def test_cache_reads_and_writes_are_priced_at_their_rates():
    anthropic = Usage(input_tokens=1_000, output_tokens=200, cached_tokens=4_000, cache_write_tokens=2_000)
    assert cost_of("claude-haiku-4-5", anthropic, provider="anthropic").usd == pytest.approx(
        (1_000 * 1.00 + 200 * 5.00 + 4_000 * 0.10 + 2_000 * 1.25) / M)
    openai = Usage(input_tokens=1_000, output_tokens=100, cached_tokens=3_000)
    assert cost_of("gpt-4o-mini", openai, provider="openai").usd == pytest.approx(
        (1_000 * 0.15 + 100 * 0.60 + 3_000 * 0.075) / M)


def _library_usage(u: Usage) -> genai_prices.Usage:
    """genai-prices counts cache reads and writes inside ``input_tokens``; coord's Usage does not."""
    return genai_prices.Usage(input_tokens=u.input_tokens + u.cached_tokens + u.cache_write_tokens,
                              cache_read_tokens=u.cached_tokens, cache_write_tokens=u.cache_write_tokens,
                              output_tokens=u.output_tokens)


USAGES = [Usage(1_200, 300), Usage(150_000, 2_000, 40_000, 9_000), Usage(250_000, 5_000, 30_000, 1_000),
          Usage(10, 1, 500_000)]


def test_every_anthropic_and_openai_price_agrees_with_the_librarys_own_arithmetic():
    now = datetime.now(UTC)
    compared = 0
    for provider in library_providers:
        if provider.id not in ("anthropic", "openai"):
            continue
        for model in provider.models:
            for usage in USAGES:
                ours = cost_of(model.id, usage, {}, provider=provider.id)
                if ours.usd is None:  # not a token-priced model, another model's id, or no cache price
                    continue
                theirs = genai_prices.calc_price(_library_usage(usage), model.id, provider_id=provider.id,
                                                 genai_request_timestamp=now)
                assert ours.usd == pytest.approx(float(theirs.total_price), abs=1e-9), (model.id, usage)
                compared += 1
    assert compared > 200


def test_a_local_row_overrides_the_library_and_its_tiers(prices_file):
    path = prices_file("inference:\n  claude-sonnet-4-5: {input: 1.0, output: 2.0}\n")
    assert cost_of("claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=10_000)).usd == \
        pytest.approx((300_000 * 1.0 + 10_000 * 2.0) / M)
    assert price_source("claude-sonnet-4-5") == str(path)
    # models the file does not list still come from the library
    assert price_source("gpt-4o-mini") == library_version()
    assert price_for("gpt-4o-mini") == Price(0.15, 0.60, 0.075)


def test_a_local_tier_applies_to_the_whole_request(prices_file):
    prices_file("""inference:
  my-model:
    {input: 2.0, output: 8.0, cached_input: 0.5,
     tiers: [{above_input_tokens: 1000000, input: 5.0, output: 20.0},
             {above_input_tokens: 100000, input: 4.0, output: 16.0, cached_input: 1.0}]}
""")
    assert cost_of("my-model", Usage(input_tokens=50_000, output_tokens=1_000, cached_tokens=50_000)).usd == \
        pytest.approx((50_000 * 2.0 + 1_000 * 8.0 + 50_000 * 0.5) / M)
    assert cost_of("my-model", Usage(input_tokens=50_000, output_tokens=1_000, cached_tokens=50_001)).usd == \
        pytest.approx((50_000 * 4.0 + 1_000 * 16.0 + 50_001 * 1.0) / M)
    assert cost_of("my-model", Usage(input_tokens=1_500_000, output_tokens=1_000)).usd == \
        pytest.approx((1_500_000 * 5.0 + 1_000 * 20.0) / M)
    # the top tier has no cached-input rate: a cached call there is unknown, not priced at another tier's rate
    top = cost_of("my-model", Usage(input_tokens=1_500_000, output_tokens=1_000, cached_tokens=10))
    assert top.usd is None and top.flag and "no cached-input price for 'my-model' above 1000000" in top.flag


def test_an_unknown_model_is_unknown_and_flagged():
    cost = cost_of("gpt-9-imaginary", Usage(input_tokens=100, output_tokens=10))
    assert cost.usd is None and "no inference price for 'gpt-9-imaginary'" in (cost.flag or "")
    assert price_for("gpt-9-imaginary") is None and price_source("gpt-9-imaginary") is None


def test_a_local_server_model_is_not_priced_as_a_hosted_one():
    """An Ollama model named like a hosted one is free or listed locally, never billed at the hosted rate."""
    for model, provider in [("gpt-4o-mini", "openai_compatible"), ("deepseek-r1:8b", None), ("llama3.1:8b", None)]:
        cost = cost_of(model, Usage(input_tokens=100, output_tokens=10), provider=provider)
        assert cost.usd is None and repr(model) in (cost.flag or "")


def test_fine_tuned_models_are_priced_from_the_packaged_table():
    usage = Usage(input_tokens=1_000, output_tokens=100, cached_tokens=2_000)
    cost = cost_of("ft:gpt-4o-mini-2024-07-18:my-org::abc123", usage)
    assert cost.usd == pytest.approx((1_000 * 0.30 + 100 * 1.20 + 2_000 * 0.15) / M)
    assert price_source("ft:gpt-4o-mini-2024-07-18:my-org::abc123") == "pipeline/data/prices.yaml"
    assert "ft:gpt-4o-mini-2024-07-18" in load_inference_prices()


def test_a_missing_cache_price_makes_the_cost_unknown():
    table = {"m": Price(1.0, 2.0)}
    cost = cost_of("m", Usage(input_tokens=10, cached_tokens=5), table)
    assert cost.usd is None and cost.flag == "no cached-input price for 'm' in the given price table"
    cost = cost_of("m", Usage(input_tokens=10, cache_write_tokens=5), table)
    assert cost.usd is None and "no cache-write price for 'm'" in (cost.flag or "")


def test_prices_come_from_the_installed_data_only(monkeypatch):
    """No network, no update thread, and a global snapshot swapped by someone else is not used."""
    def no_network(*args, **kwargs):
        raise AssertionError("pricing opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    threads = threading.active_count()
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        # a name no other test prices, so no memoized answer hides where the price came from
        cost = cost_of("claude-opus-4-1-20250805", Usage(input_tokens=1_000))
        assert cost.usd == pytest.approx(1_000 * 15.00 / M)
    finally:
        set_custom_snapshot(None)
    assert threading.active_count() == threads
    assert library_version().startswith(f"genai-prices {genai_prices.__version__}")


@pytest.mark.parametrize(("row", "where"), [
    ("{input: 1.0}", "inference.m: missing 'output'"),
    ("{input: -1.0, output: 1.0}", "inference.m.input: bad price"),
    ("{input: 1.0, output: 1.0, cache_read: 0.1}", "inference.m: unknown key 'cache_read'"),
    ("{input: 1.0, output: 1.0, tiers: [{input: 2.0, output: 2.0}]}", "inference.m.tiers[0].above_input_tokens"),
    ("{input: 1.0, output: 1.0, tiers: [{above_input_tokens: 5, input: 2.0}]}", "inference.m.tiers[0]: missing"),
])
def test_a_bad_local_row_names_its_place(prices_file, row, where):
    prices_file(f"inference:\n  m: {row}\n")
    with pytest.raises(ProviderConfigError, match=r"prices\.yaml → " + where.replace("[", r"\[").replace("]", r"\]")):
        cost_of("m", Usage(input_tokens=1))


@pytest.mark.parametrize(("flavor", "stdout", "flag"), [
    ("claude", '{"type": "result", "subtype": "success", "result": "ok", "total_cost_usd": -5.0}',
     "reported an impossible cost (-5.0)"),
    ("claude", '{"type": "result", "subtype": "success", "result": "ok", "total_cost_usd": 0.01, '
               '"usage": {"input_tokens": "many", "output_tokens": 5}}', None),
    ("codex", '{"type": "thread.started", "thread_id": "t"}\n'
              '{"type": "turn.completed", "usage": {"input_tokens": "many", "output_tokens": 5}}',
     "reported token counts that are not counts"),
    ("codex", '{"type": "thread.started", "thread_id": "t"}\n'
              '{"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": -475}}',
     "reported token counts that are not counts"),
    ("codex", '{"type": "thread.started", "thread_id": "t"}\n{"type": "turn.started"}',
     "codex reported no token usage (no turn.completed was read"),
])
def test_a_cli_s_impossible_or_missing_figures_are_never_booked_as_money(tmp_path, flavor, stdout, flag):
    from roles.drivers.cli._driver import reply_cost
    from roles.drivers.cli._flavors import FLAVORS, CliSettings

    f = FLAVORS[flavor]
    reply = f.parse(stdout, tmp_path / "last.txt")
    _, cost, source = reply_cost(f, CliSettings(f.name, "gpt-5-codex" if flavor == "codex" else None, "x"),
                                 reply, {}, "lead")
    if flag is None:  # a reported dollar figure stands; the bad token count is only not priced
        assert cost.usd == 0.01
    else:
        assert cost.usd is None and source == "unknown" and flag in str(cost.flag), cost


def test_what_another_program_printed_is_shown_without_escapes_or_control_characters():
    from coordinator.core.ports import printable, tail

    raw = "ok\n\x1b[31mred\x1b[0m and \x00nul\x07 \x1b]0;title\x07done\n\x1b[2Jcleared\ttab"
    assert printable(raw) == "ok\nred and nul done\ncleared\ttab"
    assert tail(raw, 1) == "cleared\ttab"
