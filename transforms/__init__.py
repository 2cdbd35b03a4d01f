"""Beam building blocks of the interpolation pipeline, one module per job.

`clips` finds clips and plans work units, `images` decodes and encodes frames, `files` reads and
writes whole files on any Beam filesystem, `scene_cuts` tells an edit's cuts from motion,
`interpolate` runs the model over a unit, `retime` picks the in-betweens a delivery rate shows,
`dpx` reads and writes the scanners' format, `records` turns the outcome into metrics, JSON
lines and the run summary, `prune` removes the output of clips gone from the input, `stopping`
tells whether the run is being stopped, `quality` scores predictions against the truth for the
evaluation.
"""
