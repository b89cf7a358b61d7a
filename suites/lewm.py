"""Suite `lewm`: Maes, Le Lidec, Scieur, LeCun, Balestriero, "LeWorldModel" (arXiv 2603.19312).

Per seed, on Two-Room rendered from above: seeded episodes of a noisy door-seeking expert
(cached); three world models of the same architecture trained end to end from pixels - SIGReg
(the paper), no regulariser (lambda = 0) and VICReg (the PLDM-style alternative); collapse
diagnostics on held-out windows; goal-conditioned planning by batched CEM in latent space under
the paper's protocol (goal 25 env steps ahead on a held-out trajectory, 50-step budget) against
random actions and an oracle CEM on the true simulator; and surprise at teleported or recoloured
frames. Smoke: 32 px, a few hundred steps. Small: 32 px, longer training, more episodes.
`task=pusht` runs the same on Push-T (pymunk; a noisy scripted pusher's data; DINO-WM's success
criterion; no oracle planner; the block teleported or recoloured for surprise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from paper_lewm.config import CEMConfig, ModelConfig
from runners.api import Claim, RunResult, Suite, SuiteConfig, at_tiers, thinned
from runners.progress import Laps, track
from runners.rundir import cache_root

PAPER = "Maes et al. 2026 (arXiv 2603.19312)"


# The collapse test (an operational reading of the paper's claim, set before the first run): the
# unregularised model has collapsed when its embeddings' spread is under a tenth of SIGReg's, or when it
# predicts held-out embeddings no better than a constant (normalised prediction error of 0.9 or more;
# 1.0 is the constant's); SIGReg's model has not, when its normalised error stays under 0.5.
COLLAPSED_STD_RATIO = 0.1
COLLAPSED_PRED_ERR = 0.9
HEALTHY_PRED_ERR = 0.5
# the patch model's training peak over the preflight's count of its activations, measured once: 29.1 GB on an
# H200 against 22.9 GB counted, at LeWM's ViT-tiny width (docs/gpu-results.md; the count leaves out the mask,
# the softmax statistics and the AdaLN terms)
PATCH_TRAINING_MEASURED = 1.27
# seeds a run derives from its own seed s (part of the results: changing one changes the numbers)
COLLAPSE_WINDOWS_SEED = 10_000  # + s: the held-out windows of the collapse diagnostics
PLANNING_EPISODES_SEED = 20_000  # + s: the planning episodes (start and goal)
SURPRISE_SEED = 30_000  # + s: the surprise test's windows and alterations
# the planners of the planning phase: (kind, which trained world model) - one entry per planner
_PLANNERS = {"lewm": ("lewm", "sigreg"), "none": ("lewm", "none"), "vicreg": ("lewm", "vicreg"),
             "oracle": ("oracle", None), "random": ("random", None)}


@dataclass
class Trained:
    """The three world models (SIGReg, none, VICReg) and their training histories, by variant."""

    models: dict
    histories: dict[str, dict]
    keys: dict[str, str] = field(default_factory=dict)  # each model's cache entry


@dataclass
class Planning:
    """Every planner's results on the same episodes (``plan.evaluate``'s dicts), and the episodes."""

    episodes: Any
    results: dict[str, dict]

    def record(self) -> dict:
        """Each episode's start and goal, and which planner succeeded in it."""
        return {"start": self.episodes.start.round(4).tolist(), "goal": self.episodes.goal.round(4).tolist(),
                **{f"success_{k}": r["success"].astype(int).tolist() for k, r in self.results.items()}}


@dataclass
class PatchBaseline:
    """The patch-token world model's size and history, and LeWM's and its results under the paper's CEM."""

    tokens: int
    history: dict
    results: dict[str, dict]


def _windows(cfg, env, data: dict) -> tuple:
    """(training windows, held-out windows): the first ``episodes`` episodes train, the rest are held
    out; both normalised with the training windows' action statistics."""
    from paper_lewm.train import Windows

    n, frames, length = cfg.episodes, data.get("frames"), cfg.model.history + 1
    render = env.render
    if frames is None and cfg.device.startswith("cuda") and hasattr(env, "render_torch"):
        render = partial(env.render_torch, device=cfg.device)  # training windows drawn on demand, on the GPU
    train = Windows.build(None if frames is None else frames[:n], data["actions"][:n], cfg.frameskip, length,
                          states=data["positions"][:n], render=render)
    held = Windows.build(None if frames is None else frames[n:], data["actions"][n:], cfg.frameskip, length,
                         (train.mean, train.std), data["positions"][n:], env.render)
    return train, held


def _train_world_models(cfg, seed: int, train, data_key: str, cache: Path) -> Trained:
    """One architecture trained three ways (cached): SIGReg (the paper), no regulariser, VICReg."""
    from paper_lewm.train import TrainConfig, cached_train
    from runners.phases import Checkpoint

    mcfg = replace(cfg.model, channels=tuple(cfg.model.channels))
    variants = {"sigreg": ("sigreg", cfg.weight), "none": ("none", 0.0), "vicreg": ("vicreg", cfg.vicreg_weight)}
    models, histories, keys = {}, {}, {}
    for name, (reg, weight) in variants.items():
        tcfg = TrainConfig(model=mcfg, regulariser=reg, weight=weight, directions=cfg.directions,
                           frameskip=cfg.frameskip, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=seed,
                           device=cfg.device)
        keys[name] = tcfg.key(data_key)
        models[name], histories[name] = cached_train(
            tcfg, train, data_key, cache, wrap=lambda it, name=name: track(it, f"training ({name})", work="steps"),
            checkpoint=Checkpoint(f"train_{name}"))
    return Trained(models, histories, keys)


