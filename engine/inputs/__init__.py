"""Checking the files users give a job, by their content and within ``Limits``: images
(``images.check_image``: decoded with Pillow) and sounds (``audio.check_audio``: read with ffmpeg).
The param kinds that take a file (``engine.manifest.upload_kinds``) call these."""
