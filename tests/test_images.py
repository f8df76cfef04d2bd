import numpy as np
import pytest
import torch
from PIL import Image

from sdlearn import image_grid, show_images, to_numpy, to_pil, to_tensor, upscale


def test_round_trip_between_pil_numpy_and_tensor():
    arr = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    t = to_tensor(Image.fromarray(arr))
    assert tuple(t.shape) == (1, 3, 16, 24) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(to_numpy(t[0]), arr)
    assert np.array_equal(np.asarray(to_pil(t[0])), arr)
    assert len(to_pil(t.repeat(2, 1, 1, 1))) == 2


def test_rgba_and_grey_become_rgb():
    assert to_numpy(Image.new("RGBA", (4, 4))).shape == (4, 4, 3)
    assert to_numpy(Image.new("L", (4, 4))).shape == (4, 4, 3)
    assert to_numpy(np.zeros((4, 4))).shape == (4, 4, 3)


def test_float_arrays_are_0_to_1():
    assert to_numpy(np.ones((2, 2, 3)))[0, 0, 0] == 255


def test_bad_tensor_shape_is_explained():
    with pytest.raises(ValueError, match=r"expected \(3, H, W\)"):
        to_numpy(torch.zeros(5, 8, 8))


def test_grid_and_upscale():
    imgs = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(5)]
    grid = image_grid(imgs, cols=3, pad=0)
    assert grid.size == (24, 16)
    assert grid.getpixel((8, 0)) == (40, 0, 0)
    assert upscale(imgs[1], 4).size == (32, 32)
    assert upscale(imgs[1]).size == (256, 256)
    with pytest.raises(ValueError, match="one size"):
        image_grid([imgs[0], Image.new("RGB", (4, 4))])


def test_show_images_makes_a_figure_with_titles():
    fig = show_images([np.zeros((8, 8, 3), np.uint8)] * 3, titles=["a", "b", "c"], show=False)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        show_images([np.zeros((8, 8, 3), np.uint8)] * 3, titles=["a", "b"], show=False)
