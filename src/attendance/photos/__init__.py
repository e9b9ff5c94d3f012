"""Photos through Pillow: checking uploads, decoding, EXIF, crops and drawing.

HEIC/HEIF (what iPhones write by default) opens through pillow-heif's Pillow plugin, registered
here: every module of this package imports it first, so the web's checks and crops and the
worker's decoding read the same formats.
"""

from pillow_heif import register_heif_opener

register_heif_opener()
