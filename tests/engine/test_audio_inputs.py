"""Audio params: the ``audio`` kind (coercion, rule, display, input types, schema) and the one check of
a sound users give a job (``engine.inputs.audio.check_audio``): real files made by ffmpeg, and hostile
ones — not audio, a playlist, too big, too long, a header that lies about its length, no sound."""

from __future__ import annotations

import functools
import io
import subprocess

import imageio_ffmpeg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine import DEFAULT_LIMITS, AudioParam, Limits, ManifestError, ParamError, load_catalog, prepare
from engine.inputs import audio as audio_module
from engine.inputs.audio import check_audio
from engine.manifest.kinds import parse_param
from engine.manifest.model import Manifest

from .builders import write_case

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def sound(fmt: str, seconds: float = 2.0, source: str = "sine=frequency=440") -> bytes:
    """``seconds`` of a tone (or another lavfi ``source``) encoded by ffmpeg as ``fmt`` (a muxer name)."""
    command = [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"{source}:duration={seconds}", "-ac", "2",
               *(["-c:a", "aac"] if fmt == "ipod" else []), "-f", fmt, "-"]
    if fmt == "ipod":  # M4A needs a seekable output: a temporary file
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "out.m4a"
            subprocess.run([*command[:-1], str(path)], check=True, capture_output=True)
            return path.read_bytes()
    return subprocess.run(command, check=True, capture_output=True).stdout


def silent_flac_claiming(seconds: float, claimed_samples: int) -> bytes:
    """A FLAC of ``seconds`` of silence whose STREAMINFO says it holds ``claimed_samples`` samples."""
    data = bytearray(sound("flac", seconds, "anullsrc=r=44100:cl=stereo"))
    assert data[:4] == b"fLaC"
    packed = int.from_bytes(data[18:26], "big")  # rate 20 bits · channels 3 · bits 5 · total samples 36
    packed = (packed & ~((1 << 36) - 1)) | claimed_samples
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def audio_param(**fields) -> AudioParam:
    param = parse_param({"type": "audio", "bind": "$", **fields})
    assert isinstance(param, AudioParam)
    return param


# -- the check -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "label", "extension"), [
    ("mp3", "MP3", ".mp3"), ("flac", "FLAC", ".flac"), ("wav", "WAV", ".wav"), ("ogg", "Ogg", ".ogg"),
    ("ipod", "M4A", ".m4a"), ("webm", "WebM", ".webm"),
])
def test_real_sounds_are_accepted_with_their_format_and_length(fmt, label, extension):
    found = check_audio(sound(fmt), param="take")
    assert (found.format.label, found.format.extension) == (label, extension)
    assert found.seconds == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("data", [
    b"",
    b"hello, I am an MP3, honest",
    bytes(range(256)) * 64,
    b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",  # a playlist
    b"ffconcat version 1.0\nfile '/etc/passwd'\n",
], ids=["empty", "text", "noise", "hls-playlist", "concat-list"])
def test_what_is_not_audio_is_refused_naming_the_param_without_echoing_it(data):
    with pytest.raises(ParamError) as refused:
        check_audio(data, param="take")
    assert refused.value.param == "take"
    assert "honest" not in str(refused.value) and "passwd" not in str(refused.value)


def test_an_image_is_not_a_sound():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "PNG")
    with pytest.raises(ParamError, match=r"must be an audio file \(MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC\)"):
        check_audio(buffer.getvalue())


def test_a_video_without_sound_has_no_sound_in_it():
    command = [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=1",
               "-c:v", "libvpx-vp9", "-f", "webm", "-"]
    video = subprocess.run(command, check=True, capture_output=True).stdout
    with pytest.raises(ParamError, match="has no sound in it"):
        check_audio(video)


