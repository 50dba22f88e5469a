"""Take docs/dashboard.png: the dashboard over the Procfile fleet (honcho start), with
some traffic, in Debian's chromium driven headless by playwright.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]

Needs the Procfile's ports free (6390, 8001-8003, 9101-9102) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright, expect

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = [f"http://127.0.0.1:{port}" for port in (8001, 8002, 8003)]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


async def wait_up(http: aiohttp.ClientSession) -> None:
    for url in REPLICAS:
        for _ in range(300):
            try:
                async with http.get(url + "/health") as response:
                    if (await response.json())["backends"]["healthy"] == 2:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"{url} did not come up")


async def traffic(http: aiohttp.ClientSession) -> None:
    """Requests over every replica: served, restricted, and a few refused."""
    for i in range(24):
        model = "no-such-model" if i % 8 == 7 else "llama3:8b"
        headers = {"X-Nexus-Privacy": "restricted"} if i % 3 == 0 else {}
        async with http.post(REPLICAS[i % 3] + "/v1/chat/completions", headers=headers, json={
                "model": model, "messages": [{"role": "user", "content": "hello"}]}) as r:
            await r.read()


async def shoot(out: Path) -> None:
    async with aiohttp.ClientSession() as http:
        await wait_up(http)
        await traffic(http)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(REPLICAS[0] + "/dashboard")
        await expect(page.locator("#fleet tbody tr")).to_have_count(3, timeout=30_000)
        await expect(page.locator("#feed tbody tr").first).to_be_visible(timeout=30_000)
        await page.fill('#explain-form input[name="model"]', "llama3:8b")
        await page.click("#explain-form button")
        await expect(page.locator("#explain-result .stages tbody tr")).to_have_count(6)
        await page.locator("#feed tbody tr", has_text="✓ 200").first.click()
        await page.screenshot(path=str(out), full_page=True)
        await browser.close()
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as redis_dir:
        env = {**os.environ, "NEXUS_VENV": str(bin_dir.parent), "NEXUS_REDIS_DIR": redis_dir}
        fleet = subprocess.Popen([str(bin_dir / "honcho"), "start", "-f", "Procfile"], cwd=ROOT,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            asyncio.run(shoot(Path(args.out)))
        finally:
            os.killpg(fleet.pid, signal.SIGTERM)
            fleet.wait(timeout=30)


if __name__ == "__main__":
    main()
