"""Installation of openmm_dynmatch.

The pins follow the one stack known to work together: openmmtorch 1.5 (PyPI) is built against torch 2.9
and fails to load with torch >= 2.10.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch>=2.9,<2.10",
    "openmm>=8.6,<8.7",
    "openmmtorch>=1.5,<1.6",
    "e3nn>=0.5.1,<0.7",
    "mdtraj>=1.10",
    "tables>=3.8",
    "numpy>=1.24",
    "scipy>=1.10",
    "deeptime>=0.4.4",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "pyyaml>=6.0",
    "openmmtools>=0.23",
]

setup(
    name="openmm_dynmatch",
    version="0.1.0",
    description="Dynamic matching of machine-learned coarse-grained models, simulated in OpenMM",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["openmm_dynmatch", "openmm_dynmatch.*"]),
    package_data={"openmm_dynmatch": ["data/*.yaml"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=7"],
        "cuda12": ["openmm[cuda12]>=8.6,<8.7", "openmmtorch[cuda12]>=1.5,<1.6"],
    },
    entry_points={"console_scripts": ["dynmatch=openmm_dynmatch.cli:main"]},
)