def test_a_file_over_the_byte_cap_is_refused_before_ffmpeg_sees_it(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("ffmpeg ran on a file over the byte cap")

    monkeypatch.setattr(audio_module, "run_ffmpeg", never)
    data = sound("wav")
    with pytest.raises(ParamError, match="larger than"):
        check_audio(data, max_bytes=len(data) - 1)


def test_a_sound_whose_header_says_it_is_too_long_is_refused_before_decoding(monkeypatch):
    calls = []
    real = audio_module.run_ffmpeg
    monkeypatch.setattr(audio_module, "run_ffmpeg", lambda args, **kw: calls.append(args) or real(args, **kw))
    with pytest.raises(ParamError, match="the sound is 10 s long, over 5 s"):
        check_audio(sound("mp3", 10.0), max_seconds=5)
    assert len(calls) == 1 and "null" not in calls[0]  # the header was read; nothing was decoded


def test_a_header_that_understates_the_length_is_caught_by_the_bounded_decode():
    lying = silent_flac_claiming(30.0, claimed_samples=44100)  # says 1 s, holds 30 s
    assert len(lying) < 100_000  # silence: a few KiB hold a long time
    with pytest.raises(ParamError, match="the sound is longer than 10 s"):
        check_audio(lying, max_seconds=10)


def test_a_sound_exactly_at_the_length_cap_is_accepted():
    assert check_audio(sound("mp3", 5.0), max_seconds=5).seconds == pytest.approx(5.0, abs=0.1)


def test_a_stuck_ffmpeg_is_a_short_refusal(monkeypatch):
    def stuck(*args, **kwargs):
        raise audio_module.FfmpegTimeout

    monkeypatch.setattr(audio_module, "run_ffmpeg", stuck)
    with pytest.raises(ParamError, match="could not be read in time"):
        check_audio(sound("wav"), param="take")


# -- the param kind --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["../up.mp3", "sub/dir.mp3", "C:\\x.mp3", ".hidden.mp3", "song.mp3 [output]",
                                   "a\nb.mp3", "x" * 256, 3, "/etc/passwd"])
def test_a_path_or_a_non_name_is_refused(value):
    with pytest.raises(ParamError) as refused:
        audio_param().coerce("take", value)
    assert refused.value.param == "take"
    assert refused.value.problem == "must be the plain name of an uploaded audio file (no folders or server paths)"


def test_a_blank_optional_sound_is_unset_and_a_blank_required_one_is_missing():
    assert audio_param().read("take", "") is None
    with pytest.raises(ParamError, match="is required"):
        audio_param(required=True).read("take", " ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_coercion_keeps_a_plain_name_or_refuses_naming_the_param(text):
    try:
        name = audio_param().coerce("take", text)
    except ParamError as exc:
        assert exc.param == "take"
        return
    assert name == text and "/" not in name and "\\" not in name and not name.startswith(".")


def test_rule_show_and_the_file_it_takes():
    param = audio_param(required=True)
    assert param.rule() == "audio file (MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC), required"
    assert param.show("discomfy/take_001.mp3") == "take_001.mp3" and param.show(None) == "—"
    assert param.is_upload and param.takes == "audio"
    assert param.max_upload_bytes(Limits(max_audio_bytes=1234)) == 1234


def test_it_fits_only_an_audio_upload_combo():
    param = audio_param()
    assert param.fits("COMBO", {"audio_upload": True}) and param.fits("COMBO") and param.fits("*")
    assert not param.fits("COMBO", {"image_upload": True}) and not param.fits("COMBO", {})
    assert not param.fits("AUDIO") and not param.fits("STRING")
    assert param.loader_problem("LoadAudio", "audio") is None
    assert param.loader_problem("LoadImage", "image") == "audio param must bind LoadAudio.audio, not LoadImage.image"


@pytest.mark.parametrize(("mime", "problem"), [
    ("audio/mpeg", None), ("audio/ogg", None), ("video/webm", None), ("", None),
    ("image/png", "must be an audio file (MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC)"),
    ("text/plain", "must be an audio file (MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC)"),
])
def test_what_discord_says_a_file_is_can_refuse_it_early(mime, problem):
    assert audio_param().mime_problem(mime) == problem


def test_the_upload_is_named_after_what_the_file_is():
    param = audio_param()
    assert param.check_upload("take", sound("mp3"), "result-1.png", DEFAULT_LIMITS) == "result-1.mp3"
    assert param.check_upload("take", sound("ogg"), "voice-message.ogg", DEFAULT_LIMITS) == "voice-message.ogg"
    assert param.check_upload("take", sound("flac"), "", DEFAULT_LIMITS) == "audio.flac"
    with pytest.raises(ParamError, match=r"^take: the sound is (2 s long, over|longer than) 1 s$"):
        param.check_upload("take", sound("flac"), "x.flac", Limits(max_audio_seconds=1))


def test_an_audio_param_takes_no_default_and_is_in_the_schema():
    from engine.manifest.schema import manifest_schema

    assert parse_param({"type": "audio", "bind": "$", "default": "x.mp3"}) is None
    kinds = manifest_schema()["$defs"]
    assert "AudioParam" in kinds and kinds["AudioParam"]["properties"]["type"]["const"] == "audio"


def test_prepare_takes_a_sound_as_an_upload_and_nothing_else_as_a_file(tmp_path):
    manifest = """\
    description: cut
    kind: audio
    params:
      take: {type: audio, required: true, bind: '$["1"].inputs.audio'}
    """
    graph = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "x.mp3"}},
             "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "t"}}}
    catalog = load_catalog([write_case(tmp_path, manifest, graph).parent])
    workflow = catalog["t"]
    assert prepare(workflow, {}, uploads=["take"]).uploads == ("take",)
    with pytest.raises(ParamError, match="is required"):
        prepare(workflow, {})
    with pytest.raises(ParamError, match="take: must be the plain name of an uploaded audio file"):
        prepare(workflow, {"take": "../../output/secret.mp3"})


