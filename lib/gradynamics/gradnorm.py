r"""Gradient transforms applied between ``backward()`` and ``optimizer.step()``; their statistics.

For the eligible parameter tensors :math:`l = 1, \dots, L` (by default: weight tensors with more
than one dimension, i.e. conv kernels and linear weight matrices; biases and BatchNorm affine
parameters keep their raw gradient) with gradients :math:`g_l \in \mathbb R^{m_l}`,
:math:`M = \sum_l m_l`, the transforms are

* **SGD**: :math:`\tilde g_l = g_l` (identity);
* **GC** (gradient centralization, Yong et al. 2020) :math:`\tilde g_l = P g_l`, where the mean is
  removed either per *output channel* (``centring="channel"``, the published GC: the mean over
  all dimensions but the first) or per *layer tensor* (``centring="layer"``:
  :math:`P = I - \tfrac1{m_l}\mathbf 1\mathbf 1^\top`);
* **ZNorm** (Yun & Kim 2024): :math:`\tilde g_l = (g_l - \mu_l\mathbf 1) / \sigma_l`, a per-layer
  z-score, i.e. a per-layer gain :math:`1/\sigma_l`;
* **GAN** (gradient autoscaled normalization, Yun 2025): per-layer centring
  :math:`\hat g_l = g_l - \mu_l\mathbf 1`, then *one* global multiplier,
  :math:`\tilde g_l = \alpha_t \hat g_l`, with :math:`\alpha_t` a function of the step's statistics,
  mainly the global standard deviation :math:`\sigma_t` of the concatenated centred gradient.

The paper's exact :math:`\alpha_t` is not known to this library; it is a pluggable *rule*
(a callable taking :class:`GradientStatistics`). The candidates A-D of the book's brief:
:func:`alpha_one` (A, :math:`\alpha_t = 1`: GC per layer), :func:`alpha_inverse_std`
(B, :math:`1/\sigma_t`), :func:`alpha_std_ratio` (C, :math:`\sigma_t/\sigma_{t_0}`, with
:math:`t_0` the first step) and :func:`alpha_std_ratio_capped` (D, :math:`\min(1,
\sigma_t/\sigma_{t_0})`). A rule receives only statistics: it has no tunable constant.

All standard deviations are population ones (divide by the number of entries). The kernels
accept a stack of gradients with ``batch_dims`` leading dimensions (one per model of an
ensemble), so one call transforms every seed of an experiment; :class:`TransformedOptimizer`
wraps any ``torch.optim`` optimizer for a single ``nn.Module``, and :func:`train_ensemble`
trains many models at once with ``torch.func.functional_call`` and ``vmap`` over stacked
states.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from gradynamics.datasets import ImageData, batches
from gradynamics.validation import check_positive, check_positive_int

__all__ = [
    "ALPHA_RULES",
    "AlphaRule",
    "ArmComparison",
    "EnsembleResult",
    "GradientStatistics",
    "StatisticsRecorder",
    "TransformSpec",
    "TransformedOptimizer",
    "alpha_inverse_std",
    "alpha_one",
    "alpha_std_ratio",
    "alpha_std_ratio_capped",
    "centre",
    "compare_arms",
    "default_eligible",
    "eligible_names",
    "evaluate",
    "gan",
    "gradient_centralization",
    "QuadraticRun",
    "quadratic_descent",
    "sgd",
    "spearman",
    "train_ensemble",
    "train_single",
    "transform_gradients",
    "znorm",
]


# --------------------------------------------------------------------------------------------
# Statistics and alpha rules


@dataclass(frozen=True)
class GradientStatistics:
    """Statistics of one step's eligible gradients; tensors carry the ensemble's batch shape.

    ``layer_mean``/``layer_std`` (shape ``batch + (L,)``) are the mean and std of each raw layer
    gradient; ``global_mean``/``global_std`` those of the concatenated raw gradient;
    ``centred_std`` is :math:`\\sigma_t`, the std of the concatenated gradient after the
    transform's centring (equal to ``global_std`` without centring); ``initial_centred_std`` is
    :math:`\\sigma_{t_0}`, its value at the first step; ``step`` counts from 0.
    """

    step: int
    layer_mean: torch.Tensor
    layer_std: torch.Tensor
    global_mean: torch.Tensor
    global_std: torch.Tensor
    centred_std: torch.Tensor
    initial_centred_std: torch.Tensor


AlphaRule = Callable[[GradientStatistics], torch.Tensor]


def alpha_one(stats: GradientStatistics) -> torch.Tensor:
    """Variant A: :math:`\\alpha_t = 1` (centring only: GC per layer tensor)."""
    return torch.ones_like(stats.centred_std)


def alpha_inverse_std(stats: GradientStatistics) -> torch.Tensor:
    """Variant B: :math:`\\alpha_t = 1/\\sigma_t`, a global z-score (1 where sigma_t = 0)."""
    sigma = stats.centred_std
    return torch.where(sigma > 0, 1 / sigma.clamp_min(torch.finfo(sigma.dtype).tiny),
                       torch.ones_like(sigma))


def alpha_std_ratio(stats: GradientStatistics) -> torch.Tensor:
    """Variant C: :math:`\\alpha_t = \\sigma_t/\\sigma_{t_0}` (1 where sigma_t0 = 0)."""
    sigma0 = stats.initial_centred_std
    return torch.where(sigma0 > 0, stats.centred_std / sigma0.clamp_min(
        torch.finfo(sigma0.dtype).tiny), torch.ones_like(sigma0))


def alpha_std_ratio_capped(stats: GradientStatistics) -> torch.Tensor:
    """Variant D: :math:`\\alpha_t = \\min(1, \\sigma_t/\\sigma_{t_0})`."""
    return alpha_std_ratio(stats).clamp_max(1.0)


#: The brief's candidate rules for the unknown :math:`\alpha_t`, by letter.
ALPHA_RULES: dict[str, AlphaRule] = {
    "A": alpha_one,
    "B": alpha_inverse_std,
    "C": alpha_std_ratio,
    "D": alpha_std_ratio_capped,
}


# --------------------------------------------------------------------------------------------
# Transform specifications

_CENTRINGS = (None, "layer", "channel")


@dataclass(frozen=True)
class TransformSpec:
    """What to do to the eligible gradients: centring, per-layer z-scoring, global alpha rule."""

    name: str
    centring: str | None = None
    layer_zscore: bool = False
    alpha: AlphaRule | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        if self.centring not in _CENTRINGS:
            raise ValueError(f"centring: expected one of {_CENTRINGS}, got {self.centring!r}")
        if self.alpha is not None and not callable(self.alpha):
            raise ValueError("alpha: expected a callable of GradientStatistics, or None")


def sgd() -> TransformSpec:
    """The identity transform (plain SGD)."""
    return TransformSpec("SGD")


def gradient_centralization(centring: str = "channel") -> TransformSpec:
    """GC: remove the mean per output ``"channel"`` (published GC) or per ``"layer"`` tensor."""
    if centring not in ("channel", "layer"):
        raise ValueError(f"centring: expected 'channel' or 'layer', got {centring!r}")
    return TransformSpec("GC" if centring == "channel" else "GC-layer", centring=centring)


def znorm() -> TransformSpec:
    """ZNorm: per-layer z-score :math:`(g_l - \\mu_l)/\\sigma_l`."""
    return TransformSpec("ZNorm", centring="layer", layer_zscore=True)


def gan(alpha: AlphaRule | str = "D", centring: str = "layer") -> TransformSpec:
    """GAN: per-layer centring and one global multiplier ``alpha`` (a rule or a letter A-D)."""
    if isinstance(alpha, str):
        if alpha not in ALPHA_RULES:
            raise ValueError(f"alpha: expected one of {sorted(ALPHA_RULES)} or a callable, "
                             f"got {alpha!r}")
        name, rule = f"GAN-{alpha}", ALPHA_RULES[alpha]
    elif callable(alpha):
        name, rule = f"GAN({getattr(alpha, '__name__', 'custom')})", alpha
    else:
        raise ValueError(f"alpha: expected one of {sorted(ALPHA_RULES)} or a callable, "
                         f"got {alpha!r}")
    if centring not in ("channel", "layer"):
        raise ValueError(f"centring: expected 'channel' or 'layer', got {centring!r}")
    return TransformSpec(name, centring=centring, alpha=rule)


# --------------------------------------------------------------------------------------------
# Kernels (unchecked: called in training loops)


def _reduce_dims(tensor: torch.Tensor, start: int) -> tuple[int, ...]:
    return tuple(range(start, tensor.ndim))


def _centre(g: torch.Tensor, centring: str | None, batch_dims: int) -> torch.Tensor:
    if centring is None:
        return g
    start = batch_dims if centring == "layer" else batch_dims + 1
    dims = _reduce_dims(g, start)
    if not dims:  # a channel of a single entry: nothing to centre
        return g
    return g - g.mean(dim=dims, keepdim=True)


def _layer_moments(g: torch.Tensor, batch_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    dims = _reduce_dims(g, batch_dims)
    var, mean = torch.var_mean(g, dim=dims, correction=0)
    return mean, var


def _transform(grads: Sequence[torch.Tensor], spec: TransformSpec, step: int,
               initial: torch.Tensor | None, batch_dims: int
               ) -> tuple[list[torch.Tensor], GradientStatistics, torch.Tensor]:
    sizes = torch.tensor([g[(0,) * batch_dims].numel() for g in grads],
                         dtype=grads[0].dtype, device=grads[0].device)
    total = sizes.sum()
    moments = [_layer_moments(g, batch_dims) for g in grads]
    layer_mean = torch.stack([m for m, _ in moments], dim=-1)
    layer_var = torch.stack([v for _, v in moments], dim=-1)
    global_mean = (sizes * layer_mean).sum(-1) / total
    global_var = (sizes * (layer_var + layer_mean**2)).sum(-1) / total - global_mean**2
    centred = [_centre(g, spec.centring, batch_dims) for g in grads]
    if spec.centring is None:
        centred_var = global_var
    else:
        sums = torch.stack([c.sum(dim=_reduce_dims(c, batch_dims)) for c in centred], dim=-1)
        squares = torch.stack([(c * c).sum(dim=_reduce_dims(c, batch_dims)) for c in centred],
                              dim=-1)
        centred_mean = sums.sum(-1) / total
        centred_var = squares.sum(-1) / total - centred_mean**2
    centred_std = centred_var.clamp_min(0).sqrt()
    initial = centred_std if initial is None else initial
    stats = GradientStatistics(step, layer_mean, layer_var.clamp_min(0).sqrt(), global_mean,
                               global_var.clamp_min(0).sqrt(), centred_std, initial)
    gains = torch.ones_like(layer_mean)
    if spec.layer_zscore:
        layer_std = stats.layer_std if spec.centring == "layer" else torch.stack(
            [_layer_moments(c, batch_dims)[1].sqrt() for c in centred], dim=-1)
        gains = torch.where(layer_std > 0, 1 / layer_std.clamp_min(
            torch.finfo(layer_std.dtype).tiny), torch.zeros_like(layer_std))
    if spec.alpha is not None:
        alpha = spec.alpha(stats)
        gains = gains * alpha.unsqueeze(-1)
    if spec.layer_zscore or spec.alpha is not None:
        out = [c * gains[..., k].reshape(gains.shape[:-1] + (1,) * (c.ndim - batch_dims))
               for k, c in enumerate(centred)]
    else:
        out = list(centred)
    return out, stats, gains


def _check_grads(name: str, grads: Sequence[torch.Tensor], batch_dims: int) -> list:
    if isinstance(grads, torch.Tensor) or not isinstance(grads, Sequence) or not grads:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    check_positive_int("batch_dims", batch_dims, minimum=0)
    grads = list(grads)
    for g in grads:
        if not isinstance(g, torch.Tensor) or not g.is_floating_point():
            raise ValueError(f"{name}: expected floating-point tensors")
        if g.ndim < batch_dims + 1:
            raise ValueError(f"{name}: each tensor needs more than batch_dims={batch_dims} "
                             f"dimensions, got shape {tuple(g.shape)}")
        if g.dtype != grads[0].dtype or g.device != grads[0].device:
            raise ValueError(f"{name}: mixed dtypes or devices ({g.dtype} on {g.device} vs "
                             f"{grads[0].dtype} on {grads[0].device})")
        if g.shape[:batch_dims] != grads[0].shape[:batch_dims]:
            raise ValueError(f"{name}: batch shapes differ, {tuple(g.shape[:batch_dims])} vs "
                             f"{tuple(grads[0].shape[:batch_dims])}")
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"{name}: contains NaN or infinite entries")
    return grads


def centre(grads: Sequence[torch.Tensor], centring: str = "layer",
           batch_dims: int = 0) -> list[torch.Tensor]:
    """Remove the mean of each tensor (``"layer"``) or of each output channel (``"channel"``)."""
    grads = _check_grads("grads", grads, batch_dims)
    if centring not in ("layer", "channel"):
        raise ValueError(f"centring: expected 'layer' or 'channel', got {centring!r}")
    return [_centre(g, centring, batch_dims) for g in grads]


def transform_gradients(grads: Sequence[torch.Tensor], spec: TransformSpec, step: int = 0,
                        initial_centred_std: torch.Tensor | None = None, batch_dims: int = 0
                        ) -> tuple[list[torch.Tensor], GradientStatistics, torch.Tensor]:
    """Apply ``spec`` to the eligible gradients; return (new gradients, statistics, gains).

    ``gains`` (shape ``batch + (L,)``) is the factor each centred layer gradient was multiplied
    by: 1 for SGD and GC, :math:`1/\\sigma_l` for ZNorm, :math:`\\alpha_t` for GAN.
    ``initial_centred_std`` is :math:`\\sigma_{t_0}` (``None`` at the first step: this step's).
    """
    grads = _check_grads("grads", grads, batch_dims)
    if not isinstance(spec, TransformSpec):
        raise ValueError(f"spec: expected a TransformSpec, got {type(spec).__name__}")
    check_positive_int("step", step, minimum=0)
    if initial_centred_std is not None:
        if not isinstance(initial_centred_std, torch.Tensor) or \
                tuple(initial_centred_std.shape) != tuple(grads[0].shape[:batch_dims]):
            raise ValueError("initial_centred_std: expected a tensor of the batch shape "
                             f"{tuple(grads[0].shape[:batch_dims])}")
    return _transform(grads, spec, step, initial_centred_std, batch_dims)


# --------------------------------------------------------------------------------------------
# Recording


class StatisticsRecorder:
    """Keeps each step's statistics on the device (no host sync per step); stacks them on demand.

    :meth:`end_epoch` marks an epoch boundary; :meth:`per_epoch` averages a statistic over the
    steps of each epoch.
    """

    FIELDS = ("layer_mean", "layer_std", "global_mean", "global_std", "centred_std", "gains")

    def __init__(self) -> None:
        self._steps: dict[str, list[torch.Tensor]] = {name: [] for name in self.FIELDS}
        self.epoch_ends: list[int] = []

    def record(self, stats: GradientStatistics, gains: torch.Tensor) -> None:
        """Append one step's statistics and gains."""
        if not isinstance(stats, GradientStatistics):
            raise ValueError(f"stats: expected a GradientStatistics, got {type(stats).__name__}")
        if not isinstance(gains, torch.Tensor) or gains.shape != stats.layer_std.shape:
            raise ValueError(f"gains: expected a tensor of shape {tuple(stats.layer_std.shape)}, "
                             f"got {tuple(getattr(gains, 'shape', ()))}")
        for name in self.FIELDS[:-1]:
            self._steps[name].append(getattr(stats, name).detach())
        self._steps["gains"].append(gains.detach())

    def end_epoch(self) -> None:
        """Mark the end of an epoch (after its last recorded step)."""
        self.epoch_ends.append(len(self._steps["global_std"]))

    def __len__(self) -> int:
        return len(self._steps["global_std"])

    def steps(self, name: str) -> torch.Tensor:
        """A statistic over all recorded steps, shape ``(steps,) + batch (+ (L,))``."""
        if name not in self.FIELDS:
            raise ValueError(f"name: expected one of {self.FIELDS}, got {name!r}")
        if not self._steps[name]:
            raise ValueError("name: nothing recorded yet")
        return torch.stack(self._steps[name])

    def per_epoch(self, name: str) -> torch.Tensor:
        """Mean of a statistic over the steps of each completed epoch, shape ``(epochs, ...)``."""
        values = self.steps(name)
        if not self.epoch_ends:
            raise ValueError("name: no epoch was completed (call end_epoch)")
        starts = [0] + self.epoch_ends[:-1]
        return torch.stack([values[a:b].mean(0) for a, b in zip(starts, self.epoch_ends,
                                                                 strict=True)])


# --------------------------------------------------------------------------------------------
# Wrapping a torch.optim optimizer


def default_eligible(name: str, parameter: torch.Tensor) -> bool:
    """The default rule: weight tensors with more than one dimension (conv and linear weights)."""
    return parameter.ndim > 1


def eligible_names(model: nn.Module,
                   eligible: Callable[[str, torch.Tensor], bool] = default_eligible) -> list[str]:
    """Names of ``model``'s trainable parameters that the ``eligible`` rule selects."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(eligible):
        raise ValueError("eligible: expected a callable (name, parameter) -> bool")
    return [name for name, p in model.named_parameters() if p.requires_grad and eligible(name, p)]


class TransformedOptimizer:
    """Wrap a ``torch.optim`` optimizer: :meth:`step` transforms ``model``'s gradients, then steps.

    Usage: ``loss.backward(); opt.step(); opt.zero_grad()``. Every step's statistics go to
    ``self.recorder`` (set ``record=False`` to skip).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module, spec: TransformSpec,
                 eligible: Callable[[str, torch.Tensor], bool] = default_eligible,
                 record: bool = True) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer: expected a torch.optim.Optimizer, "
                             f"got {type(optimizer).__name__}")
        if not isinstance(spec, TransformSpec):
            raise ValueError(f"spec: expected a TransformSpec, got {type(spec).__name__}")
        names = eligible_names(model, eligible)
        if not names:
            raise ValueError("eligible: selects no parameter of model")
        parameters = dict(model.named_parameters())
        self.optimizer = optimizer
        self.spec = spec
        self.names = names
        self.parameters = [parameters[name] for name in names]
        self.recorder = StatisticsRecorder() if record else None
        self.initial_centred_std: torch.Tensor | None = None
        self.step_count = 0
        self.last_stats: GradientStatistics | None = None
        self.last_gains: torch.Tensor | None = None

    def transform(self) -> None:
        """Transform the eligible ``.grad`` tensors in place (called by :meth:`step`)."""
        grads = [p.grad for p in self.parameters]
        if any(g is None for g in grads):
            missing = [n for n, g in zip(self.names, grads, strict=True) if g is None]
            raise ValueError(f"model: no gradient for eligible parameters {missing}; "
                             f"call backward() first")
        new, stats, gains = _transform(grads, self.spec, self.step_count,
                                       self.initial_centred_std, 0)
        with torch.no_grad():
            for p, g in zip(self.parameters, new, strict=True):
                p.grad.copy_(g)
        self.initial_centred_std = stats.initial_centred_std
        self.last_stats, self.last_gains = stats, gains
        if self.recorder is not None:
            self.recorder.record(stats, gains)
        self.step_count += 1

    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """Transform the gradients, then take the wrapped optimizer's step."""
        self.transform()
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the wrapped optimizer's gradients."""
        self.optimizer.zero_grad(set_to_none=set_to_none)


