"""What is compiled: the pure programs the host loop (ssadjax/host) jits and calls.

`train`: one run's state, its train step, stage and epoch scans, recomputed BatchNorm
statistics; the host vmaps them over the run axis. `parallel`: the device mesh, the
shardings of the run and data axes, multi-host initialisation.
Nothing here reads files, keeps a cache or loops on the host.
"""
