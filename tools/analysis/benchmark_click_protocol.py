"""20-SPC and click-simulation cost of the evaluation protocol on one device.

For each target size, runs :class:`mmhrsam.evaluation.ClickProtocol` (encoder once, 20
clicks with prompt encoder + decoder + upsampling to the original size) over instances of
the built-in synthetic dataset, with the CPU clicker and with the torch clicker on the
device, and reports:

* 20-SPC (ms): (encoder + 20 decoder passes) / 20, device-synchronized, the first
  instance of each setting run twice and only its second run kept (warm-up);
* whether both clickers produced the same clicks and IoUs (they must: same rule, same
  tie-break);
* the wall time of one click simulation (CPU vs device) at the images' original sizes,
  and of ``next_click_torch`` / ``next_click`` alone on disks at 1024², 2048², 4096².

Example::

    python3 tools/analysis/benchmark_click_protocol.py --device cuda --out $OUT/click_protocol.json
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from mmengine.config import Config  # noqa: E402

from mmhrsam.datasets import SyntheticHighResDataset  # noqa: E402
from mmhrsam.evaluation import next_click, next_click_torch  # noqa: E402
from mmhrsam.evaluation.click_test_loop import ClickProtocol  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=os.path.join(ROOT, 'configs/_base_/models/hrsam_vit-b.py'))
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--sizes', type=int, nargs='+', default=[1024, 2048])
    p.add_argument('--instances', type=int, default=6)
    p.add_argument('--image-size', type=int, nargs=2, default=[1024, 4096], help='synthetic original sizes')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='bf16')
    p.add_argument('--max-clicks', type=int, default=20)
    p.add_argument('--clickers', nargs='+', choices=['cpu', 'device'], default=['cpu', 'device'],
                   help='clickers to run (the CPU one costs about a second per click on 4K images)')
    p.add_argument('--out', default='work_dirs/benchmark_click_protocol.json')
    return p.parse_args()


def instances(n, image_size):
    ds = SyntheticHighResDataset(num_images=n, image_size=tuple(image_size), seed=123, test_mode=True, pipeline=[])
    for i in range(n):
        item = ds[i]
        mask = item['gt_masks'][0] if 'gt_masks' in item else item['gt_mask']
        yield torch.from_numpy(np.ascontiguousarray(item['img'])).permute(2, 0, 1), torch.from_numpy(mask)[None]


def run_setting(model, size, clicker, data, args):
    protocol = ClickProtocol(model, size, args.max_clicks, clicker, args.precision)
    spc, results = [], []
    for i, (image, gt) in enumerate(data):
        if i == 0:
            protocol(image, gt)  # warm-up (kernels, allocator, cuDNN/Triton caches)
        t0 = time.perf_counter()
        out = protocol(image, gt)
        wall = time.perf_counter() - t0
        spc.append((out['encoder_time'] + out['decoder_times'][:20].sum()) / 20 * 1e3)
        results.append(dict(out, wall_s=wall, shape=list(gt.shape[-2:])))
    return spc, results


def disk(side, device):
    yy, xx = torch.meshgrid(torch.arange(side, device=device), torch.arange(side, device=device), indexing='ij')
    return (yy - side / 2) ** 2 + (xx - side / 3) ** 2 < (side / 4) ** 2


def time_clickers(device, sides=(1024, 2048, 4096)):
    rows = []
    for side in sides:
        gt = disk(side, device)
        pred = torch.zeros_like(gt)
        pred[: side // 2] = gt[: side // 2]
        for _ in range(2):
            torch.cuda.synchronize() if device.type == 'cuda' else None
            t0 = time.perf_counter()
            ys, xs, pos, has = next_click_torch(pred[None], gt[None])
            torch.cuda.synchronize() if device.type == 'cuda' else None
            t_dev = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = next_click(pred.cpu().numpy(), gt.cpu().numpy())
        t_cpu = time.perf_counter() - t0
        same = ref == (int(ys[0]), int(xs[0]), bool(pos[0]))
        rows.append(dict(side=side, device_ms=t_dev * 1e3, cpu_ms=t_cpu * 1e3, same_click=bool(same)))
        print(f'  next_click at {side}²: device {t_dev * 1e3:.1f} ms, CPU {t_cpu * 1e3:.1f} ms, same click: {same}',
              flush=True)
    return rows


def main():
    args = parse_args()
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).eval()
    data = list(instances(args.instances, args.image_size))
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'{name}, torch {torch.__version__}, {args.precision}, {len(data)} synthetic instances, '
          f'original sizes {[list(g.shape[-2:]) for _, g in data]}', flush=True)
    report = dict(device=name, torch=torch.__version__, precision=args.precision, config=args.config,
                  settings=[], clickers=[])
    for size in args.sizes:
        runs = {}
        for clicker in args.clickers:
            spc, results = run_setting(model, size, clicker, data, args)
            runs[clicker] = results
            row = dict(target_size=size, clicker=clicker, spc_ms=statistics.mean(spc),
                       encoder_ms=statistics.mean(r['encoder_time'] * 1e3 for r in results),
                       decoder_ms=statistics.mean(float(np.mean(r['decoder_times'])) * 1e3 for r in results),
                       wall_per_click_ms=statistics.mean(r['wall_s'] / args.max_clicks * 1e3 for r in results),
                       miou_at_5=float(np.mean([r['ious'][4] for r in results])))
            report['settings'].append(row)
            print(f'  {size}² clicker={clicker}: 20-SPC {row["spc_ms"]:.2f} ms (encoder {row["encoder_ms"]:.1f}, '
                  f'decoder {row["decoder_ms"]:.2f} per click); wall per click incl. click simulation '
                  f'{row["wall_per_click_ms"]:.1f} ms', flush=True)
        if len(runs) == 2:
            same = all(np.array_equal(a['clicks'], b['clicks']) and np.allclose(a['ious'], b['ious'])
                       for a, b in zip(runs['cpu'], runs['device']))
            report['settings'][-1]['clicks_equal_cpu_device'] = bool(same)
            print(f'  {size}²: CPU and device clickers chose identical clicks and IoUs: {same}', flush=True)
    report['clickers'] = time_clickers(device)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
