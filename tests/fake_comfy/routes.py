"""HTTP and websocket routes of the fake ComfyUI (every route also under ``/api``).

``make_app(fake)`` builds the ``aiohttp.web.Application``; its startup/cleanup start and stop
the fake's worker and websocket sender.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from PIL import Image

from .faults import FAKE_KEY, fault_middleware
from .state import FakeComfy
from .store import ViewError
from .templates import INTERNAL_ERROR_TEXT, info_body

__all__ = ["make_app"]


def _fake(request: web.Request) -> FakeComfy:
    return request.app[FAKE_KEY]


def _server_error() -> web.Response:
    return web.Response(status=500, text=INTERNAL_ERROR_TEXT)


@web.middleware
async def origin_middleware(request: web.Request, handler):
    """A cross-origin request (Origin host ≠ Host) gets an empty 403, as on the real server."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        return web.Response(status=403)
    return await handler(request)


async def post_prompt(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
        if isinstance(body, (list, str)) and not any(key in body for key in ("number", "prompt")):
            body = {}  # the real server looks keys up with `in`: a JSON list or string is a body without a prompt
        if not isinstance(body, dict):
            raise TypeError("body is not an object")
        status, answer = _fake(request).submit(body)
    except (ValueError, TypeError, AttributeError):
        return _server_error()
    return web.json_response(answer, status=status)


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response({"exec_info": {"queue_remaining": _fake(request).queue_remaining}})


async def get_queue(request: web.Request) -> web.Response:
    return web.json_response(_fake(request).queue_listing())


async def _json_body(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def post_queue(request: web.Request) -> web.Response:
    body, fake = await _json_body(request), _fake(request)
    if body.get("clear"):
        fake.clear_pending()
    if "delete" in body:
        fake.delete_pending(list(body["delete"]))
    return web.Response()


async def post_interrupt(request: web.Request) -> web.Response:
    _fake(request).interrupt((await _json_body(request)).get("prompt_id"))
    return web.Response()


def _int_query(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    return int(value) if value and value.lstrip("-").isdigit() else None


async def get_history(request: web.Request) -> web.Response:
    listing = _fake(request).history.listing(_int_query(request, "max_items"), _int_query(request, "offset"))
    return web.json_response(listing)


async def get_history_entry(request: web.Request) -> web.Response:
    return web.json_response(_fake(request).history.get(request.match_info["prompt_id"]))


async def post_history(request: web.Request) -> web.Response:
    body, history = await _json_body(request), _fake(request).history
    if body.get("clear"):
        history.clear()
    if "delete" in body:
        history.delete(list(body["delete"]))
    return web.Response()


async def upload_image(request: web.Request) -> web.Response:
    form = await request.post()
    image = form.get("image")
    if not isinstance(image, web.FileField):
        return web.Response(status=400)
    try:
        answer = _fake(request).files.upload(
            image.file.read(), image.filename, subfolder=str(form.get("subfolder", "")),
            kind=str(form.get("type", "input")), overwrite=str(form.get("overwrite", "")).lower() in ("true", "1"))
    except ViewError as exc:
        return web.Response(status=exc.status)
    return web.json_response(answer)


async def view(request: web.Request) -> web.Response:
    query = request.query
    try:
        path, mime = _fake(request).files.view(query.get("filename", ""), query.get("subfolder", ""),
                                                query.get("type", "output"))
    except ViewError as exc:
        return web.Response(status=exc.status)
    body = path.read_bytes()
    if query.get("preview", "").startswith("jpeg"):
        quality = int(query["preview"].partition(";")[2] or 90)
        buffer = io.BytesIO()
        Image.open(io.BytesIO(body)).convert("RGB").save(buffer, "JPEG", quality=quality)
        body, mime = buffer.getvalue(), "image/jpeg"
    headers = {"Content-Disposition": f'filename="{path.name}"'}
    return web.Response(body=body, content_type=mime, headers=headers)


def _live_entry(fake: FakeComfy, class_type: str) -> dict:
    entry = fake.object_info[class_type]
    if class_type == "LoadImage":  # the choice list is the input folder, read per request
        entry = copy.deepcopy(entry)
        entry["input"]["required"]["image"][0] = fake.files.input_names()
    if class_type == "LoadAudio":  # the input folder's sounds and videos, by extension
        entry = copy.deepcopy(entry)
        entry["input"]["required"]["audio"][0] = fake.files.input_names(("audio/", "video/"))
    return entry


async def object_info(request: web.Request) -> web.Response:
    fake = _fake(request)
    return web.json_response({name: _live_entry(fake, name) for name in fake.object_info})


async def object_info_class(request: web.Request) -> web.Response:
    fake, name = _fake(request), request.match_info["class_type"]
    return web.json_response({name: _live_entry(fake, name)} if name in fake.object_info else {})


def _recorded(route: str):
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(info_body(route))
    return handler


async def no_content(request: web.Request) -> web.Response:
    return web.Response()


async def empty_list(request: web.Request) -> web.Response:
    return web.json_response([])


async def websocket(request: web.Request) -> web.WebSocketResponse:
    fake = _fake(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.query.get("clientId") or uuid.uuid4().hex
    fake.hub.register(sid, ws)
    try:
        await ws.send_json({"type": "status", "data": {**fake.status_data(), "sid": sid}})
        if fake.running and fake.running.client_id == sid and fake.last_node is not None:
            await ws.send_json({"type": "executing", "data": {"node": fake.last_node}})
        await _read_client(fake, sid, ws)
    finally:
        fake.hub.unregister(sid, ws)
    return ws


async def _read_client(fake: FakeComfy, sid: str, ws: web.WebSocketResponse) -> None:
    """Only the first parseable JSON message may be ``feature_flags``; everything else is ignored."""
    first_json_seen = False
    async for message in ws:
        if message.type != WSMsgType.TEXT or first_json_seen:
            continue
        try:
            parsed = json.loads(message.data)
        except ValueError:
            continue
        first_json_seen = True
        if isinstance(parsed, dict) and parsed.get("type") == "feature_flags":
            if (parsed.get("data") or {}).get("supports_preview_metadata"):
                fake.hub.set_preview_metadata(sid, ws)
            await ws.send_json({"type": "feature_flags", "data": info_body("/features")})


_ROUTES = [
    ("POST", "/prompt", post_prompt), ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue), ("POST", "/queue", post_queue),
    ("POST", "/interrupt", post_interrupt), ("POST", "/free", no_content),
    ("GET", "/history", get_history), ("GET", "/history/{prompt_id}", get_history_entry),
    ("POST", "/history", post_history), ("POST", "/upload/image", upload_image), ("GET", "/view", view),
    ("GET", "/object_info", object_info), ("GET", "/object_info/{class_type}", object_info_class),
    ("GET", "/system_stats", _recorded("/system_stats")), ("GET", "/features", _recorded("/features")),
    ("GET", "/models", _recorded("/models")), ("GET", "/embeddings", empty_list), ("GET", "/ws", websocket),
]


def make_app(fake: FakeComfy) -> web.Application:
    """The fake server's application; its worker runs while the app runs."""
    app = web.Application(middlewares=[origin_middleware, fault_middleware], client_max_size=110 * 1024 * 1024)
    app[FAKE_KEY] = fake
    for method, path, handler in _ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)

    async def lifecycle(app: web.Application):
        fake.start()
        yield
        await fake.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
