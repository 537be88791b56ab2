"""The benchmark scripts' shared pieces: name lookup, target checks and their lines."""
import argparse

import pytest

from tool_loader import load_tool

bc = load_tool('tools/analysis/benchmark_common.py', 'benchmark_common_under_test')


def test_resolve_label():
    labels, aliases = ('HRSAM', 'HRSAM++', 'SAM-ViT-H'), {'sam-h': 'SAM-ViT-H'}
    assert bc.resolve_label('hrsam++', labels, aliases, 'encoder') == 'HRSAM++'
    assert bc.resolve_label('SAM-H', labels, aliases, 'encoder') == 'SAM-ViT-H'
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown encoder 'vit'; choose from \['HRSAM', "):
        bc.resolve_label('vit', labels, aliases, 'encoder')


def test_checks_and_their_lines():
    at_limit = bc.make_check('6', 'peak < 4 GiB', 4.0, 4.0, 'x', strict=True)
    assert at_limit['status'] == 'MISS' and 'mode' not in at_limit
    assert bc.make_check('2', 'ms <= 10', 10.0, 10.0, 'y', mode='fast')['status'] == 'PASS'
    lines = bc.format_checks([at_limit, bc.make_check('F1', 'HRSAM 2048² <= 10 ms', 11.57, 10.0, '11.57 ms', mode='fast')])
    assert lines == '[MISS] (6) peak < 4 GiB: x\n[MISS] (F1) HRSAM 2048² <= 10 ms [fast]: 11.57 ms'
    assert bc.format_checks([]) == 'targets: none of the needed rows exist in this run'
    assert bc.fmt_cell(None, '.2f', 5) == '    -' and bc.fmt_cell(1.234, '.2f', 5) == ' 1.23'
