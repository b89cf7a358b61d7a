"""Lotfi et al. (2022) compression bound, end to end, for an MLP classifier.

train in a random Kronecker subspace -> learned quantization with QAT -> exact arithmetic-coded
length -> prefix-free code + bits paying for the hyperparameter choices -> Catoni's bound
(optimised over lambda with a union bound), delta = 0.05.

The prior (everything fixed before the data is seen): architecture, seed (theta_0 and P), d,
L, the training recipe. A data-dependent prior trains theta_0 on a held-out part of the
training set; the bound then uses only the remaining n points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from paper_pacbayes import bounds, coding
from paper_pacbayes.quantize import assign, init_codebook, straight_through, to_fp16
from paper_pacbayes.recipe import Recipe
from paper_pacbayes.subspace import SubspaceModel, build, n_params

Progress = Callable[[Iterable, str], Iterable]
# offsets of a run's seed (part of the results: changing one changes the numbers)
RANDOM_LABELS_SEED = 10_000  # the random-label control's labels
PRIOR_SPLIT_SEED = 20_000  # which training points train a data-dependent prior


def random_labels(n: int, classes: int, seed: int) -> np.ndarray:
    """n labels drawn uniformly from ``classes`` for the run's ``seed`` (the random-label control)."""
    return np.random.default_rng(RANDOM_LABELS_SEED + seed).integers(0, classes, size=n)


def prior_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the training points a data-dependent prior is trained on, the points the bound is computed on): a
    permutation of the n points for the run's ``seed``, split after round(fraction * n)."""
    perm = np.random.default_rng(PRIOR_SPLIT_SEED + seed).permutation(n)
    k = int(round(fraction * n))
    return perm[:k], perm[k:]


def _no_progress(items: Iterable, description: str) -> Iterable:
    return items


def _batches(n: int, batch: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)  # CPU generator: same order on any device
    for i in range(0, n, batch):
        yield order[i:i + batch]


@torch.no_grad()
@torch.no_grad()
def error_rate(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
               batch: int = 8192) -> float:
    wrong = 0
    for i in range(0, len(y), batch):
        wrong += (forward(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum().item()
    return wrong / len(y)


def _fit(params, loss_fn, n: int, epochs: int, lr: float, batch: int, gen: torch.Generator,
         progress: Progress, what: str) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for _epoch in progress(range(epochs), what):
        for idx in _batches(n, batch, gen):
            opt.zero_grad(set_to_none=True)
            loss_fn(idx).backward()
            opt.step()


def pretrain_prior(x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, epochs: int, n_classes: int = 10,
                   device: str = "cpu", progress: Progress = _no_progress) -> torch.Tensor:
    """Train all parameters on the prior's own data; return the flat weights (theta_0)."""
    x, y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    torch.manual_seed(seed)
    net = build(recipe.arch, x.shape[1], recipe.hidden, n_classes).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    _fit(net.parameters(), lambda i: F.cross_entropy(net(x[i]), y[i]), len(y), epochs, 1e-3, recipe.batch_size,
         gen, progress, "prior epochs")
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def compression_bound(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, recipe: Recipe,
                      seed: int, n_classes: int = 10, theta0: torch.Tensor | None = None, device: str = "cpu",
                      progress: Progress = _no_progress) -> dict:
    """Run the whole pipeline; every number needed to recompute the bound is returned."""
    t0 = time.perf_counter()
    x_t, y_t = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    xe_t, ye_t = torch.as_tensor(x_test, device=device), torch.as_tensor(y_test, device=device)
    n = len(y_t)
    torch.manual_seed(seed)
    net = build(recipe.arch, x_t.shape[1], recipe.hidden, n_classes)
    model = SubspaceModel(net, recipe.subspace_dim, seed, theta0=None if theta0 is None else theta0.cpu()).to(device)
    gen = torch.Generator().manual_seed(seed + 2)
    _fit([model.w], lambda i: F.cross_entropy(model(x_t[i]), y_t[i]), n, recipe.epochs, recipe.lr,
         recipe.batch_size, gen, progress, "subspace epochs")
    t_train = time.perf_counter()
    train_err = error_rate(model, x_t, y_t)

    centroids = torch.nn.Parameter(init_codebook(model.w, recipe.levels, recipe.lloyd_steps))
    _fit([model.w, centroids], lambda i: F.cross_entropy(model(x_t[i], straight_through(model.w, centroids)),
                                                         y_t[i]),
         n, recipe.qat_epochs, recipe.qat_lr, recipe.batch_size, gen, progress, "QAT epochs")
    c16 = to_fp16(centroids)
    symbols = assign(model.w.detach(), c16)
    wq = c16[symbols]
    train_err_q = error_rate(lambda b: model(b, wq), x_t, y_t)
    test_err_q = error_rate(lambda b: model(b, wq), xe_t, ye_t)
    t_quant = time.perf_counter()

    parts = coding.message_bits(symbols.cpu().numpy(), recipe.levels)
    bits = parts["prefix_free_bits"] + recipe.misc_bits
    kl = bounds.kl_from_bits(bits)
    out = {
        "bound": bounds.catoni_opt(train_err_q, kl, n, recipe.delta),
        "bound_mcallester": bounds.mcallester(train_err_q, kl, n, recipe.delta),
        "bound_occam": bounds.occam(train_err_q, kl, n, recipe.delta),
        "train_error": train_err, "train_error_quantized": train_err_q, "test_error_quantized": test_err_q,
        "bits": bits, **parts, "kl_nats": kl, "n_train": n, "n_params": n_params(net),
        "compression_ratio": 32 * n_params(net) / bits, "levels_used": int(torch.unique(symbols).numel()),
        "time_train_s": t_train - t0, "time_quantize_s": t_quant - t_train,
        "time_code_s": time.perf_counter() - t_quant, "recipe": asdict(recipe),
    }
    out["bound_recomputed_check"] = math.isclose(out["bound"], bounds.catoni_opt(
        out["train_error_quantized"], out["bits"] * math.log(2), out["n_train"], recipe.delta))
    return out
