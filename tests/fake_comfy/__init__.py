"""An in-process fake ComfyUI for tests: behaves like the real server recorded in docs/comfyui-protocol.md.

``FakeComfy`` holds the state and the fault knobs; ``make_app(fake)`` serves it with aiohttp.
See ``state.py`` for the knobs and ``executor.py`` for what runs and in which order.
"""

from .executor import QueueItem, execution_order
from .faults import Streamed, deep_json
from .hub import HugeFrame, preview_frame, preview_meta_frame, text_frame
from .routes import make_app
from .state import FakeComfy
from .templates import DATA_DIR, load_capture, object_info_snapshot

__all__ = [
    "FakeComfy", "make_app", "QueueItem", "execution_order", "DATA_DIR", "load_capture",
    "object_info_snapshot", "preview_frame", "preview_meta_frame", "text_frame", "HugeFrame", "Streamed",
    "deep_json",
]
