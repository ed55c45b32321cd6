"""The Dagster UI as the team uses it, in a real browser: Playwright driving Debian's Chromium (`make test`
installs the chromium package when it is missing; Playwright's own browser download is never used) against
`dagster dev` started on a free loopback port, over an instance holding a storyboard generated on the fake fal
server and published. The asset graph lists the pipeline's assets; a shot's published_clip partition page
shows its thumbnail and preview actually rendered, its caption and its cost; the reel shows its contact sheet;
a failed check shows its message.

Screenshots of every page are written to the test's temporary folder and copied to
`.shotline/ui-screenshots/` in the repository (ignored by git), for a developer to open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from assets.upstream import latest_metadata_or_none
from pipelines.definitions import build_definitions
from shotline.config import Settings
from shotline.storyboard import load_storyboard
from testkit.dagster_ui import REPO, DagsterDev, dev_instance_yaml
from testkit.fakes.fal_server import TEST_KEY, FakeFal
from testkit.pipeline_runner import run_storyboard
from testkit.storyboard_factory import tiny_storyboard

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# what runs headless Chromium as root on a machine with no outside network, quietly
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEPT_SCREENSHOTS = REPO / ".shotline" / "ui-screenshots"
CHECK = dg.AssetCheckKey(dg.AssetKey("published_clip"), "published_objects_intact")
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.slow


@dataclass
class Console:
    """The UI over the test's instance, a browser page on it, and what the instance holds."""

    url: str
    page: Page
    screenshots: Path
    assets: list[str]
    good: str  # a published shot
    caption: str
    cost: str  # as the UI shows it
    request_id: str
    damaged: str  # a shot whose published video was altered after publishing
    check_message: str
    taken: list[Path] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.page.goto(self.url + path)
        self.page.wait_for_load_state("networkidle")

    def shoot(self, name: str) -> Path:
        _dismiss_community_dialog(self.page)
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path


def _dismiss_community_dialog(page: Page) -> None:
    """The UI's one-time "Join the Dagster community" dialog, which a person would skip too."""
    skip = page.get_by_role("button", name="Skip")
    if page.get_by_text("Join the Dagster community").is_visible() and skip.is_visible():
        skip.click()


def _open_menu(page: Page, opener: Locator, wanted: Locator, *, tries: int = 6) -> Locator:
    """Open a menu and return the first of its items that `wanted` finds. A loaded UI may still be settling
    (the community dialog pops up late over the page, a re-render eats a click): a person would close the
    dialog and click again, and so does this."""
    wanted = wanted.first
    for attempt in range(tries):
        _dismiss_community_dialog(page)
        try:
            opener.click(timeout=10_000)
            wanted.wait_for(state="visible", timeout=10_000)
            return wanted
        except PlaywrightTimeoutError:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")  # whatever the click opened instead, or the dialog in the way
            with contextlib.suppress(PlaywrightTimeoutError):
                page.locator(".bp5-overlay-backdrop").first.wait_for(state="detached", timeout=5_000)
    raise AssertionError("unreachable")


