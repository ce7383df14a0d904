"""The one access policy (bot/access.py): the rules themselves, and every path into a job asking it —
slash commands, result buttons (source and target of an action), /cancel, the Cancel and Delete
buttons (owner or admin), autocomplete and /choices."""

from __future__ import annotations

import asyncio
import shutil
from types import MappingProxyType

import discord
import pytest
from discord.webhook.async_ import async_context

from bot.access import NEEDS_ROLE, NOT_HERE, NOT_YOURS, NSFW_ONLY, AccessPolicy, Who
from bot.commands.slash import build_commands
from engine import Catalog, Manifest, Workflow, load_catalog
from engine.jobs.progress import JobState

from .conftest import FIXTURE_MANIFESTS, RecordingHooks
from .harness import fake_discord, remember_guild
from .payloads import CHANNEL_ID, USER_ID
from .stack import REPO, flow_catalog, running_stack

ADMIN_ID, ADMIN_ROLE, MEMBER_ROLE = USER_ID + 7, 777, 4242
OTHER_USER = USER_ID + 1
SLOW = 4.0
CORNER = CHANNEL_ID + 99  # the only channel the "corner" workflow may run in
NO_JOB = "You have no job with that id."
CANVAS = """
name: {name}
title: {name} canvas
description: A canvas with access rules (test)
workflow: canvas.json
timeout: 60
{rules}
params:
  width: {{type: int, default: 32, min: 16, max: 512, bind: '$[?(@._meta.title == "Canvas")].inputs.width'}}
outputs: ["2"]
actions: [invert]
"""


# -- the rules, pure ------------------------------------------------------------------------------

def workflow(**manifest) -> Workflow:
    m = Manifest.model_validate({"name": "w", "description": "d", **manifest})
    return Workflow(m, MappingProxyType({}), MappingProxyType({}), None)


POLICY = AccessPolicy(admin_user_ids=[ADMIN_ID], admin_role_ids=[ADMIN_ROLE])


def test_no_rules_allow_everyone_everywhere():
    assert POLICY.run_refusal(Who(USER_ID), workflow()) is None


def test_nsfw_workflows_need_an_nsfw_channel():
    assert POLICY.run_refusal(Who(USER_ID), workflow(nsfw=True)) == NSFW_ONLY
    assert POLICY.run_refusal(Who(USER_ID, channel_is_nsfw=True), workflow(nsfw=True)) is None


def test_channels_match_by_id_and_threads_by_their_parent():
    here = Who(USER_ID, channel_id=100)
    assert POLICY.run_refusal(here, workflow(channels=["100"])) is None
    assert POLICY.run_refusal(here, workflow(channels=["200"])) == NOT_HERE
    assert POLICY.run_refusal(Who(USER_ID, channel_id=555, parent_channel_id=200), workflow(channels=["200"])) is None
    assert POLICY.run_refusal(Who(USER_ID, channel_id=555, parent_channel_id=300), workflow(channels=["200"])) \
        == NOT_HERE


def test_roles_match_by_id_or_by_name_in_any_case():
    member = Who(USER_ID, role_ids=frozenset({4, 5}), role_names=frozenset({"artists"}))
    assert POLICY.run_refusal(member, workflow(roles=["5"])) is None
    assert POLICY.run_refusal(member, workflow(roles=["Artists"])) is None
    assert POLICY.run_refusal(member, workflow(roles=["6", "painters"])) == NEEDS_ROLE


def test_the_channel_is_named_before_nsfw_and_roles():
    assert POLICY.run_refusal(Who(USER_ID), workflow(nsfw=True, channels=["1"], roles=["9"])) == NOT_HERE


def test_an_action_needs_both_its_source_and_its_target():
    open_, adult = workflow(), workflow(nsfw=True)
    assert POLICY.refusal(Who(USER_ID), adult, open_) == NSFW_ONLY
    assert POLICY.refusal(Who(USER_ID), open_, adult) == NSFW_ONLY
    assert POLICY.refusal(Who(USER_ID), None, open_) is None


