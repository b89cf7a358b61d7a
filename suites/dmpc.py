"""Suite `dmpc`: Zhou et al., "Diffusion Model Predictive Control" (arXiv 2410.05364, TMLR 2025).

Per seed, on one locally generated D4RL-style dataset (Gymnasium v5 local data; default Hopper
medium-replay): a multi-step diffusion action proposal, a multi-step diffusion dynamics model and a
learned objective J, combined by Sample-Score-Rank; against behaviour cloning, the proposal alone and
an MBOP-style planner (one-step MLP ensemble, BC prior, the same J, N and F) on the same data. Also the
offline F-step prediction error of multi-step diffusion dynamics against single-step diffusion and the
one-step ensemble rolled out, and the novel "jump" objective (torso height) swapped in at run time.
The science lives in paper_dmpc/.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from paper_dmpc.config import ModelConfig
from runners.api import Claim, Preparation, RunResult, Suite, SuiteConfig, at_tiers, thinned
from runners.jobs import JobPool, Task
from runners.progress import Laps

PAPER = "Zhou et al. 2025 (arXiv 2410.05364)"
# expected durations, to start the longest chains of jobs first (measured at the small tier, one thread each):
# training seconds per 1000 steps, and evaluation seconds
_TRAIN_COST = {"distilled": 17.0, "dynamics": 16.2, "proposal": 13.5, "objective": 5.8, "dynamics_1step": 12.9, "bc": 8.3,
               "ensemble": 9.4, "gaussian_proposal": 9.5, "proposal_1step": 12.8}
_EVAL_COST = {"distilled": 0.3, "abl_single_step_dynamics": 100.0, "altered_after": 29.0, "dmpc": 13.0, "mbop": 12.0,
              "abl_single_step_proposal": 9.0, "dmpc_jump": 6.5, "abl_gaussian_proposal": 6.5, "altered_before": 6.0,
              "proposal": 0.5, "bc": 0.2}
# minutes to make one dataset on 2 cores (the learner to D4RL's medium level, then the rollouts), by robot and
# learner: the slowest of learner seeds 0-2 on an AMD EPYC (README)
_DATA_MINUTES = {("hopper", "sac"): 9.4, ("halfcheetah", "sac"): 7.2, ("walker2d", "sac"): 18.8,
                 ("walker2d", "crossq"): 6.1, ("hopper", "crossq"): 2.6}
# the models each agent plans with ("ensemble": all of its members)
_NEEDS = {"dmpc": ("proposal", "dynamics", "objective"), "proposal": ("proposal",), "bc": ("bc",),
          "mbop": ("bc", "ensemble", "objective"), "dmpc_jump": ("proposal", "dynamics"),
          "abl_gaussian_proposal": ("gaussian_proposal", "dynamics", "objective"),
          "abl_single_step_proposal": ("proposal_1step", "dynamics", "objective"),
          "abl_single_step_dynamics": ("proposal", "dynamics_1step", "objective"), "distilled": ("distilled",)}
# the config flag that switches an agent on (the others always run)
_ENABLED_BY = {"dmpc_jump": "jump", "abl_gaussian_proposal": "ablations", "abl_single_step_proposal": "ablations",
               "abl_single_step_dynamics": "ablations", "distilled": "distill"}


@dataclass(frozen=True)
class DerivedSeeds:
    """Every seed a run derives from its own seed s, named once. They are part of the results: changing
    one changes the numbers."""

    heldout: int  # 1000 + s: which episodes are held out, and which of their chunks the error curve scores
    evaluation: int  # 50000 + 100 s: every agent's evaluation episodes
    altered: int  # 60000 + 100 s: the weakened-foot robot's evaluation episodes
    distill: int  # 40000 + 100 s: the distillation teacher's own episodes
    play_sampling: int  # 70000 + s: the proposal's samples while it plays in the weakened-foot robot
    play: int  # 70000 + 1000 s: the play episodes
    play_mix: int  # 2000 + s: mixing the play chunks with as many original ones
    play_heldout: int  # 80000 + 1000 s: held-out play episodes (the fine-tuned model's error)
    play_heldout_chunks: int  # 3000 + s: which of their chunks are scored

    @classmethod
    def of(cls, s: int) -> DerivedSeeds:
        return cls(1000 + s, 50_000 + 100 * s, 60_000 + 100 * s, 40_000 + 100 * s, 70_000 + s, 70_000 + 1000 * s,
                   2000 + s, 80_000 + 1000 * s, 3000 + s)


class DataBelowTarget(RuntimeError):
    """The generated data's policy never reached the level the data are named after."""


def _below_target(spec, meta: dict) -> str:
    curve = meta["eval_curve"]
    best = max((p["normalized_return"] for p in curve), default=float("nan"))
    learner = meta.get("learner", "the learner")
    return (f"{meta['env_id']} data are not medium: {learner} stopped at {meta['learner_steps']} steps with its best "
            f"evaluation at {best:.1f}, below D4RL's medium level {spec.stop_at:g}; give {learner} more steps "
            f"(max_learner_steps={2 * spec.max_steps}) or another data seed (data_seed={spec.seed + 1}), or use them "
            "anyway with require_target=false (the report then says so)")


def _job_process(n: int, checkpoints: Path | None = None) -> None:
    """A job process's torch threads, and where its training checkpoints go (the seed's folder)."""
    import torch

    from runners import phases

    torch.set_num_threads(n)
    phases.checkpoints_in(checkpoints)


def _load_chunks(path: str, horizon: int | None = None):
    import numpy as np

    from paper_dmpc import baselines, models

    with np.load(path) as z:
        chunks = models.Chunks(**{k: z[k] for k in z.files})
    return baselines.chunks_for(chunks, horizon) if horizon else chunks


def _needs(agent: str, members: int) -> tuple[str, ...]:
    """The training tasks an agent waits on."""
    return tuple(task for m in _NEEDS[agent] for task in (
        [f"train/ensemble_{k}" for k in range(members)] if m == "ensemble" else [f"train/{m}"]))


def _agents(cfg) -> list[str]:
    """The agents this config evaluates, in ``_NEEDS``'s order."""
    return [name for name in _NEEDS if _ENABLED_BY.get(name) is None or getattr(cfg, _ENABLED_BY[name])]


@dataclass
class JobOut:
    """A finished job of the graph: its product (an EMA model, or ``planner.evaluate``'s results), its
    training losses, other records, when it started (epoch seconds) and how long it ran (seconds)."""

    product: Any
    started: float
    seconds: float
    losses: list = field(default_factory=list)
    records: dict = field(default_factory=dict)


