"""harmony_v3: HarmonyDream (ICML 2024) as a drop-in layer on DreamerV3 1.5.0."""
import pathlib

import setuptools

ROOT = pathlib.Path(__file__).parent

setuptools.setup(
    name='harmony_v3',
    version='0.1.0',
    description='HarmonyDream task harmonization on the official DreamerV3 '
                '(JAX), with the Atari 100K benchmark tooling.',
    long_description=(ROOT / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.11',
    packages=['harmony_v3', 'harmony_v3.sweep', 'harmony_v3.patches',
              'harmony_v3.configs'],
    package_dir={
        'harmony_v3': 'harmony_v3',
        'harmony_v3.patches': 'patches',
        'harmony_v3.configs': 'configs',
    },
    package_data={
        'harmony_v3': ['reference/*.csv', 'reference/*.json'],
        'harmony_v3.configs': ['*.yaml'],
    },
    # dreamerv3==1.5.0 itself is installed with --no-deps (see requirements.txt
    # and the Makefile): its declared requirements (gym==0.19, tensorflow-cpu,
    # crafter) do not install on current Python. What it really needs is here.
    install_requires=[
        'jax>=0.10',
        'jaxlib>=0.10',
        'optax>=0.2.4',
        'flax>=0.10',
        'tfp-nightly==0.26.0.dev20261027',
        'numpy>=1.26',
        'ruamel.yaml>=0.18',
        'cloudpickle',
        'rich',
        'gymnasium>=1.0',
        'ale-py>=0.10',
        'opencv-python-headless',
        'tensorboardX',
        'matplotlib',
        'pandas<3',
        'rliable==1.2.0',
    ],
    extras_require={'test': ['pytest'], 'ray': ['ray>=2.9']},
)
