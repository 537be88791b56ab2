"""The parts of ``tools/analysis/extrapolation_study.py`` (the command line and its documentation):

=========  ===========================================================================
module     contents
=========  ===========================================================================
settings   the study's models, the ``--tiny`` options, the jobs' environment
jobs       one tool run (``Job``) and the ``Runner`` that runs them per device
records    reading the tools' outputs (training, click evaluation, attention scores)
study      the ``run`` stage: the jobs of one run and their JSON record
collect    the ``collect`` stage's ``Collector``: the JSON rebuilt from a work dir
tables     the Markdown tables and the run notes
plots      the PNGs
stages     ``plot`` and ``collect`` as the command line runs them, and the ``--bundle`` archive
=========  ===========================================================================
"""
