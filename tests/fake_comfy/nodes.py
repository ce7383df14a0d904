"""Node implementations of the fake ComfyUI: real Pillow/ffmpeg work, no models.

IMAGE values are lists of RGB ``PIL.Image`` (one per batch item), MASK values lists of "L"
images. Classes without an implementation here run as *generic* nodes (``run_generic``): they
pass the first IMAGE-like input through or produce 64×64 placeholders, and sampler-like nodes
report quick progress steps, so diffusion workflows run end to end against the fake.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image, ImageOps

from .audio import AUDIO_NODES, Audio, placeholder_audio

__all__ = [
    "Latent", "Video", "UpscaleModel", "Opaque", "NodeFailure", "NodeContext", "NodeResult",
    "IMPLEMENTED", "run_generic", "png_bytes", "require_model_files",
]

_RESAMPLE = {"nearest-exact": Image.NEAREST, "bilinear": Image.BILINEAR, "area": Image.BOX,
             "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
_WEBP_METHOD = {"default": 4, "fastest": 0, "slowest": 6}


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int = 1
    seconds: float | None = None  # audio latents (EmptyLatentAudio, EmptyAceStepLatentAudio)


@dataclass(frozen=True)
class Video:
    frames: tuple[Image.Image, ...]
    fps: float


@dataclass(frozen=True)
class UpscaleModel:
    name: str

    @property
    def scale(self) -> int:
        found = re.search(r"(\d+)x|x(\d+)", self.name.lower())
        return int(found.group(1) or found.group(2)) if found else 4


@dataclass(frozen=True)
class Opaque:
    """Stand-in for MODEL, CLIP, CONDITIONING, … values."""

    type_name: str


class NodeFailure(Exception):
    """A node raised: becomes ``execution_error`` with this type and message."""

    def __init__(self, exception_type: str, message: str):
        self.exception_type = exception_type
        self.message = message
        super().__init__(message)


class NodeContext(Protocol):
    """What the executor offers a running node."""

    time_scale: float
    preview_side: int

    async def progress(self, value: int, total: int, preview: Image.Image | None = None,
                       preview_format: str = "JPEG") -> None: ...
    async def text(self, text: str) -> None: ...
    async def sleep(self, seconds: float) -> None: ...
    def save(self, kind: str, prefix: str, ext: str) -> tuple[object, dict]: ...
    def input_path(self, name: str) -> object: ...
    def temp_prefix(self) -> str: ...


NodeResult = tuple[tuple, dict | None]
NodeFn = Callable[[NodeContext, dict], Awaitable[NodeResult]]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _color(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


async def empty_image(ctx: NodeContext, i: dict) -> NodeResult:
    image = Image.new("RGB", (i["width"], i["height"]), _color(i["color"]))
    return ([image.copy() for _ in range(i["batch_size"])],), None


async def load_image(ctx: NodeContext, i: dict) -> NodeResult:
    with Image.open(ctx.input_path(i["image"])) as opened:
        rgba = opened.convert("RGBA")
    mask = ImageOps.invert(rgba.getchannel("A"))
    return ([rgba.convert("RGB")], [mask]), None


async def image_invert(ctx: NodeContext, i: dict) -> NodeResult:
    return ([ImageOps.invert(img) for img in i["image"]],), None


def _scaled(img: Image.Image, width: int, height: int, method: str, crop: str = "disabled") -> Image.Image:
    if width == 0 and height == 0:
        return img
    width = width or round(img.width * height / img.height)
    height = height or round(img.height * width / img.width)
    if crop == "center":
        img = ImageOps.fit(img, (width, height), _RESAMPLE[method])
    return img.resize((width, height), _RESAMPLE[method])


async def image_scale(ctx: NodeContext, i: dict) -> NodeResult:
    return ([_scaled(img, i["width"], i["height"], i["upscale_method"], i["crop"]) for img in i["image"]],), None


async def image_scale_by(ctx: NodeContext, i: dict) -> NodeResult:
    s = i["scale_by"]
    return ([_scaled(img, round(img.width * s), round(img.height * s), i["upscale_method"]) for img in i["image"]],), None


async def upscale_model_loader(ctx: NodeContext, i: dict) -> NodeResult:
    return (UpscaleModel(i["model_name"]),), None


async def upscale_with_model(ctx: NodeContext, i: dict) -> NodeResult:
    k = i["upscale_model"].scale
    return ([img.resize((img.width * k, img.height * k), Image.LANCZOS) for img in i["image"]],), None


INLINE_SAVE_PIXELS = 64 * 64


async def _save_images(ctx: NodeContext, images: list, kind: str, prefix: str) -> list[dict]:
    entries = []
    for img in images:
        path, entry = ctx.save(kind, prefix, "png")
        if img.width * img.height <= INLINE_SAVE_PIXELS:
            img.save(path, "PNG")  # a thread hop costs more than encoding a tiny image
        else:
            await asyncio.to_thread(img.save, path, "PNG")
        entries.append(entry)
    return entries


async def save_image(ctx: NodeContext, i: dict) -> NodeResult:
    return (), {"images": await _save_images(ctx, i["images"], "output", i.get("filename_prefix", "ComfyUI"))}


async def preview_image(ctx: NodeContext, i: dict) -> NodeResult:
    return (), {"images": await _save_images(ctx, i["images"], "temp", ctx.temp_prefix())}


async def slow_progress(ctx: NodeContext, i: dict) -> NodeResult:
    steps, image = i["steps"], i["image"]
    side = ctx.preview_side  # the real server fits a preview to this square, up or down (ImageOps.contain)
    preview = ImageOps.contain(image[0], (side, side), Image.BILINEAR) if i.get("preview") else None
    for step in range(1, steps + 1):
        await ctx.sleep(i["seconds_per_step"] * ctx.time_scale)
        if i.get("progress_text"):
            await ctx.text(f"step {step}/{steps}")
        # like a sampler's previews, each step's frame differs (here: it brightens towards the image)
        frame = preview.point(lambda v, k=step: v * k // steps) if preview is not None else None
        await ctx.progress(step, steps, frame)
    return (image,), None


async def vae_encode_audio(ctx: NodeContext, i: dict) -> NodeResult:
    """A sound's latent (the real node resamples to 44.1 kHz and encodes): as long as the sound."""
    return (Latent(64, 64, 1, i["audio"].seconds),), None


