"""Package layout that pyproject.toml alone cannot say.

The library lives in libs/synod; each deployable service lives in
services/<role> and is importable as synod_services.<role>, so it runs as
`python -m synod_services.<role>` from any install (venv, image, editable).
"""

from setuptools import find_packages, setup

services = [
    "synod_services" + name[len("services") :]
    for name in find_packages(".", include=["services", "services.*"])
]

setup(
    packages=find_packages("libs") + services,
    package_dir={"": "libs", "synod_services": "services"},
)
