"""PNG/JPEG decoding and preprocessing on real radiographs (tests/data/images)."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.cohort.images import UnsupportedFormat, read_image, sniff_format
from core.cohort.preprocess import PreprocessConfig, preprocess, to_model_input
from core.errors import ImageError, InputError


def test_rgb_jpeg_becomes_greyscale(images_dir):
    path = images_dir / "IM-0115-0001.jpeg"
    assert Image.open(path).mode == "RGB"
    img = read_image(path)
    assert img.format == "jpeg" and img.pixels.shape == (224, 224)
    expected = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
    assert np.allclose(img.pixels, expected, atol=1e-6)


def test_16_bit_png_uses_its_full_depth(images_dir):
    png16 = read_image(images_dir / "nih_dx_16bit.png")
    png8 = read_image(images_dir / "nih_dx_8bit.png")
    assert Image.open(images_dir / "nih_dx_16bit.png").mode.startswith("I")
    assert png16.format == png8.format == "png"
    assert np.allclose(png16.pixels, png8.pixels, atol=1e-6)  # 16-bit = 8-bit x 257
    assert png16.pixels.max() > 0.9


def test_16_bit_png_keeps_fine_steps(tmp_path):
    ramp = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    pixels = read_image(tmp_path / "ramp.png").pixels
    assert len(np.unique(pixels)) == 1024  # not truncated to 8 bit
    assert np.allclose(pixels, ramp / 65535, atol=1e-6)


def test_format_comes_from_content(images_dir, tmp_path):
    shutil.copyfile(images_dir / "person1_bacteria_1.jpeg", tmp_path / "scan.png")
    assert read_image(tmp_path / "scan.png").format == "jpeg"
    shutil.copyfile(images_dir / "nih_dx_8bit.png", tmp_path / "scan.dcm")
    assert read_image(tmp_path / "scan.dcm").format == "png"
    assert sniff_format(b"hello world") is None


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", UnsupportedFormat), (b"patient_id,image\n1,a.png\n", UnsupportedFormat)],
)
def test_non_images_are_rejected_naming_the_file(tmp_path, content, error):
    path = tmp_path / "not_an_image.png"
    path.write_bytes(content)
    with pytest.raises(error, match=r"not_an_image\.png"):
        read_image(path)


def test_truncated_jpeg_raises_image_error(images_dir, tmp_path):
    data = (images_dir / "IM-0117-0001.jpeg").read_bytes()
    (tmp_path / "cut.jpeg").write_bytes(data[:200])
    with pytest.raises(ImageError, match=r"cut\.jpeg"):
        read_image(tmp_path / "cut.jpeg")


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_preprocess_resizes_to_uint16_square(images_dir):
    pixels = read_image(images_dir / "nih_dx_8bit.png").pixels
    out = preprocess(pixels, PreprocessConfig(resolution=64))
    assert out.dtype == np.uint16 and out.shape == (64, 64)
    # Grey levels survive: mean brightness stays, the full range is used.
    assert abs(out.mean() / 65535 - pixels.mean()) < 0.01
    same = preprocess(pixels, PreprocessConfig(resolution=256))
    assert np.array_equal(same, np.round(pixels * 65535).astype(np.uint16))


def test_resize_is_antialiased():
    stripes = np.zeros((256, 256), np.float32)
    stripes[:, ::2] = 1.0  # 1-pixel stripes alias to all-black or all-white without a filter
    out = preprocess(stripes, PreprocessConfig(resolution=32)) / 65535
    assert np.allclose(out, 0.5, atol=0.05)


def test_center_crop_cuts_a_centred_square():
    image = np.zeros((100, 200), np.float32)
    image[:, 50:150] = 1.0  # the centred 100 x 100 square is white
    out = preprocess(image, PreprocessConfig(resolution=20, center_crop=1.0))
    assert out.min() == 65535
    whole = preprocess(image, PreprocessConfig(resolution=20))
    assert whole.min() == 0  # without the crop the black sides stay


def test_to_model_input_range():
    x = np.array([[0, 32768, 65535]], dtype=np.uint16)
    t = to_model_input(x)
    assert t.dtype == torch.float32
    assert torch.allclose(t, torch.tensor([[-1024.0, 0.0156, 1024.0]]), atol=0.01)
    assert torch.equal(to_model_input(torch.from_numpy(x.astype(np.int32))), t)


def test_preprocess_config_round_trip_and_key():
    cfg = PreprocessConfig(resolution=224, center_crop=0.9)
    assert PreprocessConfig.from_json(cfg.to_json()) == cfg
    assert cfg.key() != PreprocessConfig(resolution=224).key()
    assert cfg.key() == PreprocessConfig(224, 0.9).key()
    with pytest.raises(InputError):
        PreprocessConfig(resolution=224, center_crop=1.5)
