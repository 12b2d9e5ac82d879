"""What runs around the compiled programs (ssadjax/program): the fit loop over chunks
(`engine`: progress, divergence, checkpoints, scoring), program keys, shape buckets and
grouping of runs into programs (`grouping`), the in-process and on-disk caches of compiled
programs (`program_cache`, `compilation_cache`), orbax checkpoints (`checkpoint`), the
host-fed input path for data that does not fit on the device (`hostfed`) and atomic file
writes (`files`).
"""
