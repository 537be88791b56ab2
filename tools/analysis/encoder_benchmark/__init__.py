"""The parts of ``tools/analysis/benchmark_encoder.py`` (the command line and its documentation):

============  ==========================================================================
module        contents
============  ==========================================================================
encoders      the encoder table (configs, paper rows, aliases, tiny configs)
modes         the timing-mode table (eager, graph, compile): add a new mode there
planning      the run plan: cases and why a case is skipped
measure       building encoders, timing one case, peak memory (``Runner``)
breakdown     per-part timing with hooks (attention, MLP, Cycle-scan, embed, fusion)
checks        the issue's targets and SAM-Lightening's claims against a run's rows
report        printed tables and the JSON file
============  ==========================================================================
"""
