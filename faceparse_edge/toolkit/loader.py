"""Training data as a torch Dataset: decoded, resized and augmented on demand in DataLoader
worker processes, or decoded once into memory (`cache`) for sets that fit.

Each sample's augmentation is drawn from its own generator, seeded by (seed, epoch, index):
a run sees the same batches whatever the number of workers or processes, and a resumed run
continues exactly. The sampler hands out (epoch, index) pairs, so workers live for the whole
run. They start from a fresh interpreter (forkserver/spawn): forking a process whose OpenCV
thread pool has run hangs in the child.
"""

import multiprocessing

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..progress import progress_bar
from .augment import Augmenter
from .samples import fix_left_right, load_pair, resize_pair

CACHE_CHOICES = ("auto", "ram", "none")
CACHE_AUTO_BYTES = 2 << 30  # `auto` caches a set whose resized images and masks take less than this
COUNT_IMAGES = 512  # class pixel counts of an uncached set come from this many images


class FaceParsingDataset(Dataset):
    def __init__(self, samples, size: int, mean, std, augment: Augmenter, seed: int = 0,
                 fix: bool = True, cache: str = "auto"):
        self.samples, self.size, self.augment, self.seed, self.fix = samples, size, augment, seed, fix
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1) * 255
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1) * 255
        self.cached = None
        if cache == "ram" or (cache == "auto" and len(samples) * size * size * 4 < CACHE_AUTO_BYTES):
            self.cached = self._decode_all()

    def _load(self, index: int):
        image, mask = load_pair(self.samples[index])
        return resize_pair(image, fix_left_right(mask) if self.fix else mask, self.size)

    def _decode_all(self):
        images = np.empty((len(self.samples), self.size, self.size, 3), np.uint8)
        masks = np.empty((len(self.samples), self.size, self.size), np.uint8)
        with progress_bar() as progress:
            task = progress.add_task("cache train", total=len(self.samples), info="")
            for i in range(len(self.samples)):
                images[i], masks[i] = self._load(i)
                progress.update(task, advance=1)
        return images, masks

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]):
        epoch, index = item
        image, mask = (self.cached[0][index], self.cached[1][index]) if self.cached else self._load(index)
        image, mask = self.augment(image, mask, np.random.default_rng([self.seed, epoch, index]))
        x = (image.transpose(2, 0, 1).astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(x), torch.from_numpy(mask.astype(np.int64))

    def classes_present(self, num_classes: int) -> np.ndarray:
        """(images, classes) booleans: which classes each training mask holds."""
        masks = self.cached[1] if self.cached else (self._load(i)[1] for i in range(len(self)))
        return np.stack([np.bincount(m.ravel(), minlength=num_classes) > 0 for m in masks])

    def class_pixel_counts(self, num_classes: int) -> np.ndarray:
        """Pixels per class over the (resized) set: the weights of the `wce` loss."""
        if self.cached:
            return np.bincount(self.cached[1].ravel(), minlength=num_classes)
        picked = np.linspace(0, len(self) - 1, min(len(self), COUNT_IMAGES)).round().astype(int)  # spread over the set
        return sum(np.bincount(self._load(i)[1].ravel(), minlength=num_classes) for i in picked)


def repeat_factors(present: np.ndarray, threshold: float) -> np.ndarray:
    """Repeat-factor sampling (Gupta et al., LVIS 2019): a class in a fraction f of the images gets
    max(1, sqrt(threshold / f)), and each image the largest factor of the classes it holds."""
    share = np.maximum(present.mean(0), 1e-12)
    per_class = np.maximum(1.0, np.sqrt(threshold / share))
    return np.where(present, per_class, 1.0).max(1)


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding (epoch, index): the epoch reaches workers that outlive it.

    With `weights`, each epoch draws as many images as a plain one, with replacement, each in
    proportion to its weight (the same draw on every process; each takes its share).
    """

    def __init__(self, dataset, weights: np.ndarray | None = None, **kwargs):
        super().__init__(dataset, **kwargs)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def __iter__(self):
        if self.weights is None:
            indices = super().__iter__()
        else:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator).tolist()
            indices = drawn[self.rank:self.total_size:self.num_replicas]
        return ((self.epoch, index) for index in indices)


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)  # one OpenCV thread per worker: the workers are the parallelism
    torch.set_num_threads(1)


def make_loader(dataset: FaceParsingDataset, batch_size: int, workers: int, seed: int,
                rank: int = 0, world: int = 1, weights: np.ndarray | None = None) -> tuple[DataLoader, EpochSampler]:
    """Shuffled batches of `batch_size` per process; the last partial batch is dropped (BatchNorm).

    One sampler for one process and for DDP alike: each of `world` processes takes its share.
    `weights`: draw images in proportion to them (see EpochSampler). Call
    `sampler.set_epoch(epoch)` before each epoch.
    """
    sampler = EpochSampler(dataset, weights, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    context = None
    if workers:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        worker_init_fn=_worker_init if workers else None, multiprocessing_context=context,
                        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
    return loader, sampler
