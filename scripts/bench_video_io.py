"""Milliseconds to write and read back one clip, with the codec's own threads and with one thread (read_mp4's
choice), at the micro world's size and the paper's; checks that both give the same frames. ``--busy N`` keeps N
other processes spinning meanwhile, as `make eval`'s pool keeps every core busy with a job.

    python scripts/bench_video_io.py [--repeats 20] [--busy 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.video import _encode, read_mp4  # noqa: E402

SHAPES = {"micro 17x32x32": (17, 32, 32), "paper 89x512x512": (89, 512, 512)}


def read_threaded(path: Path) -> np.ndarray:
    """read_mp4 as it was: the decoder's default threads."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def ms(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--busy", type=int, default=0, help="other processes spinning meanwhile")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    print(f"{args.busy} busy processes beside this one")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (t, h, w) in SHAPES.items():
            ramp = np.linspace(0, 255, w, dtype=np.float32)[None, None, :, None]
            clip = np.clip(ramp + rng.normal(0, 8, (t, h, w, 3)), 0, 255).astype(np.uint8)
            path, auto = Path(tmp) / "one.mp4", Path(tmp) / "auto.mp4"
            repeats = max(2, args.repeats // (10 if h > 64 else 1))
            write_one = ms(lambda: _encode(path, clip, 16, {"crf": "0", "preset": "medium", "threads": "1"}), repeats)
            write_auto = ms(lambda: _encode(auto, clip, 16, {"crf": "0", "preset": "medium"}), repeats)
            read_one, read_auto = ms(lambda: read_mp4(path), repeats), ms(lambda: read_threaded(path), repeats)
            same = np.array_equal(read_mp4(path), read_threaded(auto))
            print(f"{name}: write {write_auto:.1f} ms (codec threads) vs {write_one:.1f} ms (1 thread); "
                  f"read {read_auto:.1f} vs {read_one:.1f} ms; same frames: {same}")


if __name__ == "__main__":
    main()
