import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name):
    with open(os.path.join(HERE, 'requirements', name)) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


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
    python_requires='>=3.9',
    install_requires=requirements('runtime.txt'),
    extras_require={
        'tests': requirements('tests.txt'),
        'mmseg': requirements('mmseg.txt'),
        'optional': requirements('optional.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
