"""The parts of ``tools/analysis/benchmark_predictor.py`` (the command line and its documentation):

==============  ========================================================================
module          contents
==============  ========================================================================
predictors      the predictor table (families, configs, aliases) and feature detection
planning        the run plan (cases in check order), the click sequence, the images
session         the common ``Session`` interface and its build / autocast helpers
hrsam_session   ``HRSAMPredictor`` behind that interface
sam_sessions    segment_anything's ``SamPredictor`` (and its tiny build), sam2's predictor
timing          one timed call, one click pass, profiled device time, per-click statistics
runner          one case: build, warm up, time, and its row (errors become rows)
checks          the issue's user-level targets and the SPC comparisons on a run's rows
report          printed tables, the environment and the JSON file
==============  ========================================================================
"""
