"""The step cases (click-vitb, distill): one ``train_step`` per variant, timed, counted, profiled."""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmhrsam.registry import MODELS

from .configs import CLICK_VITB, DISTILL, click_batches, distill_batches, input_size, load_config, optim_cfg
from .measure import Clock, count_ops, encoder_flops, time_steps
from .profiling import profile_steps
from .report import guarded, report


def apply_variant(model, variant: Sequence[str]) -> None:
    """Channels-last and compile options, in place on a built model."""
    if 'channels_last' in variant:
        model.to(memory_format=torch.channels_last)
        preprocess = model.data_preprocessor.forward

        def channels_last_inputs(data: dict, training: bool = False) -> dict:
            out = preprocess(data, training)
            out['inputs'] = out['inputs'].contiguous(memory_format=torch.channels_last)
            return out
        model.data_preprocessor.forward = channels_last_inputs
    if 'compile' in variant:
        model.backbone.compile()  # in place: the first steps compile


def build_for_variant(cfg: Config, device: str, variant: Sequence[str]):
    """Model (train mode, on ``device``) and optimizer wrapper of one variant."""
    model = MODELS.build(cfg.model).to(device).train()
    wrapper = build_optim_wrapper(model, optim_cfg(cfg, device, variant))
    apply_variant(model, variant)
    return model, wrapper


def run_step_case(case: str, cfg: Config, batches: List[dict], variant: Sequence[str], args,
                  clock: Clock, rate: float) -> Dict:
    """Timing, op count, profile and MFU of one case and variant."""
    device, size = args.device, input_size(cfg)
    model, wrapper = build_for_variant(cfg, device, variant)
    batch = len(batches[0]['inputs'])
    calls = iter(range(10**9))

    def step() -> None:
        model.train_step(batches[next(calls) % len(batches)], wrapper)

    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    result = dict(case=case, variant=','.join(variant), batch=batch, size=size)
    result.update(time_steps(step, args.warmup, args.step_iters, device, clock))
    if device.startswith('cuda'):
        result['peak_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
    if 'compile' not in variant:  # dispatch-mode counting would re-trace a compiled module
        result['ops_per_step'] = count_ops(step)
    if args.profile_iters > 0 and clock.left() > 3 * args.profile_iters * result['median_s']:
        result['profile'] = profile_steps(step, args.profile_iters, device)
    flops = 3 * encoder_flops(cfg.model.to_dict(), size) * batch
    result.update(images_per_s=batch / result['median_s'], model_flops_per_step=flops,
                  mfu=flops / result['median_s'] / rate)
    del model, wrapper
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return result


def step_cases(args, clock: Clock, rate: float) -> List[Dict]:
    """click-vitb and distill, every variant; data made once per case."""
    results = []
    for case in [c for c in args.cases if c != 'quickstart']:
        cfg = load_config(CLICK_VITB if case == 'click-vitb' else DISTILL, args.tiny, case)
        if case == 'click-vitb':
            batches = click_batches(cfg, args.vitb_batch, args.batches)
        else:
            with torch.device('meta'):
                head = MODELS.build(cfg.model).head
            batches = distill_batches(head, input_size(cfg), args.distill_batch, args.batches)
        for variant in args.variants:
            results.append(guarded(case, variant, clock, lambda: run_step_case(case, cfg, batches, variant, args,
                                                                               clock, rate)))
            report(results[-1])
    return results
