"""End to end, offline: slash command → defer → progress edits → result with files and buttons;
buttons after a restart; oversize outputs; the bot-token path past the 15-minute token.

A real ``Runtime`` runs every job on the in-process fake ComfyUI; Discord is the recording harness.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from engine.progress import JobState

from .payloads import older_than
from .stack import running_stack, flow_catalog


@pytest.fixture
def catalog(tmp_path):
    return flow_catalog(tmp_path / "manifests")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state" / "jobs.sqlite3"


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _button_ids(payload: dict) -> list[str]:
    return [c["custom_id"] for row in payload.get("components", []) for c in row["components"]]


async def test_slash_command_to_result_with_progress_files_and_buttons(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.fake.slash("seeded", steps=4)

        assert stack.fake.callbacks()[0] == {"type": 5}  # deferred first, publicly
        (job,) = stack.jobs()
        assert job.state == JobState.DONE
        edits = stack.webhook_edits()
        assert all(e.path.endswith("/messages/@original") for e in edits)
        progress, final = edits[:-1], edits[-1]
        assert progress and all("dc:cancel:" + job.job_id in _button_ids(e.payload) for e in progress)
        assert any("running" in e.payload["embeds"][0]["title"] or "queued" in e.payload["embeds"][0]["title"]
                   for e in progress)
        (name, data), = final.files
        assert data.startswith(b"\x89PNG") and _image_size(data) == (256, 256)
        embed = final.payload["embeds"][0]
        seed = job.values["seed"]
        assert {"name": "seed", "value": str(seed), "inline": True} in embed["fields"]
        assert embed["image"]["url"] == f"attachment://{name}"
        ids = _button_ids(final.payload)
        assert f"dc:rerun:{job.job_id}" in ids and f"dc:seed:{job.job_id}" in ids
        assert f"dc:act:{job.job_id}:1:invert" in ids and f"dc:act:{job.job_id}:1:resize" in ids
        assert job.extra["message_id"] and job.extra["channel_id"] and "token" not in str(job.extra)