# --------------------------------------------------------------------------------------------
# Training


def _cosine(base: float, epoch: int, epochs: int) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def _check_training(data: ImageData, epochs: int, batch_size: int, lr: float, momentum: float,
                    weight_decay: float) -> None:
    if not isinstance(data, ImageData):
        raise ValueError(f"data: expected an ImageData, got {type(data).__name__}")
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if batch_size > data.x_train.shape[0]:
        raise ValueError(f"batch_size: {batch_size} exceeds the {data.x_train.shape[0]} "
                         f"training images")
    check_positive("lr", lr)
    check_positive("momentum", momentum, allow_zero=True)
    check_positive("weight_decay", weight_decay, allow_zero=True)


@dataclass
class EnsembleResult:
    """Outcome of :func:`train_ensemble`: one row per member (arm-major, then seed)."""

    arms: list[str]
    seeds: list[int]
    test_accuracy: torch.Tensor           # (arms, seeds)
    train_loss: torch.Tensor              # (epochs, arms, seeds): mean mini-batch loss
    recorder: StatisticsRecorder          # batch shape (arms * seeds,)
    layer_names: list[str]
    final_params: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    def per_epoch(self, name: str) -> torch.Tensor:
        """A recorded statistic per epoch, shape ``(epochs, arms, seeds, ...)``."""
        values = self.recorder.per_epoch(name)
        return values.reshape(values.shape[0], len(self.arms), len(self.seeds),
                              *values.shape[2:])

    def per_step(self, name: str) -> torch.Tensor:
        """A recorded statistic at every step, shape ``(steps, arms, seeds, ...)``."""
        values = self.recorder.steps(name)
        return values.reshape(values.shape[0], len(self.arms), len(self.seeds),
                              *values.shape[2:])

    def arm(self, name: str) -> int:
        """Index of the arm called ``name`` (e.g. ``"GAN-D"``) in :attr:`arms`."""
        if name not in self.arms:
            raise ValueError(f"name: expected one of {self.arms}, got {name!r}")
        return self.arms.index(name)


