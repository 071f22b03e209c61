"""Natural-image memorization and reconstruction (Miconi et al. 2018, §4.2).

An episode shows K grayscale images, each for `prestime` steps followed by `delay` blank
steps, for `cycles` cycles (order reshuffled every cycle); then one of them with a
contiguous part (`erase`, from the top or the bottom, at random) blanked, for `test_time`
steps. The network must output the whole image at the last step. The metric is the mean
squared error on the erased part; chance is the error of predicting the image mean (0: the
images are zero-mean), and a level counts as solved at `solved_fraction` (0.5) of chance:
the recalled part's squared error is at most half of what the cue left missing. That is the
pattern task's criterion in spirit (a fixed amount of error per recalled item, in the item's
own terms, whatever its size): pixels are not quantized, and chance is measured at each
level's image size, so the ratio means the same at every level.

Images come from photographs that ship with scikit-image (cut into patches; training and
evaluation use disjoint photographs, so evaluation images are never seen in training), or
from CIFAR-10 python batches on disk (batches 1-4 for training, 5 held out).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass
from torch import Tensor

from sweep.tasks.base import Episode, SequenceTask, Split

# scikit-image's bundled photographs (no download): disjoint training and evaluation sets.
TRAIN_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "moon",
    "chelsea",
    "hubble_deep_field",
    "immunohistochemistry",
)
EVAL_PHOTOS = ("rocket", "brick", "clock")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ImageSettings:
    """Protocol parameters of the image task (defaults: the paper's setting)."""

    image_size: Annotated[int, Field(ge=4, le=32)] = 32
    num_images: PositiveInt = 3
    cycles: PositiveInt = 3
    prestime: PositiveInt = 20
    delay: NonNegativeInt = 2
    test_time: PositiveInt = 3
    erase: Annotated[float, Field(gt=0, lt=1)] = 0.5
    input_scale: PositiveFloat = 1.0
    source: Literal["skimage", "cifar10"] = "skimage"
    cifar_path: str | None = None  # folder holding data_batch_1 ... data_batch_5
    solved_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5


# The difficulty ladder, easiest first; the paper's setting is `paper` (201 steps).
LEVELS: dict[str, dict[str, Any]] = {
    "tiny": dict(image_size=8, num_images=2, cycles=2, prestime=3, delay=1, test_time=2),
    "small": dict(image_size=8, num_images=3, cycles=2, prestime=4, delay=1, test_time=2),
    "medium": dict(image_size=16, num_images=3, cycles=3, prestime=6, delay=2, test_time=3),
    "large": dict(image_size=24, num_images=3, cycles=3, prestime=10, delay=2, test_time=3),
    "paper": dict(image_size=32, num_images=3, cycles=3, prestime=20, delay=2, test_time=3),
    "huge": dict(image_size=32, num_images=5, cycles=3, prestime=20, delay=2, test_time=3),
}


def _normalise(images: np.ndarray) -> np.ndarray:
    """Per image: zero mean, max |v| = 1 (as in the paper). images: (M, S, S)."""
    images = images - images.mean(axis=(1, 2), keepdims=True)
    peak = np.abs(images).max(axis=(1, 2), keepdims=True)
    return images / np.where(peak > 0, peak, 1.0)


def _resize(images: np.ndarray, side: int) -> np.ndarray:
    """Area-average (M, H, W) images down to (M, side, side)."""
    tensor = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    return torch.nn.functional.adaptive_avg_pool2d(tensor, side).squeeze(1).numpy()


@functools.cache
def skimage_patches(side: int, split: Split) -> np.ndarray:
    """Non-overlapping side x side patches of the split's photographs, each photograph first
    shrunk so its shorter edge holds 4 patches: (M, side, side), normalised."""
    import skimage.color
    import skimage.data

    patches = []
    for name in TRAIN_PHOTOS if split == "train" else EVAL_PHOTOS:
        photo = getattr(skimage.data, name)()
        if photo.ndim == 3:
            photo = skimage.color.rgb2gray(photo[..., :3])
        photo = photo.astype(np.float32)
        scale = 4 * side / min(photo.shape)
        h, w = (
            int(photo.shape[0] * scale) // side * side,
            int(photo.shape[1] * scale) // side * side,
        )
        small = torch.nn.functional.interpolate(
            torch.from_numpy(photo)[None, None], size=(h, w), mode="area"
        )[0, 0].numpy()
        blocks = small.reshape(h // side, side, w // side, side).swapaxes(1, 2)
        patches.append(blocks.reshape(-1, side, side))
    return _normalise(np.concatenate(patches))


def cifar10_images(folder: str, side: int, split: Split) -> np.ndarray:
    """CIFAR-10 python-format batches as grayscale (M, side, side) images, normalised:
    data_batch_1-4 for training, data_batch_5 held out for evaluation."""
    return _cifar10_cached(str(Path(folder).expanduser().resolve()), side, split)


@functools.cache
def _cifar10_cached(folder: str, side: int, split: Split) -> np.ndarray:
    names = [f"data_batch_{i}" for i in (1, 2, 3, 4)] if split == "train" else ["data_batch_5"]
    arrays = []
    for name in names:
        path = Path(folder) / name
        try:
            with path.open("rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.float32).reshape(-1, 3, 32, 32)
        except FileNotFoundError:
            raise ValueError(f"cifar_path: {path} not found (need data_batch_1 ... 5)") from None
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"cifar_path: {path} is not a CIFAR-10 python batch: {e}") from None
        gray = 0.299 * data[:, 0] + 0.587 * data[:, 1] + 0.114 * data[:, 2]
        arrays.append(gray if side == 32 else _resize(gray, side))
    return _normalise(np.concatenate(arrays))


class ImageTask(SequenceTask):
    name = "images"
    settings_class = ImageSettings
    levels = LEVELS
    items = "num_images"
    config: ImageSettings
    metric = "erased_mse"

    def __init__(self, settings: ImageSettings, level: str = "custom"):
        if settings.source == "cifar10" and settings.cifar_path is None:
            raise ValueError("cifar_path: needed with source: cifar10 (the batches' folder)")
        super().__init__(settings, level)
        self._pools = {split: self._load(split) for split in ("train", "eval")}
        # Chance: predicting the image mean (0) leaves the mean squared pixel of the erased
        # part, averaged over the evaluation images.
        self.chance = float(self._pools["eval"].square().mean())
        self.solved_threshold = settings.solved_fraction * self.chance
        # Copying the cue (zeros where it is erased) scores exactly chance: nothing to add.
        self.references: dict[str, float] = {}

    def _load(self, split: Split) -> Tensor:
        c = self.config
        if c.source == "cifar10":
            assert c.cifar_path is not None
            images = cifar10_images(c.cifar_path, c.image_size, split)
        else:
            images = skimage_patches(c.image_size, split)
        return torch.from_numpy(images).reshape(len(images), -1)  # (M, P)

    @property
    def pixels(self) -> int:
        return self.config.image_size**2

    @property
    def picture(self) -> tuple[int, int]:
        return (self.config.image_size, self.config.image_size)

    @property
    def input_size(self) -> int:
        return self.pixels + 1  # + the bias channel

    @property
    def output_size(self) -> int:
        return self.pixels

    def draw(
        self, batch_size: int, generator: torch.Generator, split: Split
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pool = self._pools[split]
        b, k = batch_size, self.config.num_images
        # K distinct images per episode
        chosen = torch.argsort(torch.rand(b, len(pool), generator=generator), dim=1)[:, :k]
        images = pool[chosen]  # (B, K, P)
        which = torch.randint(0, k, (b,), generator=generator)
        targets = images[torch.arange(b), which]  # (B, P)
        erased = self.erased_mask(torch.rand(b, generator=generator) < 0.5)  # (B, P)
        return images, targets.masked_fill(erased, 0.0), targets, erased

    def erased_mask(self, from_top: Tensor) -> Tensor:
        """(B, P) True on the erased rows: the top or the bottom `erase` of the image."""
        side = self.config.image_size
        rows = round(self.config.erase * side)
        row = torch.arange(side).repeat_interleave(side)  # (P,) row index of each pixel
        top = row < rows
        bottom = row >= side - rows
        return torch.where(from_top.unsqueeze(1), top, bottom)

    def score(self, outputs: Tensor, episode: Episode) -> float:
        assert episode.mask is not None
        err = (outputs[-1] - episode.targets).square() * episode.mask
        return (err.sum() / episode.mask.sum()).item()