# -- actions: the result's kind picks the param ----------------------------------------------------

def _catalog(tmp_path, source_kind: str, target_params: str):
    write_case(tmp_path, f"description: s\nkind: {source_kind}\nactions: [target]\n", name="source")
    graph = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "x.mp3"}},
             "2": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
             "3": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "t"}}}
    write_case(tmp_path, f"description: t\nkind: audio\nparams:\n{target_params}", graph, name="target")
    return load_catalog([tmp_path / "manifests"])


SOUND_THEN_PICTURE = ("  take: {type: audio, required: true, bind: '$[\"1\"].inputs.audio'}\n"
                      "  picture: {type: image, bind: '$[\"2\"].inputs.image'}\n")


def test_an_action_feeds_a_result_into_the_first_param_of_its_kind(tmp_path):
    catalog = _catalog(tmp_path, "audio", SOUND_THEN_PICTURE)
    assert catalog.issues == ()
    target = catalog["target"].manifest
    assert (target.param_taking("audio"), target.param_taking("image"), target.param_taking("video")) == \
        ("take", "picture", None)
    assert target.upload_params == ["take", "picture"]


def test_an_action_whose_target_takes_no_file_of_the_results_kind_is_an_issue(tmp_path):
    only_picture = "  picture: {type: image, required: true, bind: '$[\"2\"].inputs.image'}\n"
    catalog = _catalog(tmp_path, "audio", only_picture)
    assert [i.message for i in catalog.issues] == ["action 'target' takes no audio to feed the result into"]
    (tmp_path / "other").mkdir()
    image_source = _catalog(tmp_path / "other", "image", "  take: {type: audio, bind: '$[\"1\"].inputs.audio'}\n")
    assert [i.message for i in image_source.issues] == ["action 'target' takes no image to feed the result into"]


def test_an_audio_param_bound_to_a_text_input_does_not_load(tmp_path):
    bad = "description: x\nparams:\n  take: {type: audio, bind: '$[\"4\"].inputs.steps'}\n"
    from engine import load_workflow

    with pytest.raises(ManifestError, match="audio param must bind LoadAudio.audio"):
        load_workflow(write_case(tmp_path, bad))


def test_the_manifest_model_lists_audio_among_its_kinds():
    data = {"name": "m", "description": "d", "params": {"take": {"type": "audio", "bind": "$"}}}
    assert Manifest.model_validate(data).params["take"].type == "audio"