def _collapse(cfg, seed: int, env, held, models: dict) -> dict[str, dict]:
    """``diagnostics.collapse`` of every model, on the same held-out windows."""
    import numpy as np

    from paper_lewm import diagnostics

    ep, st = held.draw(cfg.diag_windows, np.random.default_rng(COLLAPSE_WINDOWS_SEED + seed))
    frames, actions = held.window(ep, st)
    positions = env.probe_targets(held.states[ep[:, None], held.frame_steps(st)])
    return {name: diagnostics.collapse(m, frames, actions, positions, seed) for name, m in models.items()}


def _plan(cfg, seed: int, env, held, train, models: dict) -> Planning:
    """Goal-conditioned planning by batched CEM, every planner on the same held-out episodes. On Push-T
    there is no oracle (simulating every CEM candidate in pymunk: ~4 minutes per CEM iteration here)."""
    from paper_lewm import plan

    episodes = plan.episodes_from(held.states, cfg.goal_offset, cfg.eval_episodes, PLANNING_EPISODES_SEED + seed,
                                  keep=env.block_moves if cfg.task == "pusht" else None)
    planners = {k: v for k, v in _PLANNERS.items() if not (cfg.task == "pusht" and k == "oracle")}
    results = {name: plan.evaluate(env, episodes, kind, cfg.cem, cfg.budget, cfg.frameskip, train.unblock,
                                   models.get(variant), seed)
               for name, (kind, variant) in track(list(planners.items()), "planning (CEM, all episodes batched)",
                                                  work="items")}
    return Planning(episodes, results)


def _patch_encoder(cfg, lewm, lewm_key: str) -> tuple:
    """(frozen encoder, predictor width, what identifies the encoder in the cache, its record): DINO-WM's
    pretrained encoder where ``patch_encoder`` names one (the predictor then works at its tokens' width, as
    DINO-WM's does), else the SIGReg model's own, cut after ``patch_depth`` layers (the predictor at LeWM's
    width)."""
    if not cfg.patch_encoder:
        return lewm.encoder, cfg.model.dim, lewm_key, {"source": "the SIGReg model's encoder",
                                                       "depth": cfg.patch_depth}
    from paper_lewm.patch_wm import pretrained_patches

    encoder = pretrained_patches(cfg.patch_encoder, cfg.model.image_size).to(cfg.device)
    identity = {"commit": encoder.commit} if encoder.commit else {"sha256": _directory_digest(cfg.patch_encoder)}
    return (encoder, encoder.width, f"{cfg.patch_encoder}@{next(iter(identity.values()))}",
            {"source": cfg.patch_encoder, **identity})


