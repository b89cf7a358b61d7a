"""Datasets, offline first.

FashionMNIST is looked for, in order: an explicit path (argument or $PAPERCLUB_FMNIST),
the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), the
download cache, and finally the standard download. CIFAR-10/100 (python pickle format):
an explicit path (argument or $PAPERCLUB_CIFAR; the extracted folder, its parent, or the
tarball), the download cache, then the standard download; no system package ships CIFAR.
When all fail the error names every place it looked. sklearn's digits ship inside
scikit-learn.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

FMNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")


class DataNotFound(FileNotFoundError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("PAPERCLUB_CACHE", Path.home() / ".cache" / "paperclub"))


def read_idx(path: Path) -> np.ndarray:
    """IDX file (optionally gzipped): big-endian magic, dims, then uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FMNIST_FILES.values())


def _download(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FMNIST_FILES.values():
        tmp = folder / f".{name}.part"
        urllib.request.urlretrieve(FMNIST_URL + name, tmp)  # noqa: S310 - fixed https/http dataset URL
        tmp.replace(folder / name)


def fmnist_dir(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    tried = []
    explicit = path or os.environ.get("PAPERCLUB_FMNIST")
    if explicit:
        if _complete(Path(explicit)):
            return Path(explicit)
        tried.append(f"path {explicit} (missing {', '.join(FMNIST_FILES.values())})")
    else:
        tried.append("no explicit path (data_dir=... or $PAPERCLUB_FMNIST)")
    if _complete(DEBIAN_DIR):
        return DEBIAN_DIR
    tried.append(f"{DEBIAN_DIR} (Debian package dataset-fashion-mnist not installed)")
    cached = cache_dir() / "fashion-mnist"
    if _complete(cached):
        return cached
    if download:
        try:
            _download(cached)
            return cached
        except OSError as exc:
            tried.append(f"download from {FMNIST_URL} into {cached} failed ({exc})")
    else:
        tried.append(f"{cached} (download disabled)")
    raise DataNotFound("FashionMNIST not found; looked at: " + "; ".join(tried)
                       + ". Install it with `apt-get install dataset-fashion-mnist` or pass data_dir=...")


def load_fmnist(path: str | os.PathLike | None = None, download: bool = True):
    """(x_train uint8 [60000, 784], y_train, x_test [10000, 784], y_test)."""
    folder = fmnist_dir(path, download)
    arrays = {k: read_idx(folder / f) for k, f in FMNIST_FILES.items()}
    return (arrays["train_images"].reshape(-1, 784), arrays["train_labels"].astype(np.int64),
            arrays["test_images"].reshape(-1, 784), arrays["test_labels"].astype(np.int64))


def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """sklearn digits (1,797 8x8 images), stratified split; pixels 0..16 as uint8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x.astype(np.uint8), y.astype(np.int64), test_size=test_fraction,
                                          stratify=y, random_state=seed)
    return xtr, ytr, xte, yte


CIFAR = {
    "cifar10": {"folder": "cifar-10-batches-py", "tarball": "cifar-10-python.tar.gz",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "labels": b"labels"},
    "cifar100": {"folder": "cifar-100-python", "tarball": "cifar-100-python.tar.gz",
                 "train": ["train"], "test": ["test"], "labels": b"fine_labels"},
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


def cifar_dir(name: str, path: str | os.PathLike | None, download: bool) -> Path:
    spec = CIFAR[name]
    tried = []

    def usable(p: Path) -> Path | None:
        if (p / spec["folder"]).is_dir():
            return p / spec["folder"]
        if p.name == spec["folder"] and p.is_dir():
            return p
        for tarball in (p, p / spec["tarball"]):
            if tarball.is_file() and tarball.name.endswith(".tar.gz"):
                dest = cache_dir() / name
                dest.mkdir(parents=True, exist_ok=True)
                with tarfile.open(tarball) as tar:
                    tar.extractall(dest, filter="data")
                return dest / spec["folder"]
        return None

    explicit = path or os.environ.get("PAPERCLUB_CIFAR")
    if explicit:
        found = usable(Path(explicit))
        if found:
            return found
        tried.append(f"path {explicit} (no {spec['folder']}/ or {spec['tarball']})")
    else:
        tried.append("no explicit path (data_dir=... or $PAPERCLUB_CIFAR)")
    tried.append(f"no system package ships {name}")
    cached = cache_dir() / name
    found = usable(cached)
    if found:
        return found
    if download:
        try:
            cached.mkdir(parents=True, exist_ok=True)
            part = cached / f".{spec['tarball']}.part"
            urllib.request.urlretrieve(CIFAR_URL + spec["tarball"], part)  # noqa: S310 - fixed dataset URL
            part.replace(cached / spec["tarball"])
            return usable(cached)
        except OSError as exc:
            tried.append(f"download from {CIFAR_URL}{spec['tarball']} into {cached} failed ({exc})")
    else:
        tried.append(f"{cached} (download disabled)")
    raise DataNotFound(f"{name} not found; looked at: " + "; ".join(tried))


def load_cifar(name: str, path: str | os.PathLike | None = None, download: bool = True):
    """(x_train uint8 [N, 3072] channel-major, y_train, x_test, y_test)."""
    spec = CIFAR[name]
    folder = cifar_dir(name, path, download)

    def read(parts):
        xs, ys = [], []
        for part in parts:
            with open(folder / part, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")  # noqa: S301 - the dataset's own format
            xs.append(np.asarray(d[b"data"], dtype=np.uint8))
            ys.append(np.asarray(d[spec["labels"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    return (*read(spec["train"]), *read(spec["test"]))


def load(name: str, path: str | os.PathLike | None = None):
    """Float32 standardised features (train statistics) and int labels: (xtr, ytr, xte, yte)."""
    if name == "fmnist":
        xtr, ytr, xte, yte = load_fmnist(path)
    elif name == "digits":
        xtr, ytr, xte, yte = load_digits_split()
    elif name in CIFAR:
        xtr, ytr, xte, yte = load_cifar(name, path)
    else:
        raise ValueError(f"unknown dataset {name!r}; use fmnist, digits, cifar10 or cifar100")
    xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
    mean, std = xtr.mean(), xtr.std()
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte
