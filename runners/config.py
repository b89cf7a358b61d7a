"""Suite configs through Hydra: ConfigStore registration, tier presets, override checking.

Hydra's own errors are multi-line tracebacks; every failure here becomes one HarnessError
line that names the offending key and, where it helps, the valid choices.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from runners.errors import HarnessError


def register(suite_cls) -> None:
    """Store the suite's config under its name. A paper package's frozen config nested in it becomes a
    read-only node, which overrides could not set: every node is made writable (``OmegaConf.to_object``
    still builds the frozen dataclass)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig, OmegaConf

    def writable(node: DictConfig) -> None:
        OmegaConf.set_readonly(node, None)
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                writable(child)

    node = OmegaConf.structured(suite_cls.config)
    writable(node)
    ConfigStore.instance().store(name=suite_cls.name, node=node)


def config_keys(cfg_cls, prefix: str = "") -> list[str]:
    """Dotted names of every leaf field of a (nested) config dataclass."""
    keys = []
    for f in fields(cfg_cls):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            keys += config_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def open_keys(cfg_cls, prefix: str = "") -> list[str]:
    """Dotted names of dict-valued fields: any sub-key may be set under them."""
    keys = []
    for f in fields(cfg_cls):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            keys += open_keys(type(default), f"{prefix}{f.name}.")
        elif isinstance(default, dict):
            keys.append(prefix + f.name)
    return keys


def _check_overrides(suite_cls, overrides: list[str], allow_sweep: bool) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    valid = config_keys(suite_cls.config)
    open_dicts = open_keys(suite_cls.config)
    for text in overrides:
        try:
            (ov,) = parser.parse_overrides([text])
        except OverrideParseException as exc:
            raise HarnessError(f"bad override {text!r}: expected key=value (Hydra override syntax)") from exc
        key = ov.key_or_group
        if key.startswith("hydra/") or key.startswith("hydra."):
            if not allow_sweep:
                raise HarnessError(f"override {text!r}: hydra settings only apply to sweeps (-m)")
            continue
        if key in suite_cls.renamed_keys:
            raise HarnessError(f"key {key!r} of suite {suite_cls.name!r} is now {suite_cls.renamed_keys[key]!r}")
        if (key not in valid and not any(v.startswith(key + ".") for v in valid)
                and not any(key.startswith(d + ".") for d in open_dicts)):
            raise HarnessError(f"unknown key {key!r} for suite {suite_cls.name!r}; valid keys: {', '.join(valid)}")
        if ov.is_sweep_override() and not allow_sweep:
            raise HarnessError(f"override {text!r} is a sweep; add -m to run one job per value")


def _one_line(exc: BaseException, overrides: list[str]) -> str:
    cause = exc.__cause__ or exc
    key = getattr(cause, "full_key", None)
    msg = getattr(cause, "msg", None) or str(cause)
    msg = " ".join(str(msg).split())
    if key:
        given = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), None)
        return f"bad value for {key!r}" + (f" ({given})" if given else "") + f": {msg}"
    return msg


def compose(suite_cls, tier: str, overrides: list[str]) -> tuple[Any, dict]:
    """Tier presets, then the user's overrides; returns (config object, plain dict)."""
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if tier not in suite_cls.tiers:
        raise HarnessError(f"unknown tier {tier!r} for suite {suite_cls.name!r}; tiers: {', '.join(suite_cls.tiers)}")
    _check_overrides(suite_cls, overrides, allow_sweep=False)
    register(suite_cls)
    preset = list(suite_cls.tiers[tier])
    GlobalHydra.instance().clear()
    try:
        with initialize(version_base="1.3", config_path=None):
            cfg = hydra_compose(config_name=suite_cls.name, overrides=preset + list(overrides))
        obj = OmegaConf.to_object(cfg)
        plain = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise HarnessError(_one_line(exc, overrides)) from exc
    finally:
        GlobalHydra.instance().clear()
    return obj, plain


def from_plain(suite_cls, plain: dict) -> Any:
    """The config object of a plain dict written by a run (its config.yaml), checked against the suite's
    config as it is now (a key it no longer has, or a value of the wrong type, is one line)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    register(suite_cls)
    from hydra.core.config_store import ConfigStore

    node = ConfigStore.instance().load(f"{suite_cls.name}.yaml").node
    try:
        return OmegaConf.to_object(OmegaConf.merge(node, plain))
    except (OmegaConfBaseException, ValueError) as exc:
        raise HarnessError(f"the run's config.yaml does not fit suite {suite_cls.name!r} now: {_one_line(exc, [])}") \
            from exc


# the cluster presets' GPUs-per-job key (runners/launchers/hydra/launcher/)
LAUNCHER_GPUS = {"cluster_slurm": "hydra.launcher.gpus_per_node", "cluster_ray": "hydra.launcher.ray.remote.num_gpus"}


def launcher_gpus(suite_cls, tier: str, overrides: list[str]) -> list[str]:
    """With a cluster preset, each job's GPUs from the tier's requirement (``gpus>=5``: 5 per job) where the
    user has not set them; nothing for a tier that needs at most one GPU (the presets' own 1)."""
    from runners.rehearsal import gpu_count

    launcher = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra/launcher=")), None)
    key = LAUNCHER_GPUS.get(launcher)
    device = next((o.split("=", 1)[1] for o in overrides if o.startswith("device=")), "cuda")
    n = gpu_count(suite_cls.requirements(tier), device)
    if key is None or n <= 1 or any(o.startswith(f"{key}=") for o in overrides):
        return []
    return [f"{key}={n}"]


def sweep_argv(suite_cls, tier: str, overrides: list[str]) -> list[str]:
    """Hydra command-line overrides for a multirun: tier preset first, then the user's (and, with a cluster
    preset, each job's GPU count from the tier's requirements)."""
    if tier not in suite_cls.tiers:
        raise HarnessError(f"unknown tier {tier!r} for suite {suite_cls.name!r}; tiers: {', '.join(suite_cls.tiers)}")
    _check_overrides(suite_cls, overrides, allow_sweep=True)
    return list(suite_cls.tiers[tier]) + list(overrides) + launcher_gpus(suite_cls, tier, overrides)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + str(k)] = v
    return out
