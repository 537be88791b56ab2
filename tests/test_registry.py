"""mmhrsam's registries from other OpenMMLab code, and a light import."""
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = __file__.rsplit('/tests/', 1)[0]


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


def test_import_pulls_no_optional_or_compiled_packages():
    out = run_python("""
        import sys, mmhrsam
        print(sorted(m for m in ('mmcv', 'mmseg', 'xformers', 'mamba_ssm') if m in sys.modules))
    """)
    assert out.strip() == '[]'


def test_scoped_type_builds_from_mmengine_root_registry():
    import mmhrsam  # noqa: F401
    from mmengine.registry import MODELS as ROOT_MODELS
    attn = ROOT_MODELS.build(dict(type='mmhrsam.FlashSwinAttention', embed_dim=64, num_heads=4,
                                  window_size=4, shift_size=2))
    assert type(attn).__name__ == 'FlashSwinAttention'
    assert attn(torch.randn(1, 6, 6, 64)).shape == (1, 6, 6, 64)


def test_custom_imports_in_a_config_file(tmp_path):
    cfg = tmp_path / 'attn.py'
    cfg.write_text("custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)\n"
                   "model = dict(type='mmhrsam.KVPadSwinAttention', embed_dim=64, num_heads=4,"
                   " window_size=4, shift_size=2)\n")
    out = run_python(f"""
        from mmengine.config import Config
        from mmengine.registry import MODELS
        cfg = Config.fromfile({str(cfg)!r})
        print(type(MODELS.build(cfg.model)).__name__)
    """)
    assert out.strip() == 'KVPadSwinAttention'


def test_scoped_type_builds_from_mmseg_registry():
    pytest.importorskip('mmcv.ops', reason='mmseg models need full mmcv; tools/install_mmcv.sh')
    from mmseg.registry import MODELS as MMSEG_MODELS
    import mmhrsam  # noqa: F401
    attn = MMSEG_MODELS.build(dict(type='mmhrsam.GlobalAttention', embed_dim=64, num_heads=4))
    assert type(attn).__name__ == 'GlobalAttention'
