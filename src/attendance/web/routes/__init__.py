"""One blueprint per resource; attendance.web.app registers them all."""
