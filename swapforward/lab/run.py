"""Running every method over a long canvas of a world with a known answer, and measuring it against the truth.

In the Gaussian world the whole sampler (DDIM with eta 0, a linear windowed denoiser, linear merges and swaps) is
linear in its initial noise, so its output distribution is found exactly: the sampler run on every unit vector of
the canvas noise (and of the reference noise) gives the matrix A with output = A z, and the output covariance is
A A^T. The styles world is sampled (consistency with its standard error). Each setting runs the core's
`joint_denoise` with the method's plan, as the pipelines do.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ..core.envelope import ENVELOPE_SHARE
from ..core.layout import ViewLayout
from ..core.methods import METHODS
from ..core.plan import plan_joint
from ..core.sampler import Joint, joint_step, repaint_order, start
from ..options import AUDIO
from ..pipelines.continuation import Continuation
from ..pipelines.joint import observed as observed_reference
from ..pipelines.kept import step_back
from ..runtime.stochastic import PingPong, SchedulerWrapper
from . import metrics
from .candidates import GUIDANCES, context_guided, reconstruction_guided
from .worlds import GaussianWorld, StylesWorld, denoiser

#: The samplers of the main tables; the stochastic and few-step tables also use "pingpong" (Stable Audio 3's).
SCHEDULERS = ("ddim", "ddim-v", "flow")
#: Step-noise modes of a stochastic sampler: none (deterministic), one draw per view, one per canvas frame.
NOISE_MODES = ("none", "view", "canvas")


@dataclass(frozen=True)
class Setting:
    """One row of the lab's table."""

    method: str
    overlap: float = 0.2
    swap_interval: int = 1
    r_guide: float = AUDIO["r_guide"].default_for("audio")
    phase: str = "local"
    """The reference mask's phase: the lab's SaFa rows keep `local`, the phase they were first measured with (the
    option's default is now `middle`; docs/lab.md compares the two)."""
    soften: bool = False
    loop: bool = False
    label: str = ""
    noise: str = "none"
    """A stochastic step's noise: none (deterministic sampler), drawn per view, or once per canvas frame."""
    swap: str = "method"
    """The reference guidance: the method's own (Eq. 10's swap for safa), or a candidate of `candidates.GUIDANCES`
    (issue 27)."""
    envelope_share: float = ENVELOPE_SHARE
    """md-envelope's share (`core.envelope`)."""
    repaint: int = 0
    """RePaint's resampling after the guidance (`repaint_resample`, with the option's default jump)."""
    eta: float = 0.0
    """DDIM's eta for stochastic steps (the ping-pong sampler needs none)."""
    kept_guidance: float = 0.0
    """A continuation's reconstruction guidance toward the kept frames (`candidates.reconstruction_guided`), or a
    stream block's toward its context (`candidates.context_guided`)."""

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        extra = [f"overlap {self.overlap:g}"]
        if METHODS.get(self.method) is not None and METHODS[self.method].swaps:
            extra.append(f"w {self.swap_interval}")
        if self.method == "safa":
            extra += [f"r_guide {self.r_guide:g}", f"phase {self.phase}"]
        if self.method == "md-envelope":
            extra += [f"r_guide {self.r_guide:g}", f"share {self.envelope_share:g}"]
        if self.soften:
            extra.append("cross-faded swap")
        if self.loop:
            extra.append("loop")
        if self.swap != "method":
            extra.append(f"{self.swap} swap")
        if self.repaint:
            extra.append(f"RePaint x{self.repaint}")
        if self.kept_guidance:
            extra.append(f"reconstruction guidance {self.kept_guidance:g}")
        if self.noise != "none":
            extra.append(f"{'eta ' + format(self.eta, 'g') + ', ' if self.eta else ''}noise per {self.noise}")
        return f"{self.method} ({', '.join(extra)})"


CONTROL = Setting("control", label="single window (the model itself)")


def settings(quick: bool) -> list[Setting]:
    """The table's rows: the control first, then every method at the paper's audio overlap (0.2) and MD's 0.8, then
    the lab's questions (the reference mask's phase, swap intervals, a cross-faded swap, r_guide from 0 to 0.5)."""
    rows = [CONTROL, Setting("md", 0.2), Setting("md-tri", 0.2), Setting("safa-selfloop", 0.2), Setting("safa", 0.2),
            Setting("md", 0.8), Setting("md-tri", 0.8), Setting("safa-selfloop", 0.8),
            Setting("safa", 0.2, phase="middle"), Setting("safa", 0.2, phase="alternate"),
            Setting("safa", 0.2, loop=True), Setting("md", 0.8, loop=True)]
    if quick:
        return rows
    rows += [Setting("safa-selfloop", 0.2, swap_interval=w) for w in (2, 4, 8)]
    rows += [Setting("safa-selfloop", 0.2, soften=True), Setting("safa-selfloop", 0.2, loop=True)]
    rows += [Setting("safa", 0.2, phase=p, loop=True) for p in ("middle", "alternate")]
    rows += [Setting("safa", 0.2, r_guide=r) for r in (0.1, 0.2, 0.4, 0.5)]
    return rows


