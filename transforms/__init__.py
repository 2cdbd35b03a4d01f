"""Beam building blocks of the interpolation pipeline, one module per job.

`clips` finds clips and plans work units, `images` decodes and encodes frames, `files` reads and
writes whole files on any Beam filesystem, `scene_cuts` tells an edit's cuts from motion,
`interpolate` runs the model over a unit, `records` turns the outcome into metrics, JSON lines
and the run summary, `quality` scores predictions against the truth for the evaluation.
"""
