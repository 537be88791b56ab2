"""The project stands on its own: no code, config, test, tool or doc points at a
reference document outside the repository ("SPEC §..."); references go to docs/."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEARCHED = ('mmhrsam', 'configs', 'tools', 'tests', 'docs', 'README.md', 'model_zoo.md')
PATTERN = re.compile(r'SPEC\s*(§|section)')


def text_files():
    for name in SEARCHED:
        path = ROOT / name
        for f in ([path] if path.is_file() else sorted(path.rglob('*'))):
            if f.is_file() and f.suffix in ('.py', '.md', '.txt', '.sh', '.json', '.yaml', '.yml'):
                yield f


def test_no_spec_section_references():
    hits = [f'{f.relative_to(ROOT)}:{i}' for f in text_files() if f.name != pathlib.Path(__file__).name
            for i, line in enumerate(f.read_text(errors='replace').splitlines(), 1) if PATTERN.search(line)]
    assert not hits, f'references to a document outside the repository: {hits}'


def test_the_check_finds_a_reference():
    assert PATTERN.search('as in ' + 'SPEC §6') and not PATTERN.search('SPECS = [...]')
