"""/docs and /redoc work with no internet: their pages load only the gateway's own files.

A `python -m gateway serve` on scikit-learn iris; headless Chromium renders each page
(`--dump-dom` after its scripts ran) while its net log records every URL it requested.
The page must show the per-model operation, and every request the page made must have
gone to the gateway itself. Other hosts resolve nowhere (`--host-resolver-rules`), so
nothing leaves the machine even if a page tried. Skipped when Chromium is not installed
(`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import spawn_gateway, wait_until_ready

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found: `apt-get install -y chromium` to render /docs",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-features=AutofillServerCommunication",  # Chromium's own, keyed to the page
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=20000",  # ms of page time for scripts and their fetches
)
# src="...", href="..." and the spec URL Swagger UI is given (url: '...')
ASSET_REFERENCE = re.compile(r"""(?:\bsrc|\bhref|\burl|spec-url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def gateway(sklearn_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a gateway serving iris."""
    iris = {"name": "iris", "platform": "sklearn", "base_path": str(sklearn_models_dir / "iris")}
    with spawn_gateway({"models": [iris]}, tmp_path_factory.mktemp("docs-browser")) as process:
        wait_until_ready(process.url, process.process, process.log)
        yield process.url


def render(url: str, workdir: Path) -> tuple[str, list[str]]:
    """The page's DOM once its scripts ran, and every URL the page requested."""
    assert CHROMIUM is not None
    net_log = workdir / "net-log.json"
    result = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout, page_requests(json.loads(net_log.read_text()), urlsplit(url).hostname)


def page_requests(net_log: dict[str, object], host: str | None) -> list[str]:
    """The URLs of the requests a page on `host` made (its own and any to other hosts).

    Chromium's own background requests (update checks and the like) are left out: they
    are not keyed to the page's site (`network_isolation_key`), and their hosts resolve
    nowhere here anyway."""
    constants = net_log["constants"]
    assert isinstance(constants, dict)
    start_job = constants["logEventTypes"]["URL_REQUEST_START_JOB"]
    events = net_log["events"]
    assert isinstance(events, list)
    urls = []
    for event in events:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        site = f"http://{host}"
        keyed_to_page = params.get("network_isolation_key", "").startswith(site)
        if keyed_to_page or params.get("initiator", "").startswith(site):
            urls.append(params["url"])
    return urls


def assert_all_local(urls: list[str], gateway: str) -> None:
    """Every URL is on the gateway itself."""
    own = urlsplit(gateway).netloc
    outside = [url for url in urls if urlsplit(url).netloc != own]
    assert not outside, f"requests that left the gateway: {outside}"


@needs_chromium
def test_docs_renders_the_per_model_operations_from_local_assets(
    gateway: str, tmp_path: Path
) -> None:
    dom, urls = render(f"{gateway}/docs", tmp_path)
    assert 'data-path="/v1/models/iris:predict"' in dom, dom[-2000:]
    assert 'data-path="/v1/models/iris:classify"' in dom
    assert 'data-path="/v1/models/{model_name}:predict"' in dom  # the generic ones too
    paths = {urlsplit(url).path for url in urls}
    assert {"/docs", "/openapi.json", "/docs/assets/swagger/swagger-ui-bundle.js"} <= paths, urls
    assert_all_local(urls, gateway)


@needs_chromium
def test_redoc_renders_from_local_assets(gateway: str, tmp_path: Path) -> None:
    dom, urls = render(f"{gateway}/redoc", tmp_path)
    assert "/v1/models/iris:predict" in dom, dom[-2000:]
    paths = {urlsplit(url).path for url in urls}
    assert {"/redoc", "/openapi.json", "/docs/assets/redoc/redoc.standalone.js"} <= paths, urls
    assert "/redoc/logo-mini.svg" in paths  # ReDoc's logo, from here instead of its CDN
    assert_all_local(urls, gateway)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_reference_only_local_assets(gateway: str, page: str) -> None:
    html = httpx.get(gateway + page, timeout=30).text
    references = ASSET_REFERENCE.findall(html)
    assert references, html
    for reference in references:
        assert reference.startswith("/") and not reference.startswith("//"), reference
        response = httpx.get(gateway + reference, timeout=30)
        assert response.status_code == 200, (reference, response.status_code)
    assert "http://" not in html and "https://" not in html, html