def _trained(done: dict[str, JobOut], members: int) -> dict:
    """{model name: EMA model} from the finished training tasks; the ensemble's members joined."""
    from paper_dmpc import baselines

    out = {k.removeprefix("train/"): v.product for k, v in done.items()
           if k.startswith("train/") and not k.startswith("train/ensemble_")}
    if members and all(f"train/ensemble_{k}" in done for k in range(members)):
        out["ensemble"] = baselines.OneStepEnsemble.join([done[f"train/ensemble_{k}"].product for k in range(members)])
    return out


def _agent(name: str, cfg, m: dict):
    """An evaluated agent from the trained models ``m``."""
    from paper_dmpc import baselines, planner

    j = m.get("objective")
    if name == "dmpc":
        return planner.SSR(m["proposal"], m["dynamics"], j, cfg.samples)
    if name in ("proposal", "bc", "distilled"):
        return planner.ChunkPolicy(m[name])
    if name == "mbop":
        return baselines.MBOP(m["bc"], m["ensemble"], j, cfg.samples, cfg.mbop_noise, cfg.mbop_kappa)
    if name == "dmpc_jump":  # the novel objective swapped in at run time
        return planner.SSR(m["proposal"], m["dynamics"], planner.torso_height, cfg.samples)
    if name == "abl_gaussian_proposal":
        return planner.SSR(m["gaussian_proposal"], m["dynamics"], j, cfg.samples)
    if name == "abl_single_step_proposal":
        return planner.SSR(baselines.Repeated(m["proposal_1step"], cfg.model.horizon), m["dynamics"], j, cfg.samples)
    if name == "abl_single_step_dynamics":
        return planner.SSR(m["proposal"], baselines.SingleStepDynamics(m["dynamics_1step"]), j, cfg.samples)
    raise ValueError(f"unknown agent {name!r}")


def _true_futures(chunks, device) -> tuple:
    """(s0, a, futures) of the chunks as tensors on ``device``, for models.rollout_error."""
    import torch

    return tuple(torch.from_numpy(x).to(device) for x in (chunks.states, chunks.actions, chunks.futures))


def _proposal_policy(proposal, gen):
    """The proposal's first action as a rollout policy (numpy states in, numpy actions out), on its device."""
    import torch

    device = next(proposal.parameters()).device
    return lambda o, d: proposal.sample(torch.from_numpy(o).float().to(device), gen)[:, 0].float().cpu().numpy()


def _given(job: tuple, done: dict) -> tuple:
    return job


def _distill_arg(student, cfg, kw: dict, tcfg, done: dict) -> tuple:
    return student, _agent("dmpc", cfg, _trained(done, 0)), kw, tcfg


def _eval_job(name: str, cfg, members: int, kw: dict, done: dict, label: str | None = None) -> tuple:
    return "eval", label or name, _agent(name, cfg, _trained(done, members)), kw


def _finetune_job(cfg, seed: int, chunk_file: str, tcfg, kw: dict, done: dict) -> tuple:
    m = _trained(done, 0)
    return "finetune", "altered_after", (cfg, seed, m["proposal"], m["dynamics"], m["objective"], chunk_file, tcfg), kw


def _distill_job(job: tuple) -> JobOut:
    """(student, teacher, evaluate's keywords, TrainConfig) -> the EMA student, with the number of pairs and
    the teacher's score as records: the teacher (D-MPC) runs its own episodes, recording each planning
    state and the actions it then executed; the student MLP regresses those chunks."""
    import numpy as np

    from paper_dmpc import models, planner

    student, teacher, kw, tcfg = job
    started, t0 = time.time(), time.perf_counter()
    run = planner.evaluate(teacher, record=True, **kw)
    s, a = run["plan_states"], run["plan_actions"]
    pairs = models.Chunks(s, a, np.zeros((*a.shape[:2], s.shape[1]), np.float32), np.zeros(len(s), np.float32))
    ema, losses = models.train(student, pairs, tcfg)
    return JobOut(ema, started, time.perf_counter() - t0, losses,
                  {"distill_pairs": len(s), "teacher_score": float(run["normalized"].mean())})


def _train_job(job: tuple) -> JobOut:
    """(name, model, chunk file, chunk horizon or None, TrainConfig) -> the EMA model and its losses; its
    training is checkpointed for a resumed run (``runners.phases.Checkpoint``), in a worker process too."""
    from paper_dmpc import models
    from runners.phases import Checkpoint

    name, model, path, horizon, tcfg = job
    started, t0 = time.time(), time.perf_counter()
    ema, losses = models.train(model, _load_chunks(path, horizon), tcfg, checkpoint=Checkpoint(f"train_{name}"))
    return JobOut(ema, started, time.perf_counter() - t0, losses)


