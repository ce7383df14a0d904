"""End to end, offline: slash command → defer → progress edits → result with files and buttons;
buttons after a restart; oversize outputs; the bot-token path past the 15-minute token.

A real ``Runtime`` runs every job on the in-process fake ComfyUI; Discord is the recording harness.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from engine.jobs.progress import JobState

from .payloads import older_than
from .stack import running_stack


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _button_ids(payload: dict) -> list[str]:
    return [c["custom_id"] for row in payload.get("components", []) for c in row["components"]]


async def test_slash_command_to_result_with_progress_files_and_buttons(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("seeded", steps=4)

        assert stack.fake.callbacks()[0] == {"type": 5}  # deferred first, publicly
        (job,) = (await stack.jobs())
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


def _pixel(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel((0, 0))


async def test_action_button_after_restart_runs_a_chained_job_on_the_result(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as first:
        await first.slash("canvas", color="16711680", width=48, height=40)
        (source,) = (await first.jobs())
        assert source.state == JobState.DONE

    async with running_stack(fake_comfy.url, db_path, catalog) as second:  # new client, runtime, same store
        await second.dispatch(second.fake.component_payload(f"dc:act:{source.job_id}:1:invert"))

        assert second.fake.callbacks() == [{"type": 5}]
        chained = next(r for r in (await second.jobs()) if r.manifest == "invert")
        assert chained.state == JobState.DONE
        assert chained.extra["source"] == {"job": source.job_id, "output": 1}
        assert (db_path.parent / "inputs" / chained.extra["inputs"]["image"]["sha256"]).is_file()
        (name, data), = second.webhook_edits()[-1].files
        assert _image_size(data) == (48, 40) and _pixel(data) == (0, 255, 255)  # red, inverted
        assert f"dc:act:{chained.job_id}:1:resize" in _button_ids(second.webhook_edits()[-1].payload)


async def test_rerun_after_restart_reuses_the_kept_upload(fake_comfy, db_path, catalog):
    from .payloads import Upload
    from .stack import png

    async with running_stack(fake_comfy.url, db_path, catalog) as first:
        await first.slash("invert", image=Upload("in.png", png(20, 10, (10, 20, 30))))
        (source,) = (await first.jobs())
        assert source.state == JobState.DONE

    async with running_stack(fake_comfy.url, db_path, catalog) as second:
        await second.dispatch(second.fake.component_payload(f"dc:rerun:{source.job_id}"))
        rerun = next(r for r in (await second.jobs()) if r.job_id != source.job_id)
        assert rerun.state == JobState.DONE
        assert rerun.extra["inputs"] == source.extra["inputs"]
        (_, data), = second.webhook_edits()[-1].files
        assert _image_size(data) == (20, 10) and _pixel(data) == (245, 235, 225)


@pytest.mark.parametrize(("command", "options", "message"), [
    ("seeded", {"steps": 999}, "steps: must be ≤ 20"),
    ("canvas", {"color": "12345"}, "color: is not one of the offered choices"),
])
async def test_a_bad_slash_value_is_refused_once_naming_the_param(fake_comfy, db_path, catalog, command, options,
                                                                   message):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash(command, **options)
        assert stack.ephemeral_texts() == [message]
        assert await stack.jobs() == []


async def test_tweak_modal_with_bad_values_lists_the_param_and_starts_nothing(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("seeded", steps=2)
        (job,) = (await stack.jobs())
        await stack.dispatch(stack.fake.component_payload(f"dc:tweak:{job.job_id}:1"))
        modal = stack.fake.callbacks()[-1]
        assert modal["type"] == 9
        await stack.dispatch(stack.fake.modal_payload(modal["data"]["custom_id"], {"steps": "999"}))

        assert stack.ephemeral_texts()[-1] == "steps: must be ≤ 20"
        assert len((await stack.jobs())) == 1


async def test_oversize_output_is_fitted_under_the_interaction_limit_with_a_notice(fake_comfy, db_path, catalog):
    limit = 3000
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        payload = stack.fake.slash_payload("canvas", {"width": 1024, "height": 1024}, size_limit=limit)
        await stack.dispatch(payload)
        (job,) = (await stack.jobs())
        final = stack.webhook_edits()[-1]
        (name, data), = final.files
        assert len(data) <= limit
        assert name.endswith(".jpg") and _image_size(data)[0] < 1024  # re-encoded and downscaled
        notes = next(f["value"] for f in final.payload["embeds"][0]["fields"] if f["name"] == "Notes")
        assert notes.startswith("Downscaled from 1024×1024") and "3 KiB" in notes
        assert final.payload["embeds"][0]["image"]["url"] == f"attachment://{name}"


async def test_refusals_are_ephemeral_and_start_nothing(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog, rate_per_user="1/60") as stack:
        await stack.dispatch(stack.fake.slash_payload("spicy", {"width": 32}, nsfw=False))
        assert stack.ephemeral_texts() == ["This workflow is only available in NSFW channels."]
        assert (await stack.jobs()) == []

        await stack.dispatch(stack.fake.slash_payload("spicy", {"width": 32}, nsfw=True))
        (job,) = (await stack.jobs())
        assert job.state == JobState.DONE

        await stack.dispatch(stack.fake.component_payload(f"dc:rerun:{job.job_id}", nsfw=False))
        assert stack.ephemeral_texts()[-1] == "This workflow is only available in NSFW channels."
        await stack.dispatch(stack.fake.component_payload(f"dc:rerun:{job.job_id}", nsfw=True))
        assert stack.ephemeral_texts()[-1].startswith("Slow down: try again in ")
        assert len((await stack.jobs())) == 1


async def test_past_the_token_life_progress_and_result_use_the_bot_token(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        payload = stack.fake.slash_payload("seeded", {"steps": 3}, created=older_than(16))
        await stack.dispatch(payload)

        (job,) = (await stack.jobs())
        assert job.state == JobState.DONE
        assert stack.webhook_edits() == []
        path = f"/channels/{job.extra['channel_id']}/messages/{job.extra['message_id']}"
        edits = stack.bot_edits()
        assert len(edits) >= 2 and all(e.path == path for e in edits)
        assert edits[-1].files and edits[-1].files[0][1].startswith(b"\x89PNG")
        assert "dc:cancel:" + job.job_id in _button_ids(edits[0].payload)
