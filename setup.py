import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name):
    """Requirement lines of requirements/<name>, following ``-r`` includes, comments dropped."""
    out = []
    with open(os.path.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line.startswith('-r '):
                out += requirements(line[3:].strip())
            elif line:
                out.append(line)
    return out


def version():
    scope = {}
    with open(os.path.join(HERE, 'mmhrsam', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmhrsam',
    version=version(),
    description='HRSAM and HRSAM++: efficient high-resolution Segment-Anything encoders for OpenMMLab',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmhrsam', 'mmhrsam.*']),
    package_data={'mmhrsam.apis.annotation': ['static/*']},
    python_requires='>=3.10',
    install_requires=requirements('runtime.txt'),
    extras_require={
        # the annotation web app
        'app': requirements('app.txt'),
        # ONNX export and its onnxruntime check
        'onnx': requirements('onnx.txt'),
        # OpenMMLab task libraries (full mmcv with ops: tools/install_mmcv.sh)
        'mmseg': requirements('mmseg.txt'),
        'mmdet': requirements('mmdet.txt'),
        'mmpretrain': requirements('mmpretrain.txt'),
        # running the test suite (everything it exercises, pinned)
        'dev': requirements('ci.txt'),
        'tests': requirements('tests.txt'),
        # optional GPU accelerators
        'optional': requirements('optional.txt'),
    },
    classifiers=[
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'License :: OSI Approved :: Apache Software License',
    ],
    license='Apache-2.0',
    zip_safe=False,
)
