"""Live previews in the progress message, on the offline stack with the fake ComfyUI's preview frames."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from bot.delivery import preview as preview_module
from bot.delivery.preview import PREVIEW_MAX_SIDE, PREVIEW_NAME, LivePreview
from engine import load_catalog

from .stack import REPO, SEEDED, flow_catalog, running_stack

INTERVAL = 0.4


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def jpeg(side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


async def test_live_preview_encodes_the_latest_frame_at_most_once_per_interval():
    clock = Clock()
    live = LivePreview(5.0, clock=clock)
    first, second, third = jpeg(64), jpeg(600), jpeg(32)
    live.offer(first)
    assert live.poll() is None and live.encoding is None and live.wait_time() == pytest.approx(5.0)
    clock.now += 5.0  # the first frame too waits one interval from the start
    assert live.poll() is None and live.encoding is not None
    await live.encoding
    shown = live.poll()
    assert Image.open(io.BytesIO(shown)).size == (64, 64) and live.uploads == 1

    live.offer(second)
    live.offer(third)  # only the latest frame is worth encoding
    assert live.poll() is None and live.encoding is None and live.wait_time() == pytest.approx(5.0)
    clock.now += 5.0
    assert live.poll() is None
    await live.encoding
    assert Image.open(io.BytesIO(live.poll())).size == (32, 32)
    live.offer(third)  # the same frame again (events repeat the last one): nothing new
    clock.now += 10
    assert live.wait_time() is None and live.poll() is None and live.uploads == 2


def _timed(stack) -> list[tuple[float, object]]:
    """Record when each webhook request is made."""
    seen: list[tuple[float, object]] = []
    webhook = stack.fake.webhook
    original = webhook.request

    async def request(route, session, **kwargs):
        answer = await original(route, session, **kwargs)
        seen.append((time.monotonic(), webhook.requests[-1]))
        return answer

    webhook.request = request
    return seen


def _image_url(edit) -> str | None:
    embeds = edit.payload.get("embeds") or [{}]
    return (embeds[0].get("image") or {}).get("url")


@pytest.fixture
async def stack(fake_comfy, tmp_path):
    fake_comfy.state.time_scale = 1.0  # seeded's steps take their real 0.2 s: a preview frame each
    async with running_stack(fake_comfy.url, tmp_path / "db" / "jobs.sqlite3", flow_catalog(tmp_path / "m")) as stack:
        stack.flow.preview_interval = INTERVAL
        yield stack


async def test_a_preview_appears_uploads_respect_the_interval_and_the_result_has_no_stale_preview(stack):
    seen = _timed(stack)
    await stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 10}), timeout=20)
    edits = [(t, r) for t, r in seen if r.method == "PATCH"]
    uploads = [(t, r) for t, r in edits if [name for name, _ in r.files] == [PREVIEW_NAME]]

    assert len(uploads) >= 2  # 10 steps × 0.2 s with a frame each, one upload per 0.4 s
    gaps = [later - earlier for (earlier, _), (later, _) in zip(uploads, uploads[1:])]
    assert min(gaps) >= INTERVAL * 0.9, gaps
    for _, upload in uploads:
        picture = Image.open(io.BytesIO(upload.files[0][1]))
        assert picture.format == "JPEG" and max(picture.size) <= PREVIEW_MAX_SIDE
        assert _image_url(upload) == f"attachment://{PREVIEW_NAME}"
    between = [r for t, r in edits if uploads[0][0] < t < uploads[-1][0] and not r.files]
    assert between and all(_image_url(r) == f"attachment://{PREVIEW_NAME}" for r in between)  # kept, not re-sent

    result = edits[-1][1]
    names = [name for name, _ in result.files]
    assert names and PREVIEW_NAME not in names
    assert _image_url(result) == f"attachment://{names[0]}"
    assert [a["filename"] for a in result.payload["attachments"]] == names  # the preview attachment is dropped


async def test_previews_off_globally_or_per_manifest_upload_none(fake_comfy, tmp_path):
    folder = tmp_path / "m"
    flow_catalog(folder)
    (folder / "quiet.yaml").write_text(SEEDED.replace("name: seeded", "name: quiet") + "previews: false\n")
    catalog = load_catalog([folder], REPO / "workflows")
    fake_comfy.state.time_scale = 1.0
    for settings, command in (({}, "quiet"), ({"previews": False}, "seeded")):
        async with running_stack(fake_comfy.url, tmp_path / command / "jobs.sqlite3", catalog, **settings) as stack:
            stack.flow.preview_interval = INTERVAL
            await stack.dispatch(stack.fake.slash_payload(command, {"steps": 6}), timeout=20)
            edits = stack.webhook_edits()
            assert len(edits) > 3 and stack.result_edits() == [edits[-1]]
            assert not [r for r in edits if any(name == PREVIEW_NAME for name, _ in r.files)], command
            assert all(_image_url(r) is None for r in edits[:-1])


async def test_a_slow_preview_encoding_never_delays_the_result(stack, monkeypatch):
    real = preview_module.encode_preview

    encodings_done = []

    def slow(frame, **options):
        time.sleep(5.0)
        encodings_done.append(frame)
        return real(frame, **options)

    monkeypatch.setattr(preview_module, "encode_preview", slow)
    await stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 2}), timeout=20)
    assert encodings_done == []  # the result was posted while the first encoding was still busy
    result = stack.webhook_edits()[-1]
    assert result.files and PREVIEW_NAME not in [name for name, _ in result.files]
    await asyncio.sleep(0)
