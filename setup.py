"""Only the native part; everything else is declared in setup.cfg."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("elastic_recheck._tokens", ["elastic_recheck/_tokens.c"]),
    Extension("elastic_recheck._logline", ["elastic_recheck/_logline.c"]),
    Extension("elastic_recheck._percolate", ["elastic_recheck/_percolate.c"]),
])
