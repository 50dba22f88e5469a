"""The dashboard in a real Chromium (Debian's, headless, driven by playwright) over a
real fleet: redis-server, two replicas, a local and a paid mock backend."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from nexus.config.schema import KeyConfig
from nexus.http.dashboard.routes import ASSETS
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    make_config,
    until,
)
from tests.support.mock_backend import MockBackend
from tests.support.redis_server import RedisServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it)")
PRICE = {"input": 10.0, "output": 30.0}  # USD per million: 1000 in + 500 out = 2.5 cents
WAIT_MS = 30_000  # a deadline for what the page shows, met in a second or two when idle
STATIC = Path(__file__).resolve().parents[2] / "nexus" / "http" / "dashboard" / "static"


@dataclass
class Fleet:
    a: RunningGateway
    b: RunningGateway
    local: MockBackend
    paid: MockBackend


def fleet_config(server: RedisServer, prefix: str, replica: str, local: MockBackend,
                 paid: MockBackend, **sections: Any) -> Any:
    return make_config(
        [backend(local, models=["llm"], zone="restricted", priority=100),
         backend(paid, models=["gpt-x"], type="openai", api_key_env="OAI",
                 pricing={"gpt-x": dict(PRICE)})],
        redis={"url": server.url, "prefix": prefix, "snapshot_interval_seconds": 0.2},
        fleet={"replica_id": replica, "lease_ttl_ms": 1000},
        health_check={"interval_seconds": 0.3, "failure_threshold": 1, "timeout_seconds": 1},
        routing={"budget": {"monthly_limit_usd": 1.0}}, **sections)


@pytest.fixture
async def fleet(redis_server: RedisServer, redis_prefix: str, mock_backend: MockFactory,
                gateway: GatewayFactory) -> Fleet:
    local = await mock_backend("local", models=["llm"])
    paid = await mock_backend("paid", models=["gpt-x"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    env = {"OAI": "sk-test"}
    a = await gateway(fleet_config(redis_server, redis_prefix, "replica-a", local, paid), env)
    b = await gateway(fleet_config(redis_server, redis_prefix, "replica-b", local, paid), env)
    return Fleet(a, b, local, paid)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


async def open_page(browser: Browser, gw: RunningGateway, width: int = 1280,
                    height: int = 800) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(gw.url + "/dashboard")
    return page


async def chat(http: aiohttp.ClientSession, gw: RunningGateway, model: str,
               request_id: str = "") -> None:
    headers = {"X-Request-Id": request_id} if request_id else {}
    async with http.post(gw.url + "/v1/chat/completions", headers=headers, json={
            "model": model, "messages": [{"role": "user", "content": "hi"}]}) as response:
        assert response.status == 200, await response.text()


async def test_the_page_shows_both_replicas_both_backends_and_the_months_spend(
        fleet: Fleet, browser: Browser, http: aiohttp.ClientSession) -> None:
    for gw in (fleet.a, fleet.b, fleet.a, fleet.b):
        await chat(http, gw, "gpt-x")  # 4 x 2.5 cents
    await chat(http, fleet.a, "llm")
    page = await open_page(browser, fleet.a)
    for replica in ("replica-a", "replica-b"):
        await expect(page.locator(f'#fleet tr[data-replica="{replica}"]')).to_have_count(
            1, timeout=WAIT_MS)
    await expect(page.locator("#fleet-summary")).to_contain_text("2 live replicas")
    for name in ("local", "paid"):
        await expect(page.locator(f'#backends tr[data-backend="{name}"] .state')).to_have_text(
            "● healthy", timeout=WAIT_MS)
    await expect(page.locator("#spent")).to_have_text("$0.10", timeout=WAIT_MS)
    await expect(page.locator("#limit")).to_contain_text("of $1.00")
    await expect(page.locator("#by-backend")).to_contain_text("paid")
    await expect(page.locator("#fleet tr", has_text="★ leader")).to_have_count(1)


async def test_a_stopped_backend_turns_unhealthy_on_the_page_without_a_reload(
        fleet: Fleet, browser: Browser) -> None:
    page = await open_page(browser, fleet.b)
    state = page.locator('#backends tr[data-backend="local"] .state')
    await expect(state).to_have_text("● healthy", timeout=WAIT_MS)
    await page.evaluate("window.sameDocument = true")
    await fleet.local.stop()
    await expect(state).to_have_text("✖ unhealthy", timeout=WAIT_MS)
    assert await page.evaluate("window.sameDocument") is True  # no reload happened
    await expect(page.locator('#backends tr[data-backend="local"]')).to_contain_text(
        "s ago")  # when it changed, and why


async def test_a_routed_request_appears_on_the_other_replicas_dashboard(
        fleet: Fleet, browser: Browser, http: aiohttp.ClientSession) -> None:
    page = await open_page(browser, fleet.b)
    await expect(page.locator("#live")).to_have_text("● live", timeout=WAIT_MS)
    await chat(http, fleet.a, "gpt-x", request_id="seen-elsewhere")
    row = page.locator('#feed tr[data-request="seen-elsewhere"]')
    await expect(row).to_have_count(1, timeout=WAIT_MS)
    await expect(row).to_contain_text("replica-a")
    await expect(row).to_contain_text("paid")
    await expect(row).to_contain_text("$0.03")  # 2.5 cents, to the cent
    await row.click()  # its stage-by-stage effect, as explain shows it
    stages = page.locator("#decision tbody tr")
    await expect(stages).to_have_count(7)
    await expect(page.locator('#decision tr[data-stage="PrivacyReconciler"]')).to_be_visible()
    await expect(page.locator('#decision tr[data-stage="SchedulerReconciler"]')).to_contain_text(
        "→ paid")  # the one it chose


# Stopping a replica mid-round can leave redis-py a connection that an in-flight call
# opened after the pool closed; on a loaded machine the collector finds it in this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_replica_that_stops_disappears_and_the_leader_change_shows(
        fleet: Fleet, browser: Browser) -> None:
    await until(lambda: fleet.a.gateway.fleet is not None and fleet.b.gateway.fleet is not None
                and (fleet.a.gateway.fleet.leadership.leading
                     or fleet.b.gateway.fleet.leadership.leading), within=WAIT_MS / 1000)
    assert fleet.a.gateway.fleet is not None
    leader, follower = ("replica-a", fleet.a), ("replica-b", fleet.b)
    if not fleet.a.gateway.fleet.leadership.leading:
        leader, follower = follower, leader
    page = await open_page(browser, follower[1])
    await expect(page.locator("#fleet tbody tr")).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator(f'#fleet tr[data-replica="{leader[0]}"]')).to_contain_text(
        "★ leader", timeout=WAIT_MS)
    await leader[1].stop()
    await expect(page.locator("#fleet tbody tr")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator(f'#fleet tr[data-replica="{follower[0]}"]')).to_contain_text(
        "★ leader", timeout=WAIT_MS)  # within a lease TTL, with a higher epoch
    await expect(page.locator("#leader-change")).to_contain_text(
        f"{leader[0]} → {follower[0]}")


async def test_the_explain_form_shows_the_seven_stages(fleet: Fleet, browser: Browser) -> None:
    page = await open_page(browser, fleet.a)
    await expect(page.locator("#board")).to_be_visible(timeout=WAIT_MS)
    await page.fill('#explain-form input[name="model"]', "llm")
    await page.select_option('#explain-form select[name="privacy"]', "restricted")
    await page.click("#explain-form button")
    rows = page.locator("#explain-result .stages tbody tr")
    await expect(rows).to_have_count(7, timeout=WAIT_MS)
    names = await rows.locator("td:first-child").all_text_contents()
    assert names == ["RequestAnalyzer", "LifecycleReconciler", "PrivacyReconciler",
                     "BudgetReconciler",
                     "TierReconciler", "QualityReconciler", "SchedulerReconciler"]
    await expect(page.locator("#explain-outcome")).to_have_text("routed to local (llm)")
    await expect(page.locator("#explain-result .scores tbody tr")).to_have_count(1)


async def test_with_an_admin_key_the_page_refuses_a_client_key(
        mock_backend: MockFactory, gateway: GatewayFactory, browser: Browser,
        http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["llm"])
    config = make_config([backend(local, models=["llm"])],
                         server={"admin_key_env": "ADMIN"})
    config.keys = [msgspec.convert({"name": "alice", "secret_env": "ALICE"}, KeyConfig)]
    gw = await gateway(config, {"ADMIN": "admin-secret", "ALICE": "alice-secret"})
    page = await open_page(browser, gw)
    await expect(page.locator("#login")).to_be_visible(timeout=WAIT_MS)
    await page.fill("#login-key", "alice-secret")
    await page.click("#login-form button")
    await expect(page.locator("#login-error")).to_contain_text("client key is not one",
                                                               timeout=WAIT_MS)
    assert not await page.locator("#board").is_visible()
    await page.fill("#login-key", "admin-secret")
    await page.click("#login-form button")
    await expect(page.locator("#board")).to_be_visible(timeout=WAIT_MS)
    for secret, status in (("alice-secret", 401), ("admin-secret", 200)):
        async with http.get(gw.url + "/dashboard/api/state",
                            headers={"Authorization": f"Bearer {secret}"}) as response:
            assert response.status == status


async def test_the_page_reads_at_phone_width(fleet: Fleet, browser: Browser) -> None:
    page = await open_page(browser, fleet.a, width=390, height=844)
    await expect(page.locator('#backends tr[data-backend="paid"]')).to_have_count(
        1, timeout=WAIT_MS)
    # Wide tables scroll inside their card; the page itself never scrolls sideways.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_page_weighs_under_150_kb() -> None:
    assert sum((STATIC / name).stat().st_size for name in ASSETS) <= 150 * 1024


async def test_hostile_names_wrap_show_their_bidi_controls_and_run_no_script(
        mock_backend: MockFactory, gateway: GatewayFactory, browser: Browser,
        http: aiohttp.ClientSession) -> None:
    """Model names come from upstream: a long one wraps (the page never scrolls
    sideways), a bidi override is shown, not obeyed, and markup stays text."""
    long_name = "m" * 250  # as long as a model name may be
    bidi = "gpt\u202etxt.exe"
    markup = "<img src=x onerror=window.pwned=1>"
    mock = await mock_backend("upstream", models=[long_name, bidi, markup])
    gw = await gateway(make_config([backend(mock, models=[long_name, bidi, markup])]))
    for model in (long_name, bidi, markup):
        await chat(http, gw, model)
    async with http.get(gw.url + "/dashboard") as r:
        policy = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
    page = await open_page(browser, gw)
    await expect(page.locator("#feed tbody tr")).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#feed")).to_contain_text("gpt⟨U+202E⟩txt.exe")
    await expect(page.locator("#feed")).to_contain_text(markup)
    scroll = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll[0] <= scroll[1]
    wider = await page.evaluate(  # nor does any table scroll inside its card
        "[...document.querySelectorAll('.scroll')].filter(e => e.scrollWidth > e.clientWidth)"
        ".map(e => e.id || e.parentElement.id)")
    assert wider == []
    assert await page.evaluate("window.pwned") is None


async def test_sub_cent_spend_shows_enough_digits_to_be_non_zero(
        mock_backend: MockFactory, gateway: GatewayFactory, browser: Browser) -> None:
    mock = await mock_backend("gpu", models=["llm"])
    gw = await gateway(make_config([backend(mock)]))
    page = await open_page(browser, gw)
    shown = await page.evaluate("[7500, 3, 25000, 0, -7500].map(dollars)")
    assert shown == ["$0.0075", "$0.000003", "$0.03", "$0.00", "-$0.0075"]


async def test_a_clicked_decision_opens_under_its_own_row_and_backend_errors_name_it(
        mock_backend: MockFactory, gateway: GatewayFactory, browser: Browser,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", models=["llm"])
    lost = await mock_backend("lost", models=["gone"], status=404)
    gw = await gateway(make_config([backend(mock), backend(lost)]))
    for n in range(5):
        await chat(http, gw, "llm", request_id=f"r-{n}")
    async with http.post(gw.url + "/v1/chat/completions", json={
            "model": "gone", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 404
    page = await open_page(browser, gw)
    row = page.locator('#feed tr[data-request="r-1"]')  # not the newest: rows above and below
    await row.click()
    detail = page.locator('#feed tr[data-request="r-1"] + tr.detail #decision')
    await expect(detail).to_be_visible(timeout=WAIT_MS)
    await expect(detail.locator("tbody tr")).to_have_count(7)
    await expect(page.locator("#refusals")).to_contain_text("Upstream", timeout=WAIT_MS)
    await expect(page.locator("#refusals")).to_contain_text("lost: lost answered HTTP 404")


async def test_model_operations_and_pre_warm_advice_show_on_the_page(
        mock_backend: MockFactory, gateway: GatewayFactory, browser: Browser,
        http: aiohttp.ClientSession) -> None:
    from tests.fleet.test_prewarm import fixed_clock, rising, seed

    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    lan = await mock_backend("lan", flavor="ollama", models=["other"])
    gw = await gateway(make_config([backend(ollama, type="ollama")]))
    async with http.post(gw.url + "/v1/models/load",
                         json={"model": "qwen3:8b", "backend": "gpu"}) as r:
        assert r.status == 202
        operation = (await r.json())["id"]
    async with http.post(gw.url + "/v1/backends", json={"url": lan.url, "name": "lan"}) as r:
        assert r.status == 201
    fixed_clock(gw)
    seed(gw.gateway.store, "llama3:70b", rising())
    await gw.gateway.prewarm.run_once()
    page = await open_page(browser, gw)
    row = page.locator(f'#operations tr[data-operation="{operation}"]')
    await expect(row).to_contain_text("qwen3:8b", timeout=WAIT_MS)
    await expect(row).to_contain_text("100 %", timeout=WAIT_MS)
    await expect(row.locator("td.good")).to_have_text("done")
    advice = page.locator('#recommendations tr[data-model="llama3:70b"]')
    await expect(advice).to_contain_text("95 %", timeout=WAIT_MS)
    await expect(advice).to_contain_text("requests/hour over the last 3 hours")
    await expect(page.locator("#placement-note")).to_contain_text("advice only")
    await expect(page.locator('#backends tr[data-backend="lan"]')).to_contain_text(
        "lan (added)")
