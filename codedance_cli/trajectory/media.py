"""Image bytes as the model and the pages see them: MIME sniffing, data URLs, resizing to a pixel budget.

They live with the trajectory format (not in the loop) so that the clients and the
viewer, which sit below the loop, can use them without importing it.
"""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

# Qwen2.5-VL needs sides >= 28 px and an aspect ratio < 200; the release upscales tiny images to 112 px.
MIN_SIDE = 56
UPSCALED_SIDE = 112
MAX_ASPECT = 200


def image_mime(data: bytes) -> str:
    """MIME type of encoded image bytes from their magic number (PNG, JPEG, GIF, WebP; else PNG)."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def data_url(data: bytes) -> str:
    """Encoded image bytes -> `data:image/...;base64,...`."""
    return f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> bytes:
    """`data:...;base64,...` -> bytes (the inverse of `data_url`)."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise ValueError(f"not a base64 data URL: {url[:40]}...")
    return base64.b64decode(payload)


def fit_image(data: bytes, max_pixels: int) -> bytes | None:
    """Resize to at most `max_pixels` (aspect kept), upscale tiny images, drop degenerate ones (None).

    Unchanged images keep their original bytes, so re-rendering is byte-stable.
    """
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
    except Exception:
        return None
    if width < 1 or height < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
        return None
    scale = 1.0
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    elif min(width, height) < MIN_SIDE:
        scale = UPSCALED_SIDE / min(width, height)
    if scale == 1.0:
        return data
    # floor, so the budget is never exceeded by rounding
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    image.load()
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    buffer = io.BytesIO()
    image.resize(size, resample).save(buffer, format="PNG")
    return buffer.getvalue()