def train_ensemble(model_factory: Callable[[], nn.Module], specs: Sequence[TransformSpec],
                   seeds: Sequence[int], data: ImageData, epochs: int, batch_size: int = 64,
                   lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4,
                   eligible: Callable[[str, torch.Tensor], bool] = default_eligible,
                   device: torch.device | None = None) -> EnsembleResult:
    """Train one model per (spec, seed) in a single vmapped program; SGD+momentum, cosine LR.

    Seed ``s`` fixes the initialisation (``torch.manual_seed(s)`` before ``model_factory()``)
    and the mini-batch order, the same for every arm, so arms are compared on paired runs. The
    update is ``torch.optim.SGD``'s: ``d = T(g) + wd * p``, ``v = momentum * v + d``,
    ``p -= lr_epoch * v`` with the transform ``T`` applied to the loss gradient of the eligible
    tensors; ``lr_epoch`` follows a per-epoch cosine from ``lr`` to 0. Test accuracy uses the
    BatchNorm running statistics (eval mode).
    """
    if not callable(model_factory):
        raise ValueError("model_factory: expected a callable returning an nn.Module")
    if isinstance(specs, TransformSpec) or not specs or \
            not all(isinstance(s, TransformSpec) for s in specs):
        raise ValueError("specs: expected a non-empty sequence of TransformSpec")
    if isinstance(seeds, int) or not seeds:
        raise ValueError("seeds: expected a non-empty sequence of integers")
    seeds = [check_positive_int("seeds", s, minimum=0) for s in seeds]
    _check_training(data, epochs, batch_size, lr, momentum, weight_decay)
    device = device if device is not None else data.x_train.device
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(model_factory().to(device=device, dtype=data.x_train.dtype))
    names = eligible_names(models[0], eligible)
    if not names:
        raise ValueError("eligible: selects no parameter of the model")
    n_arms, n_seeds = len(specs), len(seeds)
    members = [copy.deepcopy(models[k]) for _ in specs for k in range(n_seeds)]
    params, buffers = stack_module_state(members)
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def loss_fn(p, b, x, y):
        loss = F.cross_entropy(functional_call(base, (p, b), (x,)), y)
        return loss, loss.detach()

    grad_fn = vmap(grad(loss_fn, has_aux=True))
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}
    recorder = StatisticsRecorder()
    initial = [None] * n_arms
    losses, step = [], 0
    n_train = data.x_train.shape[0]
    for epoch in range(epochs):
        lr_epoch = _cosine(lr, epoch, epochs)
        epoch_losses = []
        for batch in zip(*(batches(n_train, batch_size, g) for g in generators), strict=True):
            index = torch.stack(batch).to(device).repeat(n_arms, 1)
            grads, loss = grad_fn(params, buffers, data.x_train[index], data.y_train[index])
            epoch_losses.append(loss)
            arm_stats, arm_gains = [], []
            new = {name: [] for name in names}
            for a, spec in enumerate(specs):
                part = slice(a * n_seeds, (a + 1) * n_seeds)
                out, stats, gains = _transform([grads[n][part] for n in names], spec, step,
                                               initial[a], 1)
                initial[a] = stats.initial_centred_std
                arm_stats.append(stats)
                arm_gains.append(gains)
                for name, g in zip(names, out, strict=True):
                    new[name].append(g)
            for name in names:
                grads[name] = torch.cat(new[name])
            recorder.record(_concat_stats(arm_stats, step), torch.cat(arm_gains))
            for k, p in params.items():
                d = grads[k] + weight_decay * p if weight_decay else grads[k]
                velocity[k] = momentum * velocity[k] + d if step else d
                p.sub_(lr_epoch * velocity[k])
            step += 1
        recorder.end_epoch()
        losses.append(torch.stack(epoch_losses).mean(0))
    accuracy = _ensemble_accuracy(base, params, buffers, data)
    return EnsembleResult([s.name for s in specs], list(seeds),
                          accuracy.reshape(n_arms, n_seeds).cpu(),
                          torch.stack(losses).reshape(epochs, n_arms, n_seeds).cpu(),
                          recorder, names, params)


