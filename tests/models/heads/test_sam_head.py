"""SAMHead against segment_anything's own prompt encoder + mask decoder."""
import pytest
import torch
import torch.nn.functional as F
from segment_anything import sam_model_registry

from mmhrsam.models.heads import SAMHead
from mmhrsam.registry import MODELS


@pytest.fixture(scope='module')
def sam_and_head():
    """A random-weight SAM ViT-B built by segment_anything and a SAMHead holding its weights."""
    torch.manual_seed(0)
    sam = sam_model_registry['vit_b']().eval()
    head = MODELS.build(dict(type='SAMHead')).eval()
    # Strict load: the head's modules are exactly SAM's prompt_encoder / mask_decoder.
    head.load_state_dict({k: v for k, v in sam.state_dict().items() if not k.startswith('image_encoder.')})
    return sam, head


def sam_reference(sam, embedding, points, labels, prev_logits):
    """segment_anything's path, as in ``SamPredictor.predict_torch`` with multimask_output=False."""
    sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=prev_logits)
    return sam.mask_decoder(image_embeddings=embedding, image_pe=sam.prompt_encoder.get_dense_pe(),
                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                            multimask_output=False)


def random_clicks(batch, num, size, seed=1):
    gen = torch.Generator().manual_seed(seed)
    points = torch.randint(0, size, (batch, num, 2), generator=gen).float()
    labels = torch.randint(0, 2, (batch, num), generator=gen)
    return points, labels


def test_built_like_segment_anything(sam_and_head):
    sam, head = sam_and_head
    assert repr(head.prompt_encoder) == repr(sam.prompt_encoder)
    # Same modules and parameters; the decoder's attention layers compute attn @ v split over keys.
    assert repr(head.mask_decoder).replace('LongKeyAttention', 'Attention') == repr(sam.mask_decoder)


@pytest.mark.parametrize('with_prev', [False, True])
@torch.no_grad()
def test_equals_segment_anything_64(sam_and_head, with_prev):
    sam, head = sam_and_head
    embedding = torch.randn(1, 256, 64, 64)
    points, labels = random_clicks(1, 4, 1024)
    prev = torch.randn(1, 1, 256, 256) if with_prev else None
    ref_logits, ref_iou = sam_reference(sam, embedding, points, labels, prev)
    logits, iou = head(embedding, points, labels, prev)
    assert logits.shape == (1, 1, 256, 256) and iou.shape == (1, 1)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0)
    torch.testing.assert_close(iou, ref_iou, rtol=0, atol=0)


@torch.no_grad()
def test_one_image_many_prompt_sets(sam_and_head):
    """segment_anything's native layout: one embedding shared by B prompt sets."""
    sam, head = sam_and_head
    embedding = torch.randn(1, 256, 64, 64)
    points, labels = random_clicks(3, 2, 1024)
    ref_logits, ref_iou = sam_reference(sam, embedding, points, labels, None)
    logits, iou = head(embedding, points, labels)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(iou, ref_iou)


@pytest.mark.parametrize('grid', [(128, 128), (96, 160)])
@torch.no_grad()
def test_larger_and_non_square_grids(sam_and_head, grid):
    sam, head = sam_and_head
    h, w = grid
    pe = head.dense_pe(grid)
    assert pe.shape == (1, 256, h, w)
    points, labels = random_clicks(1, 3, min(16 * h, 16 * w))
    logits, iou = head(torch.randn(1, 256, h, w), points, labels, torch.randn(1, 1, 4 * h, 4 * w))
    assert logits.shape == (1, 1, 4 * h, 4 * w) and iou.shape == (1, 1)
    # Clicks are normalised by the actual input size (16h, 16w), like upstream with
    # input_image_size set to it; the shared prompt encoder is left untouched.
    encoder = sam.prompt_encoder
    encoder.input_image_size = (16 * h, 16 * w)
    try:
        ref = encoder._embed_points(points, labels, pad=True)
    finally:
        encoder.input_image_size = (1024, 1024)
    torch.testing.assert_close(head.embed_points(points, labels, (16 * h, 16 * w)), ref, rtol=0, atol=0)
    assert head.prompt_encoder.input_image_size == (1024, 1024)