def _run_check_alone(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> dg.AssetCheckEvaluation:
    """Run published_objects_intact alone for one shot, as the UI's "Execute" of a check does."""
    job = dg.define_asset_job("check_published_objects", selection=dg.AssetSelection.checks(CHECK))
    with_job = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    result = with_job.resolve_job_def(job.name).execute_in_process(
        instance=instance, tags={"dagster/partition": partition}, raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def _loaded(page: Page, image: str) -> int:
    """The natural width of the image matched by the CSS selector `image` once the browser has decoded it."""
    handle = page.wait_for_function(
        f"() => {{ const i = document.querySelector({image!r}); return i && i.complete && i.naturalWidth; }}",
        timeout=TIMEOUT_MS,
    )
    return int(handle.json_value())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package (make chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(dev_instance_yaml())
    root, screenshots = tmp / "storyboards", tmp / "ui-screenshots"
    screenshots.mkdir()
    folder = tiny_storyboard(root, "alpha", n_shots=2, duration=1)
    fake = FakeFal().start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHOTLINE_", "FAL_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "FAL_KEY": TEST_KEY,
        "SHOTLINE_GENERATOR": "fal",
        "SHOTLINE_FAL_QUEUE_URL": fake.url,
        "SHOTLINE_FAL_REST_URL": fake.rest_url,
        "SHOTLINE_FAL_CDN_URL": fake.cdn_url,
        "SHOTLINE_FAL_API_URL": fake.api_url,
        "SHOTLINE_FAL_POLL_INTERVAL_S": "0.1",
        "SHOTLINE_STORYBOARDS": str(root),
        "SHOTLINE_HOME": str(tmp / "work"),
        "SHOTLINE_PUBLISH_URI": str(tmp / "published"),
        "SHOTLINE_AUTORUN": "0",  # the UI is looked at, nothing new runs
    }
    service = DagsterDev(env, tmp / "dagster-dev.log")
    page = None
    console = None
    try:
        with (
            pytest.MonkeyPatch.context() as patch,
            dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance,
        ):
            for name, value in env.items():
                patch.setenv(name, value)  # the runs below read FAL_KEY as Dagster's EnvVar does
            storyboard = load_storyboard(folder)
            run_storyboard(storyboard, env, instance)
            good, damaged = (shot.partition_key for shot in storyboard.shots)
            defs = build_definitions(Settings.from_env(env))
            video = Path(
                str(latest_metadata_or_none(instance, "published_clip", damaged)["uri"]).removeprefix("file://")
            )
            video.write_bytes(video.read_bytes() + b"altered after publishing")
            evaluation = _run_check_alone(defs, instance, damaged)
            assert not evaluation.passed, evaluation.description
            raw = latest_metadata_or_none(instance, "raw_clip", good)
            assets = sorted(key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys())
        service.start()
        page = browser.new_page(viewport={"width": 1920, "height": 1200})
        page.set_default_timeout(TIMEOUT_MS)
        console = Console(
            url=service.url,
            page=page,
            screenshots=screenshots,
            assets=assets,
            good=good,
            caption=storyboard.shots[0].caption or "",
            cost=f"${float(raw['original_cost_usd']):.2f}",
            request_id=str(raw["fal_request_id"]),
            damaged=damaged,
            check_message=evaluation.description or "",
        )
        yield console
    finally:
        if page is not None:
            page.close()
        service.stop()
        fake.stop()
        if console is not None and console.taken:
            KEPT_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for shot in console.taken:
                shutil.copy2(shot, KEPT_SCREENSHOTS / shot.name)
            print(f"\nUI screenshots: {KEPT_SCREENSHOTS} (and {screenshots})")


def test_the_asset_graph_lists_every_asset_of_the_pipeline(console: Console) -> None:
    page = console.page
    console.open("/asset-groups")
    # unfold the global graph's groups as a person would (graph settings), unless the UI shows them unfolded;
    # the graph's own settings button is the second one, once its toolbar is drawn (the first is the app's)
    expect(page.locator('[aria-label="settings"]')).to_have_count(2, timeout=60_000)
    settings = page.locator('[aria-label="settings"]').last
    expand = page.get_by_role("menuitem", name="Expand all groups")
    collapse = page.get_by_role("menuitem", name="Collapse all groups")
    for _ in range(6):  # the graph re-renders while it settles, closing an open menu: open it again
        item = _open_menu(page, settings, expand.or_(collapse))
        try:
            if "Collapse all groups" in item.inner_text(timeout=10_000):
                page.keyboard.press("Escape")
            else:
                item.click(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    for asset in console.assets:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    console.shoot("asset-graph")


def test_a_shots_partition_page_shows_its_picture_caption_and_cost(console: Console) -> None:
    page = console.page
    console.open(f"/assets/published_clip?view=partitions&partition={console.good}")
    table = page.locator("table", has=page.get_by_text("Caption", exact=True)).first

    def row(label: str):
        return table.locator("tr", has=page.get_by_text(label, exact=True)).first

    expect(row("Caption")).to_contain_text(console.caption)
    expect(row("Cost")).to_contain_text(console.cost)
    expect(row("fal request")).to_contain_text(console.request_id)
    expect(row("Open clip")).to_contain_text(".mp4")
    # the thumbnail is inline, the preview one click away ([Show Markdown]): both decoded by the browser
    assert _loaded(page, 'tr img[src^="data:image/jpeg;base64,"]') > 0
    console.shoot("published-clip-partition")
    _dismiss_community_dialog(page)
    row("Preview image").get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("img")).to_be_visible()
    assert _loaded(page, '[role="dialog"] img[src^="data:image/jpeg;base64,"]') >= 200
    console.shoot("published-clip-preview")


def test_the_reel_shows_its_contact_sheet(console: Console) -> None:
    page = console.page
    console.open("/assets/storyboard_reel?view=partitions&partition=alpha")
    _dismiss_community_dialog(page)
    sheet = page.locator("tr", has=page.get_by_text("Contact sheet", exact=True)).first
    sheet.get_by_text("[Show Markdown]").click()
    assert _loaded(page, '[role="dialog"] img[src^="data:image/jpeg;base64,"]') > 320  # wider than a preview
    console.shoot("storyboard-reel-contact-sheet")


def test_a_failed_check_shows_its_message(console: Console) -> None:
    page = console.page
    console.open(f"/assets/published_clip?view=checks&checkDetail={CHECK.name}")
    expect(page.get_by_text(console.check_message, exact=True).first).to_be_visible()
    expect(page.get_by_text("Failed").first).to_be_visible()
    expect(page.get_by_text(console.damaged).first).to_be_visible()
    console.shoot("failed-check")
