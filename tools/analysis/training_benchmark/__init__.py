"""The parts of ``tools/analysis/benchmark_training.py`` (the command line and its documentation):

==========  ==========================================================================
module      contents
==========  ==========================================================================
configs     the cases' configs, the variant options, optimizer wrappers, the step cases' batches
measure     the deadline, the matmul rate, the operator counter, step timing, encoder FLOPs
profiling   ``torch.profiler`` over a few steps: launches, synchronizations, copies, top-15 tables
step_cases  click-vitb and distill: one ``train_step`` per variant, timed, counted, profiled
quickstart  the quickstart config through MMEngine's ``Runner`` with a probing hook
report      failures and the time limit as rows, one printed line per result
==========  ==========================================================================
"""
