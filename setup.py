"""Packaging for local installs and for Dataflow workers (`--setup_file ./setup.py`).

The sdist carries film_net with its built-in model (film_net/default_model/film_net_default.npz
and its MODEL_CARD.md, nothing else there), pipeline/ and transforms/. TensorFlow is
deliberately not pinned to one build: workers get it from their container image (the CUDA
build for GPU workers), and local installs choose an extra: `pip install .[cpu]`
(tensorflow-cpu), `.[gpu]` (tensorflow[and-cuda]) or `.[tf]` (tensorflow). `.[train-gpu]` adds
PyTorch for the GPU trainer (`film_net.train_torch`).
"""

import setuptools

TF = '>=2.16'

setuptools.setup(
    name='film-interpolation',
    version='0.1.0',
    description='FILM frame interpolation and the Apache Beam pipeline that runs it on archives',
    python_requires='>=3.10',
    # default_model/ is a data folder, listed so that setuptools ships it as package data.
    packages=setuptools.find_packages(include=['film_net', 'film_net.*', 'pipeline', 'transforms'])
    + ['film_net.default_model'],
    package_data={'film_net.default_model': ['film_net_default.npz', 'MODEL_CARD.md']},
    include_package_data=True,
    install_requires=[
        'apache-beam[gcp]>=2.60',
        'numpy>=1.24',
        'pillow>=10.1',  # ImageFont.load_default(size=) in the evaluation's comparison PNGs
        'google-cloud-storage>=2.10,!=3.11.0',  # 3.11.0: a bucket lookup per operation
    ],
    extras_require={
        'cpu': ['tensorflow-cpu' + TF],
        'gpu': ['tensorflow[and-cuda]' + TF],
        'tf': ['tensorflow' + TF],
        # tifffile writes the 16-bit colour TIFFs of the decoding tests; build makes the sdist
        # of run_dataflow.sh's offline dry run.
        'test': ['pytest', 'pytest-xdist', 'gcp-storage-emulator', 'tifffile', 'build'],
        # film_net.train_torch: training on GPU machines that have PyTorch but no TensorFlow.
        # Training: scikit-image's bundled photographs texture the rendered scenes.
        'train': ['scikit-image'],
        'train-gpu': ['torch>=2.1', 'scikit-image'],
    },
    entry_points={'console_scripts': ['film-interpolate=pipeline:film_interpolate']},
)
