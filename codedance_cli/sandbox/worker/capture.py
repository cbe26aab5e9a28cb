"""Which images a cell gives back to the model, and in what form.

A cell shows an image by displaying it (`display`, `Image.show`, `plt.show`, `cv2.imshow`, a last-line
expression) or by saving an image file in its directory. Everything shown is deduplicated, kept within
`max_images_per_cell`, and brought to CodeDance's conventions (see codedance-facts.md, "Execution"):
PNG, no side under MIN_SIDE, aspect ratio at most MAX_ASPECT, at most MAX_SENT_PIXELS.

numpy, PIL and matplotlib are imported lazily: the worker imports them only after it has set thread
counts and moved stray prints off the protocol stream (see loop.main).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_SIDE, UPSCALE_TO, MAX_ASPECT, FIGURE_DPI = 56, 112, 200, 150
MAX_SENT_PIXELS = 16 << 20  # larger images are downscaled before sending (the loop resizes far below this anyway)


class ImageCapture:
    """Collects what one cell shows; `encode_captured` turns it into the cell's images (base64 PNG)."""

    def __init__(self, limits: dict[str, Any], notes: list[str]) -> None:
        import numpy
        import PIL.Image

        self.np, self.Image = numpy, PIL.Image
        self.plt = sys.modules.get("matplotlib.pyplot")
        self.limits = limits
        self.notes = notes  # shared with the runtime: the cell's "[sandbox] ..." lines
        self.captured: list[Any] = []  # PIL images, or encoded PNG bytes that already meet the conventions

    def patch_display_hooks(self) -> None:
        """Route the libraries' "show" calls to the model instead of a screen this sandbox does not have."""
        capture = self
        self.Image.Image.show = lambda image, *args, **kwargs: capture.captured.append(image.copy())
        if self.plt is not None:
            import matplotlib.figure

            def show(*args: Any, **kwargs: Any) -> None:
                capture.capture_open_figures()

            self.plt.show = show
            matplotlib.figure.Figure.show = lambda figure, *args, **kwargs: capture.capture_figure(figure)
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:  # headless OpenCV has no GUI: imshow shows the (BGR) array to the model instead
            cv2.imshow = lambda winname, mat: capture.captured.append(capture._array_to_image(self.np.asarray(mat)))
            cv2.waitKey = lambda *args, **kwargs: -1
            cv2.destroyAllWindows = lambda *args, **kwargs: None
            cv2.destroyWindow = lambda *args, **kwargs: None

    def display(self, *objects: Any, **kwargs: Any) -> None:
        """`display(x)`: images are shown to the model, anything else is printed."""
        for obj in objects:
            if not self.capture_value(obj, explicit=True):
                print(repr(obj))

    def capture_value(self, value: Any, explicit: bool = False) -> bool:
        """Keep `value` if it is an image (a bare array only when clearly image-shaped, unless `explicit`)."""
        if isinstance(value, self.Image.Image):
            self.captured.append(value.copy())
            return True
        if self.plt is not None:
            import matplotlib.figure

            if isinstance(value, matplotlib.figure.Figure):
                self.capture_figure(value)
                return True
            if hasattr(value, "figure") and isinstance(getattr(value, "figure", None), matplotlib.figure.Figure) and explicit:
                self.capture_figure(value.figure)
                return True
        if isinstance(value, self.np.ndarray) and self._image_like(value, explicit):
            self.captured.append(self._array_to_image(value))
            return True
        return False

    def _image_like(self, array: Any, explicit: bool) -> bool:
        if array.dtype.kind not in "biuf" or array.size == 0:
            return False
        if array.ndim == 3 and array.shape[2] in (3, 4):
            return True
        if array.ndim == 3 and array.shape[2] == 1:
            return explicit or min(array.shape[:2]) >= 16
        if array.ndim == 2:
            return explicit or (array.dtype.kind in "bu" and min(array.shape) >= 16)
        return False

    def _array_to_image(self, array: Any) -> Any:
        np = self.np
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.dtype.kind == "f":
            scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
            array = np.nan_to_num(array * scale)
        array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 3:  # OpenCV convention: 3/4-channel arrays are BGR(A)
            array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
        return self.Image.fromarray(np.ascontiguousarray(array))

    def capture_figure(self, figure: Any) -> None:
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
            self.add_encoded(buffer.getvalue())
        finally:
            self.plt.close(figure)

    def capture_open_figures(self) -> None:
        """Figures left open at the end of a cell are shown, as in a notebook."""
        if self.plt is None:
            return
        for number in self.plt.get_fignums():
            self.capture_figure(self.plt.figure(number))

    def snapshot_files(self) -> dict[str, tuple[int, int]]:
        """Image files under the session directory with (mtime, size): compared after the cell to find new ones."""
        found: dict[str, tuple[int, int]] = {}
        for root, dirs, files in os.walk("."):
            dirs[:] = [d for d in dirs if not d.startswith(".")][:50]
            for name in files:
                if name.lower().endswith(IMAGE_SUFFIXES):
                    path = os.path.join(root, name)[2:]
                    try:
                        stat = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (stat.st_mtime_ns, stat.st_size)
            if len(found) > 500:
                break
        return found

    def collect_saved_files(self, before: dict[str, tuple[int, int]], input_names: set[str]) -> None:
        """Image files the cell wrote or changed (the inputs written at open are not the cell's)."""
        limit = int(self.limits["max_images_per_cell"])
        for path, signature in sorted(self.snapshot_files().items()):
            if before.get(path) == signature or (path in input_names and path not in before):
                continue
            if len(self.captured) > limit:  # enough to fill the cell's quota (and say some were left out)
                self.notes.append(f"more image files were written than the {limit} images a cell returns; the rest are not read")
                break
            try:
                with open(path, "rb") as handle:
                    self.add_encoded(handle.read())
            except Exception as exc:  # noqa: BLE001 - a half-written or non-image file
                self.notes.append(f"saved file {path} could not be read as an image: {type(exc).__name__}")

    def add_encoded(self, data: bytes) -> None:
        """Encoded image bytes: a PNG that already meets the conventions is passed on as is (no decode/encode)."""
        image = self.Image.open(io.BytesIO(data))
        width, height = image.size
        as_is = (
            image.format == "PNG" and image.mode in ("RGB", "RGBA", "L", "LA") and min(width, height) >= MIN_SIDE
            and max(width, height) <= MAX_ASPECT * min(width, height) and width * height <= MAX_SENT_PIXELS
        )
        if as_is:
            image.verify()  # chunk CRCs, without decoding pixels
            self.captured.append(data)
        else:
            image.load()
            self.captured.append(image)

    def encode_captured(self) -> list[str]:
        """The cell's images as base64 PNG: duplicates dropped, at most `max_images_per_cell`; the list is reset."""
        encoded, seen = [], set()
        limit = int(self.limits["max_images_per_cell"])
        size_counts: dict[tuple[int, int], int] = {}
        for image in self.captured:
            size_counts[self._size_of(image)] = size_counts.get(self._size_of(image), 0) + 1
        for image in self.captured:
            try:
                data = self._finalize_image(image)
                # same pixels shown twice (saved and displayed): compare pixels only when sizes collide
                digest = self._pixel_digest(data) if size_counts[self._size_of(image)] > 1 else hashlib.sha1(data).digest()
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"an image could not be encoded: {type(exc).__name__}: {exc}")
                continue
            if data is None or digest in seen:
                continue
            seen.add(digest)
            if len(encoded) >= limit:
                self.notes.append(f"only the first {limit} images of this cell are kept")
                break
            encoded.append(base64.b64encode(data).decode())
        self.captured = []
        return encoded

    def _size_of(self, image: Any) -> tuple[int, int]:
        return self.Image.open(io.BytesIO(image)).size if isinstance(image, bytes) else image.size

    def _pixel_digest(self, data: bytes | None) -> bytes:
        if data is None:
            return b""
        image = self.Image.open(io.BytesIO(data))
        return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).digest()

    def _finalize_image(self, image: Any) -> bytes | None:
        """PNG bytes within the conventions, or None (with a note) for an image that cannot be sent."""
        if isinstance(image, bytes):
            return image
        width, height = image.size
        if width * height > (self.Image.MAX_IMAGE_PIXELS or 1 << 62):
            self.notes.append(f"dropped a {width}x{height} image: too many pixels")
            return None
        if max(width, height) / max(1, min(width, height)) > MAX_ASPECT:
            self.notes.append(f"dropped a {width}x{height} image: aspect ratio above {MAX_ASPECT}")
            return None
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            has_alpha = "A" in image.mode or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        if width * height > MAX_SENT_PIXELS:
            scale = (MAX_SENT_PIXELS / (width * height)) ** 0.5
            image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), self.Image.BILINEAR)
            self.notes.append(f"a {width}x{height} image was downscaled to {image.size[0]}x{image.size[1]}")
        elif min(width, height) < MIN_SIDE:
            scale = UPSCALE_TO / max(1, min(width, height))
            image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), self.Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