def _work(job: tuple) -> JobOut:
    """One evaluation job: ("eval", name, policy, evaluate's keywords), or ("finetune", name, (cfg, seed,
    proposal, dynamics, objective, chunk file, TrainConfig), keywords): play data from the proposal in the
    altered environment, only the dynamics fine-tuned on it (plus as many original chunks), then D-MPC
    evaluated there. Its product is evaluate's results; a fine-tuning's records are its play data's size
    and returns, the fine-tuning's losses and the held-out error before and after it."""
    import numpy as np
    import torch

    from paper_dmpc import data, models, planner

    kind, name, what, kw = job
    started, t0 = time.time(), time.perf_counter()
    if kind == "eval":
        return JobOut(planner.evaluate(what, **kw), started, time.perf_counter() - t0)
    cfg, seed, proposal, dynamics, objective, path, tcfg = what
    seeds = DerivedSeeds.of(seed)
    device = next(proposal.parameters()).device
    gen = torch.Generator(device).manual_seed(seeds.play_sampling)
    play, play_returns = data.rollout(_proposal_policy(proposal, gen), cfg.env, 0, seeds.play, False, n_envs=16,
                                      episodes=cfg.play_episodes, foot_scale=cfg.foot_scale)
    play_chunks = models.Chunks.build(play, cfg.model.horizon, cfg.model.gamma).mixed_with(_load_chunks(path),
                                                                                np.random.default_rng(seeds.play_mix))
    tuned, losses = models.train(copy.deepcopy(dynamics).requires_grad_(True), play_chunks,
                                 replace(tcfg, steps=cfg.finetune_steps))
    # did the model adapt? open-loop error on held-out play episodes (other seeds), before and after
    held, _ = data.rollout(_proposal_policy(proposal, gen), cfg.env, 0, seeds.play_heldout, False, n_envs=16,
                           episodes=max(1, cfg.play_episodes // 5), foot_scale=cfg.foot_scale)
    held = models.Chunks.build(held, cfg.model.horizon, cfg.model.gamma).subset(cfg.pred_chunks,
                                                                np.random.default_rng(seeds.play_heldout_chunks))
    err = {f"pred_err_altered_{k}": models.rollout_error(m, *_true_futures(held, device), dynamics.norm.s_std,
                                                         gen).tolist()
           for k, m in (("before", dynamics), ("after", tuned))}
    after = planner.evaluate(planner.SSR(proposal, tuned, objective, cfg.samples), **kw)
    return JobOut(after, started, time.perf_counter() - t0, records={
        "play_transitions": len(play["rewards"]), "play_returns": play_returns, "finetune_losses": losses, **err})


@dataclass
class SeedData:
    """One seed's dataset in D4RL's keys, its generation metadata and its content digest (its identity)."""

    arrays: dict
    meta: dict
    digest: str


@dataclass
class Prepared:
    """What the models train on and are built from: the training chunks, the held-out chunks of the
    prediction-error curve, the configs, and the untrained models by name, each with the chunk horizon it
    trains on (None: F; 1: the one-step models); the distilled student (or None) trains on its teacher's."""

    chunks: Any
    held: Any
    norm: Any
    tcfg: Any
    models: dict[str, tuple[Any, int | None]]
    members: int
    student: Any


@dataclass
class Graph:
    """What the graph of jobs made: the EMA models by name (the ensemble joined), each model's training
    losses, each agent's evaluation, the fine-tuning's and distillation's records, each job's start and
    seconds."""

    models: dict
    losses: dict[str, list]
    evaluations: dict[str, dict]
    records: dict
    jobs: dict[str, dict]


def _prepare(cfg, seed: int, arrays: dict) -> Prepared:
    """Whole episodes split into training and held-out ones; the training ones cut into F-step chunks;
    every model built untrained, in one order (torch's seed makes their initialisation): the paper's three,
    the one-step dynamics, BC, the ensemble's members, the ablations' proposals, the distilled student."""
    import numpy as np

    from paper_dmpc import baselines, data, models

    rng = np.random.default_rng(DerivedSeeds.of(seed).heldout)
    n_eps = len(data.episodes(arrays))
    held = set(rng.choice(n_eps, max(1, int(cfg.heldout_fraction * n_eps)), replace=False).tolist())
    train_set, held_set = data.split_episodes(arrays, held)
    mcfg = cfg.model
    chunks = models.Chunks.build(train_set, mcfg.horizon, mcfg.gamma)
    norm = models.Normalizer(chunks)
    dims = (chunks.states.shape[1], chunks.actions.shape[2], norm)
    one = replace(mcfg, horizon=1)
    built = {"dynamics": (models.Dynamics(mcfg, *dims), None), "proposal": (models.ActionProposal(mcfg, *dims), None),
             "objective": (models.Objective(mcfg, *dims), None), "dynamics_1step": (models.Dynamics(one, *dims), 1),
             "bc": (baselines.BCPolicy(mcfg, *dims), 1)}
    members = baselines.OneStepEnsemble(mcfg, *dims, cfg.members).split()
    built.update({f"ensemble_{k}": (m, 1) for k, m in enumerate(members)})
    if cfg.ablations:  # the paper's three: Gaussian-MLP proposal, single-step proposal, single-step dynamics
        built["gaussian_proposal"] = (baselines.GaussianProposal(mcfg, *dims), None)
        built["proposal_1step"] = (models.ActionProposal(one, *dims), 1)
    student = baselines.BCPolicy(mcfg, *dims, chunk=cfg.replan) if cfg.distill else None
    held_chunks = models.Chunks.build(held_set, mcfg.horizon, mcfg.gamma).subset(cfg.pred_chunks, rng)
    tcfg = models.TrainConfig(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, ema=cfg.ema, seed=seed)
    return Prepared(chunks=chunks, held=held_chunks, norm=norm, tcfg=tcfg,
                    models=built, members=len(members), student=student)


def _altered(cfg) -> bool:
    """Whether the weakened-foot experiment runs (a robot with a foot to weaken)."""
    from paper_dmpc import data

    return cfg.novel_dynamics and cfg.env in data.FOOT_ACTUATOR


def _tasks(cfg, seed: int, prep: Prepared, chunk_file: str) -> dict[str, Task]:
    """The graph: a training task per model, an evaluation per agent once its models are trained, the
    weakened-foot robot before and after fine-tuning the dynamics, and the distilled student after its
    teacher (D-MPC) has run. Each evaluation has its own episode seeds."""
    import torch

    device = torch.device(cfg.device)
    run_kw = {"env": cfg.env, "episodes": cfg.episodes, "replan": cfg.replan, "max_steps": cfg.max_steps,
              "device": cfg.device}
    seeds = DerivedSeeds.of(seed)
    altered_kw = {**run_kw, "seed": seeds.altered, "foot_scale": cfg.foot_scale}
    tasks = {f"train/{name}": Task(_train_job, partial(_given, (name, model.to(device), chunk_file, horizon, prep.tcfg)),
                                   cost=_TRAIN_COST[name.split("_")[0] if name.startswith("ensemble_") else name]
                                   * cfg.steps / 1000)
             for name, (model, horizon) in prep.models.items()}
    for name in _agents(cfg):
        tasks[f"eval/{name}"] = Task(_work, partial(_eval_job, name, cfg, prep.members,
                                                    {**run_kw, "seed": seeds.evaluation}),
                                     after=_needs(name, prep.members), cost=_EVAL_COST[name])
    if _altered(cfg):
        tasks["eval/altered_before"] = Task(_work, partial(_eval_job, "dmpc", cfg, prep.members, altered_kw,
                                                           label="altered_before"),
                                            after=_needs("dmpc", 0), cost=_EVAL_COST["altered_before"])
        tasks["eval/altered_after"] = Task(_work, partial(_finetune_job, cfg, seed, chunk_file, prep.tcfg, altered_kw),
                                           after=_needs("dmpc", 0), cost=_EVAL_COST["altered_after"])
    if prep.student is not None:  # its teacher is built from D-MPC's trained models in _distill_arg
        distill_kw = {**run_kw, "seed": seeds.distill, "episodes": cfg.distill_episodes}
        tasks["train/distilled"] = Task(
            _distill_job, partial(_distill_arg, prep.student.to(device), cfg, distill_kw,
                                  replace(prep.tcfg, steps=cfg.distill_steps)),
            after=_needs("dmpc", 0), cost=_TRAIN_COST["distilled"] * cfg.distill_steps / 1000)
    return tasks


def _train_and_evaluate(cfg, seed: int, prep: Prepared) -> Graph:
    """The graph run by ``cfg.workers`` spawned worker processes (each with threads // workers torch
    threads; one worker: in this process), the ready job heading the costliest chain first. Each job's
    result is kept as it finishes: a resumed seed runs only the jobs that had not finished."""
    import numpy as np

    from runners import phases

    pool = JobPool("inline" if cfg.workers <= 1 else "process", cfg.workers,
                   initializer=partial(_job_process, max(1, cfg.threads // max(1, cfg.workers)), phases.kept_folder()))
    with pool, tempfile.TemporaryDirectory(prefix="dmpc-chunks-") as tmp:
        chunk_file = str(Path(tmp) / "chunks.npz")  # read by every job, so the pool does not pickle it each time
        np.savez(chunk_file, **vars(prep.chunks))
        tasks = _tasks(cfg, seed, prep, chunk_file)
        t_wall = time.time()
        n_eval = sum(name.startswith("eval/") for name in tasks)
        known = {n: r for n in tasks if (r := phases.kept(f"job_{n}")) is not phases.MISSING}
        done = pool.run_graph(tasks, f"training {len(tasks) - n_eval} models, evaluating {n_eval} agents "
                                     f"({cfg.workers} workers)", known=known,
                              on_done=lambda n, r: phases.keep_result(f"job_{n}", r))
    return Graph(models=_trained(done, prep.members),
                 losses={k.removeprefix("train/"): v.losses for k, v in done.items() if k.startswith("train/")},
                 evaluations={k.removeprefix("eval/"): v.product for k, v in done.items() if k.startswith("eval/")},
                 records={k: v for out in done.values() for k, v in out.records.items()},
                 jobs={k: {"start": round(v.started - t_wall, 1), "seconds": round(v.seconds, 1)}
                       for k, v in done.items()})


def _job_kinds(jobs: dict[str, dict]) -> dict[str, float]:
    """The graph's job-seconds by kind: training the models, and running the agents (their episodes, and
    the fine-tuning and distillation that happen between an agent's episodes)."""
    training = sum(j["seconds"] for k, j in jobs.items() if k.startswith("train/") and k != "train/distilled")
    return {"model_training": training, "agent_evaluation": sum(j["seconds"] for j in jobs.values()) - training}


def _prediction_errors(seed: int, prep: Prepared, trained: dict) -> dict:
    """Open-loop state error (per-dimension std units) at 1..F steps ahead on the held-out chunks: the
    multi-step diffusion dynamics, the single-step diffusion model rolled out, the one-step ensemble."""
    import torch

    from paper_dmpc import baselines, models

    device = next(trained["dynamics"].parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    predictors = {"multistep_diffusion": trained["dynamics"],
                  "singlestep_diffusion": baselines.SingleStepDynamics(trained["dynamics_1step"]),
                  "mlp_ensemble": trained["ensemble"]}
    return {name: models.rollout_error(dyn, *_true_futures(prep.held, device), prep.norm.s_std.to(device), gen).cpu()
            for name, dyn in predictors.items()}


def _metrics(cfg, meta: dict, graph: Graph, errors: dict) -> tuple[dict[str, float], dict[str, str]]:
    """Every metric of a seed (the one place their names are written), and the claims' metrics this
    seed cannot decide, with the reason."""
    import numpy as np

    m: dict[str, float] = {}
    inconclusive = {}
    if meta.get("medium_episode_return_normalized") is not None:  # the data's level, beside the claims
        m["data_policy_score"] = float(meta["medium_episode_return_normalized"])
        m["data_learner_steps"] = float(meta["learner_steps"])
    for name, err in errors.items():
        m[f"pred_err_{name}_at_f"] = float(err[-1])
    multi, single = m["pred_err_multistep_diffusion_at_f"], m["pred_err_singlestep_diffusion_at_f"]
    # a diverged rollout (inf or nan) decides nothing: the ratio is then nan and its claim fails as not finite
    m["pred_err_ratio_multi_over_single"] = multi / single if np.isfinite([multi, single]).all() else float("nan")
    for name in _agents(cfg):
        res = graph.evaluations[name]
        m[f"score_{name}"] = float(res["normalized"].mean())
        m[f"return_{name}"] = float(res["returns"].mean())
        m[f"episode_length_{name}"] = float(res["lengths"].mean())
        m[f"mean_height_{name}"] = float(res["mean_height"].mean())
        m[f"seconds_per_control_step_{name}"] = res["seconds_per_step"]
    for base in ("mbop", "bc", "proposal") + (("abl_gaussian_proposal", "abl_single_step_proposal",
                                                  "abl_single_step_dynamics") if cfg.ablations else ()):
        m[f"score_dmpc_minus_{base}"] = m["score_dmpc"] - m[f"score_{base}"]
    if cfg.jump:
        m["jump_height_gain"] = m["mean_height_dmpc_jump"] - m["mean_height_dmpc"]
        m["jump_max_height_gain"] = float(graph.evaluations["dmpc_jump"]["max_height"].mean()
                                          - graph.evaluations["dmpc"]["max_height"].mean())
    if cfg.distill:
        m["distill_pairs"] = float(graph.records["distill_pairs"])
        m["score_dmpc_distill_episodes"] = graph.records["teacher_score"]  # the teacher on the episodes it taught
        m["distilled_speedup"] = (m["seconds_per_control_step_dmpc"]
                                  / max(m["seconds_per_control_step_distilled"], 1e-9))
        m["distilled_over_dmpc"] = m["score_distilled"] / m["score_dmpc"] if m["score_dmpc"] > 0 else float("nan")
        if m["score_dmpc"] <= 0:
            inconclusive["distilled_over_dmpc"] = "D-MPC's score is not positive: a ratio to it decides nothing"
    if _altered(cfg):
        m["score_altered_before"] = float(graph.evaluations["altered_before"]["normalized"].mean())
        m["score_altered_after"] = float(graph.evaluations["altered_after"]["normalized"].mean())
        m["finetune_gain"] = m["score_altered_after"] - m["score_altered_before"]
        m["play_transitions"] = float(graph.records["play_transitions"])
        for k in ("before", "after"):
            m[f"pred_err_altered_{k}_at_f"] = graph.records[f"pred_err_altered_{k}"][-1]
    elif cfg.novel_dynamics:
        m["finetune_gain"] = 0.0
        inconclusive["finetune_gain"] = f"no foot to weaken in {cfg.env}"
    return m, inconclusive


def _series(cfg, graph: Graph, errors: dict) -> dict[str, list]:
    """The curves: prediction error against steps ahead (and on the weakened-foot robot before and after
    fine-tuning), and every model's training loss (the ensemble's members averaged), at most ~100 points."""
    import numpy as np

    series = {f"pred_err_{name}": [(k + 1, float(e)) for k, e in enumerate(err)] for name, err in errors.items()}
    if _altered(cfg):
        for k in ("before", "after"):
            series[f"pred_err_altered_{k}"] = [(i + 1, e) for i, e in enumerate(graph.records[f"pred_err_altered_{k}"])]
        tune = graph.records["finetune_losses"]
        series["train_loss_dynamics_finetune"] = list(enumerate(tune[::max(1, len(tune) // 100)]))
    losses = {k: v for k, v in graph.losses.items() if not k.startswith("ensemble_")}
    losses["ensemble"] = np.mean([v for k, v in graph.losses.items() if k.startswith("ensemble_")], 0).tolist()
    for name, ls in losses.items():
        series[f"train_loss_{name}"] = thinned(ls)
    return series


def _info(cfg, data: SeedData, prep: Prepared, graph: Graph, laps: Laps) -> dict:
    """The seed's record beside its metrics: the data's provenance, sizes, each job's and phase's time,
    and every episode's score and length."""
    import numpy as np

    from paper_dmpc import data as pd

    keys = ("label", "env_id", "learner", "learner_steps", "target", "target_reached",
            "medium_episode_return_normalized", "replay_transitions", "generated_on")
    info: dict = {"data": {**{k: data.meta.get(k) for k in keys}, "data_seed": data.meta.get("spec", {}).get("seed"),
                           "content_sha256": data.digest},
                  "chunks": len(prep.chunks), "workers": cfg.workers, "jobs": graph.jobs}
    if _altered(cfg):
        play = graph.records["play_returns"]
        info["novel_dynamics"] = {"foot_scale": cfg.foot_scale, "play_episodes": len(play),
                                  "play_return_normalized": float(np.mean(pd.normalized_score(cfg.env, play))),
                                  "seconds": round(graph.jobs["eval/altered_before"]["seconds"]
                                                   + graph.jobs["eval/altered_after"]["seconds"], 1)}
    info["episodes"] = {k: {"normalized": v["normalized"].round(2).tolist(), "lengths": v["lengths"].tolist()}
                        for k, v in graph.evaluations.items()}
    info["seconds"] = round(laps.total(), 1)
    info["wall_seconds"] = {k: round(v, 1) for k, v in laps.items()}  # the jobs' own times are in "jobs"
    return info


@dataclass
class DMPCConfig(SuiteConfig):
    env: str = "hopper"  # hopper | halfcheetah | walker2d
    dataset: str = "medium-replay"  # medium | medium-replay
    data_path: str = ""  # a D4RL .hdf5, a Minari dataset folder or an .npz: used instead of generated data
    # data generation (an off-policy learner to D4RL's medium level; cached): seed s uses its own dataset, made
    # with learner seed data_seed + s, so that claims are over independently generated datasets
    # (data_per_seed=false: one dataset, data_seed's, for every seed)
    data_seed: int = 0
    data_per_seed: bool = True
    update_every: int = 1000  # D4RL's (rlkit's) loop: this many environment steps, then as many gradient steps
    learner: str = ""  # crossq | sac; "": the robot's (paper_dmpc.data.DEFAULT_LEARNER: SAC, CrossQ on Walker2d)
    max_learner_steps: int = 400_000
    learning_starts: int = 10_000
    learner_eval_every: int = 0  # 0: the learner's (paper_dmpc.data.EVAL_EVERY: SAC 5000, CrossQ 1000)
    medium_transitions: int = 200_000
    target: float = float("nan")  # normalised return that stops the learner; nan: D4RL's medium level
    require_target: bool = True  # data whose learner stopped below the target are not used (not "medium")
    heldout_fraction: float = 0.1  # episodes kept out of training for the prediction-error curve
    # models: F (horizon), the denoisers, the diffusion schedule, v- or epsilon-prediction (the paper's, per its
    # reimplementations), DDIM's x0 clip and the objective's discount
    model: ModelConfig = field(default_factory=lambda: ModelConfig(hidden=384))
    steps: int = 3000  # training steps per model
    batch: int = 256
    lr: float = 3e-4
    ema: float = 0.995
    members: int = 5  # the MBOP-style one-step ensemble
    # planning and evaluation
    samples: int = 64  # N
    replan: int = 4  # execute this many actions of the chosen chunk before planning again
    episodes: int = 10
    max_steps: int = 1000
    mbop_noise: float = 0.2
    mbop_kappa: float = 3.0
    pred_chunks: int = 256
    jump: bool = True
    ablations: bool = True  # the paper's three: Gaussian-MLP proposal, single-step proposal, single-step dynamics
    # novel dynamics: the foot's torque scaled by foot_scale; play data from the proposal in the altered
    # environment; only the dynamics model fine-tuned, on the play data plus as many original chunks
    novel_dynamics: bool = True
    foot_scale: float = 0.3
    play_episodes: int = 100
    finetune_steps: int = 1000
    # distillation (the paper's fast policy): D-MPC runs distill_episodes episodes of its own (other seeds than
    # the evaluation's), and an MLP of the same size as BC regresses the chunk it executed from each planning state
    distill: bool = True
    distill_episodes: int = 10
    distill_steps: int = 1500
    # models are trained, and agents evaluated, side by side in this many spawned processes (each with
    # threads // workers torch threads); 1 runs everything in this process (a GPU)
    workers: int = 2

    def __post_init__(self):
        if self.env not in ("hopper", "halfcheetah", "walker2d"):
            raise ValueError(f"env must be hopper, halfcheetah or walker2d, got {self.env!r}")
        if self.device.startswith("cuda") and self.workers > 1:
            raise ValueError(f"workers must be 1 on a GPU (the models' CUDA tensors stay in this process), got "
                             f"{self.workers}")
        if self.model.prediction not in ("v", "epsilon"):
            raise ValueError(f"model.prediction must be v or epsilon, got {self.model.prediction!r}")
        if self.dataset not in ("medium", "medium-replay"):
            raise ValueError(f"dataset must be medium or medium-replay, got {self.dataset!r}")
        if self.learner not in ("", "crossq", "sac"):
            raise ValueError(f"learner must be crossq or sac (or empty: the robot's), got {self.learner!r}")


_t = partial(at_tiers, tiers=("small", "full"))


class DMPCSuite(Suite):
    name = "dmpc"
    version = 3  # 2: each seed its own dataset, made in D4RL's training loop with pinned kernels; 3: by CrossQ
    config = DMPCConfig
    paper = PAPER
    description = "Diffusion MPC: multi-step diffusion proposal + dynamics, sample-score-rank, vs MBOP"
    requires = frozenset({"gymnasium", "mujoco", "sbx"})
    tiers = {
        # plumbing: seconds of CrossQ, a few training steps, one short episode; no score claims
        "smoke": ["max_learner_steps=1500", "learning_starts=500", "learner_eval_every=500", "update_every=500",
                  "target=1e9", "require_target=false", "medium_transitions=3000", "model.horizon=4",
                  "model.hidden=64", "model.layers=2", "model.train_steps=20", "model.proposal_steps=3",
                  "model.dynamics_steps=3", "steps=40", "batch=64",
                  "samples=8", "replan=2", "episodes=2", "max_steps=30", "members=2", "pred_chunks=32",
                  "play_episodes=4", "finetune_steps=10", "distill_episodes=2", "distill_steps=10"],
        # Hopper medium-replay: residual MLP denoisers (3 x 384), F = 16, 3000 steps per model, N = 64, replanning
        # every 4 steps; about 4.5 minutes per seed on 2 cores (2 single-thread workers)
        "small": ["threads=2"],
        # the paper's setting: transformer denoisers, F = 32, N = 64, replanning every step, 1000 x ... steps
        "full": ["device=cuda", "model.denoiser=transformer", "model.horizon=32", "steps=200000", "batch=256",
                 "lr=1e-4", "replan=1", "medium_transitions=1000000", "model.proposal_steps=32",
                 "model.dynamics_steps=10", "model.train_steps=1000", "threads=8", "workers=1"],
        # (full: data_path=... takes D4RL's or Minari's files)
    }
    tier_requires = {"full": frozenset({"gpus>=1"})}
    # the paper's Table 1: three robots x medium and medium-replay (give D4RL's or Minari's files with
    # data_path=... per job for the paper's own data)
    sweeps = {"six_datasets": ["env=hopper,halfcheetah,walker2d", "dataset=medium,medium-replay"]}
    default_seeds = {"smoke": 1, "small": 3, "full": 3}
    expected_minutes = {"smoke": 0.5, "small": 14.0}  # 2 cores, once the data are made (README)
    renamed_keys = {"max_sac_steps": "max_learner_steps", "sac_eval_every": "learner_eval_every",
                    "diffusion_steps": "model.train_steps",
                    **{k: f"model.{k}" for k in ("horizon", "denoiser", "hidden", "layers", "proposal_steps",
                                                 "dynamics_steps", "prediction", "clip", "gamma")}}
    claims = (
        Claim("multistep_pred_err_ratio", "pred_err_ratio_multi_over_single", "le", _t(1.0),
              source=f"{PAPER}, Sec. 4 (multi-step dynamics avoid compounding error)",
              description="F-step open-loop state error of the multi-step diffusion dynamics over that of the "
                          "single-step diffusion model rolled out, held-out episodes"),
        Claim("dmpc_over_mbop", "score_dmpc_minus_mbop", "ge", _t(0.0),
              source=f"{PAPER}, Table 1",
              context="D4RL, not this data: the 6-dataset means D-MPC 65.98 and MBOP 33.13; MBOP on "
                      "hopper-medium-replay 12.4",
              description="D-MPC minus the MBOP-style planner, D4RL-normalised return, same data, N and F"),
        Claim("dmpc_over_bc", "score_dmpc_minus_bc", "ge", _t(0.0), source=f"{PAPER}, Table 1 (BC 41.92 over 6)",
              description="D-MPC minus behaviour cloning, D4RL-normalised return, same data"),
        Claim("dmpc_over_proposal", "score_dmpc_minus_proposal", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 3 (planning with the dynamics and J over the proposal alone)",
              description="D-MPC minus executing the proposal's first sample, D4RL-normalised return"),
        Claim("ablation_diffusion_proposal", "score_dmpc_minus_abl_gaussian_proposal", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 5.4 (ablations: a diffusion proposal over a Gaussian-MLP one)",
              description="D-MPC minus the same planner with a Gaussian-MLP chunk proposal"),
        Claim("ablation_multistep_proposal", "score_dmpc_minus_abl_single_step_proposal", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 5.4 (ablations: a multi-step proposal over a single-step one)",
              description="D-MPC minus the same planner whose proposal samples one action, held for the chunk"),
        Claim("ablation_multistep_dynamics", "score_dmpc_minus_abl_single_step_dynamics", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 5.4 (ablations: multi-step dynamics over single-step dynamics)",
              description="D-MPC minus the same planner with single-step diffusion dynamics rolled out"),
        Claim("finetune_raises_return", "finetune_gain", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 5.3 (novel dynamics)",
              context="another defect and robot: Walker2d with a broken ankle, 22.74 -> 30.65 (here: the hopper's "
                      "foot torque x 0.3)",
              description="D-MPC in the weakened-foot environment after minus before fine-tuning only the dynamics "
                          "on play data from it, D4RL-normalised return"),
        Claim("distillation_keeps_return", "distilled_over_dmpc", "ge", _t(0.9),
              source=f"{PAPER}, Table 1 (secondary)",
              context="the 6-dataset means on D4RL: the distilled MLP policy 65.08 against D-MPC 65.98 (0.986)",
              description="score of an MLP policy distilled from D-MPC's executed chunks over D-MPC's score, "
                          "D4RL-normalised return, the same evaluation episodes"),
        Claim("jump_raises_height", "jump_height_gain", "ge", _t(0.0),
              source=f"{PAPER}, Sec. 5.2 (novel rewards at run time: hopper jump)",
              description="mean torso height with the height objective minus with the learned J, no retraining"),
    )

    def preparation(self, cfg, seeds):
        from paper_dmpc import data

        if cfg.data_path:
            return []
        specs = {self._data_spec(cfg, s) for s in seeds}
        return [Preparation(f"{data.ENV_IDS[cfg.env]} data, {data.LEARNERS[spec.learner]} seed {spec.seed} "
                            f"({data.LEARNERS[spec.learner]} to D4RL's medium level)",
                            (data.folder_of(spec) / "meta.json").is_file(),
                            _DATA_MINUTES.get((cfg.env, spec.learner), 60.0))
                for spec in sorted(specs, key=lambda sp: sp.seed)]

    def rehearsal(self, cfg):
        """The same models, batch, N, F and episodes side by side; a few training and control steps."""
        few = {"steps": 20, "max_steps": 20, "finetune_steps": 20, "distill_steps": 20, "play_episodes": 2,
               "distill_episodes": 2}
        return [f"{k}={min(v, getattr(cfg, k))}" for k, v in few.items()]

    def aggregate(self, runs):
        """The paper's headline: each agent's D4RL-normalised score averaged over the sweep's datasets (each
        dataset's seed mean), with a t-interval over the datasets; the paper's 6-dataset means sit beside
        them only where every dataset is D4RL's own (given by path), else as context."""
        from runners.claims import mean_ci

        done = [(c, s) for c, s in runs if s["status"] in ("pass", "fail", "inconclusive")]
        names = [f"{c['env']}-{c['dataset']}" for c, _ in done]
        d4rl = bool(done) and all(c["data_path"] for c, _ in done)
        rows = []
        for metric, paper in (("score_dmpc", 65.98), ("score_mbop", 33.13), ("score_bc", 41.92),
                              ("score_distilled", 65.08), ("score_dmpc_minus_mbop", 65.98 - 33.13)):
            values = [s["metrics"].get(metric) for _, s in done]
            if not values or any(v is None for v in values):
                continue
            mean, lo, hi = mean_ci(values)
            rows.append({"metric": metric, "mean": mean, "ci": None if len(values) < 2 else [lo, hi],
                         "n": len(values), "unit": "datasets", "datasets": names,
                         "paper": paper if d4rl else None,
                         "context": "" if d4rl else f"the paper's 6-dataset mean on D4RL: {paper:g} (this data: "
                                                    "Gymnasium v5, generated here)"})
        return rows

    def phase_steps(self, cfg):
        """Training steps per model, and control steps per evaluation episode (episodes run side by side)."""
        return {"model_training": cfg.steps, "agent_evaluation": cfg.max_steps}

    def preflight(self, cfg):
        """The data (given by path, cached, or the minutes to make them), and the training peak on the
        device: every model resident (fp32, with AdamW and EMA) and one batch's activations."""
        import torch

        from paper_dmpc.diffusion import denoiser
        from runners import preflight as pf
        from runners.rundir import cache_root

        m = cfg.model
        if cfg.data_path:
            needs = [pf.present("the dataset (data_path)", cfg.data_path)]
        else:
            needs = [pf.Need(p.what, "cached, or made first", "cached" if p.cached else f"to be made: about "
                             f"{p.minutes:.0f} min", True) for p in self.preparation(cfg, [0])]
        s_dim, a_dim = {"hopper": (11, 3), "halfcheetah": (17, 6), "walker2d": (17, 6)}[cfg.env]
        with torch.device("meta"):
            nets = [denoiser(m.denoiser, m.horizon, a_dim, s_dim), denoiser(m.denoiser, m.horizon, s_dim,
                                                                             s_dim + m.horizon * a_dim)]
        params = 2 * sum(p.numel() for net in nets for p in net.parameters())  # both, and their 1-step twins
        tokens = m.horizon + 2 if m.denoiser == "transformer" else 1
        width = 256 if m.denoiser == "transformer" else m.hidden
        activations = pf.transformer_activation_bytes(cfg.batch, tokens, width, 5 if m.denoiser == "transformer"
                                                      else m.layers, 8)
        needs.append(pf.memory("model_training", cfg.device, pf.training_bytes(
            params * (1 + cfg.ablations), activations)))
        needs.append(pf.free_disk("the data cache", cache_root(), 1.0))
        return needs

    def seed_unit(self, cfg):
        return "datasets" if self._own_data(cfg) else "seeds"

    @staticmethod
    def _own_data(cfg) -> bool:
        """Whether each seed makes its own dataset (so that seeds are datasets)."""
        return cfg.data_per_seed and not cfg.data_path

    @classmethod
    def _data_spec(cls, cfg, seed: int):
        from paper_dmpc import data

        return data.DataSpec(env=cfg.env, seed=cfg.data_seed + seed * cls._own_data(cfg),
                             learner=cfg.learner, max_steps=cfg.max_learner_steps, learning_starts=cfg.learning_starts,
                             eval_every=cfg.learner_eval_every, medium_transitions=cfg.medium_transitions,
                             target=cfg.target, update_every=cfg.update_every)

    def notes(self, cfg, tier):
        from paper_dmpc import data

        m = cfg.model
        return [
            f"Data: Gymnasium v5 local data ({cfg.env}-{cfg.dataset}), {data.LEARNERS[self._data_spec(cfg, 0).learner]} "
            f"(sbx; D4RL used SAC) in D4RL's loop ({cfg.update_every} environment steps, then as many gradient "
            "steps) stopped at D4RL's medium level; "
            f"medium = {cfg.medium_transitions} transitions of that stochastic policy, medium-replay = its replay "
            "buffer to the stop. Scores are D4RL-normalised with D4RL's reference returns, approximately "
            "(v5 dynamics differ slightly from D4RL's). "
            + (f"Each seed has its own dataset (learner seed {cfg.data_seed} + seed): the claims' intervals are over "
               "independently generated datasets, each with its own model initialisation."
               if self._own_data(cfg) else "Every seed uses one dataset."),
            f"Models: {m.denoiser} denoisers ({m.layers} x {m.hidden}, residual; the paper: transformers of width "
            f"256, 5 layers), F = {m.horizon} (the paper: likely 32), cosine schedule with {m.train_steps} steps, "
            f"{m.prediction}-prediction (the paper's reimplementations: epsilon, with which our MLP dynamics' first "
            "DDIM step magnified the network's error 2000-fold), "
            f"DDIM {m.proposal_steps} (proposal) / {m.dynamics_steps} (dynamics) steps, {cfg.steps} AdamW "
            f"steps of batch {cfg.batch} per model (the paper: ~1-2M), EMA {cfg.ema}.",
            f"Planner: N = {cfg.samples} samples, the best chunk's first {cfg.replan} action(s) executed before "
            "replanning (the paper: every step); MBOP-style baseline with the same N, F and J, "
            f"{cfg.members}-member one-step ensemble, BC prior noise {cfg.mbop_noise}, kappa {cfg.mbop_kappa}.",
            f"{cfg.episodes} evaluation episodes of at most {cfg.max_steps} steps per agent and seed.",
            f"Novel dynamics: the foot's torque x {cfg.foot_scale} (the paper: a walker's broken ankle, its exact "
            f"defect unknown); {cfg.play_episodes} episodes of play data from the proposal in that environment; "
            f"only the dynamics fine-tuned, {cfg.finetune_steps} steps.",
            "Ablations (the paper's three, same N, F, J and training steps): a Gaussian-MLP chunk proposal; a "
            "single-step diffusion proposal whose one action is held over the chunk; single-step diffusion "
            "dynamics rolled out over the chunk.",
            f"Distillation: D-MPC runs {cfg.distill_episodes} episodes of its own (not the evaluation's) and an MLP "
            f"({m.layers} x {m.hidden}, as BC) regresses the {cfg.replan} action(s) it executed from each planning "
            f"state, {cfg.distill_steps} steps; the paper's distillation data and network are not known to us.",
        ]

    def run(self, cfg: DMPCConfig, seed: int, out_dir: Path) -> RunResult:
        import torch

        torch.set_num_threads(cfg.threads)  # torch's generator is seeded by the harness (the models' initialisation)
        laps = Laps()
        data = self._load_data(cfg, seed)
        prep = _prepare(cfg, seed, data.arrays)
        laps.done("setup")
        graph = laps.run("models_and_agents", _train_and_evaluate, cfg, seed, prep,
                         parts=lambda g: _job_kinds(g.jobs))
        errors = laps.run("prediction_error", _prediction_errors, seed, prep, graph.models)
        metrics, inconclusive = _metrics(cfg, data.meta, graph, errors)
        for why in self._data_doubts(cfg, data.meta):
            inconclusive.update({c.metric: why for c in self.claims if c.metric not in inconclusive})
        return RunResult(metrics=metrics, series=_series(cfg, graph, errors), info=_info(cfg, data, prep, graph, laps),
                         inconclusive=inconclusive, inputs={"dataset": data.digest})

    def _load_data(self, cfg, seed: int) -> SeedData:
        """The seed's dataset: given by path, or generated (once; cached) to D4RL's medium level. Data whose
        learner stopped below that level are refused (DataBelowTarget) unless require_target=false."""
        from paper_dmpc import data

        if cfg.data_path:
            arrays = data.load_path(cfg.data_path)
            meta = {"label": f"{cfg.data_path} (given by path)", "env_id": data.ENV_IDS[cfg.env], "learner_steps": None,
                    "target_reached": None, "medium_episode_return_normalized": None, "replay_transitions": None}
        else:
            spec = self._data_spec(cfg, seed)
            sets, meta = data.load_or_generate(spec, log=lambda msg: print(msg, flush=True))
            if cfg.require_target and not meta["target_reached"]:
                raise DataBelowTarget(_below_target(spec, meta))
            arrays = sets[cfg.dataset]
        return SeedData(arrays, meta, data.content_sha256(arrays))  # the digest: compare tells other data apart

    def _data_doubts(self, cfg, meta: dict) -> list[str]:
        """Why this seed's data cannot carry the paper's claims: below the level they are named after,
        or one dataset shared by every seed where the claims are over generated datasets."""
        if cfg.data_path:
            return []
        doubts = []
        if not meta["target_reached"]:
            doubts.append(f"the data's learner stopped below D4RL's medium level ({meta['target']:g}; require_target=false)")
        if not cfg.data_per_seed:
            doubts.append("every seed used one generated dataset (data_per_seed=false): D-MPC's claims are over "
                          "independently generated datasets")
        return doubts

    def figures(self, results, cfg, out_dir):
        import numpy as np

        from runners.plotting import FigureWriter, pyplot, seed_bars

        plt = pyplot()
        out = FigureWriter(out_dir)
        fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(18, 4.5), width_ratios=(3, 3, 1.4))
        shown = {"dmpc": ("D-MPC", "C0"), "mbop": ("MBOP-style", "C3"), "proposal": ("proposal\nonly", "C2"),
                 "bc": ("BC", "C7"), "abl_gaussian_proposal": ("Gaussian\nproposal", "C1"),
                 "abl_single_step_proposal": ("1-step\nproposal", "C1"),
                 "abl_single_step_dynamics": ("1-step\ndynamics", "C1"), "distilled": ("distilled\nMLP", "C9")}
        seed_bars(ax, results, "score_{}", shown, fontsize=7)
        ax.set_ylabel("D4RL-normalised return (Gymnasium v5 local data)")
        ax.set_title(f"{cfg.env}-{cfg.dataset}, {cfg.episodes} episodes x {len(results)} seed(s)")
        for name, colour in (("multistep_diffusion", "C0"), ("singlestep_diffusion", "C1"), ("mlp_ensemble", "C3")):
            curves = [dict(r.series[f"pred_err_{name}"]) for r in results if f"pred_err_{name}" in r.series]
            if curves:
                ks = sorted(curves[0])
                bx.plot(ks, [np.mean([c[k] for c in curves]) for k in ks], color=colour, label=name.replace("_", " "))
        bx.set_yscale("log")
        bx.set_xlabel("steps ahead (open loop)")
        bx.set_ylabel("state RMSE (per-dimension std units)")
        bx.set_title("prediction error on held-out episodes")
        if seed_bars(cx, results, "score_{}", {"altered_before": ("before", "C7"), "altered_after": ("after", "C0")}):
            cx.set_ylabel("D4RL-normalised return")
            cx.set_title(f"foot torque x {cfg.foot_scale}:\nfine-tuning the dynamics only", fontsize=9)
            for k, style in (("before", ":"), ("after", "--")):  # the model's error on held-out altered-robot play
                curves = [dict(r.series[f"pred_err_altered_{k}"]) for r in results if f"pred_err_altered_{k}" in r.series]
                ks = sorted(curves[0]) if curves else []
                bx.plot(ks, [np.mean([c[i] for c in curves]) for i in ks], "C0" + style, lw=1,
                        label=f"multistep diffusion, weakened foot, {k} fine-tuning")
        else:
            cx.set_axis_off()
        bx.legend(fontsize=7)
        out.save(fig, "fig-dmpc.png")
        return out.paths