def _concat_stats(parts: Sequence[GradientStatistics], step: int) -> GradientStatistics:
    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(s, name) for s in parts])

    return GradientStatistics(step, cat("layer_mean"), cat("layer_std"), cat("global_mean"),
                              cat("global_std"), cat("centred_std"), cat("initial_centred_std"))


def _ensemble_accuracy(base: nn.Module, params, buffers, data: ImageData) -> torch.Tensor:
    base.eval()

    def predict(p, b, x):
        return functional_call(base, (p, b), (x,)).argmax(-1)

    with torch.no_grad():
        predictions = vmap(predict, in_dims=(0, 0, None))(params, buffers, data.x_test)
    base.train()
    return (predictions == data.y_test).to(torch.float64).mean(-1)


def train_single(model: nn.Module, spec: TransformSpec, data: ImageData, epochs: int,
                 seed: int = 0, batch_size: int = 64, lr: float = 0.05, momentum: float = 0.9,
                 weight_decay: float = 5e-4,
                 eligible: Callable[[str, torch.Tensor], bool] = default_eligible,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 on_epoch: Callable[[int, float, float], None] | None = None,
                 ) -> tuple[float, TransformedOptimizer]:
    """Train one ``nn.Module`` with ``torch.optim.SGD`` wrapped by :class:`TransformedOptimizer`.

    Same recipe as :func:`train_ensemble` (same batches for the same ``seed``); the model is
    moved to the data's device and dtype. ``augment(x,
    generator)`` transforms each training batch; ``on_epoch(epoch, train_loss, lr)`` is called
    after each epoch. Returns the final test accuracy and the wrapped optimizer (its
    ``recorder`` holds the statistics).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    _check_training(data, epochs, batch_size, lr, momentum, weight_decay)
    check_positive_int("seed", seed, minimum=0)
    model.to(device=data.x_train.device, dtype=data.x_train.dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    wrapped = TransformedOptimizer(optimizer, model, spec, eligible)
    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    device = data.x_train.device
    model.train()
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = _cosine(lr, epoch, epochs)
        total, count = torch.zeros((), device=device), 0
        for index in batches(data.x_train.shape[0], batch_size, generator):
            index = index.to(device)
            x = data.x_train[index]
            if augment is not None:
                x = augment(x, augment_generator)
            loss = F.cross_entropy(model(x), data.y_train[index])
            wrapped.zero_grad()
            loss.backward()
            wrapped.step()
            total, count = total + loss.detach(), count + 1
        wrapped.recorder.end_epoch()
        if on_epoch is not None:
            on_epoch(epoch, float(total / count), optimizer.param_groups[0]["lr"])
    return evaluate(model, data), wrapped


def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` in eval mode (BatchNorm running statistics)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, ImageData):
        raise ValueError(f"data: expected an ImageData, got {type(data).__name__}")
    check_positive_int("batch_size", batch_size)
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, data.x_test.shape[0], batch_size):
            x = data.x_test[start:start + batch_size]
            correct += int((model(x).argmax(-1) == data.y_test[start:start + batch_size]).sum())
    model.train()
    return correct / data.x_test.shape[0]


@dataclass(frozen=True)
class ArmComparison:
    r"""Test accuracy of arm ``a`` minus arm ``b`` over paired seeds, in the units of the input.

    ``pooled_std`` is :math:`\sqrt{(s_a^2 + s_b^2)/2}` (sample variances over seeds);
    ``ci_low``/``ci_high`` bound the paired difference's confidence interval (Student t over the
    per-seed differences, ``scipy.stats.ttest_rel``). :attr:`resolved` is the chapter's rule: a
    difference counts only when it exceeds twice the pooled seed-to-seed standard deviation.
    """

    difference: float
    pooled_std: float
    ci_low: float
    ci_high: float

    @property
    def resolved(self) -> bool:
        """``|difference| > 2 * pooled_std``."""
        return abs(self.difference) > 2 * self.pooled_std


def compare_arms(accuracy_a: torch.Tensor, accuracy_b: torch.Tensor,
                 confidence: float = 0.95) -> ArmComparison:
    """Compare two arms' accuracies over the same seeds (paired runs): difference, spread, CI.

    ``accuracy_a`` and ``accuracy_b`` have shape ``(seeds,)``, e.g. two rows of
    :attr:`EnsembleResult.test_accuracy`; entry ``k`` of both comes from seed ``k``.
    """
    import scipy.stats

    a = torch.as_tensor(accuracy_a, dtype=torch.float64).cpu()
    b = torch.as_tensor(accuracy_b, dtype=torch.float64).cpu()
    if a.ndim != 1 or a.numel() < 2:
        raise ValueError(f"accuracy_a: expected shape (seeds,) with >= 2 seeds, "
                         f"got {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"accuracy_b: expected shape {tuple(a.shape)} (the same seeds), "
                         f"got {tuple(b.shape)}")
    for name, value in (("accuracy_a", a), ("accuracy_b", b)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: contains NaN or infinite entries")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    pooled = float(((a.var() + b.var()) / 2).sqrt())
    per_seed = a - b
    difference = float(per_seed.mean())
    if bool((per_seed == per_seed[0]).all()):  # no spread: the t interval degenerates
        return ArmComparison(difference, pooled, difference, difference)
    interval = scipy.stats.ttest_rel(a.numpy(), b.numpy()).confidence_interval(confidence)
    return ArmComparison(difference, pooled, float(interval.low), float(interval.high))


# --------------------------------------------------------------------------------------------
# Small utilities


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of ``x`` (shape ``(n,)``) with each column of ``y`` (``(n, ...)``).

    Ties are not averaged (continuous data); compare with ``scipy.stats.spearmanr``. ``x`` is
    moved to ``y``'s device.
    """
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: contains NaN or infinite entries")
    if x.ndim != 1 or x.shape[0] < 3:
        raise ValueError(f"x: expected shape (n,) with n >= 3, got {tuple(x.shape)}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected shape ({x.shape[0]}, ...), got {tuple(y.shape)}")
    rank_x = x.to(y.device).argsort().argsort().to(torch.float64)
    rank_y = y.argsort(0).argsort(0).to(torch.float64)
    rank_x = rank_x.reshape((-1,) + (1,) * (y.ndim - 1)) - rank_x.mean()
    rank_y = rank_y - rank_y.mean(0)
    return (rank_x * rank_y).sum(0) / (rank_x.pow(2).sum(0) * rank_y.pow(2).sum(0)).sqrt()


