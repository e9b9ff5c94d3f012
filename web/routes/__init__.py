"""One blueprint per resource; web.app registers them all."""
