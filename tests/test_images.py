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


def test_sixteen_bit_and_wide_integer_images_are_scaled_not_clipped():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    assert np.array_equal(to_numpy(sixteen), to_numpy(Image.fromarray(grey, mode="L")))
    assert np.array_equal(to_pil(sixteen), to_numpy(Image.fromarray(grey, mode="L")))
    assert np.array_equal(to_numpy(grey.astype(np.uint16) * 257)[..., 0], grey)
    assert np.array_equal(to_numpy(grey.astype(np.int64))[..., 0], grey)  # was all white
    assert to_numpy(np.array([[0, 1]]))[0, 1, 0] == 255  # 0/1 integers: black and white
    with pytest.raises(ValueError, match=r"an integer image holds values in \[0, 255\].*"
                                         r"spans \[-5, 300\]"):
        to_numpy(np.array([[-5, 300]]))
    with pytest.raises(ValueError, match=r"mode I with values in \[0, 1000\]"):
        to_numpy(Image.fromarray(np.array([[0, 1000]], dtype=np.int32)))


def test_to_tensor_refuses_floats_outside_0_1_and_display_still_clips():
    arr = np.full((4, 4, 3), 200.0)
    with pytest.raises(ValueError, match=r"spans \[200, 200\]: from \[0, 255\] use x / 255"):
        to_tensor(arr)  # used to give an all-white picture
    assert torch.equal(to_tensor(arr / 255), to_tensor(arr.astype(np.uint8)))
    assert to_numpy(np.full((2, 2, 3), 3.0))[0, 0, 0] == 255  # shown clipped, as matplotlib does


def test_things_that_are_not_images_are_named():
    with pytest.raises(TypeError, match="image is None"):
        to_numpy(None)
    with pytest.raises(TypeError, match=r"image is a path \('a.png'\): open the file first"):
        to_pil("a.png")
    with pytest.raises(ValueError, match=r"shape \(3, 8, 8\).*arr.transpose\(1, 2, 0\)"):
        to_numpy(np.zeros((3, 8, 8)))
    assert to_numpy(np.zeros((8, 8, 1), np.uint8)).shape == (8, 8, 3)
