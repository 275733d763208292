"""The display's upscalers on a real headless GL context (EGL): pixels of the 1280x720 canvas."""
import numpy as np
import pytest

from matrix_sim.client.display import AUTO, CANVAS_SIZE, UPSCALERS, Display, resolve_upscaler
from matrix_sim.world.renderer import create_context


@pytest.fixture(scope="module")
def ctx():
    context = create_context()
    yield context
    context.release()


def stripes(width=256, height=144, period=8):
    """Vertical black and white stripes: every upscaler must keep them, sharper ones with steeper edges."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, (np.arange(width) // (period // 2)) % 2 == 1] = 255
    return image


def test_auto_picks_bilinear_on_a_software_rasteriser_and_lanczos_on_a_gpu(ctx):
    assert resolve_upscaler(AUTO, "llvmpipe (LLVM 15.0.7, 256 bits)") == "bilinear"
    assert resolve_upscaler(AUTO, "NVIDIA H100 80GB HBM3/PCIe/SSE2") == "lanczos"
    assert resolve_upscaler("edge", "llvmpipe") == "edge"           # an explicit choice is kept
    display = Display(ctx)                                          # this machine's renderer decides
    expected = "bilinear" if "llvmpipe" in ctx.info["GL_RENDERER"].lower() else "lanczos"
    assert display.upscaler == expected
    display.release()
    with pytest.raises(ValueError, match="unknown upscaler"):
        Display(ctx, "nearest")


@pytest.mark.parametrize("name", UPSCALERS)
def test_every_upscaler_fills_the_canvas_with_the_frame(ctx, name):
    display = Display(ctx, name)
    display.upload(stripes())
    canvas = display.render_canvas([]).astype(np.int16)
    display.release()
    assert canvas.shape == (CANVAS_SIZE[1], CANVAS_SIZE[0], 3)
    row = canvas[360, :, 0]
    # 256 px of 8-px stripes -> 32 periods across 1280 px: 40 px each, dark then bright
    period_means = row.reshape(32, 40)
    assert (period_means[:, 4:16].mean(1) < 40).all() and (period_means[:, 24:36].mean(1) > 215).all()
    assert np.abs(canvas[100] - canvas[600]).max() <= 2              # stripes are vertical: rows agree


def test_sharper_upscalers_have_steeper_edges(ctx):
    def steepest_step(name):
        display = Display(ctx, name)
        display.upload(stripes())
        row = display.render_canvas([])[360, :, 0].astype(int)
        display.release()
        return int(np.abs(np.diff(row)).max())

    bilinear = steepest_step("bilinear")                             # 255 / 5 px of ramp at 5x
    assert bilinear <= 55 and steepest_step("lanczos") > bilinear + 5 and steepest_step("edge") > bilinear + 5