def test_dense_pe_64_is_upstream(sam_and_head):
    sam, head = sam_and_head
    torch.testing.assert_close(head.dense_pe((64, 64)), sam.prompt_encoder.get_dense_pe(), rtol=0, atol=0)


@torch.no_grad()
def test_pixel_centre_and_pad_point(sam_and_head):
    """Callers pass integer pixel indices; the head adds +0.5 and appends a pad point."""
    _, head = sam_and_head
    encoder = head.prompt_encoder
    points = torch.tensor([[[10., 20.], [1023., 0.]]])
    labels = torch.tensor([[1, 0]])
    sparse = head.embed_points(points, labels, (1024, 1024))
    assert sparse.shape == (1, 3, 256)
    centres = torch.tensor([[[10.5 / 1024, 20.5 / 1024], [1023.5 / 1024, 0.5 / 1024]]])
    expected_pe = encoder.pe_layer._pe_encoding(centres)
    torch.testing.assert_close(sparse[:, 0], expected_pe[:, 0] + encoder.point_embeddings[1].weight)
    torch.testing.assert_close(sparse[:, 1], expected_pe[:, 1] + encoder.point_embeddings[0].weight)
    # Pad point: no positional part, only not_a_point_embed (also for -1 padding clicks).
    torch.testing.assert_close(sparse[:, 2], encoder.not_a_point_embed.weight)
    padded = head.embed_points(points, torch.tensor([[1, -1]]), (1024, 1024))
    torch.testing.assert_close(padded[:, 1], encoder.not_a_point_embed.weight)


@torch.no_grad()
def test_batch_equals_per_sample(sam_and_head):
    _, head = sam_and_head
    torch.manual_seed(2)
    embeddings = torch.randn(3, 256, 32, 48)
    points, labels = random_clicks(3, 4, 512, seed=3)
    labels[1, 2:] = -1  # sample 1 has only two real clicks
    prev = torch.randn(3, 1, 128, 192)
    logits, iou = head(embeddings, points, labels, prev)
    for i in range(3):
        one_logits, one_iou = head(embeddings[i:i + 1], points[i:i + 1], labels[i:i + 1], prev[i:i + 1])
        torch.testing.assert_close(logits[i:i + 1], one_logits)
        torch.testing.assert_close(iou[i:i + 1], one_iou)


def test_batch_gradients_equal_per_sample(sam_and_head):
    """The batched decoder call (one call for B images) gives the per-sample gradients."""
    _, head = sam_and_head
    torch.manual_seed(4)
    embeddings = torch.randn(2, 256, 16, 16, requires_grad=True)
    points, labels = random_clicks(2, 3, 256, seed=5)
    prev = torch.randn(2, 1, 64, 64)
    logits, iou = head(embeddings, points, labels, prev)
    (logits.square().mean() + iou.sum()).backward()
    for i in range(2):
        one = embeddings[i:i + 1].detach().requires_grad_(True)
        one_logits, one_iou = head(one, points[i:i + 1], labels[i:i + 1], prev[i:i + 1])
        # the batch loss averages over 2 samples' logits: the same per-sample weight
        (one_logits.square().sum() / logits.numel() + one_iou.sum()).backward()
        torch.testing.assert_close(embeddings.grad[i:i + 1], one.grad)


@torch.no_grad()
def test_prev_valid_selects_no_mask(sam_and_head):
    _, head = sam_and_head
    embeddings = torch.randn(2, 256, 16, 16)
    points, labels = random_clicks(2, 1, 256)
    prev = torch.randn(2, 1, 64, 64)
    logits, _ = head(embeddings, points, labels, prev, prev_valid=torch.tensor([True, False]))
    with_prev, _ = head(embeddings[:1], points[:1], labels[:1], prev[:1])
    without_prev, _ = head(embeddings[1:], points[1:], labels[1:], None)
    torch.testing.assert_close(logits[:1], with_prev)
    torch.testing.assert_close(logits[1:], without_prev)


