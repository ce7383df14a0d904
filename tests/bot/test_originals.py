"""Signed, expiring links to full-quality originals: the signer, the endpoint through a real HTTP
client, and the "Original" button on a result that had to be shrunk."""

from __future__ import annotations

import io
import string

import aiohttp
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from bot.config import load_settings
from bot.originals import LinkSigner, OriginalsServer, key_for

from .payloads import Upload
from .stack import flow_catalog, running_stack

KEY = b"k" * 64
BASE = "https://bot.example.org"


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _parts(url: str) -> list[str]:
    return url.removeprefix(BASE + "/o/").split("/")


@given(job=st.text(string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=40), index=st.integers(1, 99))
def test_a_fresh_link_checks_out_and_any_changed_part_does_not(job, index):
    clock = Clock()
    signer = LinkSigner(KEY, BASE, ttl=3600, clock=clock)
    parts = _parts(signer.link(job, index))
    assert signer.check(*parts) is None
    for position in range(4):
        for changed in (parts[position] + "0", parts[position][:-1] or "x"):
            tampered = list(parts)
            tampered[position] = changed
            if tampered != parts:
                assert signer.check(*tampered) in (403, 404)
    assert LinkSigner(b"another key" * 4, BASE, ttl=3600, clock=clock).check(*parts) == 403
    clock.now += 3601
    assert signer.check(*parts) == 404


def test_the_key_is_made_once_kept_owner_only_and_reused(tmp_path):
    db = tmp_path / "jobs.sqlite3"
    first = key_for(db)
    path = tmp_path / "jobs.sqlite3.originals-key"
    assert len(first) >= 32 and path.stat().st_mode & 0o077 == 0
    assert key_for(db) == first


def test_the_public_url_setting_is_checked_and_off_by_default():
    assert load_settings(env={}, require_token=False).originals_url is None
    env = {"DISCOMFY_ORIGINALS_URL": "https://bot.example.org/"}
    assert load_settings(env=env, require_token=False).originals_url == "https://bot.example.org"
    with pytest.raises(Exception, match="originals_url"):
        load_settings(env={"DISCOMFY_ORIGINALS_URL": "ftp://x?y=1"}, require_token=False)


def _big_png(side: int = 256) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 80).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def stack(fake_comfy, tmp_path):
    async with running_stack(fake_comfy.url, tmp_path / "db" / "jobs.sqlite3", flow_catalog(tmp_path / "m")) as stack:
        yield stack


@pytest.fixture
async def served(stack):
    clock = Clock(2_000_000_000.0)
    signer = LinkSigner(KEY, BASE, ttl=600, clock=clock)
    server = OriginalsServer(signer, stack.runtime)
    port = await server.start("127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        def get(url: str):
            return session.get(url.replace(BASE, f"http://127.0.0.1:{port}"), allow_redirects=False)
        yield signer, clock, get, stack
    await server.close()


async def _finished_job(stack, width: int = 96) -> str:
    job = await stack.runtime.submit("canvas", {"width": width, "height": 64})
    await job.result()
    return job.id


async def test_a_valid_link_serves_the_original_file(served, fake_comfy):
    signer, _, get, stack = served
    job_id = await _finished_job(stack)
    record = await stack.runtime.get(job_id)
    ref = record.outputs[0]

    async with get(signer.link(job_id, 1)) as response:
        body = await response.read()
        assert response.status == 200 and response.content_type == "image/png"
        assert f'filename="{ref["filename"]}"' in response.headers["Content-Disposition"]
    on_server = (fake_comfy.state.files.folder(ref["type"]) / ref["subfolder"] / ref["filename"]).read_bytes()
    assert body == on_server and Image.open(io.BytesIO(body)).size == (96, 64)


async def test_tampered_expired_unknown_and_listing_requests_are_refused(served):
    signer, clock, get, stack = served
    job_id = await _finished_job(stack)
    good = signer.link(job_id, 1)
    job, index, expires, signature = _parts(good)
    refusals = {
        f"{BASE}/o/{job}/{index}/{expires}/{signature[:-2]}AA": 403,        # forged signature
        f"{BASE}/o/{job}/{index}/{int(expires) + 9999}/{signature}": 403,   # expiry pushed out
        signer.link(job_id, 2): 404,                                         # an output the job never had
        signer.link("0" * 32, 1): 404,                                       # a job nobody knows
        f"{BASE}/": 404, f"{BASE}/o/": 404, f"{BASE}/o/{job}/": 404,          # no listing anywhere
        f"{BASE}/o/{job}/{index}/{expires}/../../etc/passwd": 404,
    }
    for url, status in refusals.items():
        async with get(url) as response:
            assert response.status == status, url
    clock.now += 601
    async with get(good) as response:
        assert response.status == 404


async def test_a_job_the_store_no_longer_keeps_has_no_original(served):
    signer, _, get, stack = served
    job_id = await _finished_job(stack)
    link = signer.link(job_id, 1)
    await stack.store.db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))  # what retention does
    async with get(link) as response:
        assert response.status == 404


async def test_a_result_shrunk_to_fit_gets_an_original_button_whose_link_works(served):
    signer, _, get, stack = served
    stack.flow.original_link = signer.link
    png = _big_png()
    await stack.dispatch(stack.fake.slash_payload("invert", {"image": Upload("big.png", png)}, size_limit=20_000),
                         timeout=20)

    final = stack.webhook_edits()[-1].payload
    links = [b for row in final["components"] for b in row["components"] if b.get("style") == 5]
    assert [b["label"] for b in links] == ["Original"]
    notes = [f["value"] for f in final["embeds"][0]["fields"] if f["name"] == "Notes"]
    assert notes and "to fit Discord's" in notes[0], notes
    async with get(links[0]["url"]) as response:
        original = await response.read()
    assert response.status == 200 and len(original) > 20_000 and original[:4] == b"\x89PNG"


async def test_without_originals_or_when_nothing_was_shrunk_there_is_no_original_button(served):
    signer, _, _, stack = served
    await stack.slash("canvas", width=32, height=32)
    stack.flow.original_link = signer.link
    await stack.slash("canvas", width=32, height=32)
    for edit in stack.webhook_edits()[-2:]:
        buttons = [b for row in edit.payload.get("components", []) for b in row["components"]]
        assert buttons and not [b for b in buttons if b.get("style") == 5]