def _directory_digest(where: str) -> str:
    """The sha256 of a checkpoint directory's files (names and contents): a local encoder's cache identity."""
    import hashlib

    digest = hashlib.sha256()
    for f in sorted(p for p in Path(where).rglob("*") if p.is_file()):
        digest.update(f.relative_to(where).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _patch_model(cfg, seed: int, train, lewm, lewm_key: str, cache: Path):
    """The patch-token world model (a frozen encoder, ``_patch_encoder``; a predictor of LeWM's shape over
    its patch tokens), trained (cached by its encoder's identity and its own settings): (model, history,
    the encoder's record)."""
    import hashlib
    import json
    from dataclasses import asdict

    from paper_lewm.patch_wm import PatchConfig, build, train_patch
    from paper_lewm.train import load_cached, save_cached
    from runners.phases import Checkpoint

    m = cfg.model
    encoder, width, encoder_key, record = _patch_encoder(cfg, lewm, lewm_key)
    pcfg = PatchConfig(depth=cfg.patch_depth, dim=width, layers=m.layers, heads=m.heads, head_dim=m.head_dim,
                       mlp=m.mlp, history=m.history, action_dim=m.action_dim)
    patch = build(encoder, pcfg, m.image_size, seed)
    spec = {"encoder": encoder_key, "patch": asdict(pcfg), "image_size": m.image_size, "steps": cfg.patch_steps,
            "batch": cfg.batch, "lr": cfg.lr, "seed": seed}
    path = Path(cache) / f"patch-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]}.pt"
    history = load_cached(path, patch, cfg.device)
    if history is None:
        history = train_patch(patch, train, cfg.patch_steps, cfg.batch, cfg.lr, seed,
                              wrap=lambda it: track(it, "training the patch-token baseline", work="steps"),
                              checkpoint=Checkpoint("train_patch"))
        save_cached(path, patch, history)
    record.update(tokens_per_frame=int(patch.tokens), token_width=int(patch.inp.in_features), predictor_width=width)
    return patch.eval(), history, record


def _patch_planning(cfg, seed: int, env, train, episodes, lewm, patch, history) -> PatchBaseline:
    """LeWM and the patch-token model plan the first ``patch_episodes`` episodes with the paper's CEM
    (replanning after the horizon)."""
    from paper_lewm import plan

    sub = plan.Episodes(episodes.start[:cfg.patch_episodes], episodes.goal[:cfg.patch_episodes])
    paper_cem = replace(cfg.cem, replan=cfg.cem.horizon)
    results = {name: plan.evaluate(env, sub, "lewm", paper_cem, cfg.budget, cfg.frameskip, train.unblock, model, seed)
               for name, model in track([("lewm_r5", lewm), ("patch", patch)], "planning: LeWM vs patch tokens",
                                        work="items")}
    return PatchBaseline(int(patch.tokens), history, results)


def _plan_latency(cfg, env, episodes, lewm, patch) -> dict[str, float]:
    """Seconds per plan as the paper measures them (``plan.seconds_per_plan``: one environment, the
    paper's CEM, after a warm-up), fp32 and bf16, LeWM (best of 3) and the patch-token model, from the
    first planning episode's start toward its goal."""
    import numpy as np
    import torch

    from paper_lewm import plan

    device = next(lewm.parameters()).device
    frames = torch.from_numpy(env.render(np.stack([episodes.start[0], episodes.goal[0]])))[:, None].to(device)
    paper_cem = replace(cfg.cem, replan=cfg.cem.horizon)
    return {f"{name}_{precision}": min(plan.seconds_per_plan(model, frames, paper_cem, cfg.model.action_dim, precision,
                                                             repeats=3 if name == "lewm" else 1))
            for precision in ("fp32", "bf16") for name, model in (("lewm", lewm), ("patch", patch))}


def _surprise(cfg, seed: int, env, held, model) -> dict:
    """``diagnostics.surprise`` of the SIGReg model at teleported and recoloured frames."""
    from paper_lewm import diagnostics

    return diagnostics.surprise(model, env, held.states, held.actions, held.block, cfg.frameskip,
                                cfg.surprise_samples, SURPRISE_SEED + seed)


def _metrics(collapse: dict, planning: Planning, patch: PatchBaseline, surprise: dict,
             latency: dict[str, float]) -> dict[str, float]:
    """Every metric of a seed; the one place their names are written."""
    m = {f"{name}_{k}": v for name, d in collapse.items() for k, v in d.items()}
    m["collapse_std_ratio"] = collapse["none"]["embedding_std"] / max(collapse["sigreg"]["embedding_std"], 1e-12)
    none_collapsed = (m["collapse_std_ratio"] < COLLAPSED_STD_RATIO
                      or collapse["none"]["norm_pred_err"] >= COLLAPSED_PRED_ERR)
    m["collapse_test"] = float(none_collapsed and collapse["sigreg"]["norm_pred_err"] < HEALTHY_PRED_ERR)
    for name, res in planning.results.items():
        m[f"success_{name}"] = float(res["success"].mean())
        m[f"seconds_per_plan_{name}"] = res["seconds_per_plan"]
        m[f"final_distance_{name}"] = float(res["final_distance"].mean())
    m["success_lewm_minus_random"] = m["success_lewm"] - m["success_random"]
    m["success_lewm_minus_none"] = m["success_lewm"] - m["success_none"]
    for name, res in patch.results.items():
        m[f"success_{name}"] = float(res["success"].mean())
        m[f"seconds_per_plan_{name}"] = res["seconds_per_plan"]
    m["planning_speedup"] = m["seconds_per_plan_patch"] / m["seconds_per_plan_lewm_r5"]  # batched: throughput
    for precision in ("fp32", "bf16"):  # one environment, one plan: the paper's measure
        for name in ("lewm", "patch"):
            m[f"plan_latency_{name}_{precision}"] = latency[f"{name}_{precision}"]
        m[f"planning_speedup_latency_{precision}"] = latency[f"patch_{precision}"] / latency[f"lewm_{precision}"]
    m["patch_tokens_per_frame"] = float(patch.tokens)
    m["surprise_auroc_teleport"] = surprise["auroc_teleport"]
    m["surprise_auroc_colour"] = surprise["auroc_colour"]
    m["surprise_teleport_minus_colour"] = surprise["auroc_teleport"] - surprise["auroc_colour"]
    return m


def _series(histories: dict[str, dict], patch_history: dict) -> dict[str, list]:
    """Training curves, at most ~100 points each: every world model's prediction loss and regulariser,
    and the patch-token model's loss."""
    series = {}
    for name, h in histories.items():
        stride = max(1, len(h["pred_mse"]) // 100)  # one stride for both curves of a model
        series[f"train_pred_mse_{name}"] = [(i, h["pred_mse"][i]) for i in range(0, len(h["pred_mse"]), stride)]
        series[f"train_reg_{name}"] = [(i, h["reg"][i]) for i in range(0, len(h["reg"]), stride)]
    series["train_loss_patch"] = thinned(patch_history["loss"])
    return series


@dataclass
class PatchShape:
    """The patch-token model's tokens per frame, its predictor's width, its widest activation (tokens or
    predictor), its parameters (the predictor's, and a pretrained encoder's: 0 for LeWM's own), and the need
    for that encoder's weights (None for LeWM's own encoder)."""

    tokens: int
    dim: int
    width: int
    predictor: int
    frozen: int
    need: Any = None


def _patch_shape(cfg):
    """``PatchShape`` at ``cfg``, without loading weights (a pretrained encoder's config is read from its
    directory, the local hub cache or the hub); the unmet need where its config cannot be had."""
    import torch

    from paper_lewm.patch_wm import PatchConfig, PatchWM

    m, frozen, need = cfg.model, 0, None
    if cfg.patch_encoder:
        config, need = _pretrained_config(cfg.patch_encoder)
        if config is None:
            return need
        from transformers import AutoModel

        with torch.device("meta"):
            frozen = sum(p.numel() for p in AutoModel.from_config(config).parameters())
        tokens, width, dim = (m.image_size // config.patch_size) ** 2, config.hidden_size, config.hidden_size
    elif m.encoder == "vit":
        tokens, width, dim = (m.image_size // m.vit_patch) ** 2, m.dim, m.dim
    else:
        tokens, width, dim = (m.image_size // 2 ** cfg.patch_depth) ** 2, m.channels[cfg.patch_depth - 1], m.dim
    pcfg = PatchConfig(depth=cfg.patch_depth, dim=dim, layers=m.layers, heads=m.heads, head_dim=m.head_dim,
                       mlp=m.mlp, history=m.history, action_dim=m.action_dim)
    with torch.device("meta"):
        predictor = sum(p.numel() for p in PatchWM(torch.nn.Identity(), pcfg, width, tokens).parameters())
    return PatchShape(tokens, dim, max(width, dim), predictor, frozen, need)


def _pretrained_config(where: str):
    """(a transformers checkpoint's config or None, the need for its weights): from a directory, the
    local hub cache, or the hub (one request, no retries: seconds where it cannot be reached)."""
    from transformers import AutoConfig

    from runners import preflight as pf

    if Path(where).is_dir():
        what = f"weights of the patch encoder {where}"
        try:
            return AutoConfig.from_pretrained(where), pf.Need(what, "a checkpoint directory", "one", True)
        except (OSError, ValueError) as exc:
            return None, pf.Need(what, "a checkpoint directory", f"no readable config.json there ({exc})", False)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(where, "config.json")
    need = pf.hub_access(where, isinstance(cached, str), gated=False)
    if not need.ok:
        return None, need
    return AutoConfig.from_pretrained(str(Path(cached).parent) if isinstance(cached, str) else where), need


@dataclass
class LeWMConfig(SuiteConfig):
    task: str = "tworoom"  # tworoom | pusht
    episodes: int = 300  # training episodes of the data policy
    heldout_episodes: int = 60
    episode_steps: int = 80
    policy_noise: float = 0.3  # fraction of uniformly random actions
    data_seed: int = 0  # the data are shared by every training seed
    frameskip: int = 5
    # the world model; its image_size is the rendered frames', its history the training windows' (history + 1
    # frames); its action_dim is frameskip x 2 (both tasks' actions are 2-D)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(
        image_size=32, channels=(16, 32, 64), dim=64, projector_hidden=256, layers=2, head_dim=16, mlp=256))
    steps: int = 300
    batch: int = 64
    lr: float = 1e-3
    weight: float = 0.1  # SIGReg's lambda
    directions: int = 256  # SIGReg's M (the paper 1024; it reports M matters little)
    vicreg_weight: float = 1.0
    cem: CEMConfig = field(default_factory=lambda: CEMConfig(samples=128, iterations=5, elites=12))
    eval_episodes: int = 24
    goal_offset: int = 25
    budget: int = 50
    patch_depth: int = 2  # the patch-token baseline: frozen encoder layers kept (32 px -> 8 x 8 tokens)
    patch_encoder: str = ""  # its frozen encoder: a transformers DINOv2 (hub id or directory); "" = LeWM's own
    patch_steps: int = 300
    patch_episodes: int = 12  # its planning is ~50x slower: fewer episodes, the paper's receding horizon (replan 5)
    surprise_samples: int = 200
    diag_windows: int = 256
    prerender: bool = True  # store every frame (small tiers); False renders training windows on demand
    cache_dir: str = ""

    def __post_init__(self):
        if self.task not in ("tworoom", "pusht"):
            raise ValueError(f"task must be tworoom or pusht, got {self.task!r}")
        if self.model.action_dim != 2 * self.frameskip:
            raise ValueError(f"model.action_dim must be 2 x frameskip = {2 * self.frameskip}, got {self.model.action_dim}")


_t = partial(at_tiers, tiers=("smoke", "small", "full"))


class LeWMSuite(Suite):
    name = "lewm"
    version = 1
    config = LeWMConfig
    paper = PAPER
    description = "JEPA world model from pixels with SIGReg: no collapse, latent planning, surprise"
    tiers = {
        # plumbing: the paper's receding horizon (all 5 blocks, 2 plans per episode), a small CEM
        "smoke": ["cem.replan=5", "eval_episodes=16", "cem.samples=64", "cem.iterations=4", "cem.elites=8",
                  "patch_depth=3", "patch_steps=100", "patch_episodes=4"],
        # 32 px, 800 steps per model; CEM replans after every block (the stronger, cheap variant)
        "small": ["episodes=600", "heldout_episodes=100", "steps=800", "eval_episodes=50", "cem.samples=128",
                  "cem.iterations=6", "cem.elites=13", "directions=512", "threads=2", "patch_episodes=4",
                  "patch_steps=200"],
        # the paper: 224 px, ViT-tiny/14, d 192, predictor 6 x (16 x 64), MLP 2048; SIGReg M 1024, lambda 0.1;
        # batch 128, AdamW 5e-5, ~10 epochs of 10,000 Two-Room episodes; CEM 300 x 10 (Two-Room), top 30,
        # all 5 blocks executed; 50 episodes; the patch baseline DINO-WM's: DINOv2 ViT-S/14's 256 tokens of width 384
        "full": ["device=cuda", "model.image_size=224", "model.encoder=vit", "model.vit_patch=14",
                 "model.vit_layers=12", "model.vit_heads=3", "model.dim=192", "model.projector_hidden=2048",
                 "model.layers=6", "model.heads=16", "model.head_dim=64", "model.mlp=2048",
                 "episodes=10000", "heldout_episodes=500", "episode_steps=92", "prerender=false", "steps=70000",
                 "batch=128", "lr=5e-5", "directions=1024", "cem.samples=300", "cem.iterations=10",
                 "cem.elites=30", "cem.replan=5", "cem.chunk=2048", "eval_episodes=50",
                 "patch_encoder=facebook/dinov2-small", "patch_steps=20000", "patch_episodes=50",
                 "surprise_samples=1000", "threads=8"],
    }
    tier_requires = {"full": frozenset({"gpus>=1"})}
    renamed_keys = {**{k: f"model.{k}" for k in ("image_size", "encoder", "channels", "vit_patch", "vit_layers",
                                                  "vit_heads", "dim", "projector_hidden", "layers", "heads",
                                                  "head_dim", "mlp", "history")},
                    **{f"cem_{k}": f"cem.{k}" for k in ("samples", "iterations", "elites")},
                    "horizon": "cem.horizon", "replan": "cem.replan"}
    default_seeds = {"smoke": 1, "small": 3, "full": 3}
    expected_minutes = {"smoke": 2.0, "small": 14.0}  # 2 cores, fresh clone (README)
    claims = (
        Claim("collapse_prevented", "collapse_test", "ge", _t(1.0), paper_value=1.0, rule="exact",
              source=f"{PAPER}, Sec. 3 (SIGReg is the only anti-collapse term)",
              description="SIGReg keeps norm_pred_err < 0.5 while lambda = 0 collapses (std ratio < 0.1 or "
                          "norm_pred_err >= 0.9)"),
        Claim("sigreg_norm_pred_err", "sigreg_norm_pred_err", "le", _t(0.5),
              source="the suite's collapse criterion (fixed before the runs)",
              description="one-step prediction MSE over the targets' variance, SIGReg model, held-out windows"),
        Claim("success_over_random", "success_lewm_minus_random", "ge", _t(0.3, tiers=("small", "full")),
              source=f"{PAPER}, Fig. 6", applies=(("task", "tworoom"),),
              context="LeWM's absolute success on Two-Room: 87% (the paper reports no random-action baseline)",
              description="LeWM CEM success minus random actions, same episodes"),
        Claim("success_over_no_regulariser", "success_lewm_minus_none", "ge", _t(0.05, tiers=("small", "full")),
              source=f"{PAPER}, Sec. 4 (lambda = 0 collapses)", applies=(("task", "tworoom"),),
              description="LeWM CEM success minus the lambda = 0 model's, same episodes and CEM"),
        # Push-T (task=pusht): the same margin over random actions as Two-Room's. The paper's LeWM succeeds
        # on 96% of Push-T episodes against 87% on Two-Room, so a model that plans as the paper says clears a
        # 0.3 margin on both; at 32 px and 800 steps the first small run gave 0.05 vs 0.05, which fails it
        Claim("pusht_success_over_random", "success_lewm_minus_random", "ge", _t(0.3, tiers=("small", "full")),
              source=f"{PAPER}, Table 5; the margin is Two-Room's (the paper has no random-action baseline)",
              context="LeWM's absolute Push-T success: 96.0 +- 2.8% over 3 seeds, at 224 px from ~18.7k demonstrations",
              applies=(("task", "pusht"),),
              description="Push-T: LeWM CEM success minus random actions, same episodes (DINO-WM's criterion)"),
        Claim("planning_speedup", "planning_speedup", "ge", _t(48.0, tiers=("small",)), scale="log",
              source=f"{PAPER}, abstract / Fig. 3", context="the paper's per-plan figure: 48x (0.98 s vs ~47 s per "
                                                           "plan on a GPU, one environment); this is a throughput ratio",
              description="seconds per CEM plan of the patch-token model over LeWM's, every episode's plans batched, "
                          "same budget and episodes, measured side by side"),
        Claim("planning_speedup_per_plan", "planning_speedup_latency_bf16", "ge", _t(48.0, tiers=("full",)),
              paper_value=48.0, scale="log", source=f"{PAPER}, abstract / Fig. 3 (0.98 s vs ~47 s per plan on a GPU)",
              description="seconds per CEM plan of the patch-token model over LeWM's, one environment, the paper's "
                          "CEM, bf16, after a warm-up"),
        Claim("surprise_auroc_teleport", "surprise_auroc_teleport", "ge", _t(0.9, tiers=("small", "full")),
              source=f"{PAPER}, Sec. 5 (violation of expectation; paired t-test p < 0.01)",
              description="AUROC of surprise at a teleported frame against the unperturbed frame"),
        Claim("teleport_above_colour", "surprise_teleport_minus_colour", "ge", _t(0.0, tiers=("small", "full")),
              source=f"{PAPER}, Sec. 5 (colour changes give a weaker signal)",
              description="teleport AUROC minus colour-change AUROC"),
    )

    def notes(self, cfg, tier):
        task = [
            f"Two-Room at {cfg.model.image_size} px (the paper: 224), {cfg.episodes} training episodes of {cfg.episode_steps} "
            f"steps from a noisy door-seeking expert ({cfg.policy_noise:.0%} random actions; the paper: 10,000 "
            "episodes)."] if cfg.task == "tworoom" else [
            f"Push-T (pymunk, gym-pusht's scene with LeWM's relative actions) at {cfg.model.image_size} px (the paper: "
            f"224), {cfg.episodes} training episodes of {cfg.episode_steps} steps from a noisy scripted pusher "
            f"({cfg.policy_noise:.0%} random actions; the paper: ~18.7k replayed expert demonstrations, not "
            "available offline). Success: DINO-WM's criterion (agent and block within 20 px of the goal's, angle "
            "within pi/9), on start-goal pairs where the block must move. No oracle planner (simulating every "
            "CEM candidate in pymunk is too slow on a CPU). Surprise: the block teleported or recoloured."]
        return [
            *task,
            f"Encoder: a {len(cfg.model.channels)}-layer stride-2 CNN (the paper: ViT-tiny/14; it reports a ResNet does as "
            f"well) and a BatchNorm projector to d = {cfg.model.dim} (the paper: 192); predictor {cfg.model.layers} AdaLN-zero "
            f"causal blocks, MLP {cfg.model.mlp} (the paper: 6, 2048); history {cfg.model.history}, frameskip {cfg.frameskip}; "
            f"{cfg.steps} AdamW steps of batch {cfg.batch} at lr {cfg.lr} (the paper: 10 epochs at 5e-5).",
            f"SIGReg: M = {cfg.directions} directions (the paper 1024), 17 knots on [0, 3], lambda = {cfg.weight}. "
            f"Ablations: lambda = 0, and VICReg (weight {cfg.vicreg_weight}) on the same architecture.",
            f"CEM: {cfg.cem.samples} samples x {cfg.cem.iterations} iterations, top {cfg.cem.elites}, horizon "
            f"{cfg.cem.horizon} blocks of {cfg.frameskip} steps, replanning every {cfg.cem.replan} block(s) (the paper: "
            "300 x 10, top 30, all 5 blocks executed); goal "
            f"{cfg.goal_offset} env steps ahead on held-out trajectories, budget {cfg.budget}, {cfg.eval_episodes} "
            "episodes.",
            *self._patch_notes(cfg),
            "Push-T runs as `task=pusht` (same models and protocol; the success claims are per task); the "
            "default task is Two-Room.",
        ]

    @staticmethod
    def _patch_notes(cfg) -> list[str]:
        """What the patch-token baseline is at this config, beside DINO-WM's."""
        if cfg.patch_encoder:
            encoder = (f"frozen {cfg.patch_encoder} (DINO-WM's encoder where it names DINOv2 ViT-S/14) gives its "
                       f"final patch tokens, and the predictor works at their width as DINO-WM's does")
        else:
            encoder = (f"the SIGReg model's CNN frozen after {cfg.patch_depth} layers gives one token per patch "
                       f"({(cfg.model.image_size // 2 ** cfg.patch_depth) ** 2} per frame; DINO-WM: 256 DINOv2 tokens "
                       "of width 384; `patch_encoder=facebook/dinov2-small` uses DINO-WM's encoder where its weights "
                       "are at hand), and the predictor works at LeWM's width")
        return [f"Patch-token baseline (DINO-WM-like): {encoder}; a frame-causal AdaLN-zero predictor (DINO-WM "
                f"concatenates its action embedding instead) trained {cfg.patch_steps} steps on them; it and LeWM plan "
                f"{cfg.patch_episodes} episodes with the same CEM, replanning every 5 blocks as the paper does, and "
                "the ratio of their seconds per plan is the speedup."]

    def run(self, cfg: LeWMConfig, seed: int, out_dir: Path) -> RunResult:
        import torch

        torch.set_num_threads(cfg.threads)
        laps = Laps()
        cache = cache_root(cfg.cache_dir) / "lewm"
        env = self._env(cfg)
        data, data_key = self._data(cfg, env, cache)
        train, held = _windows(cfg, env, data)
        laps.done("data")  # (cached by its spec)
        trained = laps.run("training", _train_world_models, cfg, seed, train, data_key, cache)
        collapse = laps.run("collapse", _collapse, cfg, seed, env, held, trained.models)
        planning = laps.run("planning", _plan, cfg, seed, env, held, train, trained.models)
        lewm = trained.models["sigreg"]
        patch_model, patch_history, patch_encoder = laps.run("patch_training", _patch_model, cfg, seed, train,
                                                             lewm, trained.keys["sigreg"], cache)
        patch = laps.run("patch_planning", _patch_planning, cfg, seed, env, train, planning.episodes, lewm,
                         patch_model, patch_history)
        latency = laps.run("plan_latency", _plan_latency, cfg, env, planning.episodes, lewm, patch_model)
        surprise = laps.run("surprise", _surprise, cfg, seed, env, held, lewm)
        info = {"data_key": data_key, "train_seconds": {**{k: h["seconds"] for k, h in trained.histories.items()},
                                                        "patch": patch.history["seconds"]},
                "collapse": collapse, "episodes": planning.record(), "surprise": surprise,
                "patch_encoder": patch_encoder}
        return RunResult(metrics=_metrics(collapse, planning, patch, surprise, latency),
                         series=_series(trained.histories, patch.history), info=info)

    def rehearsal(self, cfg):
        """The same frames, models, batches and CEM; fewer episodes of data, steps and planned episodes."""
        few = {"episodes": 200, "heldout_episodes": 40, "steps": 20, "patch_steps": 20, "eval_episodes": 4,
               "patch_episodes": 2, "surprise_samples": 50}
        return [f"{k}={min(v, getattr(cfg, k))}" for k, v in few.items()]

    def phase_steps(self, cfg):
        """Episodes generated, training steps of the three models, planned episodes (every planner),
        the patch model's steps and planned episodes, and surprise samples."""
        return {"data": cfg.episodes + cfg.heldout_episodes, "training": 3 * cfg.steps, "planning": cfg.eval_episodes,
                "patch_training": cfg.patch_steps, "patch_planning": cfg.patch_episodes,
                "surprise": cfg.surprise_samples}

    def preflight(self, cfg):
        """Each phase's peak on the device: training (weights, AdamW, EMA and a ViT's or CNN's activations
        over batch x (history + 1) frames), the patch model's training (its predictor's over batch x history
        frames of patch tokens, ``PATCH_TRAINING_MEASURED``), and the largest batched forward of planning, where every
        episode's CEM candidates (``cem.chunk`` at a time) go through the predictor over its window of
        ``history`` frames (one layer's activations live at a time; fused attention); a pretrained patch
        encoder's weights, found here or on the hub (its shape is then read from its config)."""
        import torch

        from paper_lewm.model import LeWM
        from runners import preflight as pf

        m, cem = cfg.model, cfg.cem
        with torch.device("meta"):
            params = sum(p.numel() for p in LeWM(m).parameters())
        frames = cfg.batch * (m.history + 1)
        if m.encoder == "vit":
            encoder = pf.transformer_activation_bytes(frames, (m.image_size // m.vit_patch) ** 2 + 1, m.dim,
                                                      m.vit_layers, m.vit_heads)
        else:
            encoder = 4.0 * frames * m.image_size ** 2 * sum(m.channels)
        inner = m.heads * m.head_dim

        def planning_bytes(episodes: int, tokens_per_frame: int, width: int) -> float:
            rows = min(episodes * cem.samples, cem.chunk or episodes * cem.samples)  # rollouts per call
            tokens = rows * m.history * tokens_per_frame  # the predictor's window
            return 4.0 * tokens * (4 * inner + 2 * m.mlp + 2 * width)

        dev = cfg.device
        needs = [pf.memory("training", dev, pf.training_bytes(params, encoder + pf.transformer_activation_bytes(
                     cfg.batch, m.history + 1, m.dim, m.layers, m.heads, mlp_ratio=m.mlp / m.dim))),
                 pf.memory("planning", dev, 4 * params + planning_bytes(cfg.eval_episodes, 1, m.dim))]
        patch = _patch_shape(cfg)
        if isinstance(patch, pf.Need):
            needs.append(patch)
        else:
            if patch.need is not None:
                needs.append(patch.need)
            # its AdamW step over batch x history frames of patch tokens (every layer's activations kept; fused
            # attention), beside LeWM's and the frozen encoder's weights
            activations = 4.0 * m.layers * cfg.batch * m.history * patch.tokens * (4 * inner + 2 * m.mlp + 8 * patch.dim)
            needs.append(pf.memory("patch_training", dev, pf.TRAIN_BYTES_PER_PARAM * patch.predictor
                                   + 4 * (params + patch.frozen) + PATCH_TRAINING_MEASURED * activations))
            needs.append(pf.memory("patch_planning", dev, 4 * (params + patch.predictor + patch.frozen)
                                   + planning_bytes(cfg.patch_episodes, patch.tokens, max(m.dim, patch.width))))
        if not cfg.prerender:
            return needs + [pf.free_disk("the data cache", cache_root(cfg.cache_dir), 1.0)]
        frames_bytes = (cfg.episodes + cfg.heldout_episodes) * (cfg.episode_steps + 1) * 3 * m.image_size ** 2
        return needs + [pf.memory("data (every frame pre-rendered)", "cpu", frames_bytes),
                        pf.free_disk("the data cache", cache_root(cfg.cache_dir), 2 * frames_bytes / pf.GB + 0.1)]

    @staticmethod
    def _env(cfg):
        """The task's environment (LeWMConfig has already checked the task's name)."""
        from paper_lewm.envs import TwoRoom
        from paper_lewm.pusht import PushT

        return {"tworoom": TwoRoom, "pusht": PushT}[cfg.task](size=cfg.model.image_size)

    @staticmethod
    def _data(cfg, env, cache):
        """States, actions and rendered frames of every episode (training, then held out), cached."""
        import hashlib
        import json
        import os
        import sys

        import numpy as np

        if cfg.task == "pusht":
            from paper_lewm.pusht import generate
        else:
            from paper_lewm.envs import generate

        spec = {"size": cfg.model.image_size, "episodes": cfg.episodes + cfg.heldout_episodes, "steps": cfg.episode_steps,
                "noise": cfg.policy_noise, "seed": cfg.data_seed, "env": repr(env),
                **({} if cfg.prerender else {"frames": False})}
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache) / f"{cfg.task}-{key}.npz"
        if path.is_file():  # read whole, so every array is checked against its stored CRC-32
            try:
                with np.load(path) as z:
                    return dict(z), key
            except Exception as exc:  # torn or altered: generated again, never used
                print(f"cache entry {path} does not load ({type(exc).__name__}); generating it again", file=sys.stderr)
        data = generate(env, spec["episodes"], cfg.episode_steps, cfg.data_seed, cfg.policy_noise)
        if cfg.prerender:
            frames = [env.render(data["positions"][i:i + 20]) for i in track(range(0, spec["episodes"], 20),
                                                                              f"rendering {cfg.task} episodes")]
            data["frames"] = np.concatenate(frames)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part.npz")
        np.savez(tmp, **data)
        tmp.replace(path)
        return data, key

    def figures(self, results, cfg, out_dir):
        import numpy as np

        from runners.plotting import FigureWriter, pyplot, seed_bars

        plt = pyplot()
        out = FigureWriter(out_dir)
        names = ["sigreg", "none", "vicreg"]
        labels = {"sigreg": f"SIGReg (lambda {cfg.weight})", "none": "lambda = 0", "vicreg": "VICReg"}

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        r = results[0]
        for name in names:
            i, v = zip(*r.series[f"train_pred_mse_{name}"], strict=True)
            axes[0].plot(i, v, label=labels[name])
        axes[0].set_yscale("log")
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("prediction MSE (train)")
        axes[0].legend(fontsize=8)
        for ax, key, title in ((axes[1], "embedding_std", "embedding std (held out)"),
                               (axes[2], "norm_pred_err", "normalised prediction error")):
            seed_bars(ax, results, "{}_" + key, {n: (labels[n], c) for n, c in zip(names, ("C0", "C3", "C2"),
                                                                                      strict=True)})
            ax.set_title(title)
        axes[2].axhline(1.0, color="k", ls=":", lw=1)
        out.save(fig, "fig-collapse.png")

        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [5, 3]})
        shown = {"lewm": ("LeWM (SIGReg)", "C0"), "none": ("lambda = 0", "C3"), "vicreg": ("VICReg", "C2"),
                 "oracle": ("oracle CEM", "C7"), "random": ("random", "C8")}
        seed_bars(ax, results, "success_{}", shown)
        ax.set_ylabel("success rate")
        ax.set_ylim(0, 1.05)
        task, paper = {"tworoom": ("Two-Room", 0.87), "pusht": ("Push-T", 0.96)}[cfg.task]
        ax.axhline(paper, color="C0", ls="--", lw=1, label=f"paper, LeWM {task} (224 px): {paper}")
        ax.set_title(f"{task} planning, {cfg.eval_episodes} episodes per seed, {len(results)} seed(s)")
        ax.legend(fontsize=8)
        tokens = int(results[0].metrics["patch_tokens_per_frame"])
        seed_bars(bx, results, "seconds_per_plan_{}", {"lewm_r5": ("LeWM (1 token / frame)", "C0"),
                                                       "patch": (f"patch tokens ({tokens} / frame)", "C4")})
        bx.set_yscale("log")
        bx.set_ylabel("seconds per CEM plan (same budget)")
        speed = np.exp(np.mean([np.log(res.metrics["planning_speedup"]) for res in results]))
        bx.set_title(f"Planning time: {speed:.0f}x (paper, GPU: 48x)")
        out.save(fig, "fig-planning.png")

        fig, ax = plt.subplots(figsize=(6, 4))
        seed_bars(ax, results, "surprise_auroc_{}", {"teleport": ("teleport", "C3"), "colour": ("colour change", "C1")},
                  fontsize=10)
        ax.axhline(0.5, color="k", ls=":", lw=1)
        ax.set_ylabel("AUROC of surprise vs unperturbed")
        ax.set_ylim(0, 1.05)
        ax.set_title("Violation of expectation (SIGReg model)")
        out.save(fig, "fig-surprise.png")
        return out.paths
