"""Repeat-factor sampling (LVIS, Gupta et al. 2019): images with rare classes appear more often in each epoch.

For class c, ``f_c`` is the fraction of training images that contain c and ``r_c = max(1, sqrt(t / f_c))``; an
image's factor is the largest ``r_c`` among its classes (1 for an image without labels). Each epoch an image appears
``floor(r)`` times, plus once more with probability ``frac(r)`` (stochastic rounding, as Detectron2's
``RepeatFactorTrainingSampler``), in an order shuffled by the same draw. The draw depends only on the run's seed and
the epoch, so a resumed run replays the same sequence, and every DDP rank draws the same list and takes its own shard.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Sampler
from ultralytics.data.build import InfiniteDataLoader

from yolocustom.features._base import TrainerBase


@dataclass(frozen=True)
class RepeatFactors:
    """Factors for one training set.

    Attributes:
        image (list[float]): Factor of each image, in dataset order.
        klass (list[float]): ``r_c`` per class id (1.0 for a class with no image).
        image_fraction (list[float]): ``f_c`` per class id.
        instances (list[list[int]]): Per image, its instance count per class (sparse as ``[[class, count], ...]``).
    """

    image: list[float]
    klass: list[float]
    image_fraction: list[float]
    instances: list[list[list[int]]]

    def expected_images(self) -> float:
        """Expected images per epoch: the sum of the image factors."""
        return float(sum(self.image))

    def instance_shares(self, nc: int) -> tuple[list[float], list[float]]:
        """Each class's share of instances per epoch: as loaded, and expected under the factors."""
        before, after = [0.0] * nc, [0.0] * nc
        for r, counts in zip(self.image, self.instances):
            for c, n in counts:
                before[c] += n
                after[c] += r * n
        tb, ta = sum(before) or 1.0, sum(after) or 1.0
        return [b / tb for b in before], [a / ta for a in after]


def compute_repeat_factors(image_classes: Sequence[Sequence[int]], nc: int, threshold: float) -> RepeatFactors:
    """LVIS repeat factors from each image's class ids (one entry per instance).

    Args:
        image_classes: Per training image, the class id of each of its instances.
        nc (int): Number of classes.
        threshold (float): ``t``; classes in fewer than a fraction ``t`` of the images are repeated.
    """
    n_images = max(len(image_classes), 1)
    images_with = [0] * nc
    instances = []
    for classes in image_classes:
        ids, counts = np.unique(np.asarray(classes, dtype=int), return_counts=True)
        instances.append([[int(c), int(n)] for c, n in zip(ids, counts)])
        for c in ids:
            images_with[int(c)] += 1
    fraction = [n / n_images for n in images_with]
    klass = [max(1.0, math.sqrt(threshold / f)) if f > 0 else 1.0 for f in fraction]
    image = [max((klass[c] for c, _ in counts), default=1.0) for counts in instances]
    return RepeatFactors(image=image, klass=klass, image_fraction=fraction, instances=instances)


class RepeatFactorSampler(Sampler[int]):
    """Yields one epoch's repeat-factor draw (this rank's shard); ``set_epoch`` selects the epoch.

    Ultralytics' ``InfiniteDataLoader`` keeps one iterator alive across epochs and, with workers, prefetches the next
    pass before the trainer reaches the next epoch, so ``__iter__`` cannot simply read ``self.epoch``: each call draws
    the epoch after the previous call's, and ``set_epoch`` only repositions the sampler when no pass for that epoch
    has started yet. ``rewind`` (called by ``RepeatFactorLoader.reset``) restarts at the current epoch when the
    loader throws its iterator, and any prefetched pass, away.

    Args:
        factors (Sequence[float]): Per-image repeat factors.
        seed (int): The run's seed; epoch ``e`` draws from ``numpy.random.default_rng([seed, e])``.
        rank (int): This process's rank (0 without DDP).
        world_size (int): Number of ranks (1 without DDP). The epoch's list is padded by wrapping to a multiple of it,
            so every rank gets the same number of samples, then rank ``k`` takes positions ``k, k + world_size, ...``.
        epoch (int): The first epoch.
    """

    def __init__(self, factors: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1, epoch: int = 0):
        self.factors = np.asarray(factors, dtype=np.float64)
        self.seed, self.rank, self.world_size = int(seed), int(rank), max(int(world_size), 1)
        self.epoch = self._next = epoch
        self._started = epoch - 1
        self._cache: dict[int, np.ndarray] = {}

    def draw(self, epoch: int) -> np.ndarray:
        """The whole epoch's list of image indices (identical on every rank)."""
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            whole = np.floor(self.factors)
            counts = (whole + (rng.random(len(self.factors)) < self.factors - whole)).astype(np.int64)
            indices = np.repeat(np.arange(len(self.factors)), counts)
            if len(self._cache) > 2:  # len() and a prefetched next pass need at most two epochs at a time
                self._cache.pop(min(self._cache))
            self._cache[epoch] = indices[rng.permutation(len(indices))]
        return self._cache[epoch]

    def shard(self, epoch: int) -> np.ndarray:
        """This rank's part of ``draw(epoch)``."""
        full = self.draw(epoch)
        per_rank = math.ceil(len(full) / self.world_size)
        padded = np.resize(full, per_rank * self.world_size)  # wraps around, like DistributedSampler's padding
        return padded[self.rank :: self.world_size]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (for ``len``) and, unless a prefetching loader already started it, the next draw."""
        self.epoch = epoch
        if self._started < epoch:
            self._next = epoch

    def rewind(self) -> None:
        """The loader discarded its iterator: the next pass is the current epoch's again."""
        self._next, self._started = self.epoch, self.epoch - 1

    def __iter__(self) -> Iterator[int]:
        epoch, self._next, self._started = self._next, self._next + 1, self._next
        return iter(self.shard(epoch).tolist())

    def __len__(self) -> int:
        return len(self.shard(self.epoch))


