"""Image helpers at the trajectory level (the package-wide layering is tests/test_layering.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from codedance_cli.trajectory import media
from codedance_cli.trajectory.schema import Trajectory, encode_image, question_text



def png(width: int, height: int) -> bytes:
    return encode_image(Image.new("RGB", (width, height), "red"))


def test_data_url_round_trip_and_mime_from_magic():
    for data, mime in [(png(3, 3), "image/png"), (encode_image(Image.new("RGB", (3, 3)), "JPEG"), "image/jpeg"),
                       (b"GIF89a...", "image/gif"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp")]:
        url = media.data_url(data)
        assert url.startswith(f"data:{mime};base64,") and media.decode_data_url(url) == data
    with pytest.raises(ValueError, match="not a base64 data URL"):
        media.decode_data_url("https://example.com/a.png")


def test_fit_image_respects_the_pixel_budget():
    fitted = media.fit_image(png(1000, 500), 100_000)
    width, height = Image.open(io.BytesIO(fitted)).size
    assert width * height <= 100_000 and abs(width / height - 2) < 0.02


def test_question_text_lists_the_options_with_letters():
    task = Trajectory(task_id="t", question="Which?", choices=["x", "y"])
    assert question_text(task) == "Which?\nOptions:\nA. x\nB. y"