def test_jobs_are_managed_by_their_owner_or_an_admin_by_id_or_role():
    assert POLICY.manage_refusal(Who(USER_ID), str(USER_ID)) is None
    assert POLICY.manage_refusal(Who(OTHER_USER), str(USER_ID)) == NOT_YOURS
    assert POLICY.manage_refusal(Who(ADMIN_ID), str(USER_ID)) is None
    assert POLICY.manage_refusal(Who(OTHER_USER, role_ids=frozenset({ADMIN_ROLE})), str(USER_ID)) is None
    assert POLICY.manage_refusal(Who(OTHER_USER), None) == NOT_YOURS


def test_sources_are_those_of_the_workflows_one_may_run():
    lora = {"type": "choice", "choices_from": "LoraLoader.lora_name", "bind": "$"}
    unet = {"type": "choice", "choices_from": "UNETLoader.unet_name", "bind": "$"}
    shared = workflow(name="open", params={"lora": lora})
    secret = Workflow(workflow(roles=["9"], params={"lora": lora, "unet": unet}).manifest.model_copy(
        update={"name": "secret"}), MappingProxyType({}), MappingProxyType({}), None)
    catalog = Catalog(MappingProxyType({"open": shared, "secret": secret}))
    assert POLICY.sources(Who(USER_ID), catalog) == ["LoraLoader.lora_name"]
    assert POLICY.sources(Who(USER_ID, role_ids=frozenset({9})), catalog) == ["LoraLoader.lora_name",
                                                                             "UNETLoader.unet_name"]


# -- every path asks it -------------------------------------------------------------------------

@pytest.fixture
def catalog(tmp_path) -> Catalog:
    folder = tmp_path / "manifests"
    flow_catalog(folder)
    (folder / "members.yaml").write_text(CANVAS.format(name="members", rules=f'roles: ["{MEMBER_ROLE}"]'))
    (folder / "corner.yaml").write_text(CANVAS.format(name="corner", rules=f'channels: ["{CORNER}"]'))
    loaded = load_catalog([folder], REPO / "workflows")
    assert not loaded.issues, loaded.issues
    return loaded


def admin_stack(fake_comfy, db_path, catalog):
    return running_stack(fake_comfy.url, db_path, catalog, admin_user_ids=[ADMIN_ID], admin_role_ids=[ADMIN_ROLE])


async def _slow_job(stack) -> tuple[asyncio.Task, str]:
    """A 20-step job of USER_ID dispatched in the background; returns once it runs."""
    task = asyncio.create_task(stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 20}), timeout=30))
    async with asyncio.timeout(20):
        while not any(r.state == JobState.RUNNING for r in await stack.jobs()):
            await asyncio.sleep(0.01)
    (job,) = await stack.jobs()
    return task, job.job_id


async def test_an_admin_cancels_another_users_job_with_cancel_and_finds_it_in_its_list(fake_comfy, db_path,
                                                                                         catalog):
    fake_comfy.state.time_scale = SLOW  # 20 steps × 0.2 s × 4: 16 s to act while it runs (it is cancelled sooner)
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        background, job_id = await _slow_job(stack)
        offered = await stack.fake.autocomplete("cancel", {"job": ""}, focused="job", user_id=ADMIN_ID)
        assert [c["value"] for c in offered] == [job_id]
        await stack.dispatch(stack.fake.slash_payload("cancel", {"job": job_id}, user_id=ADMIN_ID))
        await background
        assert (await stack.store.get(job_id)).state == JobState.CANCELLED, stack.ephemeral_texts()