class RepeatFactorLoader(InfiniteDataLoader):
    """Ultralytics' ``InfiniteDataLoader`` whose ``reset`` also rewinds its ``RepeatFactorSampler``.

    Ultralytics resets the train loader at the start of an epoch (``close_mosaic``), discarding a pass the workers may
    already have started; the sampler must then draw the current epoch again, not the one after.
    """

    def reset(self) -> None:
        super().reset()
        if isinstance(self.sampler, RepeatFactorSampler):
            self.sampler.rewind()


def make_loader(loader: Any, sampler: RepeatFactorSampler) -> RepeatFactorLoader:
    """A loader like ``loader`` (Ultralytics' dataset, workers, collate, seeding) drawing from ``sampler``."""
    options = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "collate_fn": loader.collate_fn,
        "worker_init_fn": loader.worker_init_fn,
        "generator": loader.generator,
        "drop_last": loader.drop_last,
    }
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return RepeatFactorLoader(dataset=loader.dataset, sampler=sampler, shuffle=False, **options)


def describe(factors: RepeatFactors, names: Mapping[int, str], threshold: float, n_images: int) -> list[str]:
    """Lines for ``--dry-run``: expected epoch size and each class's share of instances before/after."""
    before, after = factors.instance_shares(len(names))
    lines = [
        f"threshold t={threshold:g}: {n_images} train images -> {factors.expected_images():.1f} expected per epoch "
        f"(x{factors.expected_images() / max(n_images, 1):.2f}); images repeated: "
        f"{sum(r > 1 for r in factors.image)}",
        f"{'id':>4} {'class':<20} {'f_c':>7} {'r_c':>6} {'share before':>13} {'share after':>12}",
    ]
    for i, name in names.items():
        lines.append(
            f"{i:>4} {name:<20} {factors.image_fraction[i]:7.3f} {factors.klass[i]:6.2f} {before[i]:13.1%} "
            f"{after[i]:12.1%}"
        )
    return lines


class RepeatFactorSamplingMixin(TrainerBase):
    """Repeat-factor sampling of the training images.

    Hooks:
        ``get_dataloader``: for the train split, lets Ultralytics build its dataset and loader as usual (labels
            verified and cached, augmentation, workers, seeding), computes the factors from the labels that dataset
            actually loaded, and returns the same kind of ``InfiniteDataLoader`` over the same dataset with a
            ``RepeatFactorSampler`` (sharded by rank under DDP) in place of the shuffling. Val is untouched.
        ``_model_train``: runs at the start of every epoch, before the loader is iterated; sets the sampler's epoch
            (Ultralytics calls ``set_epoch`` itself only under DDP). A resumed run sets its start epoch here.
    The epoch length varies with the draw; Ultralytics sizes warmup from the first epoch's batch count.
    """

    yc_repeat_factors: RepeatFactors | None = None

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train") -> Any:
        loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
        if mode != "train":
            return loader
        from ultralytics.utils import LOGGER, RANK

        threshold = self.yc_recipe.features.repeat_factor_sampling.threshold
        labels = loader.dataset.labels
        factors = compute_repeat_factors([lb["cls"].flatten().astype(int) for lb in labels], self.data["nc"], threshold)
        self.yc_repeat_factors = factors
        world = max(getattr(self, "world_size", 1) or 1, 1)
        sampler = RepeatFactorSampler(factors.image, seed=self.args.seed, rank=max(RANK, 0), world_size=world)
        if hasattr(loader, "close"):
            loader.close()
        if RANK in {-1, 0}:
            LOGGER.info(
                f"repeat_factor_sampling: t={threshold:g}, {len(labels)} images -> "
                f"{factors.expected_images():.1f} expected per epoch"
            )
        return make_loader(loader, sampler)

    def _model_train(self) -> None:
        sampler = getattr(getattr(self, "train_loader", None), "sampler", None)
        if isinstance(sampler, RepeatFactorSampler):
            sampler.set_epoch(getattr(self, "epoch", 0))
        super()._model_train()
