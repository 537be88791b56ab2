"""List files over ``--max-lines`` lines and functions over ``--max-function-lines`` lines.

Usage::

    python tools/analysis/size_report.py mmhrsam tools
"""
import argparse
import ast
import pathlib
import sys


def offenders(paths, max_lines: int, max_function_lines: int):
    """Yield ('file', path, lines) and ('function', 'path:qualname', lines) over the limits."""
    for root in paths:
        for f in sorted(pathlib.Path(root).rglob('*.py')):
            text = f.read_text()
            n = len(text.splitlines())
            if n > max_lines:
                yield 'file', str(f), n
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > max_function_lines:
                        yield 'function', f'{f}:{node.lineno}:{node.name}', length


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('paths', nargs='+')
    parser.add_argument('--max-lines', type=int, default=500)
    parser.add_argument('--max-function-lines', type=int, default=60)
    args = parser.parse_args(argv)
    found = list(offenders(args.paths, args.max_lines, args.max_function_lines))
    for kind, where, n in found:
        print(f'{kind:8s} {n:5d}  {where}')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