def test_shape_errors(sam_and_head):
    _, head = sam_and_head
    points, labels = random_clicks(2, 1, 256)
    with pytest.raises(ValueError, match='prev_logits'):
        head(torch.randn(2, 256, 16, 16), points, labels, torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match='image embeddings'):
        head(torch.randn(3, 256, 16, 16), points, labels)


# ---------------------------------------------------------------------- dense_pe='resize'
def pe_by_hand(gaussian, h, w):
    """SAM's random-Fourier dense encoding of an h x w grid, from its definition:
    cell centres normalised to [0, 1], mapped to [-1, 1], projected, [sin, cos] of 2*pi*..."""
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    coords = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), -1)  # (h, w, 2) as (x, y)
    proj = 2 * torch.pi * ((2 * coords - 1) @ gaussian.double())
    return torch.cat([proj.sin(), proj.cos()], -1).permute(2, 0, 1)[None]  # (1, C, h, w)


def upsample_2x_by_hand(x):
    """Bilinear 2x upsampling with half-pixel centres (align_corners=False), written out:
    output 2k+1 sits at input k + 1/4, output 2k at k - 1/4, clamped at the edges."""
    def axis(t, dim):
        n = t.shape[dim]
        prev = torch.cat([t.narrow(dim, 0, 1), t.narrow(dim, 0, n - 1)], dim)
        nxt = torch.cat([t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim)
        even, odd = 0.75 * t + 0.25 * prev, 0.75 * t + 0.25 * nxt
        return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)
    return axis(axis(x, 2), 3)


@torch.no_grad()
def test_dense_pe_resize_is_64_grid_resized(sam_and_head):
    sam, _ = sam_and_head
    head = SAMHead(dense_pe='resize').eval()
    head.load_state_dict({k: v for k, v in sam.state_dict().items() if not k.startswith('image_encoder.')})
    gaussian = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    pe64 = pe_by_hand(gaussian, 64, 64)
    torch.testing.assert_close(head.dense_pe((64, 64)).double(), pe64, rtol=0, atol=1e-4)
    # 128 x 128 (a 2048² input): the 64 x 64 encoding upsampled 2x, not the 128 x 128 one.
    torch.testing.assert_close(head.dense_pe((128, 128)).double(), upsample_2x_by_hand(pe64), rtol=0, atol=1e-4)
    assert (head.dense_pe((128, 128)).double() - pe_by_hand(gaussian, 128, 128)).abs().max() > 0.1
    # Non-square and smaller grids: the same 64 x 64 encoding through F.interpolate.
    for grid in [(96, 160), (32, 48)]:
        ref = F.interpolate(pe64, grid, mode='bilinear', align_corners=False)
        torch.testing.assert_close(head.dense_pe(grid).double(), ref, rtol=0, atol=1e-4)
    # 'grid' (the default) keeps computing on the embedding's grid.
    grid_head = sam_and_head[1]
    torch.testing.assert_close(grid_head.dense_pe((128, 128)).double(), pe_by_hand(gaussian, 128, 128),
                               rtol=0, atol=1e-4)


@torch.no_grad()
def test_dense_pe_resize_reaches_the_decoder(sam_and_head):
    """With 'resize' the decoder gets the resized encoding: equal to upstream's decoder fed it."""
    sam, _ = sam_and_head
    head = SAMHead(dense_pe='resize').eval()
    head.load_state_dict({k: v for k, v in sam.state_dict().items() if not k.startswith('image_encoder.')})
    h, w = 80, 96
    gen = torch.Generator().manual_seed(3)
    embedding = torch.randn(1, 256, h, w, generator=gen)
    points, labels = random_clicks(1, 2, 16 * h)
    pe = F.interpolate(sam.prompt_encoder.get_dense_pe(), (h, w), mode='bilinear', align_corners=False)
    sparse = head.embed_points(points, labels, (16 * h, 16 * w))
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)
    ref = sam.mask_decoder(embedding, pe, sparse, dense, multimask_output=False)
    for out, expected in zip(head(embedding, points, labels), ref):
        # 7680 keys: the prompt-to-image products are summed over key chunks (fp32 rounding)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_dense_pe_mode_is_checked():
    with pytest.raises(ValueError, match="'grid' or 'resize'"):
        SAMHead(dense_pe='bilinear')
