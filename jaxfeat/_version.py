"""The installed package's version (a module of its own so that lower modules, such as the scan
store that records it, need not import the package's public face)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jaxfeat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

del PackageNotFoundError, version