async def fail_on_purpose(ctx: NodeContext, i: dict) -> NodeResult:
    raise NodeFailure("RuntimeError", i["message"])


async def text_output(ctx: NodeContext, i: dict) -> NodeResult:
    return (i["text"],), {"text": [i["text"]]}


async def save_image_websocket(ctx: NodeContext, i: dict) -> NodeResult:
    images = i["images"]
    for step, img in enumerate(images):
        await ctx.progress(step, len(images), img, "PNG")
    return (), None


async def create_video(ctx: NodeContext, i: dict) -> NodeResult:
    return (Video(tuple(i["images"]), float(i["fps"])),), None


def _write_clip(frames: list, fps: float, path: object, codec: str, extra: list[str]) -> None:
    """Encode frames with the ffmpeg binary moviepy ships (imageio-ffmpeg); importing moviepy takes seconds."""
    import imageio_ffmpeg

    width, height = frames[0].size
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
               "-c:v", codec, *extra, str(path)]
    raw = b"".join(frame.convert("RGB").resize((width, height)).tobytes() for frame in frames)
    subprocess.run(command, input=raw, check=True, capture_output=True)


async def _save_animation(ctx: NodeContext, prefix: str, ext: str, writer: Callable[[object], None]) -> NodeResult:
    path, entry = ctx.save("output", prefix, ext)
    await asyncio.to_thread(writer, path)
    return (), {"images": [entry], "animated": [True]}


async def save_video(ctx: NodeContext, i: dict) -> NodeResult:
    video: Video = i["video"]
    return await _save_animation(ctx, i["filename_prefix"], "mp4", lambda p: _write_clip(
        list(video.frames), video.fps, p, "libx264", ["-pix_fmt", "yuv420p"]))


async def save_webm(ctx: NodeContext, i: dict) -> NodeResult:
    return await _save_animation(ctx, i["filename_prefix"], "webm", lambda p: _write_clip(
        i["images"], i["fps"], p, "libvpx-vp9", ["-crf", str(int(i["crf"])), "-b:v", "0", "-pix_fmt", "yuv420p"]))


async def save_animated_webp(ctx: NodeContext, i: dict) -> NodeResult:
    first, *rest = i["images"]
    return await _save_animation(ctx, i["filename_prefix"], "webp", lambda p: first.save(
        p, "WEBP", save_all=True, append_images=rest, duration=round(1000 / i["fps"]),
        lossless=i["lossless"], quality=i["quality"], method=_WEBP_METHOD.get(i["method"], 4)))


async def save_animated_png(ctx: NodeContext, i: dict) -> NodeResult:
    first, *rest = i["images"]
    return await _save_animation(ctx, i["filename_prefix"], "png", lambda p: first.save(
        p, "PNG", save_all=True, append_images=rest, duration=round(1000 / i["fps"]),
        compress_level=i["compress_level"]))


