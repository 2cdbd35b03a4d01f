"""The FILM interpolation job: `python -m pipeline.run --input ... --output ...`."""