@dataclass(frozen=True)
class QuadraticRun:
    """Trajectory of :func:`quadratic_descent`: losses ``(steps + 1, B)``, the rest ``(steps, B)``.

    ``projected_sq_norm`` is :math:`\\lVert P\\nabla f\\rVert^2` and ``gain`` the global factor
    :math:`\\alpha_t` (for GAN) applied at each step.
    """

    loss: torch.Tensor
    projected_sq_norm: torch.Tensor
    gain: torch.Tensor


def quadratic_descent(hessian: torch.Tensor, theta0: torch.Tensor,
                      shapes: Sequence[tuple[int, ...]], spec: TransformSpec, lr: float,
                      steps: int) -> QuadraticRun:
    """Full-batch transformed gradient descent on :math:`f = \\tfrac12\\theta^\\top H\\theta`.

    ``theta0`` has shape ``(B, M)`` (B independent starts); the :math:`M` coordinates are split
    into eligible tensors of the given ``shapes`` (in order), so centring acts per tensor. The
    gradient is :math:`H\\theta`; the update is
    :math:`\\theta \\leftarrow \\theta - \\eta\\,T(H\\theta)`.
    """
    hessian = torch.as_tensor(hessian)
    if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1] or \
            not hessian.is_floating_point():
        raise ValueError(f"hessian: expected a square floating-point matrix, "
                         f"got shape {tuple(hessian.shape)}")
    if not bool(torch.isfinite(hessian).all()):
        raise ValueError("hessian: contains NaN or infinite entries")
    if not torch.allclose(hessian, hessian.T):
        raise ValueError("hessian: expected a symmetric matrix")
    if not isinstance(theta0, torch.Tensor) or theta0.ndim != 2 \
            or theta0.shape[1] != hessian.shape[0] or theta0.dtype != hessian.dtype:
        raise ValueError(f"theta0: expected shape (B, {hessian.shape[0]}) and dtype "
                         f"{hessian.dtype}, got {tuple(getattr(theta0, 'shape', ()))}")
    if not bool(torch.isfinite(theta0).all()):
        raise ValueError("theta0: contains NaN or infinite entries")
    sizes = [math.prod(s) for s in shapes]
    if not shapes or any(len(s) < 1 for s in shapes) or sum(sizes) != hessian.shape[0]:
        raise ValueError(f"shapes: expected tensor shapes whose sizes sum to "
                         f"{hessian.shape[0]}, got {list(shapes)}")
    if not isinstance(spec, TransformSpec):
        raise ValueError(f"spec: expected a TransformSpec, got {type(spec).__name__}")
    check_positive("lr", lr)
    check_positive_int("steps", steps)
    theta = theta0.clone()
    batch = theta.shape[0]
    losses, sq_norms, gains = [], [], []
    initial = None
    for step in range(steps):
        gradient = theta @ hessian
        losses.append(0.5 * (gradient * theta).sum(-1))
        parts = [p.reshape((batch,) + tuple(s))
                 for p, s in zip(gradient.split(sizes, dim=-1), shapes, strict=True)]
        out, stats, gain = _transform(parts, spec, step, initial, 1)
        initial = stats.initial_centred_std
        centred = [_centre(p, spec.centring, 1) for p in parts]
        sq_norms.append(sum(c.reshape(batch, -1).pow(2).sum(-1) for c in centred))
        gains.append(gain[:, 0])
        theta = theta - lr * torch.cat([o.reshape(batch, -1) for o in out], dim=-1)
    losses.append(0.5 * ((theta @ hessian) * theta).sum(-1))
    return QuadraticRun(torch.stack(losses), torch.stack(sq_norms), torch.stack(gains))