IMPLEMENTED: dict[str, NodeFn] = {
    "EmptyImage": empty_image, "LoadImage": load_image, "ImageInvert": image_invert,
    "ImageScale": image_scale, "ImageScaleBy": image_scale_by, "UpscaleModelLoader": upscale_model_loader,
    "ImageUpscaleWithModel": upscale_with_model, "SaveImage": save_image, "PreviewImage": preview_image,
    "SlowProgress": slow_progress, "FailOnPurpose": fail_on_purpose, "TextOutput": text_output,
    "SaveImageWebsocket": save_image_websocket, "CreateVideo": create_video, "SaveVideo": save_video,
    "SaveWEBM": save_webm, "SaveAnimatedWEBP": save_animated_webp, "SaveAnimatedPNG": save_animated_png,
    "VAEEncodeAudio": vae_encode_audio, **AUDIO_NODES,
}


def _first(inputs: dict, kind: type) -> object | None:
    return next((v for v in inputs.values() if isinstance(v, kind)), None)


def _images_in(inputs: dict) -> list | None:
    return next((v for v in inputs.values() if isinstance(v, list) and v and isinstance(v[0], Image.Image)), None)


def _placeholder(kind: str, inputs: dict) -> object:
    images, latent = _images_in(inputs), _first(inputs, Latent)
    width, height = inputs.get("width"), inputs.get("height")
    size = (width, height) if isinstance(width, int) and isinstance(height, int) and width and height else None
    batch = inputs.get("batch_size") if isinstance(inputs.get("batch_size"), int) else 1
    if kind == "IMAGE":
        if images is not None:
            return images
        size = size or ((latent.width, latent.height) if latent else (64, 64))
        return [Image.new("RGB", size, (128, 128, 128)) for _ in range(latent.batch if latent else batch)]
    if kind == "LATENT":
        if latent is not None:
            return latent
        size = size or (images[0].size if images else (64, 64))
        seconds = inputs.get("seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
        return Latent(size[0], size[1], len(images) if images else batch, seconds)
    if kind == "AUDIO":
        audio = _first(inputs, Audio)
        return audio if audio is not None else placeholder_audio(latent.seconds if latent and latent.seconds else 1.0)
    if kind == "MASK":
        return [Image.new("L", size or (64, 64), 0)]
    if kind == "VIDEO":
        return Video(tuple(images or [Image.new("RGB", (64, 64))]), 8.0)
    return Opaque(kind)


def _step_count(class_type: str, inputs: dict) -> int:
    steps = inputs.get("steps")
    if isinstance(steps, int) and steps > 0:
        return steps
    return 4 if "Sampler" in class_type else 0


# v3 loaders: the real server does not check their COMBO at POST /prompt, so a missing file fails when the
# node runs (folder_paths.get_full_path_or_raise), as an execution_error
V3_MODEL_FOLDERS = {"UpscaleModelLoader": "upscale_models", "QuadrupleCLIPLoader": "text_encoders",
                    "TripleCLIPLoader": "text_encoders", "AudioEncoderLoader": "audio_encoders",
                    "PhotoMakerLoader": "photomaker"}


def require_model_files(class_type: str, spec: dict, inputs: dict) -> None:
    """Raise the real loader's FileNotFoundError for a model file its server does not have."""
    folder = V3_MODEL_FOLDERS.get(class_type)
    for name, input_spec in spec["input"].get("required", {}).items() if folder else ():
        if input_spec[0] == "COMBO" and inputs.get(name) not in input_spec[1].get("options", ()):
            raise NodeFailure("FileNotFoundError",
                              f"Model in folder '{folder}' with filename '{inputs.get(name)}' not found.")


async def run_generic(ctx: NodeContext, class_type: str, spec: dict, inputs: dict) -> NodeResult:
    """Run a node the fake has no implementation for (see module docstring)."""
    steps = _step_count(class_type, inputs)
    for step in range(1, steps + 1):
        await ctx.progress(step, steps)
    outputs = tuple(_placeholder(kind if isinstance(kind, str) else "COMBO", inputs) for kind in spec["output"])
    images = _images_in(inputs)
    if spec.get("output_node") and images is not None:
        prefix = inputs.get("filename_prefix") if isinstance(inputs.get("filename_prefix"), str) else "ComfyUI"
        return outputs, {"images": await _save_images(ctx, images, "output", prefix)}
    return outputs, None