async def test_an_admin_by_role_cancels_with_the_button(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW  # 20 steps × 0.2 s × 4: 16 s to act while it runs (it is cancelled sooner)
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        background, job_id = await _slow_job(stack)
        await stack.dispatch(stack.fake.component_payload(f"dc:cancel:{job_id}", user_id=OTHER_USER,
                                                          roles=[ADMIN_ROLE]))
        await background
        assert (await stack.store.get(job_id)).state == JobState.CANCELLED


async def test_a_non_admin_can_neither_cancel_nor_delete_anothers_job(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW  # 20 steps × 0.2 s × 4: 16 s to act while it runs (it is cancelled sooner)
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        background, job_id = await _slow_job(stack)
        assert await stack.fake.autocomplete("cancel", {"job": ""}, focused="job", user_id=OTHER_USER) == []
        await stack.dispatch(stack.fake.slash_payload("cancel", {"job": job_id}, user_id=OTHER_USER))
        for action in ("cancel", "del"):
            await stack.dispatch(stack.fake.component_payload(f"dc:{action}:{job_id}", user_id=OTHER_USER))
        assert stack.ephemeral_texts() == [NO_JOB, NOT_YOURS, NOT_YOURS], stack.ephemeral_texts()
        assert not [r for r in stack.fake.requests if r.method == "DELETE"]
        assert (await stack.store.get(job_id)).state == JobState.RUNNING  # untouched by them
        await stack.dispatch(stack.fake.component_payload(f"dc:cancel:{job_id}"))  # its owner may
        await background
        assert (await stack.store.get(job_id)).state == JobState.CANCELLED


async def test_an_admin_deletes_another_users_result(fake_comfy, db_path, catalog):
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        await stack.slash("canvas", width=32, height=32)
        (job,) = await stack.jobs()
        await stack.dispatch(stack.fake.component_payload(f"dc:del:{job.job_id}", user_id=ADMIN_ID))
        assert [r.path.rsplit("/", 1)[1] for r in stack.fake.requests if r.method == "DELETE"] == ["@original"]


@pytest.mark.parametrize("button", ["rerun:{job}", "seed:{job}", "tweak:{job}:1", "act:{job}:1:invert"])
async def test_a_user_who_lost_the_role_can_no_longer_use_the_buttons(fake_comfy, db_path, catalog, button):
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        await stack.dispatch(stack.fake.slash_payload("members", {"width": 32}, roles=[MEMBER_ROLE]))
        (job,) = await stack.jobs()
        assert job.state == JobState.DONE
        await stack.dispatch(stack.fake.component_payload("dc:" + button.format(job=job.job_id)))  # the role is gone
        assert stack.ephemeral_texts()[-1] == NEEDS_ROLE
        assert len(await stack.jobs()) == 1
        await stack.dispatch(stack.fake.component_payload(f"dc:rerun:{job.job_id}", roles=[MEMBER_ROLE]))
        assert len(await stack.jobs()) == 2  # with it, the same button works


async def test_an_action_from_a_channel_where_the_source_is_not_allowed_is_refused(fake_comfy, db_path, catalog):
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        await stack.dispatch(stack.fake.slash_payload("corner", {"width": 32}, channel_id=CORNER))
        (source,) = await stack.jobs()
        assert source.state == JobState.DONE
        await stack.dispatch(stack.fake.component_payload(f"dc:act:{source.job_id}:1:invert"))  # elsewhere
        assert stack.ephemeral_texts()[-1] == NOT_HERE
        assert len(await stack.jobs()) == 1
        await stack.dispatch(stack.fake.component_payload(f"dc:act:{source.job_id}:1:invert", channel_id=CORNER))
        assert {r.manifest: r.state for r in await stack.jobs()}["invert"] == JobState.DONE


async def test_an_action_on_an_nsfw_result_is_refused_outside_nsfw_channels(fake_comfy, db_path, catalog):
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        await stack.dispatch(stack.fake.slash_payload("spicy", {"width": 32}, nsfw=True))
        (source,) = await stack.jobs()
        await stack.dispatch(stack.fake.component_payload(f"dc:act:{source.job_id}:1:invert"))
        assert stack.ephemeral_texts()[-1] == NSFW_ONLY
        assert len(await stack.jobs()) == 1


async def test_the_flow_checks_the_source_of_an_action_itself(fake_comfy, db_path, catalog):
    """Also when a hook is reached without the button (an action modal submitted after a restart)."""
    async with admin_stack(fake_comfy, db_path, catalog) as stack:
        await stack.dispatch(stack.fake.slash_payload("corner", {"width": 32}, channel_id=CORNER))
        (source,) = await stack.jobs()
        interaction = discord.Interaction(data=stack.fake.component_payload("x"), state=stack.fake.client._connection)
        token = async_context.set(stack.fake.webhook)
        try:
            await stack.flow.action(interaction, source.job_id, 1, catalog["invert"], {})
        finally:
            async_context.reset(token)
        assert stack.ephemeral_texts()[-1] == NOT_HERE and len(await stack.jobs()) == 1


# -- what may be listed -------------------------------------------------------------------------

SECRET = """
description: Restricted to a role, with a list nobody else uses
workflow: txt2img.json
roles: ["{role}"]
params:
  prompt: {{type: text, required: true, bind: '$["6"].inputs.text'}}
  scheduler: {{type: choice, choices_from: KSampler.scheduler, bind: '$["3"].inputs.scheduler'}}
"""


@pytest.fixture
def secret_hooks(tmp_path) -> RecordingHooks:
    shutil.copytree(FIXTURE_MANIFESTS, tmp_path / "manifests")
    (tmp_path / "manifests" / "secret.yaml").write_text(SECRET.format(role=MEMBER_ROLE))
    catalog = load_catalog([tmp_path / "manifests"], FIXTURE_MANIFESTS.parent / "workflows")
    assert not catalog.issues, catalog.issues
    hooks = RecordingHooks(catalog)
    hooks.live["KSampler.scheduler"] = ["karras", "normal"]
    return hooks


async def test_lists_of_a_role_restricted_workflow_are_not_offered_to_others(secret_hooks):
    async with fake_discord(build_commands(secret_hooks.catalog, secret_hooks.hooks())) as fake:
        others = await fake.autocomplete("choices", {"source": "KSampler"}, focused="source")
        members = await fake.autocomplete("choices", {"source": "KSampler"}, focused="source", roles=[MEMBER_ROLE])
        hidden = await fake.autocomplete("secret", {"prompt": "x", "scheduler": ""}, focused="scheduler")
        shown = await fake.autocomplete("secret", {"prompt": "x", "scheduler": ""}, focused="scheduler",
                                        roles=[MEMBER_ROLE])
        await fake.slash("choices", source="KSampler.scheduler")
        refused = [str(e) for e in fake.errors]
        await fake.dispatch(fake.slash_payload("choices", {"source": "KSampler.scheduler"}, roles=[MEMBER_ROLE]))
    assert [c["value"] for c in others] == [] and [c["value"] for c in members] == ["KSampler.scheduler"]
    assert hidden == [] and [c["value"] for c in shown] == ["karras", "normal"]
    assert refused == ["source: is not a list any workflow uses"]
    assert secret_hooks.calls == [("choices", "KSampler.scheduler", None)]  # only the member got the list


async def test_who_reads_roles_and_channel_with_the_public_api(discord_fake):
    payload = discord_fake.component_payload("x", roles=[MEMBER_ROLE], nsfw=True, channel_id=CORNER)
    remember_guild(discord_fake.client._connection, payload)
    who = Who.of(discord.Interaction(data=payload, state=discord_fake.client._connection))
    assert (who.user_id, who.role_ids, who.channel_id, who.channel_is_nsfw) == (
        USER_ID, frozenset({MEMBER_ROLE}), CORNER, True)
    assert who.role_names == frozenset({f"role {MEMBER_ROLE}"})