@dataclass
class Lab:
    """The geometry and sampler every setting shares."""

    window: int = 64
    length: int = 217
    """Every setting's canvas (the control's is one window): four views at the paper's 0.2, thirteen at 0.8."""
    steps: int = 50
    scheduler: str = "ddim"
    samples: int = 256
    seed: int = 0
    draws: int = 32768
    """Sampled canvases for a guidance that is not linear in the noises; its KLs are corrected for the sampling's
    expected bias (`metrics.sampled_kl_bias`, about 0.0017 per frame here)."""
    results: list[dict[str, Any]] = field(default_factory=list)

    def make_scheduler(self) -> Any:
        from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

        if self.scheduler == "pingpong":  # Stable Audio 3's sampler: x0 re-noised to the next level each step
            from diffusers.pipelines.stable_audio_3.pipeline_stable_audio_3 import logsnr_sigma_schedule

            scheduler = FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
            scheduler.set_timesteps(sigmas=logsnr_sigma_schedule(self.steps, -6.2, 2.0))
            return PingPong(scheduler)
        if self.scheduler == "flow":
            scheduler = FlowMatchEulerDiscreteScheduler()
        else:
            scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                      clip_sample=False, set_alpha_to_one=False,
                                      prediction_type="v_prediction" if self.scheduler == "ddim-v" else "epsilon")
        scheduler.set_timesteps(self.steps)
        return scheduler

    def layout(self, setting: Setting) -> ViewLayout:
        """The setting's views over the canvas (one view of one window for the control)."""
        length = self.window if setting.method == "control" else self.length
        return ViewLayout.build(length, self.window, overlap=setting.overlap, loop=setting.loop)

    def sample(self, world: Any, setting: Setting, noise: torch.Tensor, reference: torch.Tensor | None,
               kept: Any = None, draw: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
               observed: torch.Tensor | None = None) -> torch.Tensor:
        """The setting's output for canvases `noise` (B, C, length, K) and reference noise (B, C, window, K);
        `draw(shape)` gives a stochastic step's noise, per canvas frame or per view as the setting says. `observed`
        (B, C, window, K) is an observed reference's x0 (a clip, or an earlier block), noised with `reference`."""
        layout = self.layout(setting)
        scheduler = self.make_scheduler()
        step_noise, step_kwargs = None, {"eta": setting.eta} if setting.eta else {}
        if setting.noise == "canvas":
            step_noise = draw
        elif setting.noise == "view":
            scheduler = DrawnNoise(scheduler, lambda shape: draw(shape))  # one draw shared by the copies
        method = METHODS["safa-selfloop" if setting.method == "control" else setting.method]
        plan = plan_joint(method, layout, len(scheduler.timesteps), view_shape=(1, noise.shape[1], self.window,
                                                                                  noise.shape[3]),
                          axis=2, swap_axis=2, r_guide=setting.r_guide, swap_interval=setting.swap_interval,
                          reference_phase=setting.phase, envelope_share=setting.envelope_share)
        swap = plan.guidance
        if setting.swap != "method":
            scheduler, swap = GUIDANCES[setting.swap].bind(scheduler)
        weights = softened(plan.weights) if setting.soften else plan.weights
        callback = None
        sigma = getattr(scheduler, "init_noise_sigma", 1.0)
        if kept is not None:
            def callback(k: int, t: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
                return kept.after_step(k, canvas, noise, scheduler)

            noise_in = kept.start(noise * sigma, noise, scheduler)
        else:
            noise_in = noise * sigma
        joint = Joint(layout, 2, weights, plan.guide_steps, plan.reference_mask, swap=swap)
        generated = plan.guide_steps and observed is None
        state = start(noise_in, scheduler, joint, reference * sigma if generated else None)
        seen = None if observed is None else observed_reference(observed, reference, scheduler)
        model, steps = denoiser(world, scheduler), len(scheduler.timesteps)
        if kept is not None and setting.kept_guidance:  # toward a block's context, or a kept clip
            if not isinstance(kept, Continuation):
                model = reconstruction_guided(model, scheduler, layout, kept, setting.kept_guidance)
            elif kept.previous is not None:
                model = context_guided(model, scheduler, kept.previous[-1], setting.kept_guidance)
        jump = AUDIO["repaint_jump"].default_for("audio")
        order = repaint_order(steps, plan.guide_steps, jump, setting.repaint) if setting.repaint else range(steps)
        for k in order:  # the core's step, as the pipelines' driver runs it
            if k <= state.done:  # RePaint: back to the level before step k, with fresh noise
                state.canvas = step_back(scheduler, state.canvas, state.done + 1, k, draw(tuple(state.canvas.shape)))
            state = joint_step(state, k, model, joint, observed=seen, step_kwargs=step_kwargs, step_noise=step_noise)
            if callback is not None:
                state.canvas = callback(k, scheduler.timesteps[k], state.canvas)
        return state.canvas

    def linear_map(self, world: GaussianWorld, setting: Setting,
                   kept: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, c): one lane's output = A z + c for z its canvas noise, its reference noise, then every stochastic
        step's noise in the order drawn (exact: the sampler is linear in all of them)."""
        layout = self.layout(setting)
        lane = replace(world, channels=1, bins=1)
        zero = torch.zeros(1, 1, layout.length, 1, dtype=torch.float64)
        drawn = UnitNoise(1, 0, count_only=True)
        offset = self.sample(lane, setting, zero, torch.zeros(1, 1, self.window, 1, dtype=torch.float64), kept,
                             drawn.draw)
        inputs = layout.length + self.window + drawn.offset
        basis = torch.eye(layout.length + self.window, dtype=torch.float64)
        basis = torch.nn.functional.pad(basis, (0, 0, 0, drawn.offset))
        noise = basis[:, : layout.length].reshape(inputs, 1, layout.length, 1)
        reference = basis[:, layout.length:].reshape(inputs, 1, self.window, 1)
        steps = UnitNoise(inputs, layout.length + self.window)
        columns = self.sample(lane, setting, noise, reference, kept, steps.draw) - offset
        return columns.reshape(inputs, layout.length).T, offset.reshape(layout.length)


    def sampled_moments(self, world: GaussianWorld, setting: Setting, kept: Any = None,
                        batch: int = 16384) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One lane's output mean, covariance and frames' mean excess kurtosis (the truth's: 0, a sign of how far
        from Gaussian the output is) over `draws` sampled canvases, for a guidance that is not linear in the noises.
        Without kept frames the mean is the truth's, zero (every guidance here is odd in the noises), and the
        covariance is the second moment about it."""
        layout = self.layout(setting)
        lane = replace(world, channels=1, bins=1)
        generator = torch.Generator().manual_seed(self.seed + 2)
        total, fourth = (torch.zeros(layout.length, dtype=torch.float64) for _ in range(2))
        moment = torch.zeros(layout.length, layout.length, dtype=torch.float64)
        for first in range(0, self.draws, batch):
            size = min(batch, self.draws - first)
            noise = torch.randn(size, 1, layout.length, 1, generator=generator, dtype=torch.float64)
            reference = torch.randn(size, 1, self.window, 1, generator=generator, dtype=torch.float64)
            out = self.sample(lane, setting, noise, reference, kept,
                              draw=lambda shape: torch.randn(shape, generator=generator, dtype=torch.float64))
            flat = out.reshape(size, layout.length)
            total += flat.sum(0)
            moment += flat.T @ flat
            fourth += flat.pow(4).sum(0)
        mean = total / self.draws if kept is not None else torch.zeros_like(total)
        cov = moment / self.draws - torch.outer(mean, mean)
        kurtosis = (fourth / self.draws) / (moment.diagonal() / self.draws).pow(2) - 3
        return mean, cov, float(kurtosis.mean())


class UnitNoise:
    """Step noises as unit vectors of the linear map's inputs: every draw takes the next block of input indices, so
    lane i of the batch carries a one at input i (`count_only`: zeros, counting the inputs the draws take)."""

    def __init__(self, inputs: int, offset: int, count_only: bool = False):
        self.inputs, self.offset, self.count_only = inputs, offset, count_only

    def draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        per_lane = math.prod(shape) // self.inputs  # a lane's views (or reference) and their frames
        block = torch.zeros(self.inputs, per_lane, dtype=torch.float64)
        if self.count_only:
            self.offset += per_lane
            return block.reshape(shape)
        index = torch.arange(per_lane)
        inside = self.offset + index < self.inputs
        block[self.offset + index[inside], index[inside]] = 1.0
        self.offset += per_lane
        return block.reshape(shape)


class DrawnNoise(SchedulerWrapper):
    """A stochastic scheduler whose every `step` takes its noise from `draw(shape)` for the batch it steps: one
    noise per view, as the engine drew it before noise was drawn per canvas frame (kept here to compare)."""

    def __init__(self, scheduler: Any, draw: Callable[[tuple[int, ...]], torch.Tensor]):
        super().__init__(scheduler)
        self.draw = draw

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("variance_noise", "generator")}
        return self.scheduler.step(model_output, timestep, sample, variance_noise=self.draw(tuple(sample.shape)),
                                   **kwargs)


def softened(weights: torch.Tensor) -> torch.Tensor:
    """The swap's binary weights cross-faded over neighbouring frames ([1, 2, 1] / 4), never below a small floor."""
    kernel = torch.tensor([[[0.25, 0.5, 0.25]]], dtype=weights.dtype)
    smooth = torch.nn.functional.conv1d(weights[:, None].float(), kernel.float(), padding=1)[:, 0].to(weights)
    return torch.where(weights.sum(0, keepdim=True) > 0, smooth.clamp(min=1e-3), smooth)


def linear(setting: Setting) -> bool:
    """Whether the setting's sampler is linear in its noises (the lab then finds its output exactly)."""
    if setting.swap != "method":
        return GUIDANCES[setting.swap].linear
    return setting.method == "control" or METHODS[setting.method].guidance != "envelope"


def gaussian_row(lab: Lab, world: GaussianWorld, setting: Setting) -> dict[str, Any]:
    """Measures of one setting in the Gaussian world: exact, or sampled for a guidance not linear in the noises."""
    layout = lab.layout(setting)
    sampled = not linear(setting)
    kurtosis = 0.0
    if sampled:
        _, cov, kurtosis = lab.sampled_moments(world, setting)
    else:
        a, _ = lab.linear_map(world, setting)
        cov = a @ a.T
    truth = world.covariance(layout.length)
    if setting.loop:  # a loop's truth is the stationary process on a circle of `length` frames
        tau = torch.arange(layout.length)[:, None] - torch.arange(layout.length)[None, :]
        tau = torch.minimum(tau.abs(), layout.length - tau.abs())
        truth = world.kernel(tau) + 1e-4 * torch.eye(layout.length, dtype=torch.float64)

    def bias(floor: float) -> float:  # a sampled covariance's expected excess KL
        return metrics.sampled_kl_bias(cov, lab.draws, floor) if sampled else 0.0

    freqs, power = metrics.spectrum_of_covariance(cov)
    _, true_power = metrics.spectrum_of_covariance(truth)
    covered = (layout.coverage > 1).int().tolist()
    edges = [i for i in range(1, len(covered)) if covered[i] != covered[i - 1]]
    bounds = [0, *edges, len(covered)]
    runs = [(lo, hi, covered[lo]) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    overlaps = [(lo, hi) for lo, hi, c in runs if c]
    middles = [(lo, hi) for lo, hi, c in runs if not c]
    width = min([hi - lo for lo, hi in overlaps] or [layout.window])
    pairs = metrics.view_pair_correlations(cov, layout)
    stride = layout.starts[1] - layout.starts[0] if layout.num_views > 1 else layout.window
    middle_frames = [f for lo, hi in middles for f in range(lo, hi) if f + stride < layout.length]
    copy = (sum(metrics.correlation(cov, f, f + stride) for f in middle_frames) / len(middle_frames)
            if middle_frames else float("nan"))
    return {
        "setting": setting.name, **asdict(setting), "views_made": layout.num_views, "length": layout.length,
        "sampled": sampled, "excess_kurtosis": kurtosis,
        "lsd_db": metrics.log_spectral_distance(power, true_power),
        "low_band": metrics.band_ratio(freqs, power, true_power, metrics.LOW_BAND),
        "high_band": metrics.band_ratio(freqs, power, true_power, metrics.HIGH_BAND),
        "overlap_high_band": metrics.region_band_ratio(cov, truth, overlaps, width, metrics.HIGH_BAND),
        "overlap_top_band": metrics.region_band_ratio(cov, truth, overlaps, width, metrics.TOP_BAND),
        "middle_high_band": metrics.region_band_ratio(cov, truth, middles, width, metrics.HIGH_BAND),
        "min_variance": float(cov.diagonal().min()), "max_variance": float(cov.diagonal().max()),
        "variance": cov.diagonal().tolist(),
        "kl_per_frame": metrics.gaussian_kl(cov, truth) - bias(0.0),
        "kl_floor_per_frame": metrics.gaussian_kl(cov, truth, floor=metrics.KL_FLOOR) - bias(metrics.KL_FLOOR),
        "lost_dimensions": metrics.lost_dimensions(cov),
        "pair_corr_first": pairs[0] if pairs else float("nan"),
        "pair_corr_rest": sum(pairs[1:]) / len(pairs[1:]) if len(pairs) > 1 else float("nan"),
        "corr_at_stride": copy, "true_corr_at_stride": float(world.kernel(torch.tensor(stride))),
        "spectrum": power.tolist(), "true_spectrum": true_power.tolist(), "frequencies": freqs.tolist(),
    }


def sampled(lab: Lab, world: Any, setting: Setting, generator: torch.Generator) -> torch.Tensor:
    """The setting's output for `lab.samples` canvases whose noise, reference noise and step noise `generator` draws,
    in that order."""
    layout = lab.layout(setting)
    noise = torch.randn(lab.samples, world.channels, layout.length, world.bins, generator=generator,
                        dtype=torch.float64)
    reference = torch.randn(lab.samples, world.channels, lab.window, world.bins, generator=generator,
                            dtype=torch.float64)
    return lab.sample(world, setting, noise, reference,
                      draw=lambda shape: torch.randn(shape, generator=generator, dtype=torch.float64))


def styles_row(lab: Lab, world: StylesWorld, setting: Setting) -> dict[str, Any]:
    """Sampled measures of one setting in the styles world: do the canvas's window-sized segments keep one style?"""
    layout = lab.layout(setting)
    out = sampled(lab, world, setting, torch.Generator().manual_seed(lab.seed))
    fixed = metrics.fixed_segments(out, lab.window)
    segments = fixed.shape[1]
    aligned = out[:, :, layout.indices].movedim(2, 1)  # (canvases, views, channels, window, bins): the views
    scores, per_segment = {}, None
    for name, pieces in (("fixed", fixed), ("views", aligned)):
        logl = world.log_likelihoods(pieces.flatten(0, 1)).view(lab.samples, pieces.shape[1], -1)
        scores[name] = metrics.consistency(logl)
        per_segment = logl.flatten(0, 1) if per_segment is None else per_segment
    shares, truth = metrics.style_shares(per_segment), true_style_shares(lab, world)
    return {"setting": setting.name, "segments": segments, "consistency": scores["fixed"][0],
            "style_shares": shares, "true_style_shares": truth,
            "mix_error": max(abs(a - b) for a, b in zip(shares, truth, strict=True)),
            "consistency_se": scores["fixed"][1],
            "independent_windows": metrics.independent_consistency(world.weights, segments),
            "view_segments": layout.num_views, "consistency_views": scores["views"][0],
            "consistency_views_se": scores["views"][1],
            "independent_views": metrics.independent_consistency(world.weights, layout.num_views)}


def true_style_shares(lab: Lab, world: StylesWorld) -> list[float]:
    """The share of the fixed segments of true long signals (as many as the lab's canvases, its seed) that the same
    classifier gives each style: the truth a method's style mix is measured against (issue 39)."""
    signals, _ = world.sample(lab.samples, lab.length, torch.Generator().manual_seed(lab.seed + 3))
    return metrics.style_shares(world.log_likelihoods(metrics.fixed_segments(signals, lab.window).flatten(0, 1)))


def kept_row(lab: Lab, world: GaussianWorld, setting: Setting) -> dict[str, Any]:
    """A kept first window (a continuation): the filled frames' output distribution against the exact Gaussian
    conditional given the kept ones, as a KL per filled frame (for one draw of the kept frames)."""
    from ..pipelines.kept import Kept, edge_ramp

    layout = lab.layout(setting)
    truth = world.covariance(layout.length)
    generator = torch.Generator().manual_seed(lab.seed + 1)
    x = torch.linalg.cholesky(truth) @ torch.randn(layout.length, generator=generator, dtype=torch.float64)
    kept_frames = torch.zeros(layout.length, dtype=torch.bool)
    kept_frames[: lab.window // 2] = True
    content = torch.where(kept_frames, x, torch.zeros_like(x)).view(1, 1, layout.length, 1)
    kept = Kept(content, kept_frames, edge_ramp(kept_frames, 2, setting.loop), axis=2)
    free = ~kept_frames
    k, f = kept_frames.nonzero().flatten(), free.nonzero().flatten()
    gain = truth[f][:, k] @ torch.linalg.inv(truth[k][:, k])
    mean, cov = gain @ x[k], truth[f][:, f] - gain @ truth[k][:, f]
    sampled = not linear(setting)
    if sampled:
        c, full = lab.sampled_moments(world, setting, kept)[:2]
        out_cov, spread = full[f][:, f], full[k][:, k]
    else:
        a, c = lab.linear_map(world, setting, kept)
        out_cov, spread = a[f] @ a[f].T, a[k] @ a[k].T

    def bias(floor: float) -> float:  # sampled: the covariance's and the mean's expected excess KL
        if not sampled:
            return 0.0
        mean_error = float(torch.linalg.solve(cov, out_cov).trace()) / (2 * lab.draws * len(f))
        return metrics.sampled_kl_bias(out_cov, lab.draws, floor) + mean_error

    return {"setting": setting.name, "kept_frames": int(kept_frames.sum()), "sampled": sampled,
            "kl_filled_per_frame": metrics.gaussian_kl(out_cov, cov, c[f], mean) - bias(0.0),
            "kl_floor_filled_per_frame": (metrics.gaussian_kl(out_cov, cov, c[f], mean, floor=metrics.KL_FLOOR)
                                          - bias(metrics.KL_FLOOR)),
            "lost_dimensions": metrics.lost_dimensions(out_cov),
            "kept_exact": bool((torch.allclose(c[k], x[k], rtol=0, atol=1e-9) if sampled else torch.equal(c[k], x[k]))
                               and spread.abs().max() < 1e-9)}


#: The stochastic samplers the lab compares: DDIM with eta 1 (at the lab's steps) and Stable Audio 3's 8-step
#: ping-pong sampler.
STOCHASTIC = (("ddim", 1.0, None), ("pingpong", 0.0, 8))
#: The few-step samplers of distilled models: 8 ping-pong steps (Stable Audio 3) and 8 deterministic flow steps
#: (Z-Image Turbo; FLUX.1 schnell takes 4).
FEW_STEPS = (("pingpong", "canvas"), ("flow", "none"))


def stochastic_rows(lab: Lab, world: GaussianWorld) -> list[dict[str, Any]]:
    """Every averaging and swapping method with a stochastic sampler, its step noise drawn per view (as before)
    and once per canvas frame (as now): exact, in the Gaussian world."""
    rows = []
    for scheduler, eta, steps in STOCHASTIC:
        sub = replace(lab, scheduler=scheduler, steps=steps or lab.steps, results=[])
        for noise in ("view", "canvas"):
            for method in ("md", "md-tri", "safa-selfloop", "safa"):
                row = gaussian_row(sub, world, Setting(method, 0.2, noise=noise, eta=eta))
                rows.append({**row, "sampler": f"{scheduler}{f' eta {eta:g}' if eta else ''}, {sub.steps} steps"})
    return rows


def few_step_rows(lab: Lab, gaussian: GaussianWorld, styles: StylesWorld) -> list[dict[str, Any]]:
    """The reference swap with 8 steps, r_guide 0.3 to 0.75 (2 to 6 guided steps), against SaFa* and MD*: copying,
    lost dimensions and KL (exact) and consistency (sampled)."""
    rows = []
    for scheduler, noise in FEW_STEPS:
        sub = replace(lab, scheduler=scheduler, steps=8, results=[])
        settings_ = [Setting("md-tri", 0.2, noise=noise), Setting("safa-selfloop", 0.2, noise=noise)]
        settings_ += [Setting("safa", 0.2, r_guide=r, noise=noise) for r in (0.3, 0.5, 0.75)]
        for setting in settings_:
            exact, sampled = gaussian_row(sub, gaussian, setting), styles_row(sub, styles, setting)
            rows.append({**sampled, **exact, "sampler": f"{scheduler}, 8 steps"})
    return rows


#: Issue 27's candidates for a reference guidance with SaFa's consistency at MD*'s faithfulness, and the rows they
#: are judged against (MD*, SaFa*, SaFa first); the last is the method they led to, md-envelope.
CANDIDATES = (Setting("md-tri"), Setting("safa-selfloop"), Setting("safa"), Setting("safa", phase="alternate"),
              Setting("safa", swap="soft 0.5"), Setting("safa", swap="soft 0.5", phase="alternate"),
              Setting("safa", swap="soft 0.25", phase="alternate"), Setting("safa", swap="low-pass 5"),
              Setting("safa", swap="low-pass 9"), Setting("safa", swap="x0"), Setting("safa", swap="envelope 0.5"),
              Setting("md-envelope", envelope_share=0.5), Setting("md-envelope"))
#: The same targets with a stochastic sampler (DDIM eta 1, one noise per canvas frame).
STOCHASTIC_CANDIDATES = tuple(Setting(m, noise="canvas", eta=1.0)
                              for m in ("md-tri", "safa-selfloop", "safa", "md-envelope"))


def candidate_rows(lab: Lab, gaussian: GaussianWorld, styles: StylesWorld,
                   candidates: tuple[Setting, ...] = CANDIDATES) -> list[dict[str, Any]]:
    """Every candidate against the four targets: consistency at least SaFa's (within one standard error, both
    segmentations), correlation at the stride at most 0.10, no lost dimension, KL (exact and at the floor) at most
    1.5x MD*'s; `candidates` start with MD*, SaFa* and SaFa under the same sampler."""
    rows = [{**styles_row(lab, styles, s), **gaussian_row(lab, gaussian, s)} for s in candidates]
    safa, md_tri = rows[2], rows[0]
    for r in rows:
        r["targets"] = {
            "consistency": all(r[k] + r[f"{k}_se"] >= safa[k] for k in ("consistency", "consistency_views")),
            "copying": r["corr_at_stride"] <= 0.10,
            "dimensions": r["lost_dimensions"] == 0,
            "kl": (r["kl_per_frame"] <= 1.5 * md_tri["kl_per_frame"]
                   and r["kl_floor_per_frame"] <= 1.5 * md_tri["kl_floor_per_frame"]),
        }
    return rows


def run(quick: bool = False, scheduler: str = "ddim", steps: int | None = None, samples: int | None = None,
        seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every setting in both worlds, and the kept-clip rows; a dict ready for `write_report`."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"Unknown lab scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}.")
    lab = Lab(steps=steps or (25 if quick else 50), scheduler=scheduler, samples=samples or (128 if quick else 512),
              seed=seed)
    gaussian, styles = GaussianWorld(), StylesWorld()
    rows = settings(quick)
    kept_settings = [Setting("md", 0.2), Setting("md-tri", 0.2), Setting("safa-selfloop", 0.2), Setting("safa", 0.2)]
    if not quick:
        kept_settings.append(Setting("md-envelope"))
    if scheduler != "flow":  # RePaint steps back through alphas_cumprod
        kept_settings += [Setting("md-tri", 0.2, repaint=2), Setting("safa", 0.2, repaint=2)]
    if scheduler == "ddim":  # reconstruction guidance: DDIM's epsilon
        kept_settings += [Setting("md-tri", kept_guidance=w) for w in (0.2, 1.0)]
    result: dict[str, Any] = {"window": lab.window, "length": lab.length, "steps": lab.steps, "scheduler": scheduler,
                              "samples": lab.samples, "seed": seed, "gaussian": [], "styles": [], "kept": []}
    jobs = [("gaussian", s, gaussian_row, gaussian) for s in rows] + [("styles", s, styles_row, styles) for s in rows]
    jobs += [("kept", s, kept_row, gaussian) for s in kept_settings]
    for done, (table, setting, measure, world) in enumerate(jobs, 1):
        result[table].append(measure(lab, world, setting))
        if progress is not None:
            progress(f"[{done}/{len(jobs)}] {table}: {setting.name}")
    if scheduler == "ddim" and not quick:
        result["stochastic"] = stochastic_rows(lab, gaussian)
        if progress is not None:
            progress("stochastic samplers: noise per view and per canvas frame")
        result["few_steps"] = few_step_rows(lab, gaussian, styles)
        if progress is not None:
            progress("few steps: the reference swap with 8 steps")
        result["candidates"] = candidate_rows(lab, gaussian, styles)
        if progress is not None:
            progress("candidates for the reference guidance")
        result["stochastic_candidates"] = candidate_rows(lab, gaussian, styles, STOCHASTIC_CANDIDATES)
        if progress is not None:
            progress("candidates with a stochastic sampler")
    return result


def write_report(result: dict[str, Any], folder: str | os.PathLike) -> list[str]:
    """lab.md (the tables), lab.json (every number) and lab.png (spectra and variance along the canvas)."""
    from ..io.files import write_atomic

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, name) for name in ("lab.md", "lab.json", "lab.png")]
    write_atomic(paths[0], lambda tmp: tmp.write_text(markdown(result)))
    write_atomic(paths[1], lambda tmp: tmp.write_text(json.dumps(_finite(result), indent=1)))
    write_atomic(paths[2], lambda tmp: _plot(result, tmp))
    return paths


def _finite(value: Any) -> Any:
    """The result with every infinite or NaN number as null, so lab.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown(result: dict[str, Any]) -> str:
    head = (f"Canvas {result['length']} frames, window {result['window']} frames, {result['steps']} "
            f"{result['scheduler']} steps; Gaussian world exact, styles world over {result['samples']} canvases "
            f"(± one standard error).\n\n")
    lines = ["### Gaussian world (exact)\n",
             "| setting | views | LSD (dB) | low band | high band | overlap high band | overlap top band | "
             "middle high band | variance min / max | KL / frame | KL / frame, -20 dB floor | lost dims | "
             "view-pair corr (first, rest) | corr at stride (truth) |",
             "| --- |" + " ---: |" * 13]
    for r in result["gaussian"]:
        lines.append(
            f"| {r['setting']} | {r['views_made']} | {r['lsd_db']:.3f} | {r['low_band']:.3f} | {r['high_band']:.3f} | "
            f"{_f(r['overlap_high_band'])} | {_f(r['overlap_top_band'])} | {_f(r['middle_high_band'])} | "
            f"{r['min_variance']:.3f} / "
            f"{r['max_variance']:.3f} | {_kl(r['kl_per_frame'])} | {r['kl_floor_per_frame']:.4f} | "
            f"{r['lost_dimensions']} | {_f(r['pair_corr_first'])}, "
            f"{_f(r['pair_corr_rest'])} | {_f(r['corr_at_stride'])} ({r['true_corr_at_stride']:.3f}) |")
    lines += ["\n### Styles world: does every window-sized segment keep one style?\n",
              "Fixed segments start at frames 0, 64, 128, ... (across view boundaries); view-aligned segments are "
              "the views themselves.\n",
              "A style's share is the share of fixed segments whose most likely style it is; the style mix error "
              "is the larger gap between a style's share and its share among true signals' segments by the same "
              "classifier (issue 39). The styles differ in spectrum only, so no modulation is measured here "
              "(`swapforward lab --beyond`).\n",
              "| setting | fixed segments | consistency | independent windows | view-aligned segments | consistency | "
              "independent windows | share of the rough style (truth) | style-mix error |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["styles"]:
        lines.append(f"| {r['setting']} | {r['segments']} | {r['consistency']:.3f} ± {r['consistency_se']:.3f} | "
                     f"{r['independent_windows']:.3f} | {r['view_segments']} | {r['consistency_views']:.3f} ± "
                     f"{r['consistency_views_se']:.3f} | {r['independent_views']:.3f} | "
                     f"{r['style_shares'][1]:.3f} ({r['true_style_shares'][1]:.3f}) | {r['mix_error']:.3f} |")
    lines += ["\n### A kept first half-window (continuation), Gaussian world (exact; * sampled)\n",
              "| setting | kept frames | KL / filled frame vs the true conditional | the same, -20 dB floor | "
              "lost dims | kept frames exact |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in result["kept"]:
        lines.append(f"| {r['setting']}{' *' if r.get('sampled') else ''} | {r['kept_frames']} | "
                     f"{_kl(r['kl_filled_per_frame'])} | "
                     f"{r['kl_floor_filled_per_frame']:.4f} | {r['lost_dimensions']} | {r['kept_exact']} |")
    if result.get("stochastic"):
        lines += ["\n### Stochastic steps: noise drawn per view (before) and once per canvas frame (now), Gaussian "
                  "world (exact)\n",
                  "| sampler | setting | KL / frame | KL, -20 dB floor | variance min | overlap high band | low band | "
                  "lost dims |", "| --- | --- |" + " ---: |" * 6]
        for r in result["stochastic"]:
            lines.append(f"| {r['sampler']} | {r['setting']} | {_kl(r['kl_per_frame'])} | "
                         f"{r['kl_floor_per_frame']:.4f} | {r['min_variance']:.3f} | {_f(r['overlap_high_band'])} | "
                         f"{r['low_band']:.3f} | {r['lost_dimensions']} |")
    if result.get("few_steps"):
        lines += ["\n### Few steps: the reference swap with 8 steps\n",
                  "| sampler | setting | KL, -20 dB floor | lost dims | corr at stride | consistency (fixed) | "
                  "consistency (views) | style-mix error |", "| --- | --- |" + " ---: |" * 6]
        for r in result["few_steps"]:
            lines.append(f"| {r['sampler']} | {r['setting']} | {r['kl_floor_per_frame']:.4f} | "
                         f"{r['lost_dimensions']} | {_f(r['corr_at_stride'])} | {r['consistency']:.3f} ± "
                         f"{r['consistency_se']:.3f} | {r['consistency_views']:.3f} ± "
                         f"{r['consistency_views_se']:.3f} | {r['mix_error']:.3f} |")
    for key, title in (("candidates", "Candidates for the reference guidance (issue 27): the four targets"),
                       ("stochastic_candidates", "The same targets with DDIM eta 1, one noise per canvas frame")):
        lines += _candidate_table(result.get(key) or [], title)
    return head + "\n".join(lines) + "\n"


def _candidate_table(rows: list[dict[str, Any]], title: str) -> list[str]:
    """A table of candidates against the four targets; a sampled row (not linear in the noises) is marked *."""
    if not rows:
        return []
    lines = [f"\n### {title}\n",
             "| setting | consistency (fixed) | consistency (views) | corr at stride | lost dims | KL / frame | "
             "KL, -20 dB floor | style-mix error | targets met |", "| --- |" + " ---: |" * 7 + " --- |"]
    for r in rows:
        met = ", ".join(k for k, ok in r["targets"].items() if ok) or "none"
        lines.append(f"| {r['setting']}{' *' if r['sampled'] else ''} | {r['consistency']:.3f} ± "
                     f"{r['consistency_se']:.3f} | {r['consistency_views']:.3f} ± {r['consistency_views_se']:.3f} | "
                     f"{_f(r['corr_at_stride'])} | {r['lost_dimensions']} | {_kl(r['kl_per_frame'])} | "
                     f"{r['kl_floor_per_frame']:.4f} | {r['mix_error']:.3f} | {met} |")
    if any(r["sampled"] for r in rows):
        lines.append("\n\\* sampled: the covariance of sampled canvases (the KL is that of a Gaussian with the "
                     "output's covariance, corrected for the sampling's expected bias).")
    return lines


def _kl(value: float | None) -> str:
    return "∞" if value is None or value == math.inf else f"{value:.4f}"  # ∞: a degenerate output


def _f(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN: no such region


def _plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100)
    shown = [r for r in result["gaussian"] if not r["loop"] and r["swap_interval"] == 1 and not r["soften"]][:7]
    for r in shown:
        freqs = r["frequencies"]
        ratio = [10 * math.log10(p / t) for p, t in zip(r["spectrum"], r["true_spectrum"], strict=True)]
        left.plot(freqs, ratio, label=r["setting"])
        right.plot(r["variance"], label=r["setting"])
    left.axhline(0, color="black", lw=0.5)
    left.set_xlabel("frequency (cycles per frame)")
    left.set_ylabel("spectrum / truth (dB)")
    left.set_title("spectra against the true process", fontsize=9)
    right.axhline(1, color="black", lw=0.5)
    right.set_xlabel("canvas frame")
    right.set_ylabel("marginal variance (truth: 1)")
    right.set_title("variance along the canvas: do overlaps dip?", fontsize=9)
    left.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
