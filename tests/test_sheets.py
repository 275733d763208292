"""Contact sheets of videos: the tiles are the video's frames at the right times."""
import av
import numpy as np
from PIL import Image

from matrix_sim.eval.sheets import LABEL_HEIGHT, video_sheet

COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 220)]     # one per second of video


def test_video_sheet_takes_a_frame_every_interval(tmp_path):
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        for index in range(48):
            image = np.empty((36, 64, 3), np.uint8)
            image[:] = COLOURS[index // 16]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    sheet = np.asarray(Image.open(video_sheet(video, tmp_path / "sheet.png", every_s=1.0, cols=3, width=64)))
    assert sheet.shape == (36 + LABEL_HEIGHT, 3 * 64, 3)
    for tile, colour in enumerate(COLOURS):
        centre = sheet[LABEL_HEIGHT + 18, tile * 64 + 32].astype(int)
        assert np.abs(centre - colour).max() < 12, (tile, centre)
