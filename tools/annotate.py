"""Serve the click annotation page (FastAPI + uvicorn) on a local port.

Examples::

    python3 tools/annotate.py                       # the quickstart model, http://127.0.0.1:7860
    python3 tools/annotate.py configs/hrsam/hrsam_vit-b_2048.py --checkpoint hrsam.pth \\
        --images data/my_images --out annotations --device cuda

Without a config it runs the quickstart model with its trained checkpoint
(``work_dirs/quickstart/last_checkpoint``) when ``tools/quickstart.sh`` has run, otherwise
with random weights (the page and the log say so). See docs/annotate.md.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
QUICKSTART_CONFIG = os.path.join(REPO, 'configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py')
QUICKSTART_POINTER = os.path.join(REPO, 'work_dirs/quickstart/last_checkpoint')

logger = logging.getLogger('mmhrsam.annotate')


def parse_args(argv=None):
    from mmhrsam.apis.annotation import DEFAULT_MAX_PIXELS
    parser = argparse.ArgumentParser(description='Click annotation web app (see docs/annotate.md)')
    parser.add_argument('config', nargs='?', default=None,
                        help='model config (default: the quickstart model)')
    parser.add_argument('--checkpoint', help='model checkpoint (default: random weights; for the '
                        'quickstart config, its trained checkpoint when it exists)')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='unpickle the checkpoint fully (MMEngine training checkpoints; '
                        'trusted files only)')
    parser.add_argument('--images', help='folder of images listed on the page')
    parser.add_argument('--out', default='annotations', help='output folder (default: annotations)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default: 127.0.0.1, '
                        'this machine only)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu', "
                        "'cuda', 'cuda:1', ...")
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help=f'largest accepted image, width x height (default {DEFAULT_MAX_PIXELS:,})')
    parser.add_argument('--target-sizes', type=int, nargs='+', default=[1024, 2048, 4096],
                        help='target sizes offered on the page (default: 1024 2048 4096)')
    parser.add_argument('--cache-size', type=int, default=4, help='embeddings kept in memory')
    return parser.parse_args(argv)


def model_source(args):
    """(config, checkpoint, allow_pickle) to load; the quickstart's own checkpoint by default."""
    if args.config is not None:
        return args.config, args.checkpoint, args.allow_pickle
    if args.checkpoint is not None:
        return QUICKSTART_CONFIG, args.checkpoint, args.allow_pickle
    if os.path.isfile(QUICKSTART_POINTER):
        with open(QUICKSTART_POINTER) as f:
            checkpoint = f.read().strip()
        if not os.path.isabs(checkpoint):
            checkpoint = os.path.join(REPO, checkpoint)
        if os.path.isfile(checkpoint):
            # An MMEngine training checkpoint written by this repository's quickstart.
            return QUICKSTART_CONFIG, checkpoint, True
        logger.warning('%s points to %s, which does not exist', QUICKSTART_POINTER, checkpoint)
    return QUICKSTART_CONFIG, None, False


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    args = parse_args(argv)
    import uvicorn
    from PIL import Image

    from mmhrsam.apis.annotation import AppOptions, create_app, load_shared_model, resolve_device

    from mmhrsam.apis.predictor import check_target_size
    for size in args.target_sizes:
        check_target_size(size)  # a ValueError now rather than on the first click
    # PIL refuses images over 2 x MAX_IMAGE_PIXELS as decompression bombs; --max-pixels rules.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, args.max_pixels)
    device = resolve_device(args.device)
    config, checkpoint, allow_pickle = model_source(args)
    model = load_shared_model(config, checkpoint, device, allow_pickle)
    if model.warning:
        logger.warning(model.warning)
    default = model.base.target_size if model.base.target_size in args.target_sizes \
        else args.target_sizes[0]
    options = AppOptions(out_dir=args.out, images_dir=args.images, model=model.description,
                         device=str(device), warning=model.warning, target_sizes=args.target_sizes,
                         default_target_size=default, max_pixels=args.max_pixels,
                         cache_size=args.cache_size)
    app = create_app(model.new_predictor, options)
    logger.info('model: %s on %s; saving to %s', model.description, device, os.path.abspath(args.out))
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        logger.warning('--host %s: the app has no authentication; anyone who can reach this '
                       'address can read the images and write annotations', args.host)
    logger.info('open http://%s:%d in a browser', args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level='info')


if __name__ == '__main__':
    main()
