"""The micro:bit v1 image: MicroPython 1.9.2 from Debian's source with the seat firmware frozen
into flash (`build_image`), and the freezer that makes the port's frozen-module C file."""

from gateway.image.build import Image, ImageError, build_image, cache_root

__all__ = ["Image", "ImageError", "build_image", "cache_root"]
